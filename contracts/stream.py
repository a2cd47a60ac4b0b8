"""The JetStream stream and consumer settings, in one place.

Every service creates or checks the stream with `stream_config` so that they agree on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from contracts.subjects import ALL_DUE, ALL_EVENTS, EventKind, subject_filter

STREAM_NAME: Final = "DVP_TASKS"
"""The one stream that holds every fact."""

DUPLICATE_WINDOW_SECONDS: Final = 15 * 60.0
"""How long JetStream remembers ``Nats-Msg-Id``s to drop duplicate publishes."""

EXECUTOR_DURABLE: Final = "dvp-executor"
"""The durable pull consumer that every executor shares."""

EXECUTOR_ACK_WAIT_SECONDS: Final = 30.0
"""A ``TaskDue`` not acknowledged (nor marked in progress) for this long is redelivered."""

EXECUTOR_MAX_ACK_PENDING: Final = 10_000
"""Most ``TaskDue`` messages handed out and not yet acknowledged, across all executors."""

TICKER_RETRY_DURABLE: Final = "dvp-ticker-retries"
"""The durable pull consumer of ``RetryScheduled`` that every ticker shares."""

TICKER_RETRY_MAX_ACK_PENDING: Final = 100_000
"""Most retries waiting for their ``retry_at`` at once (each is held unacknowledged until then)."""


def stream_config(*, replicas: int = 1, max_age_seconds: float = 0.0) -> StreamConfig:
    """The stream's settings. ``replicas`` is 3 on a cluster; ``max_age_seconds`` 0 keeps all.

    File storage, limits retention (events are facts: consumers never remove them), direct get
    for the ticker's last-fire look-ups, and message schedules for durable retries.
    """
    return StreamConfig(
        name=STREAM_NAME,
        description="dvp-scheduler: every task event, the only source of truth",
        subjects=[ALL_EVENTS],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        max_age=max_age_seconds,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        allow_direct=True,
        allow_msg_schedules=True,
    )


def executor_consumer_config() -> ConsumerConfig:
    """The shared durable pull consumer executors take ``TaskDue`` messages from."""
    return ConsumerConfig(
        durable_name=EXECUTOR_DURABLE,
        description="dvp-scheduler executors: TaskDue work queue",
        filter_subject=ALL_DUE,
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=EXECUTOR_ACK_WAIT_SECONDS,
        max_ack_pending=EXECUTOR_MAX_ACK_PENDING,
        max_deliver=-1,
    )


def ticker_retry_consumer_config(*, start_time: datetime) -> ConsumerConfig:
    """The durable pull consumer tickers take ``RetryScheduled`` from, starting at
    ``start_time`` when it is first created.

    A ticker holds each retry unacknowledged (negative acknowledgement with a delay) until its
    ``retry_at``, publishes the next attempt's ``TaskDue``, then acknowledges it; so a retry that
    comes due while no ticker runs is delivered to the next one that starts.
    """
    return ConsumerConfig(
        durable_name=TICKER_RETRY_DURABLE,
        description="dvp-scheduler tickers: RetryScheduled waiting for retry_at",
        filter_subject=subject_filter(kind=EventKind.RETRY),
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=start_time.astimezone(UTC),
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=EXECUTOR_ACK_WAIT_SECONDS,
        max_ack_pending=TICKER_RETRY_MAX_ACK_PENDING,
        max_deliver=-1,
    )
