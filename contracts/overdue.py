"""When a task is overdue: its last success is older than its schedule allows. Pure, no I/O.

The rule (docs/design.md, section 5, "Overdue"). A task is watched from ``since``, the
registration of its current schedule or its last resume (the ticker's ``since``); paused,
unregistered and invalid tasks are not watched. Its reference is the later of its last
success and ``since``, so a task that never succeeded is measured from its registration. It is
overdue from the instant `overdue_at` returns:

* ``reference + alert_after_seconds`` when the schedule gives ``alert_after_seconds``;
* otherwise once two fires have passed since the reference, each with its time to run: the
  second fire after the reference, plus the schedule's ``jitter_seconds``, plus the task's
  ``timeout_seconds``. For an interval schedule that is at most two intervals plus the
  timeout after the last success; for a cron the fires themselves count, so ``0 9 * * 1-5``
  whose Friday run succeeded is not overdue over the weekend, only once Monday's and Tuesday's
  runs have both passed without a success.

Only fires inside the schedule's active window (``start_at``, ``end_at``) count: a window that
has not begun moves the reference to its start, and a task whose window closes before those
fires (before its next one, with ``alert_after_seconds``) is not expected to succeed again, so
it has no deadline.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from contracts.schedule import Schedule, next_fires_in_window

FIRES_ALLOWED: Final = 2
"""Fires that may pass without a success before a task is overdue (by default)."""


def overdue_reference(last_success: datetime | None, since: datetime) -> datetime:
    """The instant a task's lateness is measured from: its last success, or ``since`` (the
    registration of its schedule or its last resume) when that is later or there is none."""
    if last_success is None:
        return since
    return max(last_success, since)


def overdue_at(schedule: Schedule, timeout_seconds: float, reference: datetime) -> datetime | None:
    """The instant after which a task measured from ``reference`` (`overdue_reference`) is
    overdue, if no success came in between; ``None`` when its active window closes before it
    is expected to succeed again. ``reference`` is an aware datetime."""
    if schedule.alert_after_seconds is not None:
        if not next_fires_in_window(schedule, reference, 1):
            return None
        if schedule.start_at is not None:
            reference = max(reference, schedule.start_at)
        return reference + timedelta(seconds=schedule.alert_after_seconds)
    chances = next_fires_in_window(schedule, reference, FIRES_ALLOWED)
    if len(chances) < FIRES_ALLOWED:
        return None
    return chances[-1] + timedelta(seconds=schedule.jitter_seconds + timeout_seconds)


def overdue_seconds(deadline: datetime | None, now: datetime) -> float | None:
    """How late a task whose `overdue_at` is ``deadline`` is at ``now``, in seconds; ``None``
    when it is not overdue (not watched, or ``now`` is not past the deadline)."""
    if deadline is None or now <= deadline:
        return None
    return (now - deadline).total_seconds()
