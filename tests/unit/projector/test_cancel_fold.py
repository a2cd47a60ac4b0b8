"""A cancel in the read model: the request is noted on its execution, and the ``TaskFailed``
(kind and reason ``cancelled``) that follows ends it, in the history, the failures and replay."""

from __future__ import annotations

from datetime import datetime

import msgspec

from contracts import TaskCancelRequested, TaskError, TaskFailed
from projector import ProjectionState, apply, history, list_failures, task_view
from tests.unit.projector.events import TASK, TENANT, at, due, execution, registered, started

FIRE = at(300)


def cancel_request(when: datetime, *, execution_id: str | None = None) -> TaskCancelRequested:
    return TaskCancelRequested(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=when,
        execution_id=execution_id or execution(FIRE),
        attempt=1,
        note="wrong bucket",
        actor="ops@host",
    )


def cancelled(when: datetime) -> TaskFailed:
    return TaskFailed(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=when,
        execution_id=execution(FIRE),
        attempt=1,
        worker="worker-1",
        duration_ms=2000,
        error=TaskError(kind="cancelled", message="cancelled by ops@host: wrong bucket"),
        reason="cancelled",
    )


def test_a_cancelled_execution_is_noted_then_ended_failed() -> None:
    state = ProjectionState()
    for event in (registered(), due(FIRE), started(FIRE, at(301)), cancel_request(at(303))):
        apply(state, event)
    task = state.task(TENANT, TASK)
    assert task is not None
    [open_run] = history(task)
    assert (open_run.status, open_run.cancel_requested_at) == ("running", at(303))
    assert (open_run.cancel_note, open_run.cancelled_by) == ("wrong bucket", "ops@host")
    assert task_view(task).status == "running", "a request alone ends nothing"
    apply(state, cancelled(at(303.2)))
    [ended] = history(task)
    assert (ended.status, ended.ended_at) == ("failed", at(303.2))
    assert ended.attempts[0].failure_reason == "cancelled"
    assert ended.attempts[0].error is not None
    assert ended.attempts[0].error.kind == "cancelled"
    view = task_view(task)
    assert (view.status, view.running_execution_id, view.failed) == ("idle", None, 1)
    [failure] = list_failures(state)
    assert failure.failure_reason == "cancelled"
    assert msgspec.to_builtins(ended)["cancel_note"] == "wrong bucket"


def test_a_second_request_keeps_the_first_and_an_unknown_execution_adds_none() -> None:
    state = ProjectionState()
    for event in (registered(), due(FIRE), cancel_request(at(303))):
        apply(state, event)
    later = msgspec.structs.replace(cancel_request(at(304)), note="again", actor="other")
    apply(state, later)
    apply(state, cancel_request(at(305), execution_id="not-an-execution"))
    task = state.task(TENANT, TASK)
    assert task is not None
    [run] = history(task)
    assert (run.cancel_requested_at, run.cancel_note) == (at(303), "wrong bucket")
    assert len(task.executions) == 1
