"""``dvp-scheduler cancel``: end an open execution at an operator's request.

The logic is `dvp_scheduler.operations.cancel`, shared with the dashboard.
"""

from __future__ import annotations

import argparse
import asyncio

from contracts import validate_task_id, validate_tenant_id
from dvp_scheduler import operations
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    connected,
    connection_from_arguments,
)
from dvp_scheduler.cli.query import replay_state, say
from dvp_scheduler.errors import SettingsError
from natsio import NatsConnection, reader_client_class


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(
            f"--wait takes a number of seconds from 0 to 3600, got {text!r}"
        )
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "cancel",
        help="cancel an open execution (publishes TaskCancelRequested)",
        description="Ask to cancel EXECUTION_ID, which has not ended: the executor running its "
        "attempt cancels the plugin (as a timeout does), an attempt still waiting for an "
        "executor is ended when one takes it, and a retry waiting for its time is closed by a "
        "ticker. Each records TaskFailed with error kind and reason 'cancelled' and the note; "
        "no retry follows. Waits up to --wait seconds to report the end. With --scheduled, "
        "EXECUTION_ID is a one-off run's (trigger --at), removed before it fires.",
    )
    parser.add_argument("execution_id", metavar="EXECUTION_ID")
    parser.add_argument("--tenant", metavar="T", help="the execution's tenant (if ambiguous)")
    parser.add_argument("--note", default="", help="why, for the audit trail")
    parser.add_argument(
        "--scheduled",
        action="store_true",
        help="EXECUTION_ID is a one-off run scheduled with 'trigger --at': remove it before "
        "it fires",
    )
    parser.add_argument(
        "--task", metavar="TASK_ID", help="with --scheduled: the run's task (found if left out)"
    )
    parser.add_argument(
        "--wait",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the execution to end before answering (default 10; 0 "
        "answers at once)",
    )
    add_connection_arguments(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    tenant_id = validate_tenant_id(args.tenant) if args.tenant is not None else None
    connection = connection_from_arguments(args, name="dvp-scheduler-cancel")
    if args.scheduled:
        task_id = validate_task_id(args.task) if args.task is not None else None
        print(
            asyncio.run(
                cancel_scheduled(connection, args.execution_id, tenant_id, task_id, args.note)
            )
        )
        return 0
    if args.task is not None:
        raise SettingsError("--task goes with --scheduled; an execution is found by its id alone")
    print(
        asyncio.run(
            cancel(connection, args.execution_id, tenant_id, note=args.note, wait=args.wait)
        )
    )
    return 0


async def cancel_scheduled(
    connection: NatsConnection, run_id: str, tenant_id: str | None, task_id: str | None, note: str
) -> str:
    """Remove the one-off run ``run_id`` before it fires."""
    async with connected(connection, reader_client_class()) as nc:
        return await operations.cancel_scheduled_run(
            nc,
            run_id,
            tenant_id,
            task_id=task_id,
            actor=await operations.operator_actor(nc),
            note=note,
        )


async def cancel(
    connection: NatsConnection,
    execution_id: str,
    tenant_id: str | None,
    *,
    note: str = "",
    wait: float = 10.0,
) -> str:
    """Cancel ``execution_id``; return what came of it, or raise a `SchedulerError` saying why
    not."""
    async with connected(connection, reader_client_class()) as nc:
        return await operations.cancel(
            nc,
            execution_id,
            tenant_id,
            actor=await operations.operator_actor(nc),
            note=note,
            wait_seconds=wait,
            replayer=replay_state,
            on_replay=say,
        )
