"""The executor's reads and writes on the stream (I/O only; the decisions are elsewhere)."""

from __future__ import annotations

import dataclasses
import logging

from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, PubAck, RawStreamMsg, StreamInfo
from nats.js.errors import APIError, NotFoundError

from contracts import (
    STREAM_NAME,
    Event,
    EventDecodeError,
    EventKind,
    Outcome,
    RetryScheduled,
    TaskDue,
    TaskFailed,
    TaskRegistered,
    TaskSucceeded,
    TaskUnregistered,
    decode,
    encode,
    event_headers,
    event_subject,
    executor_consumer_config,
    stream_config,
    subject,
    subject_filter,
)
from contracts.headers import EVENT_TYPE
from executor.errors import ExecutorSetupError
from executor.outcomes import is_outcome_of
from executor.registrations import KnownTask

log = logging.getLogger("executor")

WRONG_LAST_SEQUENCE = 10071
"""JetStream error code: ``Nats-Expected-Last-Subject-Sequence`` did not match."""

_OUTCOME_TAGS = frozenset({"task.succeeded.v1", "task.retry_scheduled.v1", "task.failed.v1"})


async def ensure_stream(js: JetStreamContext) -> StreamInfo:
    """The stream's info; the stream is created with `stream_config` if it does not exist."""
    try:
        return await js.stream_info(STREAM_NAME)
    except NotFoundError:
        log.info("stream %s not found; creating it", STREAM_NAME)
        try:
            return await js.add_stream(stream_config())
        except APIError:
            # Another service created it meanwhile (with settings of its own): use that one.
            return await js.stream_info(STREAM_NAME)


async def ensure_consumer(js: JetStreamContext, durable: str, ack_wait: float) -> ConsumerInfo:
    """The shared durable consumer's info; created with ``ack_wait`` if it does not exist.

    An existing consumer is used as it is, so that one executor's settings never fight
    another's; its own ``ack_wait`` then sets the heartbeat interval.
    """
    try:
        info: ConsumerInfo = await js.consumer_info(STREAM_NAME, durable)
        return info
    except NotFoundError:
        pass
    config = dataclasses.replace(
        executor_consumer_config(), durable_name=durable, name=durable, ack_wait=ack_wait
    )
    try:
        info = await js.add_consumer(STREAM_NAME, config)
        log.info("created the shared consumer %s (ack wait %gs)", durable, ack_wait)
        return info
    except APIError as error:
        try:  # another executor created it at the same moment, perhaps with other settings
            existing: ConsumerInfo = await js.consumer_info(STREAM_NAME, durable)
            return existing
        except NotFoundError:
            raise ExecutorSetupError(
                f"cannot create the consumer {durable!r} on stream {STREAM_NAME}: {error}"
            ) from error


async def publish(
    js: JetStreamContext, event: Event, *, expected_last_subject_sequence: int | None = None
) -> PubAck:
    """Publish ``event`` with its type and message id headers; wait for the stream's ack."""
    return await js.publish(
        event_subject(event),
        encode(event),
        headers=event_headers(event, expected_last_subject_sequence=expected_last_subject_sequence),
    )


async def _last(js: JetStreamContext, subject_name: str, direct: bool) -> RawStreamMsg | None:
    try:
        return await js.get_last_msg(STREAM_NAME, subject_name, direct=direct)
    except NotFoundError:
        return None


def _decode_raw(raw: RawStreamMsg) -> Event | None:
    try:
        return decode(raw.data or b"")
    except EventDecodeError as error:
        log.warning(
            "ignoring an undecodable message on %s (seq %s): %s", raw.subject, raw.seq, error
        )
        return None


async def read_known_task(
    js: JetStreamContext, tenant_id: str, task_id: str, *, direct: bool
) -> KnownTask | None:
    """What the stream says about one task's registration, ``None`` if it never had one."""
    last_registered = await _last(js, subject(tenant_id, EventKind.REGISTERED, task_id), direct)
    last_unregistered = await _last(js, subject(tenant_id, EventKind.UNREGISTERED, task_id), direct)
    registered = _decode_raw(last_registered) if last_registered is not None else None
    unregistered = _decode_raw(last_unregistered) if last_unregistered is not None else None
    registered_seq = int(last_registered.seq or 0) if last_registered is not None else 0
    unregistered_seq = int(last_unregistered.seq or 0) if last_unregistered is not None else 0
    if not isinstance(registered, TaskRegistered):
        registered = None
    if not isinstance(unregistered, TaskUnregistered):
        unregistered = None
    if registered is None and unregistered is None:
        return None
    is_registered = registered is not None and registered_seq > unregistered_seq
    plugin = (
        registered.plugin
        if registered is not None and (is_registered or unregistered is None)
        else unregistered.plugin
        if unregistered is not None
        else ""
    )
    return KnownTask(
        task_id=task_id,
        plugin=plugin,
        definition_hash=registered.definition_hash if registered is not None else None,
        registered=is_registered,
        registered_sequence=registered_seq,
        unregistered_sequence=unregistered_seq,
    )


async def _task_ids(js: JetStreamContext, tenant_id: str, kind: EventKind) -> set[str]:
    info = await js.stream_info(STREAM_NAME, subjects_filter=subject_filter(tenant_id, kind))
    prefix_tokens = 4  # dvp.tasks.<tenant>.<kind>.
    return {s.split(".", prefix_tokens)[-1] for s in (info.state.subjects or {})}


async def read_known_tasks(
    js: JetStreamContext, tenant_id: str, *, direct: bool
) -> dict[str, KnownTask]:
    """Every task of ``tenant_id`` that was ever registered, as the stream says it stands."""
    task_ids = await _task_ids(js, tenant_id, EventKind.REGISTERED)
    task_ids |= await _task_ids(js, tenant_id, EventKind.UNREGISTERED)
    known: dict[str, KnownTask] = {}
    for task_id in sorted(task_ids):
        found = await read_known_task(js, tenant_id, task_id, direct=direct)
        if found is not None:
            known[task_id] = found
    return known


async def find_outcome(js: JetStreamContext, due: TaskDue, after_sequence: int) -> Outcome | None:
    """The outcome already recorded for the attempt ``due`` stands for, if any.

    Looks at the task's messages after the ``TaskDue`` (an outcome is always recorded after
    its due), one direct get each; only redelivered attempts pay for it.
    """
    task_subjects = subject_filter(due.tenant_id, None, due.task_id)
    sequence = after_sequence + 1
    while True:
        try:
            raw = await js.get_msg(
                STREAM_NAME, seq=sequence, subject=task_subjects, direct=True, next=True
            )
        except NotFoundError:
            return None
        sequence = int(raw.seq or sequence) + 1
        if raw.headers is not None and raw.headers.get(EVENT_TYPE) not in _OUTCOME_TAGS:
            continue
        event = _decode_raw(raw)
        if isinstance(event, TaskSucceeded | RetryScheduled | TaskFailed) and is_outcome_of(
            event, due
        ):
            return event


async def previous_error(js: JetStreamContext, due: TaskDue, *, direct: bool) -> str | None:
    """The error message of the attempt before ``due``, when it is the task's last retry."""
    if due.attempt <= 1:
        return None
    raw = await _last(js, subject(due.tenant_id, EventKind.RETRY, due.task_id), direct)
    if raw is None:
        return None
    event = _decode_raw(raw)
    if (
        isinstance(event, RetryScheduled)
        and event.execution_id == due.execution_id
        and event.attempt == due.attempt - 1
    ):
        return event.error.message
    return None
