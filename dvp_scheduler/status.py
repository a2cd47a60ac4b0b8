"""How the scheduler stands: the stream, the work queued for the executors, the retries waiting,
and how far behind the projector is. Read by the ``status`` command and the dashboard."""

from __future__ import annotations

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from contracts import STREAM_NAME
from contracts.stream import EXECUTOR_DURABLE_PREFIX, TICKER_RETRY_DURABLE
from dvp_scheduler.errors import StreamMissingError
from projector.queries import DEFAULT_QUERY_TIMEOUT, ask_status


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


async def scheduler_status(
    nc: Client, *, where: str = "the server", answer_within: float = DEFAULT_QUERY_TIMEOUT
) -> SchedulerStatus:
    """How things stand, asked over a connected client (the ``status`` command and the
    dashboard); `StreamMissingError` when there is no stream yet."""
    js = nc.jetstream()
    try:
        info = await js.stream_info(STREAM_NAME)
    except NotFoundError:
        raise StreamMissingError(
            f"there is no stream {STREAM_NAME} on {where} yet: run "
            "'dvp-scheduler init', or start a service"
        ) from None
    queues = [
        info
        for info in await js.consumers_info(STREAM_NAME)
        if info.name.startswith(EXECUTOR_DURABLE_PREFIX)
    ]
    retries = await _consumer(js, TICKER_RETRY_DURABLE)
    projector = await ask_status(nc, answer_within=answer_within)
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
