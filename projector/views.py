"""What queries return: tasks and executions as flat records with stable field names.

These are the objects of ``tasks --json``, ``history --json``, the query service's replies and
the task-state key-value bucket. Add fields freely; never rename or remove one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import msgspec

from contracts.errors import ScheduleError
from contracts.events import ScheduledRun, TaskError, Trigger
from contracts.overdue import overdue_at, overdue_reference
from contracts.retry import FailureReason, RetryDecision
from contracts.schedule import next_fire_in_window
from projector.state import (
    AttemptOutcome,
    AttemptState,
    ExecutionOutcome,
    ExecutionState,
    ProjectionState,
    TaskState,
    task_key,
)

TaskStatus = Literal["idle", "due", "running", "retrying", "paused", "unregistered", "invalid"]
"""``unregistered``, ``invalid`` and ``paused`` win (in that order) over what an open execution
is doing."""

ExecutionStatus = Literal["due", "running", "retrying", "succeeded", "failed"]


class TaskView(msgspec.Struct, kw_only=True):
    """One row of ``tasks``."""

    tenant_id: str
    task_id: str
    name: str | None
    description: str
    plugin: str | None
    plugin_version: str | None
    schedule: str | None
    """``cron '0 3 * * *' (Europe/Berlin)`` or ``every 300s``."""
    timezone: str | None
    max_retries: int | None
    timeout_seconds: float | None
    status: TaskStatus
    registered: bool
    paused: bool
    note: str
    """The note of the last pause or resume."""
    note_actor: str
    registered_at: datetime | None
    unregistered_at: datetime | None
    last_fire_at: datetime | None
    next_fire_at: datetime | None
    """The schedule's first fire after the newest one seen; ``None`` when paused or unregistered."""
    retry_at: datetime | None
    running_execution_id: str | None
    last_outcome: ExecutionOutcome | None
    last_outcome_at: datetime | None
    consecutive_failures: int
    succeeded: int
    failed: int
    retried: int
    skipped: int
    last_error: TaskError | None
    last_skip_reason: str | None
    last_skipped_at: datetime | None
    last_event_at: datetime | None
    waiting_since: datetime | None = None
    """When the longest-waiting open attempt that no executor has taken yet became due."""
    invalid_reason: str | None = None
    """Why the registration breaks the registration rules (status ``invalid``), else ``None``."""
    last_succeeded_at: datetime | None = None
    """When the newest execution succeeded."""
    overdue_at: datetime | None = None
    """The instant after which the task is overdue unless it succeeds (`task_overdue_at`);
    ``None`` when it is not watched: paused, unregistered or invalid. Compare it with the clock:
    the view itself does not depend on when it is read."""
    scheduled_runs: list[ScheduledRun] = []
    """One-off runs still to come (``trigger --at``), earliest first."""


class AttemptView(msgspec.Struct, kw_only=True):
    """One attempt of an execution."""

    attempt: int
    scheduled_for: datetime | None
    due_at: datetime | None
    worker: str | None
    started_at: datetime | None
    deadline: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    outcome: AttemptOutcome | None
    error: TaskError | None
    data: dict[str, Any] | None
    retry_at: datetime | None
    decision: RetryDecision | None
    failure_reason: FailureReason | None


class ExecutionView(msgspec.Struct, kw_only=True):
    """One execution of ``history``, with its attempts oldest first."""

    tenant_id: str
    task_id: str
    execution_id: str
    trigger: Trigger | None
    scheduled_for: datetime | None
    missed_fires: int
    due_at: datetime | None
    status: ExecutionStatus
    outcome: ExecutionOutcome | None
    ended_at: datetime | None
    attempts: list[AttemptView]
    rerun_of: str | None = None
    """The execution this one runs again (trigger ``rerun``)."""
    reruns: list[str] = []
    """The executions that ran this one again, oldest first."""
    cancel_requested_at: datetime | None = None
    """When an operator asked to cancel it (``dvp-scheduler cancel``), else ``None``."""
    cancel_note: str = ""
    cancelled_by: str = ""


class FailureView(msgspec.Struct, kw_only=True):
    """One row of ``failures``: an execution that ended failed."""

    tenant_id: str
    task_id: str
    execution_id: str
    trigger: Trigger | None
    ended_at: datetime | None
    attempts: int
    error: TaskError | None
    failure_reason: FailureReason | None
    decision: RetryDecision | None
    rerun_of: str | None
    reruns: list[str]


def task_status(task: TaskState) -> TaskStatus:
    """What a task is doing, in one word: an attempt running wins over a pending retry, which
    wins over an attempt waiting for an executor."""
    if not task.registered:
        return "unregistered"
    if task.invalid_reason is not None:
        return "invalid"
    if task.paused:
        return "paused"
    opened = task.open_executions.values()
    if not opened:
        return "idle"
    if any(e.running for e in opened):
        return "running"
    if any(e.retry_at is not None for e in opened):
        return "retrying"
    return "due"


def execution_status(execution: ExecutionState) -> ExecutionStatus:
    """Where an execution stands."""
    if execution.outcome is not None:
        return execution.outcome
    last = execution.attempts[-1] if execution.attempts else None
    if last is not None and last.outcome == "retry_scheduled":
        return "retrying"
    if last is not None and last.started_at is not None:
        return "running"
    return "due"


def next_fire(task: TaskState) -> datetime | None:
    """The schedule's first fire after the newest fire seen (or after registration) inside its
    active window; ``None`` when it does not fire (unregistered, invalid, paused, its window
    ended)."""
    if not task.registered or task.invalid_reason is not None or task.paused or task.spec is None:
        return None
    after = task.last_fire_at or task.registered_at
    if after is None:
        return None
    try:
        return next_fire_in_window(task.spec.schedule, after)
    except (ScheduleError, ValueError):
        return None


def task_overdue_at(task: TaskState) -> datetime | None:
    """The instant after which ``task`` is overdue (`contracts.overdue`), or ``None`` when it
    is not watched: unregistered, invalid or paused."""
    spec = task.spec
    since = task.schedule_since
    if (
        not task.registered
        or task.invalid_reason is not None
        or task.paused
        or spec is None
        or since is None
    ):
        return None
    reference = overdue_reference(task.last_succeeded_at, since)
    try:
        return overdue_at(spec.schedule, spec.timeout_seconds, reference)
    except (ScheduleError, ValueError, OverflowError):
        return None


def task_view(task: TaskState, deadlines: Mapping[str, datetime] | None = None) -> TaskView:
    """The `TaskView` of one task. ``deadlines`` (`projector.overdue.OverdueWatch.deadlines`,
    current with the task) spares computing its ``overdue_at`` again."""
    spec = task.spec
    if deadlines is None:
        deadline = task_overdue_at(task)
    else:
        deadline = deadlines.get(task_key(task.tenant_id, task.task_id))
    return TaskView(
        tenant_id=task.tenant_id,
        task_id=task.task_id,
        name=spec.name if spec else None,
        description=spec.description if spec else "",
        plugin=task.plugin,
        plugin_version=task.plugin_version,
        schedule=spec.schedule.describe() if spec else None,
        timezone=spec.schedule.timezone if spec else None,
        max_retries=spec.max_retries if spec else None,
        timeout_seconds=spec.timeout_seconds if spec else None,
        status=task_status(task),
        registered=task.registered,
        paused=task.paused,
        note=task.status_note,
        note_actor=task.status_actor,
        registered_at=task.registered_at,
        unregistered_at=task.unregistered_at,
        last_fire_at=task.last_fire_at,
        next_fire_at=next_fire(task),
        retry_at=task.retry_at,
        running_execution_id=task.running_execution_id,
        last_outcome=task.last_outcome,
        last_outcome_at=task.last_outcome_at,
        consecutive_failures=task.consecutive_failures,
        succeeded=task.succeeded,
        failed=task.failed,
        retried=task.retried,
        skipped=task.skipped,
        last_error=task.last_error,
        last_skip_reason=task.last_skip_reason,
        last_skipped_at=task.last_skipped_at,
        last_event_at=task.last_event_at,
        waiting_since=task.waiting_since,
        invalid_reason=task.invalid_reason,
        last_succeeded_at=task.last_succeeded_at,
        overdue_at=deadline,
        scheduled_runs=list(task.scheduled_runs),
    )


def attempt_view(attempt: AttemptState) -> AttemptView:
    """The `AttemptView` of one attempt."""
    return AttemptView(
        attempt=attempt.number,
        scheduled_for=attempt.scheduled_for,
        due_at=attempt.due_at,
        worker=attempt.worker,
        started_at=attempt.started_at,
        deadline=attempt.deadline,
        ended_at=attempt.ended_at,
        duration_ms=attempt.duration_ms,
        outcome=attempt.outcome,
        error=attempt.error,
        data=attempt.data,
        retry_at=attempt.retry_at,
        decision=attempt.decision,
        failure_reason=attempt.failure_reason,
    )


def execution_view(task: TaskState, execution: ExecutionState) -> ExecutionView:
    """The `ExecutionView` of one execution of ``task``."""
    return ExecutionView(
        tenant_id=task.tenant_id,
        task_id=task.task_id,
        execution_id=execution.execution_id,
        trigger=execution.trigger,
        scheduled_for=execution.scheduled_for,
        missed_fires=execution.missed_fires,
        due_at=execution.due_at,
        status=execution_status(execution),
        outcome=execution.outcome,
        ended_at=execution.ended_at,
        attempts=[attempt_view(a) for a in execution.attempts],
        rerun_of=execution.rerun_of,
        reruns=list(execution.reruns),
        cancel_requested_at=execution.cancel_requested_at,
        cancel_note=execution.cancel_note,
        cancelled_by=execution.cancelled_by,
    )


def failure_view(task: TaskState, execution: ExecutionState) -> FailureView:
    """The `FailureView` of an execution of ``task`` that ended failed."""
    last = next((a for a in reversed(execution.attempts) if a.outcome == "failed"), None)
    return FailureView(
        tenant_id=task.tenant_id,
        task_id=task.task_id,
        execution_id=execution.execution_id,
        trigger=execution.trigger,
        ended_at=execution.ended_at,
        attempts=len(execution.attempts),
        error=last.error if last else None,
        failure_reason=last.failure_reason if last else None,
        decision=last.decision if last else None,
        rerun_of=execution.rerun_of,
        reruns=list(execution.reruns),
    )


def list_tasks(
    state: ProjectionState, *, tenant_id: str | None = None, include_unregistered: bool = False
) -> list[TaskView]:
    """Task views sorted by (tenant, task id)."""
    tasks = [
        task
        for task in state.tasks.values()
        if (tenant_id is None or task.tenant_id == tenant_id)
        and (include_unregistered or task.registered)
    ]
    tasks.sort(key=lambda t: (t.tenant_id, t.task_id))
    return [task_view(t) for t in tasks]


def history(task: TaskState, *, limit: int | None = None) -> list[ExecutionView]:
    """The task's executions, newest first, at most ``limit``."""
    executions = list(reversed(task.executions.values()))
    if limit is not None:
        executions = executions[:limit]
    return [execution_view(task, e) for e in executions]


def list_failures(
    state: ProjectionState,
    *,
    tenant_id: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[FailureView]:
    """Executions in the history that ended failed (at or after ``since``), newest first."""
    found: list[tuple[TaskState, ExecutionState]] = []
    for task in state.tasks.values():
        if (tenant_id is not None and task.tenant_id != tenant_id) or not task.failed:
            continue  # a task that never failed is passed over without a look at its history
        found.extend(
            (task, execution)
            for execution in task.executions.values()
            if execution.outcome == "failed" and _ended_since(execution, since)
        )
    found.sort(key=_newest_first)
    if limit is not None:
        found = found[: max(0, limit)]
    return [failure_view(task, execution) for task, execution in found]


def _ended_since(execution: ExecutionState, since: datetime | None) -> bool:
    if since is None:
        return True
    return execution.ended_at is not None and execution.ended_at >= since


def _newest_first(found: tuple[TaskState, ExecutionState]) -> tuple[float, str, str, str]:
    task, execution = found
    ended = execution.ended_at.timestamp() if execution.ended_at is not None else float("-inf")
    return -ended, task.tenant_id, task.task_id, execution.execution_id


def find_executions(
    state: ProjectionState, execution_id: str, tenant_id: str | None = None
) -> list[tuple[TaskState, ExecutionState]]:
    """The executions called ``execution_id`` in the history (of ``tenant_id``, or of any)."""
    found: list[tuple[TaskState, ExecutionState]] = []
    for task in state.tasks.values():
        if tenant_id is not None and task.tenant_id != tenant_id:
            continue
        execution = task.executions.get(execution_id)
        if execution is not None:
            found.append((task, execution))
    found.sort(key=lambda pair: (pair[0].tenant_id, pair[0].task_id))
    return found


def find_tasks(state: ProjectionState, task_id: str, tenant_id: str | None) -> list[TaskState]:
    """The tasks called ``task_id`` (in ``tenant_id``, or in any tenant)."""
    if tenant_id is not None:
        task = state.task(tenant_id, task_id)
        return [task] if task is not None else []
    found = [t for t in state.tasks.values() if t.task_id == task_id]
    found.sort(key=lambda t: t.tenant_id)
    return found
