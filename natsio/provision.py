"""The stream and its durable consumers as the NATS client configures them.

Built from the constants of `contracts.stream`; every service and ``dvp-scheduler init`` create
or check them with these functions, so that they agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from contracts.stream import (
    DUPLICATE_WINDOW_SECONDS,
    EXECUTOR_ACK_WAIT_SECONDS,
    EXECUTOR_DURABLE,
    EXECUTOR_MAX_ACK_PENDING,
    STREAM_NAME,
    TICKER_RETRY_DURABLE,
    TICKER_RETRY_MAX_ACK_PENDING,
)
from contracts.subjects import ALL_DUE, ALL_EVENTS, EventKind, subject_filter


def stream_config(*, replicas: int = 1, max_age_seconds: float = 0.0) -> StreamConfig:
    """The stream's settings. ``replicas`` is 3 on a cluster; ``max_age_seconds`` 0 keeps all.

    File storage, limits retention (events are facts: consumers never remove them) and direct
    get for the ticker's last-fire look-ups. Message schedules are allowed on the stream but not
    used: a retry waits in the tickers' consumer (`ticker_retry_consumer_config`).
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
