"""The generated grants stay inside their tenant (natsio.permissions)."""

from __future__ import annotations

import pytest

from dvp_scheduler.cli import main
from natsio.permissions import TENANT_ROLES, nats_conf_user, nsc_command, role_permissions


@pytest.mark.parametrize("role", sorted(TENANT_ROLES))
def test_a_tenant_role_names_its_tenant_in_every_grant(role: str) -> None:
    permissions = role_permissions(role, "acme")  # type: ignore[arg-type]
    for grant in (*permissions.publish, *permissions.subscribe):
        tokens = grant.split(".")
        if grant == "$SYS.REQ.USER.INFO":  # who the connection is: its own user only
            continue
        assert "acme" in grant, f"{grant} does not name the tenant"
        assert "globex" not in grant
        # Never the stream's info (it lists every subject) nor a get by sequence.
        assert not grant.startswith("$JS.API.STREAM.")
        assert grant != "$JS.API.DIRECT.GET.DVP_TASKS"
        if grant.startswith("$JS.API.CONSUMER."):
            assert tokens[3 if tokens[3] != "MSG" else 5] != "*", grant
            assert "*" not in tokens[:6], f"{grant}: a consumer must be named, not matched"
    assert permissions.inbox_prefix == f"_INBOX.dvp-{role}-acme"
    # Besides its inbox, an executor hears its tenant's cancel requests as they are published.
    heard = ("dvp.tasks.acme.cancel.>",) if role == "executor" else ()
    assert permissions.subscribe == (f"_INBOX.dvp-{role}-acme.>", *heard)


def test_an_executor_publishes_only_what_executors_record() -> None:
    events = {
        grant
        for grant in role_permissions("executor", "acme").publish
        if grant.startswith("dvp.tasks.")
    }
    kinds = {grant.split(".")[3] for grant in events}
    assert kinds == {"registered", "unregistered", "started", "succeeded", "retry", "failed"}


def test_bad_combinations_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="give --tenant"):
        role_permissions("executor")
    with pytest.raises(ValueError, match="leave --tenant out"):
        role_permissions("ticker", "acme")
    with pytest.raises(ValueError, match=r"tenant id 'a\.b' is not allowed"):
        role_permissions("operator", "a.b")


def test_the_formats_carry_the_same_grants(capsys: pytest.CaptureFixture[str]) -> None:
    permissions = role_permissions("subscriber", "acme", consumer="billing")
    conf = nats_conf_user(permissions, "secret")
    nsc = nsc_command(permissions)
    for grant in (*permissions.publish, *permissions.subscribe):
        assert f'"{grant}"' in conf
        assert f"'{grant}'" in nsc
    assert "$JS.API.CONSUMER.CREATE.DVP_TASKS.billing.dvp.tasks.acme.>" in permissions.publish
    assert main(["permissions", "--role", "executor"]) == 2
    assert "give --tenant" in capsys.readouterr().err
