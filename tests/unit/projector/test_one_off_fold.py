"""One-off runs in the read model: the task's view lists the runs still to come, as the newest
``ScheduledRunsChanged`` says."""

from __future__ import annotations

from contracts import ScheduledRun, ScheduledRunsChanged
from projector import ProjectionState, apply, task_view
from tests.unit.projector.events import TASK, TENANT, at, registered


def test_the_view_lists_the_runs_to_come() -> None:
    run = ScheduledRun(run_id="r-1", run_at=at(600), actor="ops@host")
    state = ProjectionState()
    apply(state, registered())
    for runs, change in (((run,), "scheduled"), ((), "fired")):
        apply(
            state,
            ScheduledRunsChanged(
                tenant_id=TENANT,
                task_id=TASK,
                occurred_at=at(1),
                runs=runs,
                change=change,  # type: ignore[arg-type]
                run_id="r-1",
            ),
        )
        task = state.task(TENANT, TASK)
        assert task is not None
        assert task_view(task).scheduled_runs == list(runs)
