"""The rules an event read back from the stream must meet before anything acts on it.

The stream is shared: other services and other tenants publish into it, so what comes back is
input, not trusted state. `event_problem` finds the values that would make a later step raise
(an instant no arithmetic can move, a negative count, an attempt beyond any limit);
`registration_problem` applies the rules a plugin's definition met when it was registered
(`validate_spec`, which the plugin host calls too), so a registration that could never have
passed them is shown as invalid and never scheduled.

Every limit here is far above what a task needs and far below what overflows: the services
add at most a year (a retry delay, an interval, a catch-up window) to an instant, so an instant
between `EARLIEST_INSTANT` and `LATEST_INSTANT` can always be moved.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Final

import msgspec

from contracts.events import (
    Event,
    RetryScheduled,
    ScheduledRunsChanged,
    TaskCancelRequested,
    TaskDue,
    TaskFailed,
    TaskRegistered,
    TaskSkipped,
    TaskSpec,
    TaskStarted,
    TaskSucceeded,
)
from contracts.retry import RetryDecision

# Defined beside the schedule math (a schedule's window obeys them too); named here as well,
# where every other limit of what is read back lives.
from contracts.schedule import EARLIEST_INSTANT as EARLIEST_INSTANT
from contracts.schedule import LATEST_INSTANT as LATEST_INSTANT
from contracts.schedule import Schedule, validate_schedule

MAX_RETRIES: Final = 1000
"""The most retries a task may declare (``max_retries``)."""

MAX_ATTEMPT: Final = MAX_RETRIES + 1
"""The highest attempt number any execution can reach."""

MAX_TIMEOUT_SECONDS: Final = 7 * 86400.0
"""The longest ``timeout_seconds`` a task may declare (7 days)."""

MAX_SCHEDULED_RUNS: Final = 100
"""The most one-off runs (``trigger --at``) one task may have waiting."""

MAX_RETRY_DELAY_SECONDS: Final = 366 * 86400.0
"""The longest delay before a retry (366 days), whoever decided it."""


def validate_spec(spec: TaskSpec) -> None:
    """Raise `ValueError` (`ScheduleError` for the schedule) saying what to fix if ``spec``
    breaks the registration rules; the plugin host and every reader of the stream apply these."""
    _validate_spec_fields(spec)
    validate_schedule(spec.schedule)


def _validate_spec_fields(spec: TaskSpec) -> None:
    name = spec.name
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name must be a non-empty string")
    if not isinstance(spec.description, str):
        raise ValueError(f"description must be a string, got {type(spec.description).__name__}")
    retries = spec.max_retries
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise ValueError(
            f"max_retries must be a whole number >= 0 and at most {MAX_RETRIES}, got {retries!r}"
        )
    timeout = spec.timeout_seconds
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or not 0 < timeout <= MAX_TIMEOUT_SECONDS
    ):
        raise ValueError(
            f"timeout_seconds must be a number > 0 and at most {MAX_TIMEOUT_SECONDS:.0f} "
            f"(7 days), got {timeout!r}"
        )


def registration_problem(event: TaskRegistered) -> str | None:
    """Why ``event``'s task definition breaks the registration rules, or ``None``."""
    try:
        _validate_spec_fields(event.spec)
    except ValueError as error:
        return str(error)
    return _schedule_problem(event.spec.schedule)


_SCHEDULE_PROBLEMS_KEPT: Final = 65_536
_schedule_problems: dict[bytes, str | None] = {}
"""Each distinct schedule's problem (or ``None``), by its MessagePack form: a ticker starting up
reads 100,000 registrations sharing a few thousand schedules. Not the schedule itself: equal is
not the same (``1 == 1.0 == True``, and a bool is refused where a number is allowed); not JSON,
which writes NaN as null."""


def _schedule_problem(schedule: Schedule) -> str | None:
    try:
        key = msgspec.msgpack.encode(schedule)
    except (TypeError, ValueError, OverflowError):  # not even encodable: say what is wrong
        key = None
    if key is not None and key in _schedule_problems:
        return _schedule_problems[key]
    try:
        validate_schedule(schedule)
        problem = None
    except ValueError as error:  # ScheduleError is one
        problem = str(error)
    if key is not None:
        if len(_schedule_problems) >= _SCHEDULE_PROBLEMS_KEPT:
            _schedule_problems.clear()
        _schedule_problems[key] = problem
    return problem


def event_problem(event: Event) -> str | None:
    """What makes ``event`` unusable (it is then skipped as bad input), or ``None``.

    The task spec of a ``TaskRegistered`` is not judged here: see `registration_problem`.
    """
    problem = _instant_problem("occurred_at", event.occurred_at)
    if problem is not None:
        return problem
    match event:
        case TaskDue():
            return (
                _attempt_problem(event.attempt)
                or _instant_problem("scheduled_for", event.scheduled_for)
                or _instant_problem("fire_at", event.fire_at)
                or _count_problem("missed_fires", event.missed_fires)
            )
        case TaskSkipped():
            return _instant_problem("scheduled_for", event.scheduled_for) or _count_problem(
                "missed_fires", event.missed_fires
            )
        case TaskStarted():
            return _attempt_problem(event.attempt) or _instant_problem("deadline", event.deadline)
        case TaskSucceeded():
            return _attempt_problem(event.attempt) or _count_problem(
                "duration_ms", event.duration_ms
            )
        case RetryScheduled():
            if event.attempt > MAX_RETRIES:
                return (
                    f"attempt {event.attempt} cannot be retried: no task has more than "
                    f"{MAX_ATTEMPT} attempts"
                )
            return (
                _count_problem("duration_ms", event.duration_ms)
                or _instant_problem("retry_at", event.retry_at)
                or delay_problem("delay_seconds", event.delay_seconds)
                or _decision_problem(event.decision)
            )
        case TaskCancelRequested():
            return _attempt_problem(event.attempt)
        case ScheduledRunsChanged():
            return _runs_problem(event)
        case TaskFailed():
            return (
                _attempt_problem(event.attempt)
                or _count_problem("duration_ms", event.duration_ms)
                or _decision_problem(event.decision)
            )
        case _:
            return None


def _instant_problem(field: str, instant: datetime | None) -> str | None:
    # Comparing aware datetimes never overflows (unlike converting one to UTC near year 1).
    if instant is None or EARLIEST_INSTANT <= instant <= LATEST_INSTANT:
        return None
    return (
        f"{field} {instant.isoformat()} is out of range: instants must lie between "
        f"{EARLIEST_INSTANT.date()} and {LATEST_INSTANT.date()}"
    )


def _runs_problem(event: ScheduledRunsChanged) -> str | None:
    if len(event.runs) > MAX_SCHEDULED_RUNS:
        return f"{len(event.runs)} one-off runs wait: at most {MAX_SCHEDULED_RUNS} may"
    if len({run.run_id for run in event.runs}) != len(event.runs):
        return "a one-off run is listed twice"
    for run in event.runs:
        problem = _instant_problem("run_at", run.run_at)
        if problem is not None:
            return problem
    return None


def _attempt_problem(attempt: int) -> str | None:
    if attempt <= MAX_ATTEMPT:
        return None
    return (
        f"attempt {attempt} is beyond any execution: at most {MAX_ATTEMPT} attempts "
        f"(max_retries is at most {MAX_RETRIES})"
    )


def _count_problem(field: str, value: int) -> str | None:
    if value >= 0:
        return None
    return f"{field} must be >= 0, got {value}"


def delay_problem(field: str, delay: object) -> str | None:
    """What is wrong with ``delay`` as a retry delay (a finite number of seconds, 0 to 366
    days), or ``None``; the plugin host checks a plugin's decision with it too."""
    if (
        isinstance(delay, int | float)
        and not isinstance(delay, bool)
        and math.isfinite(delay)
        and 0 <= delay <= MAX_RETRY_DELAY_SECONDS
    ):
        return None
    return (
        f"{field} must be a number >= 0 and at most {MAX_RETRY_DELAY_SECONDS:.0f} (366 days), "
        f"got {delay!r}"
    )


def _decision_problem(decision: RetryDecision | None) -> str | None:
    if decision is None:
        return None
    return delay_problem("decision.delay_seconds", decision.delay_seconds)
