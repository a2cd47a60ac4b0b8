"""The events: immutable, past-tense facts in one tagged union, decoded in one place.

On the wire each event is a JSON object whose ``type`` field holds its versioned tag
(``task.due.v1``); instants are RFC 3339 strings in UTC. Decoders ignore fields they do not
know, so adding an optional field is not a breaking change; a change of meaning gets a new tag.
The Python class names are not part of the wire format.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from contracts import headers
from contracts.errors import EventDecodeError
from contracts.retry import FailureReason, RetryDecision
from contracts.schedule import Schedule
from contracts.subjects import EventKind, subject

UtcDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
"""An aware datetime; encoded as RFC 3339 (``2026-11-24T03:00:00Z``)."""

Trigger = Literal["schedule", "catchup", "retry", "manual", "rerun", "backfill", "once"]
"""Why a ``TaskDue`` was published; ``rerun`` is an operator's re-run of an earlier execution,
``backfill`` an operator's run of a past fire (``dvp-scheduler backfill``), ``once`` a one-off
run an operator scheduled for an instant (``dvp-scheduler trigger --at``)."""

ScheduledRunsChange = Literal["scheduled", "cancelled", "fired"]
"""What changed a task's one-off runs: one was scheduled or cancelled by an operator, or fired."""

SkipReason = Literal["overlap", "missed", "paused"]
"""Why a fire did not run."""

ErrorKind = Literal["returned", "raised", "timeout", "bad_result", "lost", "cancelled"]
"""How an attempt failed: returned ``success=False``, raised, timed out, returned something that
is not a ``TaskResult``, its worker vanished, or an operator cancelled it."""


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A validated task definition, as the engine knows it."""

    name: str
    description: str = ""
    schedule: Schedule
    max_retries: int
    timeout_seconds: float


class TaskError(msgspec.Struct, frozen=True, kw_only=True):
    """What went wrong in an attempt."""

    kind: ErrorKind
    message: str
    exception_type: str | None = None


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    tenant_id: str
    task_id: str
    occurred_at: UtcDatetime


class _ExecutionEvent(_Event, frozen=True, kw_only=True):
    execution_id: str
    attempt: Annotated[int, msgspec.Meta(ge=1)]


class TaskRegistered(_Event, frozen=True, kw_only=True, tag="task.registered.v1"):
    """A plugin declared (or changed) a task."""

    plugin: str
    plugin_version: str
    spec: TaskSpec
    definition_hash: str


class TaskUnregistered(_Event, frozen=True, kw_only=True, tag="task.unregistered.v1"):
    """A plugin no longer declares the task."""

    plugin: str
    reason: str = ""


class TaskPaused(_Event, frozen=True, kw_only=True, tag="task.paused.v1"):
    """An operator paused the task: it does not fire until resumed."""

    note: str = ""
    actor: str = ""


class TaskResumed(_Event, frozen=True, kw_only=True, tag="task.resumed.v1"):
    """An operator resumed the task; fires missed while paused are not run."""

    note: str = ""
    actor: str = ""


class TaskDue(_ExecutionEvent, frozen=True, kw_only=True, tag="task.due.v1"):
    """Attempt ``attempt`` of execution ``execution_id`` should run now.

    ``scheduled_for`` is when it was meant to run (the fire instant, or ``retry_at``; for a
    ``backfill``, the past fire it runs, whose execution id it has).
    ``fire_at`` is the task's newest schedule fire when this was published: the fire itself for
    ``schedule`` and ``catchup``, carried over for ``retry``, ``manual``, ``rerun`` and
    ``backfill`` (``None`` if the task never fired), so the last message on a task's due
    subject tells where its schedule stands.
    ``missed_fires`` counts the fires a ``catchup`` stands for. ``rerun_of`` names the execution
    a ``rerun`` runs again (``None`` for every other trigger). ``actor`` says who asked for a
    ``manual``, ``rerun`` or ``backfill`` attempt.
    """

    trigger: Trigger
    scheduled_for: UtcDatetime
    fire_at: UtcDatetime | None = None
    missed_fires: int = 0
    rerun_of: str | None = None
    actor: str = ""
    """Who asked for a ``manual``, ``rerun`` or ``backfill`` attempt (empty for the ticker's)."""


class TaskSkipped(_Event, frozen=True, kw_only=True, tag="task.skipped.v1"):
    """A fire was not run, and why."""

    scheduled_for: UtcDatetime
    reason: SkipReason
    detail: str = ""
    missed_fires: int = 1
    running_execution_id: str | None = None


class TaskCancelRequested(
    _ExecutionEvent, frozen=True, kw_only=True, tag="task.cancel_requested.v1"
):
    """An operator asked to cancel execution ``execution_id``, from attempt ``attempt`` on.

    Whoever holds the execution then ends it with ``TaskFailed`` (error kind ``cancelled``,
    reason ``cancelled``, the note in the error's message) and no attempt follows: the executor
    running an attempt cancels the plugin; an attempt not started yet is ended by the executor
    that takes it; a retry waiting for its time is closed by a ticker.
    """

    note: str = ""
    actor: str = ""


class ScheduledRun(msgspec.Struct, frozen=True, kw_only=True):
    """A one-off run of a task at an instant, as an operator scheduled it."""

    run_id: str
    """The execution id it runs as."""
    run_at: UtcDatetime
    actor: str = ""
    note: str = ""


class ScheduledRunsChanged(_Event, frozen=True, kw_only=True, tag="task.scheduled_runs.v1"):
    """The task's one-off runs still to come (``runs``, earliest first), after ``change`` of
    run ``run_id``.

    Each of these holds the whole list, so the newest one on the task's ``scheduled`` subject
    is all a ticker starting up needs. Operators add (``scheduled``) and remove
    (``cancelled``) runs; a ticker publishes a run's ``TaskDue`` (trigger ``once``) at its
    ``run_at``, then removes it (``fired``). Every writer expects the sequence it read.
    """

    runs: tuple[ScheduledRun, ...] = ()
    change: ScheduledRunsChange
    run_id: str
    actor: str = ""
    note: str = ""


class TaskStarted(_ExecutionEvent, frozen=True, kw_only=True, tag="task.started.v1"):
    """A worker took the attempt."""

    worker: str
    deadline: UtcDatetime


class TaskSucceeded(_ExecutionEvent, frozen=True, kw_only=True, tag="task.succeeded.v1"):
    """The attempt succeeded."""

    worker: str
    duration_ms: int
    data: dict[str, Any] | None = None


class RetryScheduled(_ExecutionEvent, frozen=True, kw_only=True, tag="task.retry_scheduled.v1"):
    """The attempt failed; attempt ``attempt + 1`` is due at ``retry_at``."""

    worker: str
    duration_ms: int
    error: TaskError
    retry_at: UtcDatetime
    delay_seconds: float
    decision: RetryDecision


class TaskFailed(_ExecutionEvent, frozen=True, kw_only=True, tag="task.failed.v1"):
    """The attempt failed and no attempt follows."""

    worker: str
    duration_ms: int
    error: TaskError
    reason: FailureReason
    decision: RetryDecision | None = None


Event = (
    TaskRegistered
    | TaskUnregistered
    | TaskPaused
    | TaskResumed
    | TaskDue
    | TaskSkipped
    | TaskStarted
    | TaskSucceeded
    | RetryScheduled
    | TaskFailed
    | TaskCancelRequested
    | ScheduledRunsChanged
)
"""Every event dvp-scheduler publishes."""

ExecutionEvent = TaskDue | TaskStarted | TaskSucceeded | RetryScheduled | TaskFailed
Outcome = TaskSucceeded | RetryScheduled | TaskFailed
"""Each attempt ends in exactly one of these."""

EVENT_TYPES: Final[dict[str, type[Event]]] = {
    str(cls.__struct_config__.tag): cls
    for cls in (
        TaskRegistered,
        TaskUnregistered,
        TaskPaused,
        TaskResumed,
        TaskDue,
        TaskSkipped,
        TaskStarted,
        TaskSucceeded,
        RetryScheduled,
        TaskFailed,
        TaskCancelRequested,
        ScheduledRunsChanged,
    )
}
"""Tag -> class, e.g. ``"task.due.v1" -> TaskDue``."""

_KINDS: Final[dict[type[Event], EventKind]] = {
    TaskRegistered: EventKind.REGISTERED,
    TaskUnregistered: EventKind.UNREGISTERED,
    TaskPaused: EventKind.PAUSED,
    TaskResumed: EventKind.RESUMED,
    TaskDue: EventKind.DUE,
    TaskSkipped: EventKind.SKIPPED,
    TaskStarted: EventKind.STARTED,
    TaskSucceeded: EventKind.SUCCEEDED,
    RetryScheduled: EventKind.RETRY,
    TaskFailed: EventKind.FAILED,
    TaskCancelRequested: EventKind.CANCEL,
    ScheduledRunsChanged: EventKind.SCHEDULED,
}
_TAGS: Final[dict[type[Event], str]] = {cls: tag for tag, cls in EVENT_TYPES.items()}

_encoder: Final = msgspec.json.Encoder()
_decoder: Final[msgspec.json.Decoder[Event]] = msgspec.json.Decoder(Event)


class UnknownEventTypeError(EventDecodeError):
    """A well-formed event of a type (or version) this code does not know."""

    def __init__(self, event_type: str) -> None:
        super().__init__(
            f"unknown event type {event_type!r}; known types: {', '.join(sorted(EVENT_TYPES))}"
        )
        self.event_type = event_type


class _TypeOnly(msgspec.Struct):
    type: str


def encode(event: Event) -> bytes:
    """The JSON bytes of ``event``."""
    return _encoder.encode(event)


def decode(data: bytes | bytearray | memoryview | str) -> Event:
    """Decode one event; raise `EventDecodeError` (never anything else) on bad input."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, ValueError, TypeError) as error:
        raise _decode_error(data, error) from None


def _decode_error(data: bytes | bytearray | memoryview | str, error: Exception) -> EventDecodeError:
    try:
        event_type = msgspec.json.decode(data, type=_TypeOnly).type
    except (msgspec.DecodeError, ValueError, TypeError):
        event_type = None
    if event_type is not None and event_type not in EVENT_TYPES:
        return UnknownEventTypeError(event_type)
    preview = bytes(data[:80]) if not isinstance(data, str) else data[:80].encode()
    return EventDecodeError(f"not a valid event ({error}); body starts {preview!r}")


def event_type(event: Event) -> str:
    """The versioned tag of ``event``, e.g. ``"task.due.v1"``."""
    return _TAGS[type(event)]


def event_kind(event: Event) -> EventKind:
    """The subject kind token of ``event``."""
    return _KINDS[type(event)]


def event_kind_of(cls: type[Event]) -> EventKind:
    """The subject kind token of an event class."""
    return _KINDS[cls]


def event_subject(event: Event) -> str:
    """The subject ``event`` is published on."""
    return subject(event.tenant_id, _KINDS[type(event)], event.task_id)


def message_id(event: Event) -> str | None:
    """The ``Nats-Msg-Id`` that makes recording ``event`` idempotent, or ``None``.

    All three outcomes of an attempt share one id, so a re-run attempt cannot record a second
    outcome of any kind. A ``TaskStarted`` names its start instant too: an attempt run again
    (redelivered, even to a restarted worker of the same name) is started again, and that
    start is a fact of its own. A cancel is asked once per execution.
    """
    match event:
        case TaskDue():
            return f"due:{event.execution_id}:{event.attempt}"
        case TaskSucceeded() | RetryScheduled() | TaskFailed():
            return f"outcome:{event.execution_id}:{event.attempt}"
        case TaskStarted():
            micros = round(event.occurred_at.timestamp() * 1_000_000)
            return f"started:{event.execution_id}:{event.attempt}:{event.worker}:{micros}"
        case TaskSkipped():
            millis = round(event.scheduled_for.timestamp() * 1000)
            return f"skipped:{event.tenant_id}:{event.task_id}:{millis}"
        case TaskCancelRequested():
            return f"cancel:{event.execution_id}"
        case _:
            return None


def event_headers(
    event: Event, *, expected_last_subject_sequence: int | None = None
) -> dict[str, str]:
    """The headers to publish ``event`` with: its type, its message id, and optionally the
    expected last sequence of its subject."""
    result = {headers.EVENT_TYPE: _TAGS[type(event)]}
    msg_id = message_id(event)
    if msg_id is not None:
        result[headers.MSG_ID] = msg_id
    if expected_last_subject_sequence is not None:
        result[headers.EXPECTED_LAST_SUBJECT_SEQUENCE] = str(expected_last_subject_sequence)
    return result


def definition_hash(plugin: str, plugin_version: str, spec: TaskSpec) -> str:
    """A stable hash of a task's definition, to publish ``TaskRegistered`` only on change."""
    body = msgspec.json.encode([plugin, plugin_version, spec], order="deterministic")
    return hashlib.sha256(body).hexdigest()[:32]
