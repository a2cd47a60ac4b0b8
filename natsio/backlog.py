"""What waits in the stream: its size, each tenant's executor queue and the retries held by the
tickers, read from the stream's and the consumers' info (``status``, the dashboard and the
projector's metrics)."""

from __future__ import annotations

import msgspec
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from contracts.stream import EXECUTOR_DURABLE_PREFIX, STREAM_NAME, TICKER_RETRY_DURABLE


class TenantQueue(msgspec.Struct, frozen=True, kw_only=True):
    """One tenant's executor consumer (``dvp-executor-<tenant>``)."""

    tenant_id: str
    due_queued: int
    """``TaskDue`` no executor has taken yet."""
    attempts_running: int
    """``TaskDue`` taken by an executor and not acknowledged yet."""
    redelivered: int = 0
    """Attempts handed out again (an executor died, or gave them back), not yet settled."""
    executors_waiting: int
    """Pull requests open on it now: 0 with work queued means no executor serves the tenant."""


class Backlog(msgspec.Struct, frozen=True, kw_only=True):
    """The stream and what waits in it, as its and its consumers' info say."""

    messages: int
    bytes: int
    first_sequence: int
    last_sequence: int
    replicas: int
    queues: list[TenantQueue]
    """One per tenant with an executor consumer, by tenant."""
    retries_waiting: int | None
    """``RetryScheduled`` whose next attempt the tickers have not published yet; ``None``
    while no ticker has created its retry consumer."""


async def read_backlog(js: JetStreamContext) -> Backlog:
    """The stream's `Backlog`; raises nats-py's ``NotFoundError`` when there is no stream."""
    info = await js.stream_info(STREAM_NAME)
    consumers = [
        consumer
        for consumer in await js.consumers_info(STREAM_NAME)
        if consumer.name.startswith(EXECUTOR_DURABLE_PREFIX)
    ]
    retries = await _consumer(js, TICKER_RETRY_DURABLE)
    state = info.state
    return Backlog(
        messages=state.messages,
        bytes=state.bytes,
        first_sequence=state.first_seq,
        last_sequence=state.last_seq,
        replicas=info.config.num_replicas or 1,
        queues=[
            TenantQueue(
                tenant_id=consumer.name.removeprefix(EXECUTOR_DURABLE_PREFIX),
                due_queued=consumer.num_pending or 0,
                attempts_running=consumer.num_ack_pending or 0,
                redelivered=consumer.num_redelivered or 0,
                executors_waiting=consumer.num_waiting or 0,
            )
            for consumer in sorted(consumers, key=lambda c: c.name)
        ],
        retries_waiting=(
            (retries.num_pending or 0) + (retries.num_ack_pending or 0) if retries else None
        ),
    )


async def _consumer(js: JetStreamContext, durable: str) -> ConsumerInfo | None:
    try:
        info: ConsumerInfo = await js.consumer_info(STREAM_NAME, durable)
    except NotFoundError:
        return None
    return info
