"""A task with several open executions (a forced trigger beside a pending retry), attempts
waiting for an executor, re-runs linked both ways, and the list of failures."""

from __future__ import annotations

from datetime import datetime, timedelta

from msgspec.structs import replace

from contracts import Event, TaskDue, TaskError, TaskStarted, TaskSucceeded
from projector import ProjectionState, TaskState, apply, history, list_failures, task_view
from projector.checkpoint import Checkpoint, decode_checkpoint, encode_checkpoint
from tests.unit.projector.events import (
    ERROR,
    TASK,
    TENANT,
    at,
    due,
    execution,
    failed,
    registered,
    retry,
    started,
    succeeded,
)

MANUAL = "3b1f7a52-8c1e-4d6a-9f0e-2a7c5d4e1b90"


def fold(events: list[Event], state: ProjectionState | None = None) -> ProjectionState:
    state = state or ProjectionState()
    for event in events:
        apply(state, event)
    return state


def the_task(state: ProjectionState, task_id: str = TASK, tenant: str = TENANT) -> TaskState:
    task = state.task(tenant, task_id)
    assert task is not None
    return task


def manual_due(when: datetime, execution_id: str = MANUAL) -> TaskDue:
    return TaskDue(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=when,
        execution_id=execution_id,
        attempt=1,
        trigger="manual",
        scheduled_for=when,
    )


def manual_started(when: datetime, execution_id: str = MANUAL) -> TaskStarted:
    return TaskStarted(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=when,
        execution_id=execution_id,
        attempt=1,
        worker="host:123",
        deadline=when + timedelta(seconds=30),
    )


def manual_succeeded(when: datetime, execution_id: str = MANUAL) -> TaskSucceeded:
    return TaskSucceeded(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=when,
        execution_id=execution_id,
        attempt=1,
        worker="host:123",
        duration_ms=10,
    )


def shown(state: ProjectionState) -> tuple[str, datetime | None, str | None, datetime | None]:
    view = task_view(the_task(state))
    return view.status, view.retry_at, view.running_execution_id, view.waiting_since


def test_a_forced_run_beside_a_pending_retry_keeps_the_retry_shown() -> None:
    fire = at(300)
    older = execution(fire)
    state = fold([registered(), due(fire), started(fire, at(301)), retry(fire, at(302), delay=60)])
    assert shown(state) == ("retrying", at(362), older, None)

    fold([manual_due(at(310))], state)
    assert shown(state) == ("retrying", at(362), MANUAL, at(310))  # nothing runs yet
    fold([manual_started(at(311))], state)
    assert shown(state) == ("running", at(362), MANUAL, None)
    fold([manual_succeeded(at(312))], state)
    assert shown(state) == ("retrying", at(362), older, None)
    assert the_task(state).last_outcome == "succeeded"

    fold([due(fire, attempt=2, when=at(362), trigger="retry")], state)
    assert shown(state) == ("due", None, older, at(362))
    fold([started(fire, at(363), attempt=2), succeeded(fire, at(364), attempt=2)], state)
    assert shown(state) == ("idle", None, None, None)
    assert [e.status for e in history(the_task(state))] == ["succeeded", "succeeded"]


def test_the_earliest_pending_retry_is_shown() -> None:
    first, second = at(300), at(600)
    state = fold(
        [
            registered(),
            due(first),
            started(first, at(301)),
            retry(first, at(302), delay=900),
            due(second),
            started(second, at(601)),
            retry(second, at(602), delay=10),
        ]
    )
    assert shown(state) == ("retrying", at(612), execution(second), None)
    fold([failed(second, at(613), attempt=1)], state)
    assert shown(state) == ("retrying", at(1202), execution(first), None)


def test_an_attempt_waiting_for_an_executor_shows_since_when() -> None:
    fire = at(300)
    state = fold([registered(), due(fire, when=at(305))])
    assert shown(state) == ("due", None, execution(fire), at(305))
    fold([started(fire, at(400))], state)
    assert shown(state) == ("running", None, execution(fire), None)


def test_late_events_of_an_earlier_attempt_change_nothing() -> None:
    fire = at(300)
    state = fold(
        [
            registered(),
            due(fire),
            retry(fire, at(302)),
            due(fire, attempt=2, when=at(312), trigger="retry"),
            started(fire, at(301)),  # attempt 1's start, recorded late
            retry(fire, at(303)),  # and its retry again
        ]
    )
    assert shown(state) == ("due", None, execution(fire), at(312))
    assert the_task(state).open_executions[execution(fire)].attempt == 2


def test_open_executions_beyond_the_history_limit_are_dropped_oldest_first() -> None:
    state = ProjectionState(history_limit=2)
    fires = [at(300 * n) for n in (1, 2, 3)]
    fold([registered(), *(due(fire) for fire in fires)], state)
    assert list(the_task(state).open_executions) == [execution(f) for f in fires[1:]]


def test_a_rerun_is_linked_both_ways() -> None:
    fire = at(300)
    target = execution(fire)
    rerun = "9d7c0e4b-5a3f-5e21-8b6d-1c2f3a4b5c6d"
    state = fold(
        [
            registered(),
            due(fire),
            started(fire, at(301)),
            failed(fire, at(302)),
            replace(manual_due(at(400), rerun), trigger="rerun", rerun_of=target),
        ]
    )
    newer, older = history(the_task(state))
    assert (newer.execution_id, newer.trigger, newer.rerun_of, newer.reruns) == (
        rerun,
        "rerun",
        target,
        [],
    )
    assert (older.execution_id, older.rerun_of, older.reruns) == (target, None, [rerun])
    [failure] = list_failures(state)
    assert failure.reruns == [rerun]
    restored = decode_checkpoint(
        encode_checkpoint(Checkpoint(stream="DVP_TASKS", stream_created=None, state=state))
    )
    assert restored.state == state


def test_failures_are_listed_newest_first_and_filtered() -> None:
    lost = TaskError(kind="lost", message="no outcome before the deadline")
    state = fold(
        [
            registered(),
            registered(task="report.daily"),
            registered(task="sync", tenant="beta"),
            due(at(300)),
            started(at(300), at(301)),
            retry(at(300), at(302)),
            due(at(300), attempt=2, when=at(312), trigger="retry"),
            failed(at(300), at(313), attempt=2),
            due(at(600)),
            succeeded(at(600), at(601)),
            due(at(300), task="report.daily"),
            replace(failed(at(300), at(900), task="report.daily"), error=lost),
            due(at(300), task="sync", tenant="beta"),
            failed(at(300), at(700), task="sync", tenant="beta"),
        ]
    )
    failures = list_failures(state)
    assert [(f.tenant_id, f.task_id, f.ended_at) for f in failures] == [
        (TENANT, "report.daily", at(900)),
        ("beta", "sync", at(700)),
        (TENANT, TASK, at(313)),
    ]
    newest, _, oldest = failures
    assert newest.error == lost
    assert (oldest.execution_id, oldest.attempts, oldest.error) == (execution(at(300)), 2, ERROR)
    assert oldest.failure_reason == "exhausted"
    assert oldest.decision is not None
    assert oldest.decision.reason == "no retries left (2 allowed)"
    assert [f.task_id for f in list_failures(state, tenant_id=TENANT)] == ["report.daily", TASK]
    assert [f.task_id for f in list_failures(state, since=at(700))] == ["report.daily", "sync"]
    assert [f.task_id for f in list_failures(state, limit=1)] == ["report.daily"]
