"""The read model: per task its definition, status, counters and a bounded execution history.

Mutable msgspec structs: they are created faster than dataclasses, take less memory, encode to a
checkpoint in one call, and (``gc=False``) the cyclic garbage collector never scans them, which
keeps a million-event replay from spending its time in GC passes over an ever larger state. The
state holds no reference cycles, so nothing is lost by that. The fold (`projector.fold`) is the
only code that changes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import msgspec

from contracts.events import ScheduledRun, TaskError, TaskSpec, Trigger
from contracts.retry import FailureReason, RetryDecision

DEFAULT_HISTORY_LIMIT: Final = 100
"""Executions kept per task (newest); older ones are dropped, their counts stay."""

AttemptOutcome = Literal["succeeded", "retry_scheduled", "failed"]
"""How an attempt ended."""

ExecutionOutcome = Literal["succeeded", "failed"]
"""How an execution ended."""


def task_key(tenant_id: str, task_id: str) -> str:
    """The key of a task in the state: ``<tenant>.<task_id>`` (tenant ids have no dots)."""
    return f"{tenant_id}.{task_id}"


class AttemptState(msgspec.Struct, kw_only=True, gc=False):
    """One attempt of an execution."""

    number: int
    due_at: datetime | None = None
    """When its ``TaskDue`` was published."""
    scheduled_for: datetime | None = None
    worker: str | None = None
    started_at: datetime | None = None
    deadline: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    outcome: AttemptOutcome | None = None
    error: TaskError | None = None
    data: dict[str, Any] | None = None
    retry_at: datetime | None = None
    decision: RetryDecision | None = None
    failure_reason: FailureReason | None = None


class ExecutionState(msgspec.Struct, kw_only=True, gc=False):
    """One execution: the attempts of one fire (or one manual trigger or re-run)."""

    execution_id: str
    trigger: Trigger | None = None
    """``None`` when its ``TaskDue`` is not in the stream (trimmed by age)."""
    rerun_of: str | None = None
    """The execution this one runs again (trigger ``rerun``)."""
    reruns: list[str] = []
    """The executions that ran this one again, oldest first."""
    scheduled_for: datetime | None = None
    missed_fires: int = 0
    due_at: datetime | None = None
    attempts: list[AttemptState] = []
    outcome: ExecutionOutcome | None = None
    """``None`` while the execution is open."""
    ended_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    """When an operator asked to cancel it (``TaskCancelRequested``); ``None``: never."""
    cancel_note: str = ""
    cancelled_by: str = ""
    """The actor of the cancel request."""


class OpenExecution(msgspec.Struct, kw_only=True, gc=False):
    """Where an execution without a ``TaskSucceeded`` or ``TaskFailed`` stands.

    Its current attempt is due (``due_at`` set, not started), running (``started_at`` set) or
    ended with a retry pending (``retry_at`` set: attempt ``attempt + 1`` comes then).
    """

    attempt: int
    due_at: datetime | None = None
    """When the current attempt's ``TaskDue`` was recorded (``None``: not in the stream)."""
    started_at: datetime | None = None
    retry_at: datetime | None = None

    @property
    def running(self) -> bool:
        """Whether a worker runs the current attempt."""
        return self.started_at is not None and self.retry_at is None

    @property
    def waiting_for_executor(self) -> bool:
        """Whether the current attempt is due and no worker has taken it."""
        return self.due_at is not None and self.started_at is None and self.retry_at is None


class TaskState(msgspec.Struct, kw_only=True, gc=False):
    """One task of one tenant."""

    tenant_id: str
    task_id: str
    registered: bool = False
    plugin: str | None = None
    plugin_version: str | None = None
    spec: TaskSpec | None = None
    definition_hash: str | None = None
    registered_at: datetime | None = None
    unregistered_at: datetime | None = None
    invalid_reason: str | None = None
    """Why the newest registration breaks the registration rules (``None``: it does not); the
    ticker does not schedule such a task (`contracts.validation.registration_problem`)."""
    paused: bool = False
    status_note: str = ""
    """The note of the last pause or resume."""
    status_actor: str = ""
    status_changed_at: datetime | None = None
    last_fire_at: datetime | None = None
    """The newest schedule fire seen (run, caught up or skipped)."""
    schedule_since: datetime | None = None
    """When the current schedule took effect: the registration that set it, or the last resume
    if later (the ticker's ``since``); ``None`` while unregistered or invalid."""
    last_succeeded_at: datetime | None = None
    """When the newest ``TaskSucceeded`` was recorded."""
    open_executions: dict[str, OpenExecution] = {}
    """Executions that have not ended, by id, oldest opened first; at most the state's
    ``history_limit`` (an older one still open is taken for lost)."""
    last_outcome: ExecutionOutcome | None = None
    last_outcome_at: datetime | None = None
    consecutive_failures: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    last_error: TaskError | None = None
    last_skip_reason: str | None = None
    last_skipped_at: datetime | None = None
    last_event_at: datetime | None = None
    scheduled_runs: tuple[ScheduledRun, ...] = ()
    """The one-off runs still to come (``trigger --at``), earliest first."""
    executions: dict[str, ExecutionState] = {}
    """Newest last, at most the state's ``history_limit``."""

    @property
    def running_execution_id(self) -> str | None:
        """The newest execution that has not ended."""
        return next(reversed(self.open_executions), None)

    @property
    def retry_at(self) -> datetime | None:
        """The earliest pending retry of the open executions."""
        pending = [e.retry_at for e in self.open_executions.values() if e.retry_at is not None]
        return min(pending, default=None)

    @property
    def waiting_since(self) -> datetime | None:
        """Since when the longest-waiting due, unstarted attempt waits for an executor."""
        waiting = [
            e.due_at
            for e in self.open_executions.values()
            if e.waiting_for_executor and e.due_at is not None
        ]
        return min(waiting, default=None)


class ProjectionState(msgspec.Struct, kw_only=True, gc=False):
    """Everything the projector knows, as of stream sequence ``sequence``."""

    history_limit: int = DEFAULT_HISTORY_LIMIT
    sequence: int = 0
    """The stream sequence of the last message folded in (0: none)."""
    events_applied: int = 0
    unknown_events: dict[str, int] = {}
    """Events of a type or version this code does not know, by tag: skipped and counted."""
    invalid_messages: int = 0
    """Messages that are not events at all: skipped and counted."""
    invalid_tasks: int = 0
    """Registered tasks whose newest registration is invalid (``TaskState.invalid_reason``)."""
    tasks: dict[str, TaskState] = {}
    """By `task_key`."""

    def task(self, tenant_id: str, task_id: str) -> TaskState | None:
        """The task, or ``None`` if no event names it."""
        return self.tasks.get(task_key(tenant_id, task_id))
