"""The ticker's decisions, as pure functions of a task's state and the current instant.

Nothing here does I/O. The service folds stream events into `TaskState` with `apply_event`,
asks `next_due_instant` when to look at a task again, and asks `decide` what to publish then.

The catch-up rule (docs/design.md, guarantee 4): at an instant ``now``, the fires of a task that are
due are those after ``max(last fire, since)`` and up to ``now``, where ``since`` is the
registration of the current schedule or the last resume. When exactly one fire is due and it is
at most `ON_TIME_GRACE_SECONDS` late, it runs with trigger ``schedule``. Otherwise the ticker was
not running at those instants: if the newest of them is inside the task's catch-up window they
are coalesced into one ``TaskDue`` (trigger ``catchup``, ``missed_fires`` = how many), else one
``TaskSkipped`` (reason ``missed``) records them. A run (``schedule`` or ``catchup``) whose task
still has an execution without a terminal event is recorded as ``TaskSkipped`` (reason
``overlap``) unless the schedule's overlap policy is ``allow``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from contracts.events import (
    Event,
    RetryScheduled,
    TaskDue,
    TaskFailed,
    TaskPaused,
    TaskRegistered,
    TaskResumed,
    TaskSkipped,
    TaskSucceeded,
    TaskUnregistered,
    Trigger,
)
from contracts.identifiers import execution_id_for_fire
from contracts.schedule import Schedule, next_fire_after

ON_TIME_GRACE_SECONDS: Final = 1.0
"""A single fire handled at most this late (after its jitter) is an ordinary ``schedule`` run."""

MAX_TRACKED_RUNNING: Final = 64
"""Most unfinished executions remembered per task (only the newest matters for overlap)."""

TaskKey = tuple[str, str]
"""(tenant id, task id)."""


@dataclass(slots=True)
class TaskState:
    """What the ticker knows of one task, folded from its events."""

    tenant_id: str
    task_id: str
    schedule: Schedule | None = None
    """The current schedule; ``None`` while the task is not registered."""
    since: datetime | None = None
    """Fires count only after this: the registration of the schedule, or the last resume."""
    paused: bool = False
    last_fire: datetime | None = None
    """The newest fire handled (run or skipped), by any ticker."""
    last_seq: int = 0
    """The stream sequence of the newest event of this task applied."""
    running: dict[str, None] = field(default_factory=dict)
    """Executions with a ``TaskDue`` and no terminal event yet, oldest first."""
    last_due: tuple[str, int] | None = None
    """(execution id, attempt) of the newest ``TaskDue``."""

    @property
    def key(self) -> TaskKey:
        return (self.tenant_id, self.task_id)

    @property
    def active(self) -> bool:
        """Registered and not paused: its schedule fires."""
        return self.schedule is not None and self.since is not None and not self.paused


def apply_event(state: TaskState, event: Event, seq: int | None = None) -> bool:
    """Fold one of the task's events into ``state``; return whether its timing changed.

    ``seq`` is the event's stream sequence: an event at or below ``state.last_seq`` was applied
    already and is ignored. ``None`` applies the event's effects without sequence bookkeeping
    (for a publish the stream reported as a duplicate); every effect is idempotent.
    """
    if seq is not None:
        if seq <= state.last_seq:
            return False
        state.last_seq = seq
    match event:
        case TaskRegistered():
            schedule = event.spec.schedule
            if state.schedule != schedule or state.since is None:
                state.since = event.occurred_at
            state.schedule = schedule
            return True
        case TaskUnregistered():
            state.schedule = None
            state.since = None
            return True
        case TaskPaused():
            changed = not state.paused
            state.paused = True
            return changed
        case TaskResumed():
            if not state.paused:
                return False
            state.paused = False
            if state.since is not None:
                state.since = max(state.since, event.occurred_at)
            return True
        case TaskDue():
            _advance(state, event.fire_at)
            state.running[event.execution_id] = None
            if len(state.running) > MAX_TRACKED_RUNNING:
                del state.running[next(iter(state.running))]
            if state.last_due is None or state.last_due[0] != event.execution_id:
                state.last_due = (event.execution_id, event.attempt)
            else:
                state.last_due = (event.execution_id, max(state.last_due[1], event.attempt))
            return False
        case TaskSkipped():
            _advance(state, event.scheduled_for)
            return False
        case TaskSucceeded() | TaskFailed():
            state.running.pop(event.execution_id, None)
            return False
        case _:
            return False


def _advance(state: TaskState, fire: datetime | None) -> None:
    if fire is not None and (state.last_fire is None or fire > state.last_fire):
        state.last_fire = fire


def jitter_offset(tenant_id: str, task_id: str, fire: datetime, jitter_seconds: float) -> float:
    """Seconds to delay ``fire`` by, in ``[0, jitter_seconds)``.

    Derived from (tenant, task, fire) rather than drawn at random, so that every ticker delays a
    fire by the same amount and they still agree on what is due.
    """
    if jitter_seconds <= 0:
        return 0.0
    millis = round(fire.timestamp() * 1000)
    digest = hashlib.blake2b(f"{tenant_id}/{task_id}/{millis}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 * jitter_seconds


@dataclass(frozen=True, slots=True)
class DueFires:
    """The fires in ``(after, now]``: how many, the newest and the one before it."""

    count: int
    newest: datetime | None
    previous: datetime | None


def fires_between(schedule: Schedule, after: datetime, until: datetime) -> DueFires:
    """The fire instants ``f`` of ``schedule`` with ``after < f <= until``."""
    if until <= after:
        return DueFires(0, None, None)
    if schedule.interval_seconds is not None:
        # Exact timedelta arithmetic from the schedule's own next fire (offset included).
        first = next_fire_after(schedule, after)
        if first > until:
            return DueFires(0, None, None)
        step = timedelta(seconds=schedule.interval_seconds)
        count = (until - first) // step + 1
        last = first + (count - 1) * step
        return DueFires(count, last, last - step if count > 1 else None)
    count = 0
    newest: datetime | None = None
    previous: datetime | None = None
    instant = after
    while True:
        instant = next_fire_after(schedule, instant)
        if instant > until:
            return DueFires(count, newest, previous)
        count += 1
        previous, newest = newest, instant


def _after(state: TaskState) -> datetime | None:
    if state.since is None:
        return None
    if state.last_fire is None:
        return state.since
    return max(state.last_fire, state.since)


def next_due_instant(state: TaskState) -> datetime | None:
    """When to look at the task next: its next fire after the last one handled, plus jitter.

    ``None`` when it does not fire (not registered, or paused). The instant may be in the past
    (fires were missed): `decide` then applies the catch-up rule.
    """
    if not state.active:
        return None
    after = _after(state)
    assert state.schedule is not None
    assert after is not None
    fire = next_fire_after(state.schedule, after)
    jitter = jitter_offset(state.tenant_id, state.task_id, fire, state.schedule.jitter_seconds)
    return fire + timedelta(seconds=jitter) if jitter else fire


def decide(state: TaskState, now: datetime) -> TaskDue | TaskSkipped | None:
    """What to publish for the task at ``now``: a run, a recorded skip, or nothing yet."""
    if not state.active:
        return None
    schedule = state.schedule
    after = _after(state)
    assert schedule is not None
    assert after is not None
    fires = fires_between(schedule, after, now)
    count, newest = fires.count, fires.newest
    if newest is None:
        return None
    jitter = jitter_offset(state.tenant_id, state.task_id, newest, schedule.jitter_seconds)
    if jitter and newest + timedelta(seconds=jitter) > now:
        # The newest fire's jittered instant has not come: it is not due yet.
        count, newest = count - 1, fires.previous
        if newest is None:
            return None
        jitter = jitter_offset(state.tenant_id, state.task_id, newest, schedule.jitter_seconds)
    late = (now - newest).total_seconds() - jitter
    trigger: Trigger
    if count == 1 and late <= ON_TIME_GRACE_SECONDS:
        trigger = "schedule"
    elif (now - newest).total_seconds() <= schedule.catchup_window_seconds:
        trigger = "catchup"
    else:
        return TaskSkipped(
            tenant_id=state.tenant_id,
            task_id=state.task_id,
            occurred_at=now,
            scheduled_for=newest,
            reason="missed",
            detail=f"{count} fire(s) missed while no ticker ran; the newest is older than the "
            f"catch-up window of {schedule.catchup_window_seconds:g}s",
            missed_fires=count,
        )
    if schedule.overlap == "skip" and state.running:
        running = next(reversed(state.running))
        return TaskSkipped(
            tenant_id=state.tenant_id,
            task_id=state.task_id,
            occurred_at=now,
            scheduled_for=newest,
            reason="overlap",
            detail=f"execution {running} has not finished",
            missed_fires=count,
            running_execution_id=running,
        )
    return TaskDue(
        tenant_id=state.tenant_id,
        task_id=state.task_id,
        occurred_at=now,
        execution_id=execution_id_for_fire(state.tenant_id, state.task_id, newest),
        attempt=1,
        trigger=trigger,
        scheduled_for=newest,
        fire_at=newest,
        missed_fires=count if trigger == "catchup" else 0,
    )


def retry_due(state: TaskState, retry: RetryScheduled, now: datetime) -> TaskDue | None:
    """The next attempt's ``TaskDue`` for ``retry``, or ``None`` if it was published already."""
    if state.last_due is not None:
        execution_id, attempt = state.last_due
        if execution_id == retry.execution_id and attempt > retry.attempt:
            return None
    return TaskDue(
        tenant_id=retry.tenant_id,
        task_id=retry.task_id,
        occurred_at=now,
        execution_id=retry.execution_id,
        attempt=retry.attempt + 1,
        trigger="retry",
        scheduled_for=retry.retry_at,
        fire_at=state.last_fire,
    )
