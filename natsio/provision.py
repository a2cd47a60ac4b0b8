"""The stream and its durable consumers as the NATS client configures them.

Built from the constants of `contracts.stream`; every service and ``dvp-scheduler init`` create
or check them with these functions, so that they agree.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from contracts.queries import CHECKPOINT_BUCKET, TASK_STATE_BUCKET
from contracts.stream import (
    DUPLICATE_WINDOW_SECONDS,
    EXECUTOR_ACK_WAIT_SECONDS,
    EXECUTOR_MAX_ACK_PENDING,
    STREAM_NAME,
    TICKER_RETRY_ACK_WAIT_SECONDS,
    TICKER_RETRY_DURABLE,
    TICKER_RETRY_MAX_ACK_PENDING,
    executor_durable,
)
from contracts.subjects import ALL_EVENTS, EventKind, subject_filter
from natsio.errors import ProvisioningError

log = logging.getLogger("dvp_scheduler.natsio")


def stream_config(*, replicas: int = 1, max_age_seconds: float = 0.0) -> StreamConfig:
    """The stream's settings. ``replicas`` is 3 on a cluster; ``max_age_seconds`` 0 keeps all.

    File storage, limits retention (events are facts: consumers never remove them) and direct
    get for look-ups of a task's last event. A retry waits in the tickers' consumer
    (`ticker_retry_consumer_config`), not in a message schedule.
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
    )


def executor_consumer_config(tenant_id: str) -> ConsumerConfig:
    """The durable pull consumer the executors serving ``tenant_id`` take its ``TaskDue`` from.

    It starts at new messages: the ticker creates it before it publishes the tenant's first
    ``TaskDue`` (`ensure_executor_consumer`), and executors create it for their tenants at start.
    """
    durable = executor_durable(tenant_id)
    return ConsumerConfig(
        durable_name=durable,
        name=durable,
        description=f"dvp-scheduler executors of tenant {tenant_id}: TaskDue work queue",
        filter_subject=subject_filter(tenant_id=tenant_id, kind=EventKind.DUE),
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
        ack_wait=TICKER_RETRY_ACK_WAIT_SECONDS,
        max_ack_pending=TICKER_RETRY_MAX_ACK_PENDING,
        max_deliver=-1,
    )


async def ensure_stream(js: JetStreamContext) -> StreamInfo:
    """The stream's info; the stream is created with `stream_config` if it does not exist.

    When several services start at once, one creates it and the others use what it created.
    """
    try:
        return await js.stream_info(STREAM_NAME)
    except NotFoundError:
        log.info("stream %s not found; creating it", STREAM_NAME)
    try:
        return await js.add_stream(stream_config())
    except APIError as error:
        try:  # another service created it meanwhile (perhaps with settings of its own)
            return await js.stream_info(STREAM_NAME)
        except NotFoundError:
            raise ProvisioningError(f"cannot create the stream {STREAM_NAME}: {error}") from error


async def ensure_consumer(js: JetStreamContext, config: ConsumerConfig) -> ConsumerInfo:
    """The durable consumer's info; created with ``config`` if it does not exist.

    An existing consumer is used as it is, so that one service's settings never fight
    another's; of two services creating it at once, the second uses the first one's.
    """
    durable = config.durable_name
    if durable is None:
        raise ValueError("ensure_consumer needs a durable consumer configuration")
    try:
        info: ConsumerInfo = await js.consumer_info(STREAM_NAME, durable)
        return info
    except NotFoundError:
        pass
    try:
        info = await js.add_consumer(STREAM_NAME, config)
    except APIError as error:
        try:
            existing: ConsumerInfo = await js.consumer_info(STREAM_NAME, durable)
            return existing
        except NotFoundError:
            raise ProvisioningError(
                f"cannot create the consumer {durable!r} on stream {STREAM_NAME}: {error}"
            ) from error
    log.info("created the consumer %s", durable)
    return info


def task_state_bucket_config(*, replicas: int = 1) -> KeyValueConfig:
    """The key-value bucket the projector mirrors each task's state into, at the stream's
    ``replicas`` (so that it survives what the stream survives)."""
    return KeyValueConfig(
        bucket=TASK_STATE_BUCKET,
        history=1,
        replicas=replicas,
        description="dvp-scheduler: each task's current state, kept by the projector",
    )


def checkpoint_store_config(*, replicas: int = 1) -> ObjectStoreConfig:
    """The object store bucket holding the projector's checkpoint, at ``replicas``."""
    return ObjectStoreConfig(description="dvp-scheduler projector checkpoint", replicas=replicas)


async def ensure_task_state_bucket(js: JetStreamContext, *, replicas: int = 1) -> KeyValue:
    """The projector's key-value bucket; created at ``replicas`` if it does not exist."""
    try:
        return await js.key_value(TASK_STATE_BUCKET)
    except BucketNotFoundError:
        log.info("creating the key-value bucket %s (%d replica(s))", TASK_STATE_BUCKET, replicas)
    return await js.create_key_value(task_state_bucket_config(replicas=replicas))


async def ensure_checkpoint_store(js: JetStreamContext, *, replicas: int = 1) -> ObjectStore:
    """The projector's checkpoint bucket; created at ``replicas`` if it does not exist."""
    try:
        return await js.object_store(CHECKPOINT_BUCKET)
    except BucketNotFoundError:
        log.info("creating the object store %s (%d replica(s))", CHECKPOINT_BUCKET, replicas)
    return await js.create_object_store(
        CHECKPOINT_BUCKET, config=checkpoint_store_config(replicas=replicas)
    )


async def _match_replicas(js: JetStreamContext, backing_stream: str, replicas: int) -> str:
    """Set the replicas of a bucket's backing stream; what was done."""
    info = await js.stream_info(backing_stream)
    if info.config.num_replicas == replicas:
        return f"bucket stream {backing_stream} is up to date"
    await js.update_stream(dataclasses.replace(info.config, num_replicas=replicas))
    return f"updated bucket stream {backing_stream} ({replicas} replica(s))"


async def prepare_stream(
    js: JetStreamContext,
    *,
    replicas: int = 1,
    max_age_seconds: float = 0.0,
    tenants: Sequence[str] = ("default",),
) -> list[str]:
    """Create or update the stream, the projector's buckets (at the stream's replicas) and the
    executor consumers of ``tenants``; say what was done. (Tickers and executors create the
    consumers of other tenants as they meet them.)"""
    config = stream_config(replicas=replicas, max_age_seconds=max_age_seconds)
    done: list[str] = []
    try:
        current = await js.stream_info(STREAM_NAME)
    except NotFoundError:
        await js.add_stream(config)  # an ordinary create: init is run once, by an operator
        done.append(f"created stream {STREAM_NAME} ({replicas} replica(s))")
    else:
        if (current.config.num_replicas, current.config.max_age) != (replicas, max_age_seconds):
            await js.update_stream(config)
            done.append(f"updated stream {STREAM_NAME} ({replicas} replica(s))")
        else:
            done.append(f"stream {STREAM_NAME} is up to date")
    for bucket, make in (
        (f"KV_{TASK_STATE_BUCKET}", ensure_task_state_bucket),
        (f"OBJ_{CHECKPOINT_BUCKET}", ensure_checkpoint_store),
    ):
        try:
            done.append(await _match_replicas(js, bucket, replicas))
        except NotFoundError:
            await make(js, replicas=replicas)
            done.append(f"created bucket stream {bucket} ({replicas} replica(s))")
    for tenant_id in tenants:
        durable = executor_durable(tenant_id)
        try:
            await js.consumer_info(STREAM_NAME, durable)
            done.append(f"consumer {durable} exists")
        except NotFoundError:
            await ensure_consumer(js, executor_consumer_config(tenant_id))
            done.append(f"created consumer {durable}")
    return done
