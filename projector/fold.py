"""The projection as a fold: ``apply(state, event) -> state``, dispatched on the event type.

No I/O, no clock, no randomness: the state after a sequence of events depends on those events
alone (docs/design.md, guarantee 9). For speed the fold updates ``state`` in place and returns it
(a copy per event would cost more than decoding the event); whoever needs an earlier state keeps
a checkpoint (`projector.checkpoint.encode_state`) rather than a reference.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from contracts.errors import EventDecodeError
from contracts.events import (
    Event,
    RetryScheduled,
    ScheduledRunsChanged,
    TaskCancelRequested,
    TaskDue,
    TaskFailed,
    TaskPaused,
    TaskRegistered,
    TaskResumed,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskUnregistered,
    UnknownEventTypeError,
)
from contracts.inbound import read_event
from contracts.validation import registration_problem
from projector.state import (
    AttemptOutcome,
    AttemptState,
    ExecutionState,
    OpenExecution,
    ProjectionState,
    TaskState,
    task_key,
)


def apply(state: ProjectionState, event: Event) -> ProjectionState:
    """Fold one event into ``state`` (in place) and return it."""
    key = task_key(event.tenant_id, event.task_id)
    task = state.tasks.get(key)
    if task is None:
        task = state.tasks[key] = TaskState(tenant_id=event.tenant_id, task_id=event.task_id)
    _HANDLERS[type(event)](state, task, event)
    if task.last_event_at is None or event.occurred_at > task.last_event_at:
        task.last_event_at = event.occurred_at
    state.events_applied += 1
    return state


def ingest(
    state: ProjectionState,
    sequence: int,
    subject: str | bytes,
    data: bytes | bytearray | memoryview,
    *,
    until: datetime | None = None,
) -> Event | None:
    """Read the message at stream ``sequence`` on ``subject`` and fold it in; return the event.

    A message that is not a known event is counted (unknown type or version, or not an event at
    all, or a body its subject does not allow: `contracts.inbound.read_event`) and skipped: it
    never stops the fold. Returns ``None`` for those, and for events that
    occurred after ``until`` (which are left out, to give the state as of that instant).
    """
    state.sequence = sequence
    try:
        event = read_event(subject, data)
    except UnknownEventTypeError as error:
        state.unknown_events[error.event_type] = state.unknown_events.get(error.event_type, 0) + 1
        return None
    except EventDecodeError:
        state.invalid_messages += 1
        return None
    if until is not None and event.occurred_at > until:
        return None
    apply(state, event)
    return event


def _registered(state: ProjectionState, task: TaskState, event: TaskRegistered) -> None:
    problem = registration_problem(event)
    if problem is not None:
        task.schedule_since = None
    elif (
        task.schedule_since is None
        or task.spec is None
        or task.spec.schedule != event.spec.schedule
    ):
        task.schedule_since = event.occurred_at
    _set_invalid(state, task, registered=True, reason=problem)
    task.registered = True
    task.plugin = event.plugin
    task.plugin_version = event.plugin_version
    task.spec = event.spec
    task.definition_hash = event.definition_hash
    task.registered_at = event.occurred_at
    task.unregistered_at = None


def _unregistered(state: ProjectionState, task: TaskState, event: TaskUnregistered) -> None:
    _set_invalid(state, task, registered=False, reason=task.invalid_reason)
    task.registered = False
    task.schedule_since = None
    task.unregistered_at = event.occurred_at


def _set_invalid(
    state: ProjectionState, task: TaskState, *, registered: bool, reason: str | None
) -> None:
    """Record why the task's registration is invalid, keeping ``state.invalid_tasks`` (the
    registered invalid ones) in step."""
    was = task.registered and task.invalid_reason is not None
    now = registered and reason is not None
    state.invalid_tasks += now - was
    task.invalid_reason = reason


def _paused(state: ProjectionState, task: TaskState, event: TaskPaused) -> None:
    task.paused = True
    task.status_note = event.note
    task.status_actor = event.actor
    task.status_changed_at = event.occurred_at


def _resumed(state: ProjectionState, task: TaskState, event: TaskResumed) -> None:
    if task.paused and task.schedule_since is not None:
        task.schedule_since = max(task.schedule_since, event.occurred_at)
    task.paused = False
    task.status_note = event.note
    task.status_actor = event.actor
    task.status_changed_at = event.occurred_at


def _due(state: ProjectionState, task: TaskState, event: TaskDue) -> None:
    execution = task.executions.get(event.execution_id)
    if execution is None:
        execution = _new_execution(state, task, event.execution_id)
    if execution.trigger is None or event.attempt == 1:
        execution.trigger = event.trigger
        execution.scheduled_for = event.scheduled_for
        execution.missed_fires = event.missed_fires
        execution.due_at = event.occurred_at
        if event.rerun_of is not None:
            _link_rerun(task, execution, event.rerun_of)
    attempt = _attempt(execution, event.attempt)
    attempt.due_at = event.occurred_at
    attempt.scheduled_for = event.scheduled_for
    if event.fire_at is not None and (
        task.last_fire_at is None or event.fire_at > task.last_fire_at
    ):
        task.last_fire_at = event.fire_at
    if execution.outcome is None:
        current = _open(state, task, event.execution_id, event.attempt)
        if current is not None:
            current.due_at = event.occurred_at


def _link_rerun(task: TaskState, execution: ExecutionState, target_id: str) -> None:
    """Record the re-run on both executions (the target only while it is in the history)."""
    execution.rerun_of = target_id
    target = task.executions.get(target_id)
    if target is not None and execution.execution_id not in target.reruns:
        target.reruns.append(execution.execution_id)


def _skipped(state: ProjectionState, task: TaskState, event: TaskSkipped) -> None:
    task.skipped += 1
    task.last_skip_reason = event.reason
    task.last_skipped_at = event.scheduled_for
    if task.last_fire_at is None or event.scheduled_for > task.last_fire_at:
        task.last_fire_at = event.scheduled_for


def _started(state: ProjectionState, task: TaskState, event: TaskStarted) -> None:
    execution = _execution(state, task, event.execution_id)
    attempt = _attempt(execution, event.attempt)
    attempt.worker = event.worker
    attempt.started_at = event.occurred_at
    attempt.deadline = event.deadline
    if execution.outcome is None:
        current = _open(state, task, event.execution_id, event.attempt)
        if current is not None and current.retry_at is None:
            current.started_at = event.occurred_at


def _succeeded(state: ProjectionState, task: TaskState, event: TaskSucceeded) -> None:
    execution, attempt = _attempt_ended(state, task, event, "succeeded")
    attempt.data = event.data
    execution.outcome = "succeeded"
    execution.ended_at = event.occurred_at
    task.succeeded += 1
    task.consecutive_failures = 0
    if task.last_succeeded_at is None or event.occurred_at > task.last_succeeded_at:
        task.last_succeeded_at = event.occurred_at
    _ended(task, event.execution_id, event)


def _retry_scheduled(state: ProjectionState, task: TaskState, event: RetryScheduled) -> None:
    execution, attempt = _attempt_ended(state, task, event, "retry_scheduled")
    attempt.error = event.error
    attempt.retry_at = event.retry_at
    attempt.decision = event.decision
    task.retried += 1
    task.last_error = event.error
    if execution.outcome is None:
        current = _open(state, task, event.execution_id, event.attempt)
        if current is not None:
            current.retry_at = event.retry_at


def _failed(state: ProjectionState, task: TaskState, event: TaskFailed) -> None:
    execution, attempt = _attempt_ended(state, task, event, "failed")
    attempt.error = event.error
    attempt.decision = event.decision
    attempt.failure_reason = event.reason
    execution.outcome = "failed"
    execution.ended_at = event.occurred_at
    task.failed += 1
    task.consecutive_failures += 1
    task.last_error = event.error
    _ended(task, event.execution_id, event)


def _cancel_requested(state: ProjectionState, task: TaskState, event: TaskCancelRequested) -> None:
    """Noted on the execution, if the history has it; its ``TaskFailed`` (kind
    ``cancelled``) is what ends it."""
    execution = task.executions.get(event.execution_id)
    if execution is not None and execution.cancel_requested_at is None:  # the first one counts
        execution.cancel_requested_at = event.occurred_at
        execution.cancel_note = event.note
        execution.cancelled_by = event.actor


def _scheduled_runs(state: ProjectionState, task: TaskState, event: ScheduledRunsChanged) -> None:
    task.scheduled_runs = event.runs


def _attempt_ended(
    state: ProjectionState,
    task: TaskState,
    event: TaskSucceeded | RetryScheduled | TaskFailed,
    outcome: AttemptOutcome,
) -> tuple[ExecutionState, AttemptState]:
    """The attempt an outcome ends, with what every outcome records on it."""
    execution = _execution(state, task, event.execution_id)
    attempt = _attempt(execution, event.attempt)
    attempt.worker = event.worker
    attempt.ended_at = event.occurred_at
    attempt.duration_ms = event.duration_ms
    attempt.outcome = outcome
    return execution, attempt


def _ended(task: TaskState, execution_id: str, event: TaskSucceeded | TaskFailed) -> None:
    task.last_outcome = "succeeded" if isinstance(event, TaskSucceeded) else "failed"
    task.last_outcome_at = event.occurred_at
    task.open_executions.pop(execution_id, None)


def _open(
    state: ProjectionState, task: TaskState, execution_id: str, attempt: int
) -> OpenExecution | None:
    """The open execution's entry as of ``attempt``, or ``None`` for an attempt older than
    the one it is at (an event that arrived late changes nothing).

    A newer attempt starts a fresh entry. A new execution is added as the newest; the oldest
    beyond the history limit are dropped, as the ones that never end would otherwise pile up.
    """
    opened = task.open_executions
    current = opened.get(execution_id)
    if current is not None and attempt < current.attempt:
        return None
    if current is None or attempt > current.attempt:
        current = opened[execution_id] = OpenExecution(attempt=attempt)
        while len(opened) > state.history_limit:
            del opened[next(iter(opened))]
    return current


def _execution(state: ProjectionState, task: TaskState, execution_id: str) -> ExecutionState:
    execution = task.executions.get(execution_id)
    if execution is None:  # its TaskDue was trimmed from the stream, or it fell off the history
        execution = _new_execution(state, task, execution_id)
    return execution


def _new_execution(state: ProjectionState, task: TaskState, execution_id: str) -> ExecutionState:
    executions = task.executions
    execution = executions[execution_id] = ExecutionState(execution_id=execution_id)
    while len(executions) > state.history_limit:
        del executions[next(iter(executions))]
    return execution


def _attempt(execution: ExecutionState, number: int) -> AttemptState:
    attempts = execution.attempts
    if attempts and attempts[-1].number == number:
        return attempts[-1]
    for attempt in attempts:
        if attempt.number == number:
            return attempt
    attempt = AttemptState(number=number)
    attempts.append(attempt)
    if len(attempts) > 1 and attempts[-2].number > number:
        attempts.sort(key=lambda a: a.number)
    return attempt


_HANDLERS: Final[dict[type[Any], Callable[[ProjectionState, TaskState, Any], None]]] = {
    TaskRegistered: _registered,
    TaskUnregistered: _unregistered,
    TaskPaused: _paused,
    TaskResumed: _resumed,
    TaskDue: _due,
    TaskSkipped: _skipped,
    TaskStarted: _started,
    TaskSucceeded: _succeeded,
    RetryScheduled: _retry_scheduled,
    TaskFailed: _failed,
    TaskCancelRequested: _cancel_requested,
    ScheduledRunsChanged: _scheduled_runs,
}
