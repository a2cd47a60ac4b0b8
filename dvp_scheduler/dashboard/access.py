"""Who may see and do what on the dashboard, and the check of every action's request. Pure.

Without a token a visitor reads everything and acts on nothing (unless `DashboardSettings`
requires a token to read, too). The operator token (``--token``) reads and acts on every
tenant; a tenant token (``--tenant-token TENANT=TOKEN``) reads and acts on its tenant only.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

ALL_TENANTS: Final = None


@dataclass(frozen=True)
class Scope:
    """What a session may see and do."""

    tenant_id: str | None
    """The one tenant it sees, or ``None`` for every tenant."""
    can_act: bool
    """Whether it may trigger, pause, resume and re-run."""
    label: str
    """Who it is, for the page and the audit trail: ``read-only``, ``operator``,
    ``tenant acme``."""

    def sees(self, tenant_id: str) -> bool:
        """Whether this scope sees ``tenant_id``'s tasks and events."""
        return self.tenant_id is None or self.tenant_id == tenant_id


READ_ONLY: Final = Scope(tenant_id=ALL_TENANTS, can_act=False, label="read-only")
OPERATOR: Final = Scope(tenant_id=ALL_TENANTS, can_act=True, label="operator")


def tenant_scope(tenant_id: str) -> Scope:
    """The scope of a tenant token."""
    return Scope(tenant_id=tenant_id, can_act=True, label=f"tenant {tenant_id}")


def scope_for_token(
    token: str, operator_token: str | None, tenant_tokens: dict[str, str]
) -> Scope | None:
    """The scope ``token`` grants, or ``None`` when it is no token we know.

    Every comparison runs in constant time and all of them run, so the answer's timing does not
    tell which token came close.
    """
    if not token:
        return None
    found: Scope | None = None
    if operator_token and hmac.compare_digest(token.encode(), operator_token.encode()):
        found = OPERATOR
    for tenant_id, tenant_token in sorted(tenant_tokens.items()):
        if hmac.compare_digest(token.encode(), tenant_token.encode()) and found is None:
            found = tenant_scope(tenant_id)
    return found


def parse_tenant_token(text: str) -> tuple[str, str]:
    """``TENANT=TOKEN`` as given to ``--tenant-token``; raise `ValueError` saying what to write."""
    tenant_id, sep, token = text.partition("=")
    if not sep or not tenant_id.strip() or not token:
        raise ValueError(f"a tenant token is TENANT=TOKEN, e.g. acme=s3cret; got {text!r}")
    return tenant_id.strip(), token


def new_secret() -> str:
    """A fresh random value for a session id or a CSRF token."""
    return secrets.token_urlsafe(32)


def same_origin(origin: str | None, referer: str | None, host: str | None) -> bool:
    """Whether a request comes from a page of this dashboard: its ``Origin`` (or, where a
    browser sends none, its ``Referer``) names the ``Host`` the request was sent to."""
    if not host:
        return False
    source = origin or referer
    if not source or source == "null":
        return False
    return urlsplit(source).netloc.lower() == host.lower()


def action_allowed(
    scope: Scope,
    tenant_id: str,
    *,
    session_csrf: str | None,
    sent_csrf: str | None,
    origin: str | None,
    referer: str | None,
    host: str | None,
) -> str | None:
    """``None`` when an action on ``tenant_id`` may go ahead, else why not (the answer's
    text). Three checks: the request comes from this dashboard's own pages, it carries the
    session's CSRF token, and the session's scope may act on that tenant."""
    if not same_origin(origin, referer, host):
        return "refused: the request does not come from this dashboard's pages (Origin check)"
    if not session_csrf or not sent_csrf or not hmac.compare_digest(session_csrf, sent_csrf):
        return "refused: missing or wrong CSRF token; reload the page"
    if not scope.can_act:
        return "refused: read-only; sign in with a token to act"
    if not scope.sees(tenant_id):
        return f"refused: this token acts on tenant {scope.tenant_id} only"
    return None


def local_path(target: str) -> str:
    """``target`` if it is a path on this site (where to go after signing in), else ``/``: never
    another site (``//evil.example``, ``https://...``)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
