"""``dvp-scheduler dashboard``: the operators' console in a browser."""

from __future__ import annotations

import argparse
import asyncio
from typing import Final

from dvp_scheduler.cli._common import (
    add_connection_arguments,
    connection_from_arguments,
    port_number,
)
from dvp_scheduler.cli._settings import add_setting, environment_variable, settings_from_arguments
from dvp_scheduler.dashboard import DashboardSettings
from dvp_scheduler.dashboard.access import parse_tenant_token
from dvp_scheduler.errors import SettingsError

_FLAGS: Final = {
    "host": "--host",
    "port": "--port",
    "token": "--token",
    "require_token": "--require-token",
}
"""The settings the command line sets, by field, with their flags."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "dashboard",
        help="the operators' console: a web dashboard, live from the stream",
        description="Serve a web dashboard: an overview, every task with its schedule in words, "
        "a task's upcoming fires and history, the failures, and the events live. It reads only "
        "NATS (the projector's queries and the stream). Without a token it is read-only; "
        "signed in with the operator token (--token) one may trigger, pause, resume and "
        "re-run, which writes the same events as the commands of those names; a tenant token "
        "(--tenant-token TENANT=TOKEN) sees and acts on that tenant only.",
    )
    add_connection_arguments(parser)
    group = parser.add_argument_group("dashboard (environment: DVP_DASHBOARD_<OPTION>)")
    add_setting(group, DashboardSettings, "host", "--host", metavar="HOST")
    add_setting(group, DashboardSettings, "port", "--port", metavar="PORT", convert=port_number)
    add_setting(
        group,
        DashboardSettings,
        "token",
        "--token",
        metavar="TOKEN",
        shown_default="none: read-only",
    )
    group.add_argument(
        "--tenant-token",
        dest="tenant_token_list",
        action="append",
        default=None,
        metavar="TENANT=TOKEN",
        help="a token that sees and acts on TENANT only (repeatable; "
        f'{environment_variable(DashboardSettings, "tenant_tokens")}=\'{{"acme": "s3cret"}}\')',
    )
    add_setting(group, DashboardSettings, "require_token", "--require-token")
    parser.set_defaults(handler=_run)


def settings_from(args: argparse.Namespace) -> DashboardSettings:
    """The dashboard's settings from the command line, the environment and the defaults."""
    fixed: dict[str, object] = {"connection": connection_from_arguments(args, name="dvp-dashboard")}
    if args.tenant_token_list:
        tokens = dict(DashboardSettings().tenant_tokens)
        for text in args.tenant_token_list:
            try:
                tenant_id, token = parse_tenant_token(text)
            except ValueError as error:
                raise SettingsError(f"--tenant-token: {error}") from None
            tokens[tenant_id] = token  # type: ignore[assignment]
        fixed["tenant_tokens"] = tokens
    return settings_from_arguments(DashboardSettings, args, _FLAGS, **fixed)


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    def ready(url: str) -> None:
        mode = "read-only" if settings.token is None and not settings.tenant_tokens else "tokens"
        print(f"dashboard      {url}  ({mode}; NATS {settings.connection.url})", flush=True)

    from dvp_scheduler.dashboard import run_dashboard  # the web stack, only when it runs

    asyncio.run(run_dashboard(settings, on_ready=ready))
    return 0
