"""``dvp-scheduler status``: is the scheduler keeping up? The stream, the work queued for the
executors, the retries waiting, how far behind the projector is, and the overdue tasks."""

from __future__ import annotations

import argparse
import asyncio
import json

import msgspec
from nats.aio.client import Client

from contracts.stream import EXECUTOR_DURABLE_PREFIX
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    connect_once,
    connection_from_arguments,
)
from dvp_scheduler.durations import short_duration
from dvp_scheduler.status import SchedulerStatus, TenantQueue, scheduler_status
from natsio import NatsConnection

__all__ = ["SchedulerStatus", "TenantQueue", "describe_status", "read_status", "register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "status",
        help="the stream, the work queued for executors, retries waiting, the projector's "
        "lag, overdue tasks",
        description="Say how the scheduler stands: the stream's size, the TaskDue queued for "
        "the executors and the attempts running, the retries waiting for their time, how "
        "far behind the projector is, and the tasks whose last success is older than their "
        "schedule allows (overdue), with how late. --json prints one object with stable field "
        "names.",
    )
    add_connection_arguments(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    connection = connection_from_arguments(args, name="dvp-scheduler-status")
    status = asyncio.run(read_status(connection))
    if args.json:
        print(json.dumps(msgspec.to_builtins(status), indent=2))
    else:
        print(describe_status(status))
    return 0


async def read_status(connection: NatsConnection) -> SchedulerStatus:
    """Ask the stream, its consumers and the projector how things stand."""
    nc = await connect_once(connection, Client)
    try:
        return await scheduler_status(nc, where=connection.url)
    finally:
        await nc.close()


def describe_status(status: SchedulerStatus) -> str:
    """The status as lines for people."""
    size = (
        f"{status.bytes / 1_000_000:,.1f} MB"
        if status.bytes >= 1_000_000
        else f"{status.bytes / 1000:,.1f} kB"
    )
    lines = [
        f"stream     {status.stream}: {status.messages:,} events ({size}), sequences "
        f"{status.first_sequence:,} to {status.last_sequence:,}, {status.replicas} replica(s)"
    ]
    if status.due_queued is None:
        lines.append(
            f"executors  no consumer {EXECUTOR_DURABLE_PREFIX}<tenant> yet: no executor, "
            "ticker or init has run"
        )
    else:
        lines.append(
            f"executors  {status.due_queued:,} TaskDue queued, {status.attempts_running:,} "
            f"attempt(s) running, {status.redelivered:,} redelivered, "
            f"{status.executors_waiting:,} pull request(s) waiting for work"
        )
        for queue in status.queues:
            if queue.due_queued and not queue.executors_waiting and not queue.attempts_running:
                lines.append(
                    f"           tenant {queue.tenant_id}: {queue.due_queued:,} TaskDue wait "
                    "for an executor; none serving it is pulling (start one with "
                    f"--tenant {queue.tenant_id})"
                )
    if status.retries_waiting is None:
        lines.append("retries    no ticker has run yet")
    else:
        lines.append(f"retries    {status.retries_waiting:,} waiting for their retry_at")
    if status.projector_sequence is None:
        lines.append("projector  none answered: 'tasks' and 'history' replay in-process")
    else:
        lines.append(
            f"projector  at sequence {status.projector_sequence:,} "
            f"({status.projector_lag:,} behind), {status.tasks:,} task(s)"
        )
        lines.extend(_overdue_lines(status))
    return "\n".join(lines)


def _overdue_lines(status: SchedulerStatus) -> list[str]:
    """``overdue    none``, or how many tasks are overdue and the latest of them, how late."""
    if not status.overdue_tasks:
        return ["overdue    none"]
    lines = [f"overdue    {status.overdue_tasks:,} task(s), the latest first:"]
    for task in status.overdue:
        last = (
            f"last success {task.last_succeeded_at.isoformat().replace('+00:00', 'Z')}"
            if task.last_succeeded_at is not None
            else "no success since it was registered or resumed"
        )
        lines.append(
            f"           {task.tenant_id}/{task.task_id}: overdue by "
            f"{short_duration(task.overdue_seconds)} ({last})"
        )
    if status.overdue_tasks > len(status.overdue):
        lines.append(f"           and {status.overdue_tasks - len(status.overdue):,} more")
    return lines
