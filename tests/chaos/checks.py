"""The chaos suite's verdict on a stream: records in, problems and figures out (no I/O).

`check_stream` reads every event of ``DVP_TASKS`` in stream order and checks the guarantees of
docs/design.md section 3 that a chaos run can break:

* one record per fire (guarantee 1): one ``TaskDue`` or ``TaskSkipped`` per schedule fire, the
  execution id derived from the fire, no ``(execution, attempt)`` published twice, a fire
  handled more than 1 s late not labelled ``schedule`` (section 5);
* nothing lost (guarantees 2 and 7): each attempt's ``TaskDue`` has exactly one outcome, no
  outcome lacks its ``TaskDue``, each ``RetryScheduled`` is followed by its next attempt's
  ``TaskDue`` (trigger ``retry``), no attempt past ``max_retries`` or after its execution ended,
  each executor outcome has the ``TaskStarted`` of its own run, and no attempt is run again
  after its outcome was recorded;
* every fire explained (guarantee 4): each schedule fire due while the tickers ran is a
  ``schedule`` run, part of a ``catchup`` (as many as its ``missed_fires``), or a
  ``TaskSkipped`` with a reason;
* overlap (guarantee 5): no ``schedule``/``catchup`` run while an execution of the task is
  open, no ``overlap`` skip while none is;
* optionally, each outcome is the one the plugin planned for that attempt.

What it cannot know from events (a service that exited, the projector's state) the test
checks itself.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

from contracts.events import (
    Event,
    RetryScheduled,
    TaskDue,
    TaskFailed,
    TaskPaused,
    TaskRegistered,
    TaskResumed,
    TaskSkipped,
    TaskSpec,
    TaskStarted,
    TaskSucceeded,
    TaskUnregistered,
)
from contracts.identifiers import execution_id_for_fire
from contracts.schedule import Schedule, next_fire_after

ON_TIME_GRACE_SECONDS: Final = 1.0
"""A fire handled at most this late is a ``schedule`` run, later a ``catchup`` (design, 5)."""

PUBLISH_SLACK_SECONDS: Final = 1.0
"""How long after its decision a ``schedule`` fire may take to be stored, on top of the grace."""

RUN_START_SLACK_SECONDS: Final = 10.0
"""How long before its run an attempt's ``TaskStarted`` may lie (the executor reads the
previous attempt's error in between, which waits for the broker during a node's outage)."""

RERUN_SLACK_SECONDS: Final = 0.5
"""A run that starts this soon after its attempt's outcome was stored raced the look-up that
should have found it; later, it is a run of an attempt already recorded."""

END_MARGIN_SECONDS: Final = 2.0
"""Fires and retries due this close to the tickers' stop need not have been published."""

Category = Literal["duplicate", "missing", "unexplained"]
"""What a problem is: something recorded twice (or run again), something that should be in
the stream and is not, or something the rules do not account for."""

PlannedOutcome = Literal["succeeded", "retry", "failed"]
Planner = Callable[[str, str, int, int], PlannedOutcome]
"""(task id, execution id, attempt, max retries) -> how that attempt ends when it runs."""

_AttemptKey = tuple[str, str, str, int]
"""(tenant, task, execution id, attempt)."""
_TaskKey = tuple[str, str]
_Outcome = TaskSucceeded | RetryScheduled | TaskFailed
_SHOWN: Final = 5
"""Fire instants listed per problem at most."""


@dataclass(frozen=True)
class Record:
    """One message of the stream: its sequence, when the server stored it, its event."""

    sequence: int
    stored_at: datetime
    event: Event
    guarded_after: int | None = None
    """The ``Nats-Expected-Last-Subject-Sequence`` it was published with: the last of the
    task's messages its publisher had seen when it decided."""


@dataclass(frozen=True)
class Run:
    """One run of an attempt by the plugin, as its journal recorded it."""

    task_id: str
    execution_id: str
    attempt: int
    worker: str
    started_at: datetime


@dataclass(frozen=True)
class Problem:
    """One thing the run got wrong."""

    category: Category
    check: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.category}] {self.check}: {self.detail}"


@dataclass
class Figures:
    """What the stream holds, counted."""

    tasks: int = 0
    fire_instants: int = 0
    """Schedule fires due in the window the tickers ran."""
    fire_records: int = 0
    """``TaskDue`` of trigger ``schedule``/``catchup`` and ``TaskSkipped``."""
    catchup_fires: int = 0
    """Fires the ``catchup`` runs stood for (their ``missed_fires``)."""
    due_by_trigger: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    executions: int = 0
    executions_open: int = 0
    """Executions without ``TaskSucceeded``/``TaskFailed`` at the end."""
    outcomes: Counter[str] = field(default_factory=Counter)
    failed_by_reason: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)
    skips_by_reason: Counter[str] = field(default_factory=Counter)
    started: int = 0
    attempts_started_again: int = 0
    """Attempts with more than one ``TaskStarted`` (run again after an executor died)."""
    runs: int = 0
    attempts_run_again: int = 0
    """Attempts the plugin ran more than once (from its journal)."""
    retries_cut_off: int = 0
    """``RetryScheduled`` due after the tickers stopped (no next attempt expected)."""
    max_schedule_lateness: float = 0.0
    """Seconds between a ``schedule`` fire and the storing of its ``TaskDue``, at most."""
    skips_racing_an_outcome: int = 0
    """Overlap skips decided before the outcome of the execution they name was stored, and
    stored just after it: the server's guard over all of a task's subjects does not see a
    publish still in flight on another of them (R3; docs/design.md, guarantee 5)."""


@dataclass
class Verdict:
    """The problems found and the figures counted."""

    problems: list[Problem] = field(default_factory=list)
    figures: Figures = field(default_factory=Figures)

    def count(self, category: Category) -> int:
        """How many problems of ``category`` were found."""
        return sum(1 for p in self.problems if p.category == category)

    def checks(self) -> Counter[str]:
        """How many problems each check found."""
        return Counter(p.check for p in self.problems)


def outcome_kind(event: _Outcome) -> PlannedOutcome:
    """``succeeded``, ``retry`` or ``failed``."""
    if isinstance(event, TaskSucceeded):
        return "succeeded"
    if isinstance(event, RetryScheduled):
        return "retry"
    return "failed"


def _at(instant: datetime) -> str:
    return instant.isoformat(timespec="milliseconds")


def _attempt_text(key: _AttemptKey) -> str:
    return f"{key[1]} execution {key[2]} attempt {key[3]}"


def _seqs(records: Sequence[Record]) -> str:
    return ", ".join(str(r.sequence) for r in records)


class _Checker:
    def __init__(
        self,
        until: datetime,
        planned: Planner | None,
        runs: Sequence[Run],
    ) -> None:
        self.verdict = Verdict()
        self.figures = self.verdict.figures
        self.until = until
        self.planned = planned
        self.runs = runs
        self.specs: dict[_TaskKey, TaskSpec] = {}
        self.dues: dict[_AttemptKey, list[Record]] = defaultdict(list)
        self.outcomes: dict[_AttemptKey, list[Record]] = defaultdict(list)
        self.started: dict[_AttemptKey, list[Record]] = defaultdict(list)
        self.retries: dict[_AttemptKey, Record] = {}
        self.open: dict[_TaskKey, dict[str, None]] = defaultdict(dict)
        self.ended: dict[tuple[str, str, str], Record] = {}
        self.by_task: dict[_TaskKey, list[Record]] = defaultdict(list)

    def problem(self, category: Category, check: str, detail: str) -> None:
        self.verdict.problems.append(Problem(category, check, detail))

    # -- pass 1: attempts, outcomes, overlap, in stream order ---------------------------------

    def read(self, record: Record) -> None:
        event = record.event
        task: _TaskKey = (event.tenant_id, event.task_id)
        self.by_task[task].append(record)
        match event:
            case TaskRegistered():
                self.specs[task] = event.spec
            case TaskDue():
                self._due(record, event, task)
            case TaskSkipped():
                self._skipped(record, event, task)
            case TaskStarted():
                self._started(record, event)
            case TaskSucceeded() | RetryScheduled() | TaskFailed():
                self._outcome(record, event, task)
            case _:
                pass

    def _due(self, record: Record, event: TaskDue, task: _TaskKey) -> None:
        key = (event.tenant_id, event.task_id, event.execution_id, event.attempt)
        figures = self.figures
        figures.due_by_trigger[event.trigger] += 1
        earlier = self.dues[key]
        if earlier:
            both = [*earlier, record]
            self.problem(
                "duplicate",
                "duplicate TaskDue",
                f"{_attempt_text(key)} has TaskDue at sequences {_seqs(both)} "
                f"({', '.join(_label(r.event) for r in both)})",
            )
        earlier.append(record)
        spec = self.specs.get(task)
        ended = self.ended.get((event.tenant_id, event.task_id, event.execution_id))
        if ended is not None:
            self.problem(
                "unexplained",
                "attempt after its execution ended",
                f"TaskDue of {_attempt_text(key)} (sequence {record.sequence}) follows the "
                f"execution's {type(ended.event).__name__} at sequence {ended.sequence}",
            )
        if event.trigger in ("schedule", "catchup"):
            self._fire_due(record, event, task, key, spec)
        elif event.trigger == "retry":
            self._retry_due(record, event, key, spec)
        self.open[task][event.execution_id] = None

    def _fire_due(
        self,
        record: Record,
        event: TaskDue,
        task: _TaskKey,
        key: _AttemptKey,
        spec: TaskSpec | None,
    ) -> None:
        if event.attempt != 1:
            self.problem(
                "unexplained",
                "fire with attempt above 1",
                f"{event.trigger} TaskDue of {_attempt_text(key)} (sequence {record.sequence})",
            )
        if event.fire_at != event.scheduled_for:
            self.problem(
                "unexplained",
                "fire instant not its scheduled_for",
                f"{event.trigger} TaskDue at sequence {record.sequence} of {event.task_id}: "
                f"fire_at {event.fire_at}, scheduled_for {_at(event.scheduled_for)}",
            )
        derived = execution_id_for_fire(event.tenant_id, event.task_id, event.scheduled_for)
        if event.execution_id != derived:
            self.problem(
                "unexplained",
                "execution id not derived from the fire",
                f"{event.trigger} TaskDue at sequence {record.sequence} of {event.task_id} for "
                f"{_at(event.scheduled_for)} has execution id {event.execution_id}, not {derived}",
            )
        if spec is None:
            self.problem(
                "unexplained",
                "fire of an unregistered task",
                f"{event.trigger} TaskDue at sequence {record.sequence} of {event.task_id} comes "
                "before any TaskRegistered of it",
            )
            return
        running = [e for e in self.open[task] if e != event.execution_id]
        if spec.schedule.overlap == "skip" and running:
            self.problem(
                "unexplained",
                "run over an open execution",
                f"{event.trigger} TaskDue at sequence {record.sequence} of {event.task_id} for "
                f"{_at(event.scheduled_for)} while execution {running[-1]} is open "
                "(overlap 'skip')",
            )
        if event.trigger == "schedule":
            late = (record.stored_at - event.scheduled_for).total_seconds()
            late -= spec.schedule.jitter_seconds
            self.figures.max_schedule_lateness = max(self.figures.max_schedule_lateness, late)
            if late > ON_TIME_GRACE_SECONDS + PUBLISH_SLACK_SECONDS:
                self.problem(
                    "unexplained",
                    "stale fire labelled schedule",
                    f"TaskDue at sequence {record.sequence} of {event.task_id} for the fire at "
                    f"{_at(event.scheduled_for)} was stored {late:.1f}s after it (decided at "
                    f"{_at(event.occurred_at)}) with trigger 'schedule'; past "
                    f"{ON_TIME_GRACE_SECONDS:g}s it is a catch-up",
                )
        else:
            self.figures.catchup_fires += event.missed_fires

    def _retry_due(
        self, record: Record, event: TaskDue, key: _AttemptKey, spec: TaskSpec | None
    ) -> None:
        previous = (key[0], key[1], key[2], key[3] - 1)
        retry = self.retries.get(previous)
        if retry is None:
            self.problem(
                "unexplained",
                "retry without its RetryScheduled",
                f"retry TaskDue of {_attempt_text(key)} (sequence {record.sequence}) follows no "
                f"RetryScheduled of attempt {key[3] - 1}",
            )
        elif isinstance(retry.event, RetryScheduled) and retry.event.retry_at != (
            event.scheduled_for
        ):
            self.problem(
                "unexplained",
                "retry not at its retry_at",
                f"retry TaskDue of {_attempt_text(key)} (sequence {record.sequence}) is "
                f"scheduled for {_at(event.scheduled_for)}, its RetryScheduled (sequence "
                f"{retry.sequence}) said {_at(retry.event.retry_at)}",
            )
        if spec is not None and event.attempt > 1 + spec.max_retries:
            self.problem(
                "unexplained",
                "attempt beyond max_retries",
                f"TaskDue of {_attempt_text(key)} (sequence {record.sequence}); max_retries is "
                f"{spec.max_retries}",
            )

    def _skipped(self, record: Record, event: TaskSkipped, task: _TaskKey) -> None:
        self.figures.skips_by_reason[event.reason] += 1
        if event.reason != "overlap":
            return
        running = self.open[task]
        ended = self.ended.get((event.tenant_id, event.task_id, event.running_execution_id))
        if (
            event.running_execution_id not in running
            and ended is not None
            and record.guarded_after is not None
            and record.guarded_after < ended.sequence < record.sequence
        ):
            self.figures.skips_racing_an_outcome += 1
        elif not running:
            self.problem(
                "unexplained",
                "overlap skip with nothing running",
                f"TaskSkipped at sequence {record.sequence} of {event.task_id} for "
                f"{_at(event.scheduled_for)} names execution {event.running_execution_id}, but "
                "every execution of the task had ended",
            )
        elif event.running_execution_id not in running:
            self.problem(
                "unexplained",
                "overlap skip names no open execution",
                f"TaskSkipped at sequence {record.sequence} of {event.task_id} names execution "
                f"{event.running_execution_id}, which is not open",
            )

    def _started(self, record: Record, event: TaskStarted) -> None:
        key = (event.tenant_id, event.task_id, event.execution_id, event.attempt)
        self.figures.started += 1
        if not self.dues.get(key):
            self.problem(
                "unexplained",
                "TaskStarted without its TaskDue",
                f"{_attempt_text(key)} started (sequence {record.sequence}, worker "
                f"{event.worker}) before any TaskDue of it",
            )
        done = self.outcomes.get(key)
        if done:
            self.problem(
                "duplicate",
                "attempt started after its outcome",
                f"{_attempt_text(key)} started again by {event.worker} (sequence "
                f"{record.sequence}) after its {type(done[0].event).__name__} (sequence "
                f"{done[0].sequence})",
            )
        self.started[key].append(record)

    def _outcome(self, record: Record, event: _Outcome, task: _TaskKey) -> None:
        key = (event.tenant_id, event.task_id, event.execution_id, event.attempt)
        figures = self.figures
        kind = outcome_kind(event)
        figures.outcomes[kind] += 1
        if isinstance(event, TaskFailed):
            figures.failed_by_reason[event.reason] += 1
        error = None if isinstance(event, TaskSucceeded) else event.error
        if error is not None:
            figures.error_kinds[error.kind] += 1
        if not self.dues.get(key):
            self.problem(
                "unexplained",
                "outcome without its TaskDue",
                f"{type(event).__name__} of {_attempt_text(key)} (sequence {record.sequence}) "
                "follows no TaskDue of that attempt",
            )
        earlier = self.outcomes[key]
        if earlier:
            self.problem(
                "duplicate",
                "second outcome of an attempt",
                f"{_attempt_text(key)} has outcomes at sequences {_seqs([*earlier, record])} "
                f"({', '.join(type(r.event).__name__ for r in [*earlier, record])})",
            )
        earlier.append(record)
        lost = error is not None and error.kind == "lost"
        if not lost:
            self._own_start(record, event, key)
        spec = self.specs.get(task)
        if self.planned is not None and not lost and spec is not None:
            expected = self.planned(
                event.task_id, event.execution_id, event.attempt, spec.max_retries
            )
            if expected != kind:
                self.problem(
                    "unexplained",
                    "outcome not the planned one",
                    f"{_attempt_text(key)} ended {kind} (sequence {record.sequence}), the "
                    f"plugin plans {expected}",
                )
        if isinstance(event, RetryScheduled):
            self.retries[key] = record
        else:
            self.open[task].pop(event.execution_id, None)
            self.ended.setdefault((event.tenant_id, event.task_id, event.execution_id), record)

    def _own_start(self, record: Record, event: _Outcome, key: _AttemptKey) -> None:
        """The run that wrote this outcome recorded its ``TaskStarted``: one by the same worker
        shortly before the run began."""
        run_start = event.occurred_at - timedelta(milliseconds=event.duration_ms)
        earliest = run_start - timedelta(seconds=RUN_START_SLACK_SECONDS)
        latest = run_start + timedelta(seconds=1)
        mine = [
            r
            for r in self.started.get(key, [])
            if isinstance(r.event, TaskStarted) and r.event.worker == event.worker
        ]
        if any(earliest <= r.event.occurred_at <= latest for r in mine):
            return
        found = ", ".join(f"{_at(r.event.occurred_at)} (sequence {r.sequence})" for r in mine)
        self.problem(
            "missing",
            "outcome without the TaskStarted of its run",
            f"{type(event).__name__} of {_attempt_text(key)} by {event.worker} (sequence "
            f"{record.sequence}) ran from {_at(run_start)}; TaskStarted of that worker: "
            f"{found or 'none'}",
        )

    # -- after the stream: what is missing ----------------------------------------------------

    def finish(self) -> None:
        figures = self.figures
        figures.attempts = len(self.dues)
        executions = {(k[0], k[1], k[2]) for k in self.dues}
        figures.executions = len(executions)
        figures.executions_open = len(executions - set(self.ended))
        figures.attempts_started_again = sum(1 for s in self.started.values() if len(s) > 1)
        for key, dues in self.dues.items():
            if not self.outcomes.get(key):
                self.problem(
                    "missing",
                    "TaskDue without outcome",
                    f"{_attempt_text(key)} (TaskDue at sequence {dues[0].sequence}, stored "
                    f"{_at(dues[0].stored_at)}) has no outcome",
                )
        cut = self.until - timedelta(seconds=END_MARGIN_SECONDS)
        for key, retry in self.retries.items():
            nxt = (key[0], key[1], key[2], key[3] + 1)
            follows = [
                r
                for r in self.dues.get(nxt, [])
                if r.sequence > retry.sequence
                and isinstance(r.event, TaskDue)
                and r.event.trigger == "retry"
            ]
            if follows:
                continue
            assert isinstance(retry.event, RetryScheduled)
            if retry.event.retry_at > cut:
                figures.retries_cut_off += 1
                continue
            self.problem(
                "missing",
                "RetryScheduled without its next attempt",
                f"{_attempt_text(key)} was retried (sequence {retry.sequence}) for "
                f"{_at(retry.event.retry_at)}; no retry TaskDue of attempt {key[3] + 1} follows",
            )
        self._check_runs()
        figures.tasks = len(self.specs)
        for task, records in self.by_task.items():
            self._fires(task, records, cut)

    def _check_runs(self) -> None:
        runs_per_attempt: Counter[tuple[str, str, int]] = Counter()
        stored: dict[tuple[str, str, int], Record] = {}
        for key, outcomes in self.outcomes.items():
            stored[(key[1], key[2], key[3])] = outcomes[0]
        for run in self.runs:
            attempt = (run.task_id, run.execution_id, run.attempt)
            runs_per_attempt[attempt] += 1
            outcome = stored.get(attempt)
            if outcome is None:
                continue
            after = (run.started_at - outcome.stored_at).total_seconds()
            if after > RERUN_SLACK_SECONDS:
                self.problem(
                    "duplicate",
                    "attempt run again after its outcome",
                    f"{run.task_id} execution {run.execution_id} attempt {run.attempt} was run "
                    f"by {run.worker or 'an executor'} at {_at(run.started_at)}, {after:.1f}s "
                    f"after its {type(outcome.event).__name__} was stored (sequence "
                    f"{outcome.sequence})",
                )
        self.figures.runs = len(self.runs)
        self.figures.attempts_run_again = sum(1 for n in runs_per_attempt.values() if n > 1)

    # -- every fire explained ------------------------------------------------------------------

    def _fires(self, task: _TaskKey, records: Sequence[Record], cut: datetime) -> None:
        """Walk the task's events in stream order as a ticker does: each fire record stands for
        the fires since the last one handled; fires after the last record up to ``cut`` are
        unexplained."""
        schedule: Schedule | None = None
        since: datetime | None = None
        paused = False
        last: datetime | None = None
        seen: dict[datetime, Record] = {}
        for record in records:
            event = record.event
            if isinstance(event, TaskRegistered):
                if since is None or schedule != event.spec.schedule:
                    self._unexplained_until(task, schedule, since, last, paused, event.occurred_at)
                    since = event.occurred_at
                schedule = event.spec.schedule
                continue
            if isinstance(event, TaskUnregistered):
                self._unexplained_until(task, schedule, since, last, paused, event.occurred_at)
                schedule, since = None, None
                continue
            if isinstance(event, TaskPaused):
                self._unexplained_until(task, schedule, since, last, paused, event.occurred_at)
                paused = True
                continue
            if isinstance(event, TaskResumed):
                if paused and since is not None:
                    since = max(since, event.occurred_at)
                paused = False
                continue
            fire = _fire_of(event)
            if fire is None:
                continue
            self.figures.fire_records += 1
            earlier = seen.get(fire)
            if earlier is not None:
                if not _same_due(earlier.event, event):  # the same TaskDue twice: counted above
                    self.problem(
                        "duplicate",
                        "fire recorded twice",
                        f"{event.task_id}'s fire at {_at(fire)} is recorded at sequences "
                        f"{earlier.sequence} ({_label(earlier.event)}) and {record.sequence} "
                        f"({_label(event)})",
                    )
                continue
            seen[fire] = record
            if schedule is None or since is None:
                continue  # reported by the TaskDue checks when it ran
            if last is not None and fire < last:
                self.problem(
                    "unexplained",
                    "fire recorded out of order",
                    f"{event.task_id}'s fire at {_at(fire)} (sequence {record.sequence}) comes "
                    f"after the fire at {_at(last)} was recorded",
                )
                continue
            lower = since if last is None else max(last, since)
            stands_for = list(_fires_in(schedule, lower, fire))
            if not stands_for or stands_for[-1] != fire:
                self.problem(
                    "unexplained",
                    "not a fire of the schedule",
                    f"{_label(event)} at sequence {record.sequence} of {event.task_id} is for "
                    f"{_at(fire)}, not a fire of {schedule.describe()} after {_at(lower)}",
                )
            elif isinstance(event, TaskDue) and event.trigger == "schedule":
                if len(stands_for) > 1:
                    skipped = stands_for[:-1]
                    self.problem(
                        "unexplained",
                        "fires passed over by a schedule run",
                        f"{len(skipped)} fire(s) of {event.task_id} before {_at(fire)} have no "
                        f"record; the next fire's TaskDue (sequence {record.sequence}) is "
                        f"labelled 'schedule', not a catch-up: {_list(skipped)}",
                    )
            else:
                counted = event.missed_fires if isinstance(event, TaskDue | TaskSkipped) else 0
                if counted != len(stands_for):
                    self.problem(
                        "unexplained",
                        "missed_fires miscounted",
                        f"{_label(event)} at sequence {record.sequence} of {event.task_id} "
                        f"stands for {counted} fire(s); {len(stands_for)} were due since "
                        f"{_at(lower)}",
                    )
            if not paused:
                self.figures.fire_instants += len(stands_for)
            last = fire
        self._unexplained_until(task, schedule, since, last, paused, cut)

    def _unexplained_until(
        self,
        task: _TaskKey,
        schedule: Schedule | None,
        since: datetime | None,
        last: datetime | None,
        paused: bool,
        end: datetime,
    ) -> None:
        """The fires after the last one recorded, up to ``end``, have no record."""
        if schedule is None or since is None or paused:
            return
        lower = since if last is None else max(last, since)
        unrecorded = list(_fires_in(schedule, lower, min(end, self.until)))
        if not unrecorded:
            return
        self.figures.fire_instants += len(unrecorded)
        self.problem(
            "unexplained",
            "fires without a record",
            f"{len(unrecorded)} fire(s) of {task[1]} after {_at(lower)} have neither a TaskDue "
            f"nor a TaskSkipped: {_list(unrecorded)}",
        )


def _fire_of(event: Event) -> datetime | None:
    if isinstance(event, TaskDue) and event.trigger in ("schedule", "catchup"):
        return event.scheduled_for
    if isinstance(event, TaskSkipped):
        return event.scheduled_for
    return None


def _same_due(a: Event, b: Event) -> bool:
    return (
        isinstance(a, TaskDue)
        and isinstance(b, TaskDue)
        and (a.execution_id, a.attempt) == (b.execution_id, b.attempt)
    )


def _label(event: Event) -> str:
    if isinstance(event, TaskDue):
        return f"{event.trigger} TaskDue"
    if isinstance(event, TaskSkipped):
        return f"TaskSkipped ({event.reason})"
    return type(event).__name__


def _list(instants: Sequence[datetime]) -> str:
    shown = ", ".join(_at(i) for i in instants[:_SHOWN])
    return shown + (f" and {len(instants) - _SHOWN} more" if len(instants) > _SHOWN else "")


def _fires_in(schedule: Schedule, after: datetime, until: datetime) -> Iterator[datetime]:
    """The fire instants ``f`` with ``after < f <= until``."""
    instant = after
    while True:
        instant = next_fire_after(schedule, instant)
        if instant > until:
            return
        yield instant


def check_stream(
    records: Sequence[Record],
    *,
    until: datetime,
    planned: Planner | None = None,
    runs: Sequence[Run] = (),
    unreadable: Sequence[str] = (),
) -> Verdict:
    """Check a stream's records (in stream order) against the guarantees.

    Args:
        records: every readable message of the stream, oldest first.
        until: when the tickers were stopped: fires and retries due later (less
            `END_MARGIN_SECONDS`) need not be in the stream.
        planned: how the plugin means each attempt to end, to compare with its outcome.
        runs: the plugin's journal of runs, to find attempts run after their outcome.
        unreadable: a description of each message `contracts.inbound.read_event` refused.
    """
    checker = _Checker(until, planned, runs)
    for text in unreadable:
        checker.problem("unexplained", "unreadable message", text)
    for record in records:
        checker.read(record)
    checker.finish()
    return checker.verdict
