"""Overdue tasks in the read model: what the fold records, the deadline of each task, the
watch that keeps the deadlines, the status reply and the bounded per-task metrics series."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from contracts import Event, Schedule
from projector import ProjectionState, apply, task_view
from projector.overdue import OverdueWatch, TaskHealth, task_series
from projector.queries import STATUS_OVERDUE_LIMIT, status_of
from projector.state import task_key
from projector.views import task_overdue_at
from tests.unit.projector.events import (
    SPEC,
    T0,
    TASK,
    TENANT,
    at,
    due,
    failed,
    paused,
    registered,
    resumed,
    succeeded,
    unregistered,
)

# SPEC fires every 300 s at offset 0 (T0 is on a fire) with a 30 s timeout: measured from
# an instant just after a fire, the deadline is the fire two intervals on plus 30 s.
KEY = task_key(TENANT, TASK)


def fold(events: list[Event]) -> ProjectionState:
    state = ProjectionState()
    for event in events:
        apply(state, event)
    return state


def deadline(events: list[Event]) -> datetime | None:
    task = fold(events).task(TENANT, TASK)
    assert task is not None
    return task_overdue_at(task)


def test_a_task_that_never_succeeded_is_measured_from_its_registration() -> None:
    assert deadline([registered(at(10))]) == at(600 + 30)


def test_each_success_moves_the_deadline_and_failures_do_not() -> None:
    ran = [registered(at(10)), due(at(300)), succeeded(at(300), at(302))]
    assert deadline(ran) == at(900 + 30)
    assert deadline([*ran, due(at(600)), failed(at(600), at(601))]) == at(900 + 30)
    task = fold(ran).task(TENANT, TASK)
    assert task is not None
    assert task.last_succeeded_at == at(302)
    assert task_view(task).last_succeeded_at == at(302)


def test_a_late_success_of_an_old_execution_does_not_move_the_deadline_back() -> None:
    events = [registered(at(10)), succeeded(at(600), at(602)), succeeded(at(300), at(500))]
    assert deadline(events) == at(1200 + 30)


def test_paused_unregistered_and_invalid_tasks_are_not_watched() -> None:
    assert deadline([registered(at(10)), paused(at(20))]) is None
    assert deadline([registered(at(10)), unregistered(at(20))]) is None
    broken = msgspec.structs.replace(SPEC, schedule=Schedule(interval_seconds=-1))
    assert deadline([registered(at(10), spec=broken)]) is None


def test_a_resume_starts_the_watch_anew_and_a_new_schedule_too() -> None:
    old_success = [registered(at(10)), succeeded(at(300), at(302))]
    # Paused for a day: measured from the resume, not from the success before the pause.
    assert deadline([*old_success, paused(at(400)), resumed(at(86400 + 10))]) == at(
        86400 + 600 + 30
    )
    # A resume without a pause changes nothing.
    assert deadline([*old_success, resumed(at(5000))]) == at(900 + 30)
    hourly = msgspec.structs.replace(SPEC, schedule=Schedule(interval_seconds=3600))
    assert deadline([*old_success, registered(at(1000), spec=hourly)]) == at(7200 + 30)
    # The same schedule registered again (a new plugin version) keeps the watch.
    same = msgspec.structs.replace(SPEC, description="reworded")
    assert deadline([*old_success, registered(at(1000), spec=same)]) == at(900 + 30)


def test_the_watch_recomputes_only_what_it_is_told_changed() -> None:
    state = fold([registered(at(10)), registered(at(10), task="other.task")])
    watch = OverdueWatch()
    assert watch.refresh(state)
    assert watch.deadlines == {KEY: at(630), task_key(TENANT, "other.task"): at(630)}
    assert not watch.refresh(state)

    apply(state, succeeded(at(300), at(302)))
    apply(state, paused(at(303), task="other.task"))
    watch.changed(KEY)
    assert watch.refresh(state)
    assert watch.deadlines[KEY] == at(930)
    assert task_key(TENANT, "other.task") in watch.deadlines  # not told yet
    watch.changed(task_key(TENANT, "other.task"))
    watch.refresh(state)
    assert set(watch.deadlines) == {KEY}

    assert watch.overdue(at(930)) == []
    assert watch.overdue(at(990)) == [(KEY, 60.0)]
    views = [task_view(t, watch.deadlines) for t in state.tasks.values()]
    assert views == [task_view(t) for t in state.tasks.values()]


def test_the_status_names_the_latest_overdue_tasks_first() -> None:
    events: list[Event] = []
    for number in range(STATUS_OVERDUE_LIMIT + 5):
        events.append(registered(at(number), task=f"task.n{number:03d}"))
    events.append(registered(at(0), task="fine.task"))
    events.append(succeeded(at(3000), at(3001), task="fine.task"))
    state = fold(events)
    reply = status_of(state, now=at(3100))
    assert reply.overdue_tasks == STATUS_OVERDUE_LIMIT + 5
    assert len(reply.overdue) == STATUS_OVERDUE_LIMIT
    first = reply.overdue[0]
    assert (first.task_id, first.overdue_at, first.overdue_seconds) == ("task.n000", at(630), 2470)
    assert first.last_succeeded_at is None
    assert "fine.task" not in {o.task_id for o in reply.overdue}
    assert status_of(state, now=at(10)).overdue == []


def health(task: str, overdue_at: datetime | None, tenant: str = TENANT) -> TaskHealth:
    return TaskHealth(tenant, task, overdue_at, None)


def test_the_series_are_bounded_and_the_overdue_ones_come_first() -> None:
    now = T0 + timedelta(hours=1)
    rows = [
        health("a", now + timedelta(seconds=1)),
        health("b", now - timedelta(seconds=1)),
        health("c", None),
        health("d", now - timedelta(hours=1), tenant="beta"),
        health("e", now - timedelta(hours=2)),
    ]
    everything = task_series(rows, now, 10)
    assert [(row.task_id, late) for row, late in everything.rows] == [
        ("b", True),
        ("e", True),
        ("d", True),
        ("a", False),
        ("c", False),
    ]
    assert (everything.overdue, everything.omitted) == (3, 0)

    capped = task_series(rows, now, 2)
    assert [row.task_id for row, _ in capped.rows] == ["b", "e"]
    assert (capped.overdue, capped.omitted) == (3, 3)
    assert task_series(rows, now, 0) == ([], 3, 5)
