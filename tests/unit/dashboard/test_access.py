"""Tokens, scopes and the checks of an action's request (dvp_scheduler.dashboard.access)."""

from __future__ import annotations

import pytest

from dvp_scheduler.dashboard.access import (
    OPERATOR,
    READ_ONLY,
    action_allowed,
    local_path,
    parse_tenant_token,
    same_origin,
    scope_for_token,
    tenant_scope,
)

TENANTS = {"acme": "acme-token", "globex": "globex-token"}
HOST = "127.0.0.1:8470"
ORIGIN = f"http://{HOST}"


def test_tokens_grant_their_scopes() -> None:
    assert scope_for_token("op-token", "op-token", TENANTS) == OPERATOR
    acme = scope_for_token("acme-token", "op-token", TENANTS)
    assert acme == tenant_scope("acme")
    assert acme is not None
    assert acme.sees("acme")
    assert not acme.sees("globex")
    assert OPERATOR.sees("globex")


@pytest.mark.parametrize("token", ["", "op-toke", "op-token ", "ACME-TOKEN", "nope"])
def test_unknown_tokens_grant_nothing(token: str) -> None:
    assert scope_for_token(token, "op-token", TENANTS) is None


def test_without_an_operator_token_only_tenant_tokens_work() -> None:
    assert scope_for_token("op-token", None, TENANTS) is None
    assert scope_for_token("globex-token", None, TENANTS) == tenant_scope("globex")


def test_tenant_tokens_are_read_from_tenant_equals_token() -> None:
    assert parse_tenant_token("acme=s3=cret") == ("acme", "s3=cret")
    for bad in ("acme", "=token", "acme="):
        with pytest.raises(ValueError, match="TENANT=TOKEN"):
            parse_tenant_token(bad)


@pytest.mark.parametrize(
    ("origin", "referer", "expected"),
    [
        (ORIGIN, None, True),
        (None, f"{ORIGIN}/tasks/a/b", True),
        ("http://evil.example", None, False),
        ("http://evil.example", f"{ORIGIN}/", False),  # the Origin decides when sent
        ("null", None, False),
        (None, None, False),
        ("http://127.0.0.1:9999", None, False),
    ],
)
def test_same_origin(origin: str | None, referer: str | None, expected: bool) -> None:
    assert same_origin(origin, referer, HOST) is expected


def allowed(scope: object = OPERATOR, tenant: str = "acme", **changes: object) -> str | None:
    request: dict[str, object] = {
        "session_csrf": "csrf-1",
        "sent_csrf": "csrf-1",
        "origin": ORIGIN,
        "referer": None,
        "host": HOST,
    }
    request.update(changes)
    return action_allowed(scope, tenant, **request)  # type: ignore[arg-type]


def test_an_action_needs_the_origin_the_csrf_token_and_a_scope_that_acts() -> None:
    assert allowed() is None
    assert allowed(tenant_scope("acme")) is None
    assert "Origin" in (allowed(origin="http://evil.example") or "")
    assert "CSRF" in (allowed(sent_csrf=None) or "")
    assert "CSRF" in (allowed(sent_csrf="csrf-2") or "")
    assert "CSRF" in (allowed(session_csrf=None, sent_csrf=None) or "")
    assert "read-only" in (allowed(READ_ONLY) or "")
    assert "tenant acme only" in (allowed(tenant_scope("acme"), tenant="globex") or "")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/tasks/acme/x", "/tasks/acme/x"),
        ("/", "/"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
    ],
)
def test_after_signing_in_it_goes_only_to_a_page_of_its_own(target: str, expected: str) -> None:
    assert local_path(target) == expected
