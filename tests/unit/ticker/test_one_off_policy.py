"""An operator's one-off run (``trigger --at``) in the ticker's pure policy: due at its instant
(paused or not, beside an open execution), then taken off the task's list."""

from __future__ import annotations

from datetime import datetime

import msgspec

from contracts import ScheduledRun, ScheduledRunsChanged, TaskDue, TaskPaused
from contracts.validation import MAX_SCHEDULED_RUNS, event_problem
from tests.unit.ticker.test_policy import TASK, TENANT, at, due_for, every, state_for
from ticker import TaskState, apply_event, decide, next_due_instant


def runs_changed(*runs: ScheduledRun, when: datetime | None = None) -> ScheduledRunsChanged:
    return ScheduledRunsChanged(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=when or at(1),
        runs=runs,
        change="scheduled",
        run_id=runs[-1].run_id if runs else "r-0",
        actor="ops@host",
    )


RUN = ScheduledRun(run_id="r-1", run_at=at(500), actor="ops@host", note="after the import")


def test_a_one_off_run_is_due_at_its_instant_and_then_taken_off_its_list() -> None:
    state = state_for(every(3600), at(0))
    assert apply_event(state, runs_changed(RUN), 2), "a new run is a timing change"
    assert next_due_instant(state) == at(500)
    assert decide(state, at(499)) is None
    due = decide(state, at(500.01))
    assert isinstance(due, TaskDue)
    assert (due.execution_id, due.trigger, due.scheduled_for, due.actor) == (
        "r-1",
        "once",
        at(500),
        "ops@host",
    )
    assert due.fire_at is None, "the schedule's position is carried over, not moved"
    assert apply_event(state, due, 3), "a fired run is to be taken off at once"
    taken_off = decide(state, at(500.02))
    assert isinstance(taken_off, ScheduledRunsChanged)
    assert (taken_off.change, taken_off.run_id, taken_off.runs) == ("fired", "r-1", ())
    apply_event(state, taken_off, 4)
    assert next_due_instant(state) == at(3600)
    assert decide(state, at(501)) is None


def test_it_runs_while_paused_and_beside_an_open_execution() -> None:
    state = state_for(every(3600), at(0))
    apply_event(state, due_for(at(0)), 2)  # an execution that has not ended
    apply_event(state, TaskPaused(tenant_id=TENANT, task_id=TASK, occurred_at=at(1)), 3)
    apply_event(state, runs_changed(RUN), 4)
    assert isinstance(decide(state, at(500)), TaskDue)


def test_every_ticker_decides_the_same_and_an_unregistered_task_waits() -> None:
    def fresh() -> TaskState:
        state = state_for(every(3600), at(0))
        apply_event(state, runs_changed(RUN), 2)
        return state

    assert decide(fresh(), at(600)) == decide(fresh(), at(600))
    orphan = TaskState(TENANT, TASK)
    apply_event(orphan, runs_changed(RUN), 1)
    assert next_due_instant(orphan) is None
    assert decide(orphan, at(600)) is None


def test_a_list_of_runs_read_back_is_checked() -> None:
    assert event_problem(runs_changed(RUN)) is None
    twice = runs_changed(RUN, RUN)
    assert event_problem(twice) == "a one-off run is listed twice"
    many = runs_changed(
        *(msgspec.structs.replace(RUN, run_id=f"r-{n}") for n in range(MAX_SCHEDULED_RUNS + 1))
    )
    assert event_problem(many) == "101 one-off runs wait: at most 100 may"
    far = runs_changed(
        msgspec.structs.replace(RUN, run_at=datetime(9999, 1, 1, tzinfo=at(0).tzinfo))
    )
    assert "run_at 9999-01-01" in (event_problem(far) or "")
