"""The fold, driven by hand-written event sequences."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from contracts import Event, encode, event_subject
from projector import ProjectionState, apply, history, ingest, list_tasks, task_view
from projector.checkpoint import Checkpoint, decode_checkpoint, encode_checkpoint
from tests.unit.projector.events import (
    DUE_SUBJECT,
    ERROR,
    SPEC,
    T0,
    TASK,
    TENANT,
    at,
    due,
    execution,
    failed,
    paused,
    registered,
    resumed,
    retry,
    skipped,
    started,
    succeeded,
    unregistered,
)


def fold(events: list[Event], state: ProjectionState | None = None) -> ProjectionState:
    state = state or ProjectionState()
    for event in events:
        apply(state, event)
    return state


def the_task(state: ProjectionState):  # type: ignore[no-untyped-def]
    task = state.task(TENANT, TASK)
    assert task is not None
    return task


def test_registration_gives_definition_and_next_fire() -> None:
    state = fold([registered(T0 + timedelta(seconds=10))])
    view = task_view(the_task(state))
    assert view.name == SPEC.name
    assert view.schedule == "every 300s"
    assert view.status == "idle"
    assert view.registered
    assert not view.paused
    assert view.next_fire_at == at(300)
    assert view.plugin == "cleanup"
    assert state.events_applied == 1


def test_a_successful_execution() -> None:
    fire = at(300)
    state = fold(
        [registered(), due(fire), started(fire, at(301)), succeeded(fire, at(302))],
    )
    task = the_task(state)
    assert task.succeeded == 1
    assert task.last_outcome == "succeeded"
    assert task.last_outcome_at == at(302)
    assert task.running_execution_id is None
    assert task.last_fire_at == fire
    assert task_view(task).next_fire_at == at(600)
    [run] = history(task)
    assert run.execution_id == execution(fire)
    assert run.trigger == "schedule"
    assert run.status == "succeeded"
    [attempt] = run.attempts
    assert attempt.worker == "worker-1"
    assert attempt.started_at == at(301)
    assert attempt.ended_at == at(302)
    assert attempt.duration_ms == 1500
    assert attempt.data == {"deleted": 12}
    assert attempt.outcome == "succeeded"


def test_running_then_retry_then_success() -> None:
    fire = at(300)
    state = fold([registered(), due(fire), started(fire, at(301))])
    assert task_view(the_task(state)).status == "running"
    assert the_task(state).running_execution_id == execution(fire)

    fold([retry(fire, at(302), delay=10)], state)
    task = the_task(state)
    assert task_view(task).status == "retrying"
    assert task.retry_at == at(312)
    assert task.retried == 1
    assert task.last_error == ERROR

    fold(
        [
            due(fire, attempt=2, when=at(312), trigger="retry", scheduled_for=at(312)),
            started(fire, at(312), attempt=2),
            succeeded(fire, at(313), attempt=2),
        ],
        state,
    )
    task = the_task(state)
    assert task.succeeded == 1
    assert task.failed == 0
    assert task.retried == 1
    assert task.retry_at is None
    [run] = history(task)
    assert run.trigger == "schedule"  # the execution's trigger is its first attempt's
    assert [a.attempt for a in run.attempts] == [1, 2]
    first, second = run.attempts
    assert first.outcome == "retry_scheduled"
    assert first.error == ERROR
    assert first.retry_at == at(312)
    assert first.decision is not None
    assert first.decision.should_retry
    assert second.outcome == "succeeded"
    assert second.scheduled_for == at(312)


def test_retries_exhausted_counts_a_failure() -> None:
    fire = at(300)
    state = fold(
        [
            registered(),
            due(fire),
            started(fire, at(301)),
            retry(fire, at(302)),
            due(fire, attempt=2, when=at(312), trigger="retry"),
            started(fire, at(312), attempt=2),
            failed(fire, at(313), attempt=2),
        ]
    )
    task = the_task(state)
    assert task.failed == 1
    assert task.retried == 1
    assert task.consecutive_failures == 1
    assert task.last_outcome == "failed"
    [run] = history(task)
    assert run.status == "failed"
    assert run.attempts[-1].failure_reason == "exhausted"


def test_consecutive_failures_reset_on_success() -> None:
    events: list[Event] = [registered()]
    for n in (1, 2, 3):
        fire = at(300 * n)
        events += [due(fire), started(fire, fire), failed(fire, fire + timedelta(seconds=1))]
    state = fold(events)
    assert the_task(state).consecutive_failures == 3
    fire = at(1200)
    fold([due(fire), started(fire, fire), succeeded(fire, fire + timedelta(seconds=1))], state)
    task = the_task(state)
    assert task.consecutive_failures == 0
    assert (task.succeeded, task.failed) == (1, 3)
    assert [e.execution_id for e in history(task)] == [execution(at(300 * n)) for n in (4, 3, 2, 1)]
    assert [e.execution_id for e in history(task, limit=2)] == [
        execution(at(1200)),
        execution(at(900)),
    ]


def test_skips_count_and_move_the_schedule() -> None:
    state = fold([registered(), skipped(at(300), "overlap"), skipped(at(600), "missed")])
    task = the_task(state)
    assert task.skipped == 2
    assert task.last_skip_reason == "missed"
    assert task.last_fire_at == at(600)
    assert task_view(task).next_fire_at == at(900)
    assert history(task) == []


def test_pause_and_resume() -> None:
    state = fold([registered(), paused(at(10), "disk maintenance")])
    view = task_view(the_task(state))
    assert view.status == "paused"
    assert view.paused
    assert view.note == "disk maintenance"
    assert view.note_actor == "ops"
    assert view.next_fire_at is None
    fold([resumed(at(20), "back")], state)
    view = task_view(the_task(state))
    assert view.status == "idle"
    assert not view.paused
    assert view.note == "back"
    assert view.next_fire_at == at(300)


def test_unregister_keeps_history_and_hides_the_task() -> None:
    fire = at(300)
    state = fold(
        [
            registered(),
            due(fire),
            started(fire, at(301)),
            succeeded(fire, at(302)),
            unregistered(at(400)),
        ]
    )
    task = the_task(state)
    assert task_view(task).status == "unregistered"
    assert task_view(task).next_fire_at is None
    assert list_tasks(state) == []
    assert [v.task_id for v in list_tasks(state, include_unregistered=True)] == [TASK]
    assert len(history(task)) == 1
    fold([registered(at(500))], state)
    assert task_view(the_task(state)).status == "idle"
    assert the_task(state).unregistered_at is None


def test_outcome_without_its_due_is_recorded() -> None:
    """A stream trimmed by age may start in the middle of an execution."""
    fire = at(300)
    state = fold([succeeded(fire, at(302))])
    task = the_task(state)
    assert not task.registered
    [run] = history(task)
    assert run.trigger is None
    assert run.status == "succeeded"


def test_history_is_bounded_newest_kept() -> None:
    state = ProjectionState(history_limit=3)
    for n in range(1, 6):
        fire = at(300 * n)
        fold([due(fire), started(fire, fire), succeeded(fire, fire)], state)
    task = the_task(state)
    assert task.succeeded == 5
    assert [e.execution_id for e in history(task)] == [execution(at(300 * n)) for n in (5, 4, 3)]


def test_tasks_are_listed_by_tenant_then_id() -> None:
    state = fold(
        [
            registered(task="b.task"),
            registered(task="a.task"),
            registered(task="z.task", tenant="beta"),
        ]
    )
    assert [(v.tenant_id, v.task_id) for v in list_tasks(state)] == [
        ("acme", "a.task"),
        ("acme", "b.task"),
        ("beta", "z.task"),
    ]
    assert [v.task_id for v in list_tasks(state, tenant_id="beta")] == ["z.task"]


def test_unknown_versions_and_garbage_are_counted_not_fatal() -> None:
    state = ProjectionState()
    ingest(state, 1, event_subject(registered()), encode(registered()))
    future = msgspec.json.encode({"type": "task.due.v9", "tenant_id": TENANT, "task_id": TASK})
    assert ingest(state, 2, DUE_SUBJECT, future) is None
    assert ingest(state, 3, DUE_SUBJECT, b"\x00not json") is None
    assert ingest(state, 4, DUE_SUBJECT, b'{"type": "task.due.v1"}') is None
    assert ingest(state, 5, DUE_SUBJECT, b'{"type": "task.due.v9"}') is None
    fire = at(300)
    assert ingest(state, 6, event_subject(due(fire)), encode(due(fire))) is not None
    assert state.unknown_events == {"task.due.v9": 2}
    assert state.invalid_messages == 2
    assert state.events_applied == 2
    assert state.sequence == 6


def test_until_leaves_later_events_out() -> None:
    state = ProjectionState()
    fire = at(300)
    for seq, event in enumerate([registered(), due(fire), started(fire, at(301))], start=1):
        ingest(state, seq, event_subject(event), encode(event), until=at(300))
    assert state.sequence == 3
    assert history(the_task(state))[0].status == "due"


def test_checkpoint_round_trip_is_equal() -> None:
    fire = at(300)
    state = fold(
        [
            registered(),
            paused(at(1)),
            resumed(at(2)),
            due(fire),
            started(fire, at(301)),
            retry(fire, at(302)),
            due(fire, attempt=2, when=at(312), trigger="retry"),
            started(fire, at(312), attempt=2),
            succeeded(fire, at(313), attempt=2, data={"nested": {"list": [1, 2.5, None]}}),
            skipped(at(600)),
        ]
    )
    state.unknown_events["task.due.v9"] = 1
    data = encode_checkpoint(Checkpoint(stream="DVP_TASKS", stream_created=T0, state=state))
    restored = decode_checkpoint(data)
    assert restored.state == state
    assert restored.sequence == state.sequence
    assert restored.stream_created == T0
