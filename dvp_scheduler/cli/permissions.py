"""``dvp-scheduler permissions``: print the NATS permissions of one role."""

from __future__ import annotations

import argparse
import json
import secrets
from dataclasses import asdict

from contracts.errors import InvalidIdentifierError
from dvp_scheduler.errors import SettingsError
from natsio.permissions import (
    ROLE_SUMMARIES,
    ROLES,
    Role,
    nats_conf_user,
    nsc_command,
    role_permissions,
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    roles = "; ".join(f"{role}: {summary}" for role, summary in ROLE_SUMMARIES.items())
    parser = commands.add_parser(
        "permissions",
        help="print the NATS permissions a role needs (one user per tenant and role)",
        description="Print the least NATS permissions of one role, for a nats-server "
        "configuration (nats-conf: one entry of 'authorization { users = [...] }'), for nsc "
        "(an 'nsc add user' command), or as JSON. A tenant's roles can neither read nor "
        "write another tenant's subjects. Roles: " + roles + ".",
    )
    parser.add_argument("--role", required=True, choices=ROLES, help="who the user is")
    parser.add_argument(
        "--tenant", metavar="ID", help="the tenant (executor, operator, subscriber)"
    )
    parser.add_argument(
        "--consumer",
        metavar="NAME",
        help="subscriber only: its durable consumer's name (default dvp-subscriber-<tenant>)",
    )
    parser.add_argument(
        "--format", choices=["nats-conf", "nsc", "json"], default="nats-conf", help="output form"
    )
    parser.add_argument(
        "--password",
        metavar="PASSWORD",
        help="nats-conf only: the user's password (default: a random one, printed)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    role: Role = args.role
    try:
        permissions = role_permissions(role, args.tenant, consumer=args.consumer)
    except (ValueError, InvalidIdentifierError) as error:
        raise SettingsError(f"permissions --role {role}: {error}") from None
    if args.format == "json":
        print(json.dumps(asdict(permissions), indent=2))
    elif args.format == "nsc":
        print(nsc_command(permissions))
    else:
        print(nats_conf_user(permissions, args.password or secrets.token_urlsafe(18)))
    return 0
