"""The executor's reads and writes on the stream (I/O only; the decisions are elsewhere)."""

from __future__ import annotations

import dataclasses
import logging

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, PubAck
from nats.js.errors import APIError

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
from contracts.stream import task_listing_consumer
from executor.errors import ExecutorSetupError
from executor.outcomes import is_outcome_of
from executor.registrations import KnownTask
from natsio import executor_consumer_config, provision
from natsio.errors import STREAM_NOT_FOUND, ProvisioningError
from natsio.listing import ListingError, list_subjects
from natsio.lookup import decode_stored, last_message, read_task_standing

log = logging.getLogger("dvp_scheduler.executor")

_OUTCOME_KINDS = (EventKind.SUCCEEDED, EventKind.RETRY, EventKind.FAILED)


async def ensure_consumer(js: JetStreamContext, tenant_id: str, ack_wait: float) -> ConsumerInfo:
    """The info of the tenant's executor consumer; created with ``ack_wait`` if it does not
    exist.

    An existing consumer is used as it is, so that one executor's settings never fight
    another's; its own ``ack_wait`` then sets the heartbeat interval. Only on a server without
    the stream is the stream made (which needs the admin's grants, as in a development setup);
    a tenant's executor never reads the stream's info, which would list other tenants.
    """
    config = dataclasses.replace(executor_consumer_config(tenant_id), ack_wait=ack_wait)
    try:
        try:
            return await provision.ensure_consumer(js, config)
        except ProvisioningError as error:
            cause = error.__cause__
            if not (isinstance(cause, APIError) and cause.err_code == STREAM_NOT_FOUND):
                raise
        log.info("no stream %s yet; making it", STREAM_NAME)
        await provision.ensure_stream(js)
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


async def read_known_task(js: JetStreamContext, tenant_id: str, task_id: str) -> KnownTask | None:
    """What the stream says about one task's registration, ``None`` if it never had one (two
    direct gets by subject)."""
    standing = await read_task_standing(js, tenant_id, task_id, with_pause=False, direct=True)
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


async def read_known_tasks(nc: Client, tenant_id: str) -> dict[str, KnownTask]:
    """Every task of ``tenant_id`` that was ever registered, as the stream says it stands.

    A task ever registered keeps a message on its ``registered`` subject, so listing those
    subjects (`natsio.listing`, inside the tenant's grants) finds them all.
    """
    registered = subject_filter(tenant_id, EventKind.REGISTERED)
    try:
        subjects = await list_subjects(nc, task_listing_consumer(tenant_id), registered)
    except ListingError as error:
        raise ExecutorSetupError(str(error)) from error
    prefix_tokens = 4  # dvp.tasks.<tenant>.<kind>.
    task_ids = {s.split(".", prefix_tokens)[-1] for s in subjects}
    js = nc.jetstream()
    known: dict[str, KnownTask] = {}
    for task_id in sorted(task_ids):
        found = await read_known_task(js, tenant_id, task_id)
        if found is not None:
            known[task_id] = found
    return known


async def find_outcome(js: JetStreamContext, due: TaskDue, after_sequence: int) -> Outcome | None:
    """The outcome already recorded for the attempt ``due`` stands for, if any.

    First the task's last message of any kind (one direct get by a wildcard subject, inside
    the tenant's grants): when nothing was recorded for the task after the ``TaskDue``, there
    is no outcome, which is the usual answer. Otherwise the task's last message of each
    outcome kind. An outcome of this attempt that another execution's outcome of the same kind
    has followed since is not seen: the attempt then runs again, and its outcome's message id
    keeps the stream from holding two.
    """
    newest = await last_message(js, subject_filter(due.tenant_id, None, due.task_id), direct=True)
    if newest is None or int(newest.seq or 0) <= after_sequence:
        return None
    for kind in _OUTCOME_KINDS:
        raw = await last_message(js, subject(due.tenant_id, kind, due.task_id), direct=True)
        if raw is None or int(raw.seq or 0) <= after_sequence:
            continue
        event = decode_stored(raw)
        if isinstance(event, TaskSucceeded | RetryScheduled | TaskFailed) and is_outcome_of(
            event, due
        ):
            return event
    return None


async def later_due(js: JetStreamContext, due: TaskDue, after_sequence: int) -> TaskDue | None:
    """The task's newest ``TaskDue``, when the ticker published it after ``due`` (one direct
    get). A later attempt of the same execution means ``due``'s attempt ended (a retry was
    recorded); a later fire means it ended where the task's overlap rule holds fires back
    while one runs. Operators' runs start beside open executions and prove nothing."""
    raw = await last_message(js, subject(due.tenant_id, EventKind.DUE, due.task_id), direct=True)
    if raw is None or int(raw.seq or 0) <= after_sequence:
        return None
    event = decode_stored(raw)
    if isinstance(event, TaskDue) and event.trigger in ("schedule", "catchup", "retry"):
        return event
    return None


async def previous_error(js: JetStreamContext, due: TaskDue) -> str | None:
    """The error message of the attempt before ``due``, when it is the task's last retry."""
    if due.attempt <= 1:
        return None
    raw = await last_message(js, subject(due.tenant_id, EventKind.RETRY, due.task_id), direct=True)
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
