"""The ticker's decisions, as pure functions of a task's state and the current instant.

Nothing here does I/O. The service folds stream events into `TaskState` with `apply_event`,
asks `next_due_instant` when to look at a task again, and asks `decide` what to publish then.

The catch-up rule (docs/design.md, guarantee 4): at an instant ``now``, the fires of a task that are
due are those after ``max(last fire, since)`` and up to ``now`` that lie in the schedule's active
window (``start_at <= fire < end_at``), where ``since`` is the
registration of the current schedule or the last resume. When exactly one fire is due and it is
at most `ON_TIME_GRACE_SECONDS` late, it runs with trigger ``schedule``. Otherwise the ticker was
not running at those instants: if the newest of them is inside the task's catch-up window they
are coalesced into one ``TaskDue`` (trigger ``catchup``, ``missed_fires`` = how many), else one
``TaskSkipped`` (reason ``missed``) records them. A run (``schedule`` or ``catchup``) whose task
still has an execution without a terminal event is recorded as ``TaskSkipped`` (reason
``overlap``) unless the schedule's overlap policy is ``allow``. A fire that falls while the task
is paused is recorded as ``TaskSkipped`` (reason ``paused``).

Every execution ends (docs/design.md, guarantee 7): an attempt that started and has no outcome
`LOST_AFTER_SECONDS` past its deadline is closed by the ticker with error kind ``lost``, as
``RetryScheduled`` or ``TaskFailed`` by the default retry policy (`lost_outcome`).

An operator's one-off run (``trigger --at``) is published at its ``run_at`` as a ``TaskDue``
(trigger ``once``, its own execution id), whether the task is paused or an execution is open,
and then removed from the task's list (``ScheduledRunsChanged``, change ``fired``).

A cancelled execution whose retry waits for its time is closed at once (`cancelled_retry`):
``TaskFailed`` of the retry's attempt, error kind and reason ``cancelled``; the retry's
``TaskDue`` is then never published (`retry_due`).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, TypeVar

from contracts.events import (
    Event,
    RetryScheduled,
    ScheduledRun,
    ScheduledRunsChanged,
    TaskCancelRequested,
    TaskDue,
    TaskError,
    TaskFailed,
    TaskPaused,
    TaskRegistered,
    TaskResumed,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskUnregistered,
    Trigger,
)
from contracts.identifiers import execution_id_for_fire
from contracts.outcomes import cancel_applies, cancelled_error, failure_outcome
from contracts.schedule import Schedule, next_fire_after, next_fire_in_window, window_after
from contracts.validation import registration_problem

ON_TIME_GRACE_SECONDS: Final = 1.0
"""A single fire handled at most this late (after its jitter) is an ordinary ``schedule`` run."""

MAX_TRACKED_RUNNING: Final = 64
"""Most unfinished executions remembered per task (only the newest matters for overlap)."""

LOST_AFTER_SECONDS: Final = 90.0
"""How long past an attempt's deadline its outcome may still come before the attempt is closed
as lost: an executor that dies has the attempt redelivered to another after the consumer's ack
wait (30 s), which starts it again with a new deadline."""

MAX_COUNTED_FIRES: Final = 10_000
"""Cron fires `fires_between` counts one by one. Past that (a ticker down for weeks under a
per-minute cron, or a registration dated years back) the newest fires are looked for back from
the end instead, and the count is a lower bound: one decision never walks years of minutes."""

TaskKey = tuple[str, str]
"""(tenant id, task id)."""

Decision = TaskDue | TaskSkipped | RetryScheduled | TaskFailed | ScheduledRunsChanged
"""What the ticker publishes for a task: a run, a skipped fire, a lost attempt or a cancelled
retry closed, or a one-off run that fired taken off its list."""


_K = TypeVar("_K")
_V = TypeVar("_V")

_NONE_YET: Final[Mapping[Any, Any]] = MappingProxyType({})
"""The one empty mapping every task's execution maps start as: an empty dict is 64 bytes, six
per task cost 384 MB over a million tasks that nearly all have no open execution. It is
read-only, so a write that skipped the task's ``own_...`` method fails instead of reaching
every task."""


def _none_yet() -> Mapping[Any, Any]:
    return _NONE_YET


def _own(mapping: Mapping[_K, _V]) -> dict[_K, _V]:
    """``mapping`` if it is a dict (the task's own), else a new dict with its items."""
    return mapping if isinstance(mapping, dict) else dict(mapping)


@dataclass(frozen=True, slots=True)
class StartedAttempt:
    """The newest started attempt of an open execution, as its ``TaskStarted`` said."""

    attempt: int
    worker: str
    started_at: datetime
    deadline: datetime


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
    running: Mapping[str, None] = field(default_factory=_none_yet)
    """Executions with a ``TaskDue`` and no terminal event yet, oldest first.

    This and the other maps of executions (`started`, `retried`, `cancels`, `ended`,
    `fired_runs`) are read here and written through their ``own_...`` method, which gives the
    task its own dict the first time."""
    last_due: tuple[str, int] | None = None
    """(execution id, attempt) of the newest ``TaskDue``."""
    max_retries: int = 0
    """The registered definition's, for closing a lost attempt."""
    started: Mapping[str, StartedAttempt] = field(default_factory=_none_yet)
    """Open executions whose newest attempt started and has no outcome yet."""
    invalid_reason: str | None = None
    """Why the newest registration breaks the registration rules (`registration_problem`);
    such a task has no schedule, so nothing of it fires until a valid registration comes."""
    invalid_registrations: int = 0
    """How many invalid registrations of the task were applied (each is logged once)."""
    retried: Mapping[str, int] = field(default_factory=_none_yet)
    """Open executions whose newest outcome is a ``RetryScheduled``: the attempt it retries."""
    cancels: Mapping[str, TaskCancelRequested] = field(default_factory=_none_yet)
    """Cancel requests of open executions."""
    ended: Mapping[str, None] = field(default_factory=_none_yet)
    """Executions whose ``TaskSucceeded`` or ``TaskFailed`` was applied, newest last (at most
    `MAX_TRACKED_RUNNING`): a retry of one of them is never published."""
    scheduled_runs: tuple[ScheduledRun, ...] = ()
    """The one-off runs still to come, earliest first, as the newest ``ScheduledRunsChanged``
    says."""
    fired_runs: Mapping[str, None] = field(default_factory=_none_yet)
    """One-off runs of that list whose ``TaskDue`` was applied: to be taken off it."""

    @property
    def key(self) -> TaskKey:
        return (self.tenant_id, self.task_id)

    @property
    def registered(self) -> bool:
        """Registered: its schedule's fires are due (run, or skipped while paused)."""
        return self.schedule is not None and self.since is not None

    @property
    def active(self) -> bool:
        """Registered and not paused: its schedule's fires run."""
        return self.registered and not self.paused

    def own_running(self) -> dict[str, None]:
        """`running`, as the task's own dict to write to."""
        self.running = _own(self.running)
        return self.running

    def own_started(self) -> dict[str, StartedAttempt]:
        """`started`, as the task's own dict to write to."""
        self.started = _own(self.started)
        return self.started

    def own_retried(self) -> dict[str, int]:
        """`retried`, as the task's own dict to write to."""
        self.retried = _own(self.retried)
        return self.retried

    def own_cancels(self) -> dict[str, TaskCancelRequested]:
        """`cancels`, as the task's own dict to write to."""
        self.cancels = _own(self.cancels)
        return self.cancels

    def own_ended(self) -> dict[str, None]:
        """`ended`, as the task's own dict to write to."""
        self.ended = _own(self.ended)
        return self.ended

    def own_fired_runs(self) -> dict[str, None]:
        """`fired_runs`, as the task's own dict to write to."""
        self.fired_runs = _own(self.fired_runs)
        return self.fired_runs


_MAX_SHARED_SCHEDULES: Final = 100_000
_shared_schedules: dict[Schedule, Schedule] = {}


def _shared_schedule(schedule: Schedule) -> Schedule:
    """One object for equal schedules: a ticker holds one per task, most tasks share theirs with
    thousands of others, and each is about 300 bytes (300 MB over a million tasks)."""
    found = _shared_schedules.get(schedule)
    if found is not None:
        return found
    if len(_shared_schedules) < _MAX_SHARED_SCHEDULES:
        _shared_schedules[schedule] = schedule
    return schedule


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
            problem = registration_problem(event)
            if problem is not None:
                state.schedule = None
                state.since = None
                state.invalid_reason = problem
                state.invalid_registrations += 1
                return True
            state.invalid_reason = None
            schedule = _shared_schedule(event.spec.schedule)
            if state.schedule != schedule or state.since is None:
                state.since = event.occurred_at
            state.schedule = schedule
            state.max_retries = event.spec.max_retries
            return True
        case TaskUnregistered():
            state.schedule = None
            state.since = None
            state.invalid_reason = None
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
        case ScheduledRunsChanged():
            state.scheduled_runs = event.runs
            waiting = {run.run_id for run in event.runs}
            if state.fired_runs:
                state.fired_runs = {r: None for r in state.fired_runs if r in waiting}
            return True
        case TaskDue():
            _advance(state, event.fire_at)
            running = state.own_running()
            running[event.execution_id] = None
            if len(running) > MAX_TRACKED_RUNNING:
                _forget(state, next(iter(running)))
            started = state.started.get(event.execution_id)
            if started is not None and started.attempt < event.attempt:
                del state.own_started()[event.execution_id]  # a later attempt waits to be started
            retried = state.retried.get(event.execution_id)
            if retried is not None and retried < event.attempt:
                del state.own_retried()[event.execution_id]  # the retry was published
            if state.last_due is None or state.last_due[0] != event.execution_id:
                state.last_due = (event.execution_id, event.attempt)
            else:
                state.last_due = (event.execution_id, max(state.last_due[1], event.attempt))
            if any(run.run_id == event.execution_id for run in state.scheduled_runs):
                state.own_fired_runs()[event.execution_id] = None
                return True  # to be taken off the list at once
            return False
        case TaskSkipped():
            _advance(state, event.scheduled_for)
            return False
        case TaskStarted():
            if event.execution_id not in state.running:
                return False  # ended already (or long forgotten): nothing can be lost
            started = state.started.get(event.execution_id)
            if started is not None and started.attempt > event.attempt:
                return False
            state.own_started()[event.execution_id] = StartedAttempt(
                event.attempt, event.worker, event.occurred_at, event.deadline
            )
            return True
        case RetryScheduled():
            _attempt_ended(state, event.execution_id, event.attempt)
            execution_id = event.execution_id
            if execution_id not in state.running or execution_id in state.ended:
                return False
            last_due = state.last_due
            if last_due is not None and last_due[0] == execution_id and last_due[1] > event.attempt:
                return False  # its next attempt was published already
            retried = max(state.retried.get(execution_id, 0), event.attempt)
            state.own_retried()[execution_id] = retried
            return execution_id in state.cancels  # a cancelled retry is closed at once
        case TaskSucceeded() | TaskFailed():
            execution_id = event.execution_id
            _forget(state, execution_id)
            ended = state.own_ended()
            ended[execution_id] = None
            if len(ended) > MAX_TRACKED_RUNNING:
                del ended[next(iter(ended))]
            return False
        case TaskCancelRequested():
            execution_id = event.execution_id
            if execution_id not in state.running or execution_id in state.cancels:
                return False  # ended already (or never seen), or asked before
            state.own_cancels()[execution_id] = event
            return execution_id in state.retried
        case _:
            return False


def _attempt_ended(state: TaskState, execution_id: str, attempt: int) -> None:
    started = state.started.get(execution_id)
    if started is not None and started.attempt <= attempt:
        del state.own_started()[execution_id]


def _forget(state: TaskState, execution_id: str) -> None:
    """Drop an execution from the task's open ones: it ended, or it is past the newest
    `MAX_TRACKED_RUNNING`."""
    if execution_id in state.running:
        del state.own_running()[execution_id]
    if execution_id in state.started:
        del state.own_started()[execution_id]
    if execution_id in state.retried:
        del state.own_retried()[execution_id]
    if execution_id in state.cancels:
        del state.own_cancels()[execution_id]


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
    return _stable_fraction(f"{tenant_id}/{task_id}/{millis}") * jitter_seconds


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
    counted = _count_fires(schedule, after, until, MAX_COUNTED_FIRES)
    return counted if counted is not None else _newest_fires(schedule, after, until)


def _count_fires(
    schedule: Schedule, after: datetime, until: datetime, limit: int
) -> DueFires | None:
    """The fires in ``(after, until]`` one by one, or ``None`` if there are more than ``limit``."""
    count = 0
    newest: datetime | None = None
    previous: datetime | None = None
    instant = after
    while True:
        instant = next_fire_after(schedule, instant)
        if instant > until:
            return DueFires(count, newest, previous)
        if count == limit:
            return None
        count += 1
        previous, newest = newest, instant


def _newest_fires(schedule: Schedule, after: datetime, until: datetime) -> DueFires:
    """The newest two of more than `MAX_COUNTED_FIRES` fires in ``(after, until]``, found in a
    span back from ``until`` that holds at least two of them and at most `MAX_COUNTED_FIRES`
    (doubled until it holds two, then halved between); the count is a lower bound."""
    span = timedelta(hours=1)
    fewer: timedelta | None = None  # a span known to hold fewer than two fires
    more: timedelta | None = None  # a span known to hold more than MAX_COUNTED_FIRES
    for _ in range(_MAX_SPAN_STEPS):
        start = after if span >= until - after else until - span
        found = _count_fires(schedule, start, until, MAX_COUNTED_FIRES)
        if found is not None and (found.count >= 2 or start == after):
            return DueFires(MAX_COUNTED_FIRES + 1, found.newest, found.previous)
        if found is None:
            more = span
        else:
            fewer = span
        span = span * 2 if more is None else ((fewer or timedelta(0)) + more) / 2
    # Not reached: cron fires are a minute apart at least, so the halving ends within 40 steps.
    found = _count_fires(
        schedule, after if span >= until - after else until - span, until, sys.maxsize
    )
    assert found is not None
    return DueFires(MAX_COUNTED_FIRES + 1, found.newest, found.previous)


_MAX_SPAN_STEPS: Final = 100
_ONE_MICROSECOND: Final = timedelta(microseconds=1)


def _after(state: TaskState) -> datetime | None:
    if state.since is None:
        return None
    if state.last_fire is None:
        return state.since
    return max(state.last_fire, state.since)


def next_due_instant(
    state: TaskState, *, lost_after: float = LOST_AFTER_SECONDS
) -> datetime | None:
    """When to look at the task next: its next fire after the last one handled, plus jitter,
    or the instant a started attempt counts as lost, whichever is first.

    ``None`` when there is nothing to look at (not registered, nothing started). The instant
    may be in the past (fires were missed): `decide` then applies the catch-up rule.
    """
    instant: datetime | None = None
    if state.registered:
        after = _after(state)
        assert state.schedule is not None
        assert after is not None
        fire = next_fire_in_window(state.schedule, after)
        if fire is not None:
            spread = state.schedule.jitter_seconds
            jitter = jitter_offset(state.tenant_id, state.task_id, fire, spread)
            instant = fire + timedelta(seconds=jitter) if jitter else fire
    if state.started:
        lost_at = min(a.deadline for a in state.started.values()) + timedelta(seconds=lost_after)
        if instant is None or lost_at < instant:
            instant = lost_at
    cancel = _cancelled_retry(state)
    if cancel is not None and (instant is None or cancel[1].occurred_at < instant):
        instant = cancel[1].occurred_at
    if state.registered and state.scheduled_runs:
        # The earliest: it is due at its run_at, or past it and fired (to be taken off).
        run_at = min(run.run_at for run in state.scheduled_runs)
        if instant is None or run_at < instant:
            instant = run_at
    return instant


def _cancelled_retry(state: TaskState) -> tuple[str, TaskCancelRequested] | None:
    """An open execution whose retry waits and which an operator cancelled, if any."""
    for execution_id, request in state.cancels.items():
        retried = state.retried.get(execution_id)
        if retried is not None and cancel_applies(request, execution_id, retried + 1):
            return execution_id, request
    return None


def decide(
    state: TaskState, now: datetime, *, lost_after: float = LOST_AFTER_SECONDS
) -> Decision | None:
    """What to publish for the task at ``now``: a cancelled retry or a lost attempt closed, a
    run, a recorded skip, or nothing yet."""
    cancel = _cancelled_retry(state)
    if cancel is not None:
        execution_id, request = cancel
        return cancelled_retry(state, execution_id, state.retried[execution_id], request, now)
    for execution_id, started in state.started.items():
        if started.deadline + timedelta(seconds=lost_after) <= now:
            return lost_outcome(state, execution_id, started, now, lost_after=lost_after)
    if not state.registered:
        return None
    for run in state.scheduled_runs:
        if run.run_id in state.fired_runs:
            return _run_fired(state, run, now)
        if run.run_at <= now:
            return _one_off_due(state, run, now)
    schedule = state.schedule
    after = _after(state)
    assert schedule is not None
    assert after is not None
    # Only the fires inside the active window count: none before its start is caught up.
    until = now if schedule.end_at is None else min(now, schedule.end_at - _ONE_MICROSECOND)
    fires = fires_between(schedule, window_after(schedule, after), until)
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
    if state.paused:
        return TaskSkipped(
            tenant_id=state.tenant_id,
            task_id=state.task_id,
            occurred_at=now,
            scheduled_for=newest,
            reason="paused",
            detail="the task is paused; 'dvp-scheduler resume' lets its next fire run",
            missed_fires=count,
        )
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
        running = next(reversed(state.own_running()))  # a Mapping is not reversible; not empty
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


def _one_off_due(state: TaskState, run: ScheduledRun, now: datetime) -> TaskDue:
    """The ``TaskDue`` of an operator's one-off run: its own execution id, the schedule's last
    fire carried over, as an operator's run does."""
    return TaskDue(
        tenant_id=state.tenant_id,
        task_id=state.task_id,
        occurred_at=now,
        execution_id=run.run_id,
        attempt=1,
        trigger="once",
        scheduled_for=run.run_at,
        fire_at=state.last_fire,
        actor=run.actor,
    )


def _run_fired(state: TaskState, run: ScheduledRun, now: datetime) -> ScheduledRunsChanged:
    """The task's one-off runs without ``run``, whose ``TaskDue`` was published."""
    return ScheduledRunsChanged(
        tenant_id=state.tenant_id,
        task_id=state.task_id,
        occurred_at=now,
        runs=tuple(r for r in state.scheduled_runs if r.run_id != run.run_id),
        change="fired",
        run_id=run.run_id,
    )


def lost_outcome(
    state: TaskState,
    execution_id: str,
    started: StartedAttempt,
    now: datetime,
    *,
    lost_after: float = LOST_AFTER_SECONDS,
) -> RetryScheduled | TaskFailed:
    """The outcome that closes a started attempt whose worker recorded none: error kind
    ``lost``, and the default retry policy's decision (the ticker runs no plugin code, so no
    ``dvp_task_failed`` is asked). Its jitter is derived from the attempt, so that every ticker
    decides the same outcome, and the shared message id lets the stream keep only one."""
    error = TaskError(
        kind="lost",
        message=f"worker {started.worker} started attempt {started.attempt} at "
        f"{started.started_at.isoformat()} and recorded no outcome by its deadline "
        f"{started.deadline.isoformat()} and {lost_after:g}s more; closed as lost",
    )
    duration_ms = max(0, round((now - started.started_at).total_seconds() * 1000))
    jitter = _stable_fraction(f"{execution_id}/{started.attempt}")
    return failure_outcome(
        tenant_id=state.tenant_id,
        task_id=state.task_id,
        execution_id=execution_id,
        attempt=started.attempt,
        worker=started.worker,
        duration_ms=duration_ms,
        error=error,
        max_retries=state.max_retries,
        decision=None,
        now=now,
        jitter=jitter,
    )


def cancelled_retry(
    state: TaskState,
    execution_id: str,
    retried: int,
    request: TaskCancelRequested,
    now: datetime,
) -> TaskFailed:
    """The ``TaskFailed`` that closes a cancelled execution whose attempt ``retried`` was
    retried: it is the outcome of the attempt that waits (``retried + 1``), which no worker
    ran (``worker`` is empty), error kind and reason ``cancelled``. It shares that attempt's
    outcome message id, so a ticker's close and an executor's outcome cannot both be kept."""
    outcome = failure_outcome(
        tenant_id=state.tenant_id,
        task_id=state.task_id,
        execution_id=execution_id,
        attempt=retried + 1,
        worker="",
        duration_ms=0,
        error=cancelled_error(request, f" (attempt {retried + 1} was waiting for its retry)"),
        max_retries=state.max_retries,
        decision=None,
        now=now,
        jitter=0.0,
    )
    assert isinstance(outcome, TaskFailed)  # a cancelled attempt is never retried
    return outcome


def _stable_fraction(text: str) -> float:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def retry_due(
    state: TaskState,
    retry: RetryScheduled,
    now: datetime,
    *,
    cancel: TaskCancelRequested | None = None,
    ended: bool = False,
) -> TaskDue | TaskFailed | None:
    """The next attempt's ``TaskDue`` for ``retry``; ``None`` if it was published already or
    the execution has ended; the ``TaskFailed`` that closes it if it was cancelled.

    ``cancel`` and ``ended`` are what a look-up in the stream found beyond ``state`` (which
    knows the newest events of each subject, and what came since): a cancel request of the
    execution recorded after the retry, and whether the execution ended since.
    """
    if ended or retry.execution_id in state.ended:
        return None
    if state.last_due is not None:
        execution_id, attempt = state.last_due
        if execution_id == retry.execution_id and attempt > retry.attempt:
            return None
    request = cancel or state.cancels.get(retry.execution_id)
    if request is not None and cancel_applies(request, retry.execution_id, retry.attempt + 1):
        return cancelled_retry(state, retry.execution_id, retry.attempt, request, now)
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
