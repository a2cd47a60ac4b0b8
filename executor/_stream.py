"""The executor's reads and writes on the stream (I/O only; the decisions are elsewhere)."""

from __future__ import annotations

import dataclasses
import logging

from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, PubAck
from nats.js.errors import NotFoundError

from contracts import (
    STREAM_NAME,
    Event,
    EventKind,
    Outcome,
    RetryScheduled,
    TaskDue,
    TaskFailed,
    TaskSucceeded,
    encode,
    event_headers,
    event_subject,
    subject,
    subject_filter,
)
from contracts.headers import EVENT_TYPE
from executor.errors import ExecutorSetupError
from executor.outcomes import is_outcome_of
from executor.registrations import KnownTask
from natsio import executor_consumer_config, provision
from natsio.errors import ProvisioningError
from natsio.lookup import decode_stored, last_message, read_task_standing

log = logging.getLogger("dvp_scheduler.executor")

_OUTCOME_TAGS = frozenset({"task.succeeded.v1", "task.retry_scheduled.v1", "task.failed.v1"})


async def ensure_consumer(js: JetStreamContext, tenant_id: str, ack_wait: float) -> ConsumerInfo:
    """The info of the tenant's executor consumer; created with ``ack_wait`` if it does not
    exist.

    An existing consumer is used as it is, so that one executor's settings never fight
    another's; its own ``ack_wait`` then sets the heartbeat interval.
    """
    config = dataclasses.replace(executor_consumer_config(tenant_id), ack_wait=ack_wait)
    try:
        return await provision.ensure_consumer(js, config)
    except ProvisioningError as error:
        raise ExecutorSetupError(str(error)) from error


async def publish(
    js: JetStreamContext, event: Event, *, expected_last_subject_sequence: int | None = None
) -> PubAck:
    """Publish ``event`` with its type and message id headers; wait for the stream's ack."""
    return await js.publish(
        event_subject(event),
        encode(event),
        headers=event_headers(event, expected_last_subject_sequence=expected_last_subject_sequence),
    )


async def read_known_task(
    js: JetStreamContext, tenant_id: str, task_id: str, *, direct: bool
) -> KnownTask | None:
    """What the stream says about one task's registration, ``None`` if it never had one."""
    standing = await read_task_standing(js, tenant_id, task_id, with_pause=False, direct=direct)
    if not standing.known:
        return None
    registered, unregistered = standing.registration, standing.unregistration
    if registered is not None and (standing.registered or unregistered is None):
        plugin = registered.plugin
    else:
        plugin = unregistered.plugin if unregistered is not None else ""
    return KnownTask(
        task_id=task_id,
        plugin=plugin,
        definition_hash=registered.definition_hash if registered is not None else None,
        registered=standing.registered,
        registered_sequence=standing.registered_sequence,
        unregistered_sequence=standing.unregistered_sequence,
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
        event = decode_stored(raw)
        if isinstance(event, TaskSucceeded | RetryScheduled | TaskFailed) and is_outcome_of(
            event, due
        ):
            return event


async def previous_error(js: JetStreamContext, due: TaskDue, *, direct: bool) -> str | None:
    """The error message of the attempt before ``due``, when it is the task's last retry."""
    if due.attempt <= 1:
        return None
    raw = await last_message(
        js, subject(due.tenant_id, EventKind.RETRY, due.task_id), direct=direct
    )
    if raw is None:
        return None
    event = decode_stored(raw)
    if (
        isinstance(event, RetryScheduled)
        and event.execution_id == due.execution_id
        and event.attempt == due.attempt - 1
    ):
        return event.error.message
    return None
