"""The dashboard's settings: one pydantic-settings model, ``DVP_DASHBOARD_*``; the command
line derives its flags from it."""

from __future__ import annotations

from typing import Final

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from natsio import NatsConnection

DEFAULT_DASHBOARD_PORT: Final = 8470


class DashboardSettings(BaseSettings):
    """How the dashboard runs and whom it lets act."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_prefix="DVP_DASHBOARD_")

    connection: NatsConnection = Field(
        default_factory=NatsConnection, description="the NATS server and credentials"
    )
    host: str = Field(
        default="127.0.0.1",
        description="address to listen on (0.0.0.0 to serve other machines: give tokens then)",
    )
    port: int = Field(default=DEFAULT_DASHBOARD_PORT, ge=0, le=65535, description="port")
    token: SecretStr | None = Field(
        default=None,
        description="the operator token: signed in with it, one may trigger, pause, resume "
        "and re-run on every tenant; without one the dashboard is read-only",
    )
    tenant_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="tokens that see and act on one tenant only, by tenant",
    )
    require_token: bool = Field(
        default=False,
        description="show nothing without a token (by default anyone who reaches the port reads "
        "every tenant)",
    )
    query_timeout_seconds: float = Field(
        default=1.0, gt=0, description="how long to wait for the projector's answer"
    )
    refresh_seconds: float = Field(
        default=1.0,
        gt=0,
        description="task rows older than this are fetched again from the projector",
    )
