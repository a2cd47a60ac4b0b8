"""The executor's reads and writes on the stream (I/O only; the decisions are elsewhere)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, Final

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, PubAck
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

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

log = logging.getLogger("executor")

_OUTCOME_TAGS = frozenset({"task.succeeded.v1", "task.retry_scheduled.v1", "task.failed.v1"})


async def ensure_consumer(js: JetStreamContext, durable: str, ack_wait: float) -> ConsumerInfo:
    """The shared durable consumer's info; created with ``ack_wait`` if it does not exist.

    An existing consumer is used as it is, so that one executor's settings never fight
    another's; its own ``ack_wait`` then sets the heartbeat interval.
    """
    config = dataclasses.replace(
        executor_consumer_config(), durable_name=durable, name=durable, ack_wait=ack_wait
    )
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


class Recorded(msgspec.Struct, frozen=True):
    """The stream's acknowledgement of one publish."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    """The stream already held a message with this message id: nothing new was stored."""


class _Reply(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: dict[str, Any] | None = None


_reply_decoder: Final = msgspec.json.Decoder(_Reply)
_NO_RESPONDERS: Final = "503"


class Recorder:
    """Publishes events to the stream, many at a time, each answered by a future.

    ``js.publish`` is a request per event: an inbox token, a timer and a JSON parse into a
    dataclass each time, and the caller waits before it can do anything else. Here one inbox
    subscription takes every acknowledgement, `send` returns as soon as the event is written,
    and the future is awaited when the caller needs the answer (so ``TaskStarted`` is
    confirmed while the plugin runs). One loop (`expire`, driven by the owner) fails the
    futures whose answer did not come within ``timeout``.
    """

    def __init__(self, nc: Client, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout
        self._prefix = ""
        self._sub: Subscription | None = None
        self._next_token = 0
        self._waiting: dict[str, tuple[asyncio.Future[Recorded], float]] = {}
        self._subjects: dict[tuple[type[Event], str, str], str] = {}

    async def start(self) -> None:
        """Subscribe the inbox the acknowledgements come to."""
        self._prefix = self._nc.new_inbox() + "."
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_reply)

    async def close(self) -> None:
        """Unsubscribe; futures still waiting fail with `ConnectionError`."""
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as error:
                log.debug("closing the publish inbox: %s", error)
        waiting, self._waiting = self._waiting, {}
        for future, _ in waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the executor closed its connection"))
                future.exception()  # nobody may wait for it any more

    async def send(self, event: Event) -> asyncio.Future[Recorded]:
        """Publish ``event`` with its headers; the future resolves with the stream's answer
        (an `APIError` when the stream refuses it, `TimeoutError` when none comes)."""
        key = (type(event), event.tenant_id, event.task_id)
        subject_name = self._subjects.get(key)
        if subject_name is None:
            subject_name = event_subject(event)
            if len(self._subjects) < 10_000:
                self._subjects[key] = subject_name
        self._next_token += 1
        token = str(self._next_token)
        future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._waiting[token] = (future, time.monotonic() + self._timeout)
        try:
            await self._nc.publish(
                subject_name,
                encode(event),
                reply=self._prefix + token,
                headers=event_headers(event),
            )
        except BaseException:
            self._waiting.pop(token, None)
            future.cancel()
            raise
        return future

    async def record(self, event: Event) -> Recorded:
        """Publish ``event`` and wait for the stream's answer."""
        return await (await self.send(event))

    def expire(self) -> None:
        """Fail the futures whose answer is overdue."""
        if not self._waiting:
            return
        now = time.monotonic()
        overdue = [token for token, (_, until) in self._waiting.items() if until < now]
        for token in overdue:
            future, _ = self._waiting.pop(token)
            if not future.done():
                future.set_exception(
                    TimeoutError(f"no acknowledgement from the stream within {self._timeout:g}s")
                )

    async def _on_reply(self, msg: Msg) -> None:
        entry = self._waiting.pop(msg.subject[len(self._prefix) :], None)
        if entry is None or entry[0].done():
            return
        future = entry[0]
        headers = msg.headers
        if headers is not None and not msg.data and headers.get("Status") == _NO_RESPONDERS:
            future.set_exception(NoStreamResponseError())
            return
        try:
            reply = _reply_decoder.decode(msg.data)
            if reply.error is not None:
                APIError.from_error(reply.error)  # raises the matching subclass
        except Exception as error:
            future.set_exception(error)
            return
        future.set_result(Recorded(stream=reply.stream, seq=reply.seq, duplicate=reply.duplicate))


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
