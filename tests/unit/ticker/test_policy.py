"""The ticker's decisions, driven without a broker: due fires, catch-up, overlap, pause, jitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import (
    RetryDecision,
    RetryScheduled,
    Schedule,
    TaskDue,
    TaskError,
    TaskFailed,
    TaskPaused,
    TaskRegistered,
    TaskResumed,
    TaskSkipped,
    TaskSpec,
    TaskStarted,
    TaskSucceeded,
    TaskUnregistered,
    definition_hash,
    execution_id_for_fire,
    next_fires,
)
from ticker import (
    ON_TIME_GRACE_SECONDS,
    TaskState,
    apply_event,
    decide,
    fires_between,
    jitter_offset,
    next_due_instant,
    retry_due,
)

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
TENANT, TASK = "acme", "cleanup.temp-files"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def registered(schedule: Schedule, when: datetime = T0) -> TaskRegistered:
    spec = TaskSpec(name="Cleanup", schedule=schedule, max_retries=2, timeout_seconds=30)
    return TaskRegistered(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=when,
        plugin="cleanup",
        plugin_version="1.0",
        spec=spec,
        definition_hash=definition_hash("cleanup", "1.0", spec),
    )


def state_for(schedule: Schedule, when: datetime = T0) -> TaskState:
    state = TaskState(TENANT, TASK)
    apply_event(state, registered(schedule, when), 1)
    return state


def every(seconds: int, **options: object) -> Schedule:
    return Schedule(interval_seconds=seconds, **options)  # type: ignore[arg-type]


def due_for(fire: datetime, execution: str | None = None) -> TaskDue:
    return TaskDue(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=fire,
        execution_id=execution or execution_id_for_fire(TENANT, TASK, fire),
        attempt=1,
        trigger="schedule",
        scheduled_for=fire,
        fire_at=fire,
    )


def test_nothing_is_due_before_the_first_fire() -> None:
    state = state_for(every(60), at(0.5))
    assert next_due_instant(state) == at(60)
    assert decide(state, at(59.999)) is None


def test_an_on_time_fire_is_a_schedule_run_with_the_derived_execution_id() -> None:
    state = state_for(every(60), at(0.5))
    event = decide(state, at(60.004))
    assert isinstance(event, TaskDue)
    assert event.trigger == "schedule"
    assert event.scheduled_for == event.fire_at == at(60)
    assert event.execution_id == execution_id_for_fire(TENANT, TASK, at(60))
    assert event.attempt == 1
    assert event.missed_fires == 0


def test_after_a_fire_the_next_one_is_due() -> None:
    state = state_for(every(60), at(0.5))
    event = decide(state, at(60))
    assert event is not None
    apply_event(state, event, 2)
    assert state.last_fire == at(60)
    assert decide(state, at(61)) is None
    assert next_due_instant(state) == at(120)


def test_missed_fires_inside_the_window_coalesce_into_one_catchup() -> None:
    state = state_for(every(1, catchup_window_seconds=60, overlap="allow"), at(0))
    apply_event(state, due_for(at(10)), 2)
    event = decide(state, at(15.2))  # 11..15 missed while no ticker ran
    assert isinstance(event, TaskDue)
    assert event.trigger == "catchup"
    assert event.missed_fires == 5
    assert event.scheduled_for == event.fire_at == at(15)
    assert event.execution_id == execution_id_for_fire(TENANT, TASK, at(15))


def test_missed_fires_outside_the_window_are_recorded_as_skipped() -> None:
    state = state_for(every(60, catchup_window_seconds=30), at(0))
    apply_event(state, due_for(at(60)), 2)
    event = decide(state, at(3660 + 45))
    assert isinstance(event, TaskSkipped)
    assert event.reason == "missed"
    assert event.missed_fires == 60
    assert event.scheduled_for == at(3660)


def test_a_single_late_fire_beyond_the_grace_is_a_catchup() -> None:
    state = state_for(every(60), at(0))
    event = decide(state, at(60 + ON_TIME_GRACE_SECONDS + 0.5))
    assert isinstance(event, TaskDue)
    assert event.trigger == "catchup"
    assert event.missed_fires == 1


def test_a_zero_window_never_catches_up_but_still_fires_on_time() -> None:
    state = state_for(every(60, catchup_window_seconds=0), at(0))
    on_time = decide(state, at(60.01))
    assert isinstance(on_time, TaskDue)
    late = decide(state, at(60 + ON_TIME_GRACE_SECONDS + 1))
    assert isinstance(late, TaskSkipped)
    assert late.reason == "missed"


def test_a_fire_while_the_previous_execution_runs_is_skipped_as_overlap() -> None:
    state = state_for(every(60), at(0))
    first = due_for(at(60))
    apply_event(state, first, 2)
    event = decide(state, at(120))
    assert isinstance(event, TaskSkipped)
    assert event.reason == "overlap"
    assert event.running_execution_id == first.execution_id
    apply_event(state, event, 3)
    assert state.last_fire == at(120)


def test_a_retry_keeps_the_execution_running_and_an_outcome_ends_it() -> None:
    state = state_for(every(60), at(0))
    first = due_for(at(60))
    apply_event(state, first, 2)
    apply_event(state, retry_scheduled(first, retry_at=at(70)), 3)
    assert first.execution_id in state.running
    apply_event(
        state,
        TaskSucceeded(
            tenant_id=TENANT,
            task_id=TASK,
            occurred_at=at(80),
            execution_id=first.execution_id,
            attempt=2,
            worker="w",
            duration_ms=5,
        ),
        4,
    )
    assert not state.running
    assert isinstance(decide(state, at(120)), TaskDue)


def test_a_failed_execution_is_finished() -> None:
    state = state_for(every(60), at(0))
    first = due_for(at(60))
    apply_event(state, first, 2)
    apply_event(
        state,
        TaskFailed(
            tenant_id=TENANT,
            task_id=TASK,
            occurred_at=at(61),
            execution_id=first.execution_id,
            attempt=1,
            worker="w",
            duration_ms=5,
            error=TaskError(kind="raised", message="boom"),
            reason="exhausted",
        ),
        3,
    )
    assert isinstance(decide(state, at(120)), TaskDue)


def test_overlap_allow_runs_anyway() -> None:
    state = state_for(every(60, overlap="allow"), at(0))
    apply_event(state, due_for(at(60)), 2)
    assert isinstance(decide(state, at(120)), TaskDue)


def test_paused_tasks_record_each_fire_as_skipped_and_resuming_fires_no_backlog() -> None:
    state = state_for(every(60), at(0))
    apply_event(state, TaskPaused(tenant_id=TENANT, task_id=TASK, occurred_at=at(30)), 2)
    assert next_due_instant(state) == at(60)
    skipped = decide(state, at(60))
    assert isinstance(skipped, TaskSkipped)
    assert (skipped.reason, skipped.scheduled_for, skipped.missed_fires) == ("paused", at(60), 1)
    assert "resume" in skipped.detail
    apply_event(state, skipped, 3)
    # A ticker that was down while paused records the fires it missed as one paused skip.
    backlog = decide(state, at(600))
    assert isinstance(backlog, TaskSkipped)
    assert (backlog.reason, backlog.scheduled_for, backlog.missed_fires) == ("paused", at(600), 9)
    apply_event(state, backlog, 4)
    apply_event(state, TaskResumed(tenant_id=TENANT, task_id=TASK, occurred_at=at(610)), 5)
    assert decide(state, at(611)) is None
    assert next_due_instant(state) == at(660)
    assert isinstance(decide(state, at(660)), TaskDue)


def test_a_resume_without_a_pause_changes_nothing() -> None:
    state = state_for(every(60), at(0))
    assert not apply_event(
        state, TaskResumed(tenant_id=TENANT, task_id=TASK, occurred_at=at(90)), 2
    )
    assert state.since == at(0)


def test_unregistered_tasks_do_not_fire() -> None:
    state = state_for(every(60), at(0))
    apply_event(
        state, TaskUnregistered(tenant_id=TENANT, task_id=TASK, occurred_at=at(1), plugin="p"), 2
    )
    assert next_due_instant(state) is None
    assert decide(state, at(600)) is None


def test_a_changed_schedule_counts_fires_from_its_registration() -> None:
    state = state_for(every(3600), at(0))
    apply_event(state, registered(every(60), at(1830)), 2)
    assert next_due_instant(state) == at(1860)
    assert decide(state, at(1831)) is None


def test_an_unchanged_registration_keeps_the_anchor() -> None:
    state = state_for(every(60), at(0))
    apply_event(state, registered(every(60), at(90)), 2)
    assert state.since == at(0)


def test_events_at_or_below_the_applied_sequence_are_ignored() -> None:
    state = state_for(every(60), at(0))
    apply_event(state, due_for(at(60)), 5)
    assert not apply_event(state, registered(every(5), at(70)), 5)
    assert state.schedule == every(60)
    assert state.last_seq == 5


def test_a_skipped_fire_advances_the_last_fire() -> None:
    state = state_for(every(60), at(0))
    skipped = TaskSkipped(
        tenant_id=TENANT, task_id=TASK, occurred_at=at(120), scheduled_for=at(120), reason="overlap"
    )
    apply_event(state, skipped, 2)
    assert next_due_instant(state) == at(180)


def test_jitter_is_deterministic_and_within_bounds() -> None:
    offsets = {jitter_offset(TENANT, TASK, at(60 * k), 10.0) for k in range(200)}
    assert all(0.0 <= offset < 10.0 for offset in offsets)
    assert len(offsets) > 150  # spread out, not constant
    assert jitter_offset(TENANT, TASK, at(60), 10.0) == jitter_offset(TENANT, TASK, at(60), 10.0)
    assert jitter_offset(TENANT, TASK, at(60), 0.0) == 0.0


def test_a_jittered_fire_is_due_only_at_its_jittered_instant() -> None:
    schedule = every(60, jitter_seconds=30.0)
    state = state_for(schedule, at(0))
    offset = jitter_offset(TENANT, TASK, at(60), 30.0)
    assert next_due_instant(state) == at(60 + offset)
    assert decide(state, at(60 + offset - 0.01)) is None
    event = decide(state, at(60 + offset + 0.01))
    assert isinstance(event, TaskDue)
    assert event.trigger == "schedule"
    assert event.scheduled_for == at(60)


def retry_scheduled(due: TaskDue, *, retry_at: datetime) -> RetryScheduled:
    return RetryScheduled(
        tenant_id=due.tenant_id,
        task_id=due.task_id,
        occurred_at=due.scheduled_for,
        execution_id=due.execution_id,
        attempt=due.attempt,
        worker="w",
        duration_ms=3,
        error=TaskError(kind="returned", message="not yet"),
        retry_at=retry_at,
        delay_seconds=10,
        decision=RetryDecision(should_retry=True, delay_seconds=10),
    )


def test_a_retry_becomes_the_next_attempt_of_the_same_execution() -> None:
    state = state_for(every(60), at(0))
    first = due_for(at(60))
    apply_event(state, first, 2)
    retry = retry_scheduled(first, retry_at=at(70))
    apply_event(state, retry, 3)
    event = retry_due(state, retry, at(70.001))
    assert event is not None
    assert event.trigger == "retry"
    assert event.execution_id == first.execution_id
    assert event.attempt == 2
    assert event.scheduled_for == at(70)
    assert event.fire_at == at(60)
    apply_event(state, event, 4)
    assert retry_due(state, retry, at(71)) is None  # published already


@given(
    interval=st.integers(min_value=1, max_value=7200),
    start=st.floats(min_value=0, max_value=1e6),
    span=st.floats(min_value=0, max_value=5e4),
)
def test_interval_arithmetic_matches_the_schedule_math(
    interval: int, start: float, span: float
) -> None:
    schedule = every(interval)
    after, until = at(start), at(start + span)
    fires = fires_between(schedule, after, until)
    expected = []
    for fire in next_fires(schedule, after, 10_000):
        if fire > until:
            break
        expected.append(fire)
    if len(expected) < 10_000:
        assert fires.count == len(expected)
        assert fires.newest == (expected[-1] if expected else None)
        assert fires.previous == (expected[-2] if len(expected) > 1 else None)


@pytest.mark.parametrize("expression", ["*/5 * * * *", "0 3 * * *", "30 * * * 1-5"])
def test_cron_fires_between_counts_each_fire(expression: str) -> None:
    schedule = Schedule(cron_expression=expression, timezone="Europe/Berlin")
    until = T0 + timedelta(days=3)
    fires = fires_between(schedule, T0, until)
    expected = [f for f in next_fires(schedule, T0, 2000) if f <= until]
    assert fires.count == len(expected)
    assert fires.newest == expected[-1]
    assert fires.previous == expected[-2]


@given(
    down_from=st.integers(min_value=1, max_value=500),
    down_for=st.integers(min_value=2, max_value=500),
    window=st.integers(min_value=0, max_value=400),
)
def test_after_downtime_exactly_one_event_stands_for_all_missed_fires(
    down_from: int, down_for: int, window: int
) -> None:
    state = state_for(every(1, catchup_window_seconds=window, overlap="allow"), at(0))
    apply_event(state, due_for(at(down_from)), 2)
    now = at(down_from + down_for + 0.5)
    event = decide(state, now)
    assert isinstance(event, TaskDue | TaskSkipped)
    assert event.missed_fires == down_for
    newest = at(down_from + down_for)
    if isinstance(event, TaskDue):
        assert event.trigger == "catchup"
        assert (now - newest).total_seconds() <= window
    else:
        assert event.reason == "missed"
        assert (now - newest).total_seconds() > window
    apply_event(state, event, 3)
    assert decide(state, now) is None


def started_for(due: TaskDue, when: datetime, worker: str = "host-a:1") -> TaskStarted:
    return TaskStarted(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=when,
        execution_id=due.execution_id,
        attempt=due.attempt,
        worker=worker,
        deadline=when + timedelta(seconds=30),
    )


def running_attempt(max_retries: int = 2) -> tuple[TaskState, TaskDue]:
    """A task whose fire at 60 s started at 61 s (deadline 91 s) on host-a and never ended."""
    state = TaskState(TENANT, TASK)
    spec = TaskSpec(
        name="Cleanup", schedule=every(600), max_retries=max_retries, timeout_seconds=30
    )
    apply_event(
        state,
        TaskRegistered(
            tenant_id=TENANT,
            task_id=TASK,
            occurred_at=at(0),
            plugin="cleanup",
            plugin_version="1.0",
            spec=spec,
            definition_hash=definition_hash("cleanup", "1.0", spec),
        ),
        1,
    )
    due = due_for(at(600))
    apply_event(state, due, 2)
    assert apply_event(state, started_for(due, at(601)), 3), "a deadline is a timing change"
    return state, due


def test_an_attempt_with_no_outcome_past_its_deadline_is_closed_as_lost_and_retried() -> None:
    state, due = running_attempt()
    assert next_due_instant(state, lost_after=10) == at(641)
    assert next_due_instant(state) == at(631 + 90)
    assert decide(state, at(640.9), lost_after=10) is None
    closed = decide(state, at(641), lost_after=10)
    assert isinstance(closed, RetryScheduled)
    assert (closed.execution_id, closed.attempt, closed.worker) == (due.execution_id, 1, "host-a:1")
    assert closed.error.kind == "lost"
    assert "host-a:1" in closed.error.message
    assert closed.duration_ms == 40_000
    assert closed.decision.source == "default"
    assert closed.retry_at > at(641)
    # Every ticker decides the same outcome (the message id keeps one; the bodies agree too).
    assert decide(running_attempt()[0], at(641), lost_after=10) == closed
    apply_event(state, closed, 4)
    assert state.started == {}
    assert due.execution_id in state.running  # still open: its retry comes


def test_a_lost_last_attempt_fails_the_execution_and_frees_the_next_fire() -> None:
    state, _ = running_attempt(max_retries=0)
    closed = decide(state, at(1000))
    assert isinstance(closed, TaskFailed)
    assert (closed.error.kind, closed.reason) == ("lost", "exhausted")
    apply_event(state, closed, 4)
    assert state.running == {}
    assert isinstance(decide(state, at(1200)), TaskDue), "the overlap guard is released"


def test_an_outcome_or_a_later_start_means_nothing_is_lost() -> None:
    state, due = running_attempt()
    apply_event(state, started_for(due, at(640), worker="host-b:2"), 4)  # redelivered
    assert next_due_instant(state, lost_after=10) == at(680)
    assert decide(state, at(679), lost_after=10) is None
    apply_event(
        state,
        TaskSucceeded(
            tenant_id=TENANT,
            task_id=TASK,
            occurred_at=at(650),
            execution_id=due.execution_id,
            attempt=1,
            worker="host-b:2",
            duration_ms=10,
        ),
        5,
    )
    assert state.started == {}
    assert next_due_instant(state, lost_after=10) == at(1200)
    assert decide(state, at(5000), lost_after=10) is not None  # the schedule goes on
    assert not isinstance(decide(state, at(5000), lost_after=10), RetryScheduled | TaskFailed)


def test_a_retry_that_is_due_but_not_started_is_never_lost() -> None:
    state, due = running_attempt()
    apply_event(
        state,
        RetryScheduled(
            tenant_id=TENANT,
            task_id=TASK,
            occurred_at=at(620),
            execution_id=due.execution_id,
            attempt=1,
            worker="host-a:1",
            duration_ms=1,
            error=TaskError(kind="raised", message="boom"),
            retry_at=at(630),
            delay_seconds=10,
            decision=RetryDecision(should_retry=True, delay_seconds=10),
        ),
        4,
    )
    second = TaskDue(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=at(630),
        execution_id=due.execution_id,
        attempt=2,
        trigger="retry",
        scheduled_for=at(630),
        fire_at=at(600),
    )
    apply_event(state, second, 5)
    assert state.started == {}  # waiting for an executor: it waits, it is not lost
    assert next_due_instant(state, lost_after=10) == at(1200)


EXECUTION_MAPS = ("running", "started", "retried", "cancels", "ended", "fired_runs")


def test_tasks_never_share_a_map_of_executions() -> None:
    """Every task starts with the same read-only empty maps; its first write makes its own."""
    one, other = TaskState(TENANT, TASK), TaskState(TENANT, "other")
    for name in EXECUTION_MAPS:
        getattr(one, f"own_{name}")()["e-1"] = None
    busy, _ = running_attempt()  # folding events writes too
    fresh = TaskState(TENANT, TASK)
    for name in EXECUTION_MAPS:
        assert getattr(one, name) == {"e-1": None}, name
        assert getattr(other, name) == {}, name
        assert getattr(fresh, name) == {}, name
        assert getattr(fresh, f"own_{name}")() is not getattr(one, name), name
        assert getattr(fresh, name) is not getattr(busy, name), name
        with pytest.raises(TypeError):
            # A write that skips own_... fails instead of reaching every task.
            getattr(TaskState(TENANT, TASK), name)["e-2"] = None
