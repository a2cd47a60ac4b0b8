"""``dvp-scheduler rerun``: run a past execution's task again, as a new execution.

The logic is `dvp_scheduler.operations.rerun`, shared with the dashboard.
"""

from __future__ import annotations

import argparse
import asyncio

from contracts import validate_tenant_id
from dvp_scheduler import operations
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    connected,
    connection_from_arguments,
)
from dvp_scheduler.cli.query import replay_state, say
from dvp_scheduler.operations import AlreadyRerunError, rerun_execution_id
from natsio import NatsConnection, reader_client_class

__all__ = ["AlreadyRerunError", "rerun", "rerun_execution_id"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "rerun",
        help="run a past execution's task again (publishes TaskDue with trigger 'rerun')",
        description="Start a new execution of the task of EXECUTION_ID (typically a failed "
        "one): a TaskDue with trigger 'rerun' and rerun_of EXECUTION_ID. Refused when that "
        "execution was re-run already (--again runs it once more) and, like trigger, while the "
        "task's newest execution is open (--force).",
    )
    parser.add_argument("execution_id", metavar="EXECUTION_ID")
    parser.add_argument("--tenant", metavar="T", help="the execution's tenant (if ambiguous)")
    parser.add_argument(
        "--again", action="store_true", help="re-run it once more, although it was re-run"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="start it even if the task's newest execution is still open",
    )
    add_connection_arguments(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    tenant_id = validate_tenant_id(args.tenant) if args.tenant is not None else None
    connection = connection_from_arguments(args, name="dvp-scheduler-rerun")
    print(
        asyncio.run(
            rerun(connection, args.execution_id, tenant_id, again=args.again, force=args.force)
        )
    )
    return 0


async def rerun(
    connection: NatsConnection,
    execution_id: str,
    tenant_id: str | None,
    *,
    again: bool = False,
    force: bool = False,
) -> str:
    """Re-run ``execution_id``; return what was done, or raise a `SchedulerError` saying why
    not."""
    async with connected(connection, reader_client_class()) as nc:
        return await operations.rerun(
            nc,
            execution_id,
            tenant_id,
            actor=await operations.operator_actor(nc),
            again=again,
            force=force,
            replayer=replay_state,
            on_replay=say,
        )
