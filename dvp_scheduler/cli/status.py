"""``dvp-scheduler status``: is the scheduler keeping up? The stream, the work queued for the
executors, the retries waiting, and how far behind the projector is."""

from __future__ import annotations

import argparse
import asyncio
import json

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from contracts import STREAM_NAME
from contracts.stream import EXECUTOR_DURABLE_PREFIX, TICKER_RETRY_DURABLE
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    connect_once,
    connection_from_arguments,
)
from dvp_scheduler.errors import StreamMissingError
from natsio import NatsConnection
from projector.queries import ask_status


class TenantQueue(msgspec.Struct, kw_only=True):
    """One tenant's executor consumer (``dvp-executor-<tenant>``)."""

    tenant_id: str
    due_queued: int
    attempts_running: int
    executors_waiting: int
    """Pull requests open on it now: 0 with work queued means no executor serves the tenant."""


class SchedulerStatus(msgspec.Struct, kw_only=True):
    """What ``status --json`` prints (field names are stable; ``null``: not known)."""

    stream: str
    messages: int
    bytes: int
    first_sequence: int
    last_sequence: int
    replicas: int
    due_queued: int | None
    """``TaskDue`` no executor has taken yet."""
    attempts_running: int | None
    """``TaskDue`` taken by an executor and not acknowledged yet."""
    redelivered: int | None
    """Attempts handed out again (an executor died, or gave them back) and not yet settled."""
    executors_waiting: int | None
    """Pull requests waiting for work: roughly, idle executor capacity."""
    retries_waiting: int | None
    """``RetryScheduled`` whose next attempt the tickers have not published yet."""
    projector_sequence: int | None
    projector_lag: int | None
    """Stream messages the projector has not folded in yet."""
    tasks: int | None
    queues: list[TenantQueue] = []
    """Per tenant; the totals above add these up."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "status",
        help="the stream, the work queued for executors, retries waiting, the projector's lag",
        description="Say how the scheduler stands: the stream's size, the TaskDue queued for "
        "the executors and the attempts running, the retries waiting for their time, and how "
        "far behind the projector is. --json prints one object with stable field names.",
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
        js = nc.jetstream()
        try:
            info = await js.stream_info(STREAM_NAME)
        except NotFoundError:
            raise StreamMissingError(
                f"there is no stream {STREAM_NAME} on {connection.url} yet: run "
                "'dvp-scheduler init', or start a service"
            ) from None
        queues = [
            info
            for info in await js.consumers_info(STREAM_NAME)
            if info.name.startswith(EXECUTOR_DURABLE_PREFIX)
        ]
        retries = await _consumer(js, TICKER_RETRY_DURABLE)
        projector = await ask_status(nc)
    finally:
        await nc.close()
    state = info.state
    return SchedulerStatus(
        stream=STREAM_NAME,
        messages=state.messages,
        bytes=state.bytes,
        first_sequence=state.first_seq,
        last_sequence=state.last_seq,
        replicas=info.config.num_replicas or 1,
        due_queued=sum(q.num_pending or 0 for q in queues) if queues else None,
        attempts_running=sum(q.num_ack_pending or 0 for q in queues) if queues else None,
        redelivered=sum(q.num_redelivered or 0 for q in queues) if queues else None,
        executors_waiting=sum(q.num_waiting or 0 for q in queues) if queues else None,
        retries_waiting=(
            (retries.num_pending or 0) + (retries.num_ack_pending or 0) if retries else None
        ),
        projector_sequence=projector.sequence if projector else None,
        projector_lag=max(0, state.last_seq - projector.sequence) if projector else None,
        tasks=projector.tasks if projector else None,
        queues=[
            TenantQueue(
                tenant_id=q.name.removeprefix(EXECUTOR_DURABLE_PREFIX),
                due_queued=q.num_pending or 0,
                attempts_running=q.num_ack_pending or 0,
                executors_waiting=q.num_waiting or 0,
            )
            for q in sorted(queues, key=lambda q: q.name)
        ],
    )


async def _consumer(js: JetStreamContext, durable: str) -> ConsumerInfo | None:
    try:
        info: ConsumerInfo = await js.consumer_info(STREAM_NAME, durable)
    except NotFoundError:
        return None
    return info


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
    return "\n".join(lines)
