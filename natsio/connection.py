"""How every service connects to NATS: one settings object, passed the same way to all."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


class NatsConnection(BaseModel):
    """NATS server address and credentials (user/password, token, creds file, TLS)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(default=DEFAULT_NATS_URL, description="comma-separated server URLs")
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    creds_file: Path | None = Field(default=None, description="NATS credentials (JWT + nkey)")
    nkeys_seed_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    name: str | None = Field(default=None, description="client name shown by the server")
    inbox_prefix: str | None = Field(
        default=None,
        description="where replies to this client go (default _INBOX); a tenant's users get "
        "one of their own, so that no other user can subscribe to their replies",
    )

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``."""
        kwargs: dict[str, Any] = {"servers": [u.strip() for u in self.url.split(",") if u.strip()]}
        if self.name:
            kwargs["name"] = self.name
        if self.inbox_prefix:
            kwargs["inbox_prefix"] = self.inbox_prefix
        if self.user:
            kwargs["user"] = self.user
        if self.password:
            kwargs["password"] = self.password.get_secret_value()
        if self.token:
            kwargs["token"] = self.token.get_secret_value()
        if self.creds_file:
            kwargs["user_credentials"] = str(self.creds_file)
        if self.nkeys_seed_file:
            kwargs["nkeys_seed"] = str(self.nkeys_seed_file)
        if self.tls_ca_file or self.tls_cert_file:
            context = ssl.create_default_context(
                cafile=str(self.tls_ca_file) if self.tls_ca_file else None
            )
            if self.tls_cert_file:
                context.load_cert_chain(
                    str(self.tls_cert_file), str(self.tls_key_file) if self.tls_key_file else None
                )
            kwargs["tls"] = context
        return kwargs
