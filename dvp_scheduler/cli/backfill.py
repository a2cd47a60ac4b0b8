"""``dvp-scheduler backfill``: run a task's past fires in a range, once each.

The logic is `dvp_scheduler.backfill`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import UTC, datetime

from nats.aio.client import Client

from contracts import validate_task_id, validate_tenant_id
from dvp_scheduler import operations
from dvp_scheduler.backfill import (
    CONFIRM_ABOVE,
    BackfillOverlap,
    BackfillPlan,
    BackfillReport,
    plan_backfill,
    run_backfill,
)
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    connected,
    connection_from_arguments,
    instant_argument,
)
from dvp_scheduler.operations import instant
from natsio import NatsConnection, reader_client_class

_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:/s)?\s*$")


def rate_argument(text: str) -> float:
    """``N/s`` (or ``N``): publishes a second, above 0 and at most 10,000."""
    match = _RATE.match(text)
    value = float(match.group(1)) if match else 0.0
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError(
            f"--rate takes publishes a second, such as 10/s (above 0, at most 10000/s), "
            f"got {text!r}"
        )
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "backfill",
        help="run a task's past fires in a range (publishes TaskDue with trigger 'backfill')",
        description="Run every fire of the task's schedule in [--from, --to) (in its zone, by "
        "the same cron rules; what 'next' lists) that has not run: one TaskDue each, trigger "
        "'backfill', with the execution id the fire would have had, so a fire that ran, or a "
        "backfill run twice, is not run again. The range must be in the past.",
    )
    parser.add_argument("task_id", metavar="TASK_ID")
    parser.add_argument("--tenant", default="default", help="tenant id (default 'default')")
    parser.add_argument(
        "--from",
        dest="start",
        required=True,
        type=instant_argument,
        metavar="INSTANT",
        help="the first instant of the range (RFC 3339, included)",
    )
    parser.add_argument(
        "--to",
        dest="end",
        required=True,
        type=instant_argument,
        metavar="INSTANT",
        help="the end of the range (RFC 3339, excluded; at most now)",
    )
    parser.add_argument(
        "--overlap",
        choices=("buffer", "allow", "skip"),
        help="how the executions follow each other: 'buffer' one after another (the default "
        "for a task whose overlap policy is 'skip'), 'allow' at the rate without waiting "
        "(the default for 'allow'), 'skip' leaves out a fire that comes while an execution "
        "is open",
    )
    parser.add_argument(
        "--rate",
        type=rate_argument,
        default=10.0,
        metavar="N/s",
        help="at most this many TaskDue a second (default 10/s)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list the fires and what would run; publish nothing"
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help=f"confirm a range of more than {CONFIRM_ABOVE:,} fires",
    )
    add_connection_arguments(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    tenant_id = validate_tenant_id(args.tenant)
    task_id = validate_task_id(args.task_id)
    connection = connection_from_arguments(args, name="dvp-scheduler-backfill")
    print(asyncio.run(backfill(connection, tenant_id, task_id, args)))
    return 0


async def backfill(
    connection: NatsConnection, tenant_id: str, task_id: str, args: argparse.Namespace
) -> str:
    """Plan the backfill, then list it (``--dry-run``) or run it; return the summary."""
    async with connected(connection, reader_client_class()) as nc:
        plan = await plan_backfill(
            nc,
            tenant_id,
            task_id,
            args.start,
            args.end,
            now=datetime.now(UTC),
            confirmed=args.yes,
        )
        if args.dry_run:
            return _listing(plan)
        overlap: BackfillOverlap = args.overlap or (
            "allow" if plan.schedule.overlap == "allow" else "buffer"
        )
        report = await _run_with_progress(nc, plan, overlap, args.rate)
        return _summary(plan, report, overlap)


async def _run_with_progress(
    nc: Client, plan: BackfillPlan, overlap: BackfillOverlap, rate: float
) -> BackfillReport:
    terminal = sys.stderr.isatty()

    def show(done: int, total: int, what: str) -> None:
        line = f"backfill {done}/{total}: {what}"
        print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)

    try:
        return await run_backfill(
            nc,
            plan,
            overlap=overlap,
            rate=rate,
            actor=await operations.operator_actor(nc),
            progress=show if terminal else None,
        )
    finally:
        if terminal:
            print(file=sys.stderr)


def _listing(plan: BackfillPlan) -> str:
    lines = [
        f"{instant(fire)}  "
        + (f"ran already ({plan.execution_id(fire)})" if plan.has_run(fire) else "would run")
        for fire in plan.fires
    ]
    lines.append(
        f"{len(plan.fires)} fire(s) of {plan.tenant_id}/{plan.task_id} in "
        f"[{instant(plan.start)}, {instant(plan.end)}): {len(plan.to_run)} would run, "
        f"{len(plan.fires) - len(plan.to_run)} ran already (dry run: nothing published)"
    )
    return "\n".join(lines)


def _summary(plan: BackfillPlan, report: BackfillReport, overlap: BackfillOverlap) -> str:
    text = (
        f"backfilled {plan.tenant_id}/{plan.task_id} over [{instant(plan.start)}, "
        f"{instant(plan.end)}): {len(report.published)} of {len(plan.fires)} fire(s) "
        f"published (overlap {overlap}), {len(report.already)} ran already"
    )
    if report.skipped:
        text += f", {len(report.skipped)} left out while an execution was open: " + ", ".join(
            instant(fire) for fire in report.skipped
        )
    return text
