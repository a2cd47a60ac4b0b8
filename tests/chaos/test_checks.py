"""The chaos checks catch what they are meant to (hand-built streams, each with one fault), and
the fault plan is what the harness promises."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from contracts.events import (
    Event,
    RetryScheduled,
    TaskDue,
    TaskError,
    TaskFailed,
    TaskRegistered,
    TaskSkipped,
    TaskSpec,
    TaskStarted,
    TaskSucceeded,
    Trigger,
)
from contracts.identifiers import execution_id_for_fire
from contracts.retry import RetryDecision
from contracts.schedule import Schedule
from tests.chaos.checks import (
    PlannedOutcome,
    Record,
    Run,
    Verdict,
    check_stream,
)
from tests.chaos.harness import ChaosSettings, plan_faults

TENANT = "default"
TASK = "chaos.sample-000"
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
"""The first fire; the task fires every 10 s from here."""
SPEC = TaskSpec(
    name="sample",
    schedule=Schedule(interval_seconds=10, offset_seconds=0.0),
    max_retries=2,
    timeout_seconds=5.0,
)
UNTIL = T0 + timedelta(seconds=35)
"""The tickers stop: fires at T0, +10, +20 and +30 must be recorded."""
STORE_DELAY = timedelta(milliseconds=20)

Item = tuple[Event, datetime]
"""An event and when the server stored it."""


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fire_id(fire: datetime) -> str:
    return execution_id_for_fire(TENANT, TASK, fire)


def registered(at: datetime) -> Event:
    return TaskRegistered(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=at,
        plugin="chaos",
        plugin_version="1",
        spec=SPEC,
        definition_hash="h",
    )


def due(
    execution: str,
    attempt: int,
    at: datetime,
    *,
    trigger: Trigger = "schedule",
    fire: datetime | None = None,
    scheduled_for: datetime | None = None,
    missed: int = 0,
) -> Event:
    return TaskDue(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=at,
        execution_id=execution,
        attempt=attempt,
        trigger=trigger,
        scheduled_for=scheduled_for or fire or at,
        fire_at=fire,
        missed_fires=missed,
    )


def fired(fire: datetime, *, trigger: Trigger = "schedule", missed: int = 0) -> Event:
    return due(fire_id(fire), 1, fire, trigger=trigger, fire=fire, missed=missed)


def started(execution: str, attempt: int, at: datetime, worker: str = "e1") -> Event:
    return TaskStarted(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=at,
        execution_id=execution,
        attempt=attempt,
        worker=worker,
        deadline=at + timedelta(seconds=5),
    )


def succeeded(
    execution: str, attempt: int, at: datetime, worker: str = "e1", *, took: float = 0.1
) -> Event:
    return TaskSucceeded(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=at,
        execution_id=execution,
        attempt=attempt,
        worker=worker,
        duration_ms=round(took * 1000),
    )


def retried(execution: str, attempt: int, at: datetime, retry_at: datetime) -> Event:
    return RetryScheduled(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=at,
        execution_id=execution,
        attempt=attempt,
        worker="e1",
        duration_ms=100,
        error=TaskError(kind="returned", message="no"),
        retry_at=retry_at,
        delay_seconds=(retry_at - at).total_seconds(),
        decision=RetryDecision(should_retry=True, delay_seconds=1.0),
    )


def failed(execution: str, attempt: int, at: datetime) -> Event:
    return TaskFailed(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=at,
        execution_id=execution,
        attempt=attempt,
        worker="e1",
        duration_ms=100,
        error=TaskError(kind="raised", message="no", exception_type="RuntimeError"),
        reason="exhausted",
    )


def skipped(fire: datetime, running: str) -> Event:
    return TaskSkipped(
        tenant_id=TENANT,
        task_id=TASK,
        occurred_at=fire,
        scheduled_for=fire,
        reason="overlap",
        running_execution_id=running,
    )


E1, E2, E3 = fire_id(s(0)), fire_id(s(10)), fire_id(s(20))


def healthy() -> list[Item]:
    """Four fires: a success; a retry that then succeeds; a slow run; a fire skipped as an
    overlap of it."""
    events = [
        registered(s(-1)),
        fired(s(0)),
        started(E1, 1, s(0.1)),
        succeeded(E1, 1, s(0.2)),
        fired(s(10)),
        started(E2, 1, s(10.1)),
        retried(E2, 1, s(10.2), s(11.2)),
        due(E2, 2, s(11.2), trigger="retry", fire=s(10), scheduled_for=s(11.2)),
        started(E2, 2, s(11.3)),
        succeeded(E2, 2, s(11.4)),
        fired(s(20)),
        started(E3, 1, s(20.1)),
        skipped(s(30), E3),
        succeeded(E3, 1, s(31), took=10.8),
    ]
    return [(event, event.occurred_at + STORE_DELAY) for event in events]


def check(
    items: Sequence[Item],
    *,
    planned: Callable[[str, str, int, int], PlannedOutcome] | None = None,
    runs: Sequence[Run] = (),
    unreadable: Sequence[str] = (),
) -> Verdict:
    records = [Record(n, stored, event) for n, (event, stored) in enumerate(items, start=1)]
    return check_stream(records, until=UNTIL, planned=planned, runs=runs, unreadable=unreadable)


def found(verdict: Verdict) -> set[str]:
    return set(verdict.checks())


def without(items: list[Item], *dropped: Event) -> list[Item]:
    return [item for item in items if item[0] not in dropped]


def test_a_healthy_stream_has_no_problem_and_is_counted() -> None:
    verdict = check(healthy())
    assert verdict.problems == []
    figures = verdict.figures
    assert (figures.tasks, figures.fire_instants, figures.fire_records) == (1, 4, 4)
    assert figures.due_by_trigger == {"schedule": 3, "retry": 1}
    assert (figures.attempts, figures.executions, figures.executions_open) == (4, 3, 0)
    assert figures.outcomes == {"succeeded": 3, "retry": 1}
    assert figures.skips_by_reason == {"overlap": 1}
    assert figures.max_schedule_lateness == pytest.approx(0.02)


def test_a_duplicate_task_due_is_caught() -> None:
    items = healthy()
    items.insert(2, items[1])
    verdict = check(items)
    assert found(verdict) == {"duplicate TaskDue"}
    assert verdict.count("duplicate") == 1


def test_a_fire_recorded_both_run_and_skipped_is_caught() -> None:
    items = [*healthy(), (skipped(s(20), E2), s(20.5))]
    assert "fire recorded twice" in found(check(items))


def test_a_second_execution_for_one_fire_is_caught() -> None:
    other = due("6f1c2d3e-0000-4000-8000-000000000000", 1, s(0), fire=s(0))
    items = healthy()
    items.insert(2, (other, s(0.05)))
    verdict = check(items)
    assert {"fire recorded twice", "execution id not derived from the fire"} <= found(verdict)


def test_a_missing_outcome_is_caught() -> None:
    items = healthy()
    outcome = items[3][0]
    verdict = check(without(items, outcome))
    # The next fire then runs over the execution that never ended.
    assert found(verdict) == {"TaskDue without outcome", "run over an open execution"}
    assert verdict.count("missing") == 1
    assert verdict.figures.executions_open == 1


def test_a_second_outcome_of_an_attempt_is_caught() -> None:
    items = healthy()
    items.insert(4, (failed(E1, 1, s(0.3)), s(0.3)))
    assert "second outcome of an attempt" in found(check(items))


def test_an_outcome_without_its_task_due_is_caught() -> None:
    items = [*healthy(), (succeeded("6f1c2d3e-0000-4000-8000-000000000001", 1, s(32)), s(32))]
    assert "outcome without its TaskDue" in found(check(items))


def test_a_retry_without_its_next_attempt_is_caught() -> None:
    items = healthy()
    retry_due, retry_start, retry_done = items[7][0], items[8][0], items[9][0]
    verdict = check(without(items, retry_due, retry_start, retry_done))
    assert "RetryScheduled without its next attempt" in found(verdict)
    assert verdict.count("missing") == 1


def test_a_retry_due_after_the_tickers_stopped_is_cut_off_not_missing() -> None:
    items = [
        *healthy(),
        (fired(s(40)), s(34.5)),  # decided early: only to have an open execution late
    ]
    late = fire_id(s(40))
    items += [(retried(late, 1, s(34.6), s(36)), s(34.6))]
    verdict = check(items)
    assert "RetryScheduled without its next attempt" not in found(verdict)
    assert verdict.figures.retries_cut_off == 1


def test_a_retry_without_its_retry_scheduled_is_caught() -> None:
    items = healthy()
    verdict = check(without(items, items[6][0]))
    assert "retry without its RetryScheduled" in found(verdict)


def test_an_attempt_beyond_max_retries_is_caught() -> None:
    items = healthy()
    items[9:9] = [
        (retried(E2, 2, s(11.35), s(11.36)), s(11.35)),
        (due(E2, 3, s(11.36), trigger="retry", fire=s(10), scheduled_for=s(11.36)), s(11.36)),
        (retried(E2, 3, s(11.37), s(11.38)), s(11.37)),
        (due(E2, 4, s(11.38), trigger="retry", fire=s(10), scheduled_for=s(11.38)), s(11.38)),
    ]
    verdict = check(items)
    assert "attempt beyond max_retries" in found(verdict)


def test_an_attempt_after_its_execution_ended_is_caught() -> None:
    late_retry = due(E1, 2, s(5), trigger="retry", fire=s(0), scheduled_for=s(5))
    items = healthy()
    items.insert(4, (late_retry, s(5)))
    assert "attempt after its execution ended" in found(check(items))


def test_a_fire_without_any_record_is_unexplained() -> None:
    items = healthy()
    verdict = check(without(items, items[12][0]))  # the overlap skip of the fire at +30
    assert found(verdict) == {"fires without a record"}
    assert verdict.count("unexplained") == 1


def test_fires_passed_over_by_a_schedule_run_are_unexplained() -> None:
    items = healthy()
    fire_two = [item[0] for item in items[4:10]]
    verdict = check(without(items, *fire_two))
    assert "fires passed over by a schedule run" in found(verdict)


def test_a_catchup_standing_for_the_fires_it_counts_is_fine_and_a_miscount_is_caught() -> None:
    items = healthy()
    fire_two = [item[0] for item in items[4:10]]
    catchup = fired(s(20), trigger="catchup", missed=2)
    good = [item if item[0] != items[10][0] else (catchup, s(20.5)) for item in items]
    good = without(good, *fire_two)
    verdict = check(good)
    assert verdict.problems == []
    assert verdict.figures.catchup_fires == 2
    assert verdict.figures.due_by_trigger["catchup"] == 1
    wrong = fired(s(20), trigger="catchup", missed=1)
    bad = without([item if item[0] != catchup else (wrong, s(20.5)) for item in good])
    assert "missed_fires miscounted" in found(check(bad))


def test_a_stale_fire_labelled_schedule_is_caught() -> None:
    items = healthy()
    items[1] = (items[1][0], s(4))
    verdict = check(items)
    assert found(verdict) == {"stale fire labelled schedule"}
    assert verdict.figures.max_schedule_lateness == pytest.approx(4.0)


def test_a_run_over_an_open_execution_is_caught() -> None:
    items = healthy()
    skip = items[12][0]
    items[12] = (fired(s(30)), s(30))
    verdict = check(without(items, skip))
    assert "run over an open execution" in found(verdict)


def test_an_overlap_skip_with_nothing_running_is_caught() -> None:
    items = healthy()
    items.insert(4, (skipped(s(10), E1), s(10)))
    items = without(items, items[5][0], items[6][0], items[7][0], items[8][0])
    items = without(items, *[item[0] for item in items if _of(item[0], E2)])
    verdict = check(items)
    assert "overlap skip with nothing running" in found(verdict)


def _of(event: Event, execution: str) -> bool:
    return getattr(event, "execution_id", None) == execution


def test_an_outcome_whose_run_recorded_no_task_started_is_caught() -> None:
    items = healthy()
    # e2 ran the attempt again much later, and its TaskStarted was dropped: only e1's is there.
    items[3] = (succeeded(E1, 1, s(40), worker="e2"), s(40))
    verdict = check(items)
    assert "outcome without the TaskStarted of its run" in found(verdict)


def test_a_task_started_after_the_outcome_is_caught() -> None:
    items = healthy()
    items.insert(4, (started(E1, 1, s(0.5), worker="e3"), s(0.5)))
    assert found(check(items)) == {"attempt started after its outcome"}


def test_a_run_begun_after_the_outcome_was_stored_is_caught() -> None:
    runs = [
        Run(TASK, E1, 1, "e1", s(0.1)),
        Run(TASK, E1, 1, "e2", s(0.15)),  # concurrent with the first: at least once is fine
        Run(TASK, E2, 1, "e1", s(10.1)),
    ]
    verdict = check(healthy(), runs=runs)
    assert verdict.problems == []
    assert (verdict.figures.runs, verdict.figures.attempts_run_again) == (3, 1)
    late = [*runs, Run(TASK, E2, 1, "e3", s(40))]
    assert found(check(healthy(), runs=late)) == {"attempt run again after its outcome"}


def test_an_outcome_other_than_the_planned_one_is_caught() -> None:
    def plan(task_id: str, execution_id: str, attempt: int, max_retries: int) -> PlannedOutcome:
        return "retry" if (execution_id, attempt) == (E2, 1) else "succeeded"

    assert check(healthy(), planned=plan).problems == []

    def always_succeed(
        task_id: str, execution_id: str, attempt: int, max_retries: int
    ) -> PlannedOutcome:
        return "succeeded"

    verdict = check(healthy(), planned=always_succeed)
    assert found(verdict) == {"outcome not the planned one"}


def test_an_unreadable_message_is_reported() -> None:
    verdict = check(healthy(), unreadable=["sequence 9 on dvp.tasks.x.due.y: not an event"])
    assert found(verdict) == {"unreadable message"}


def test_the_fault_plan_is_reproducible_and_never_has_two_nodes_down() -> None:
    services = ["executor-e1", "executor-e2", "projector", "ticker-1"]
    settings = ChaosSettings(seed=5, fault_seconds=240.0, tasks=60, node_kills=2)
    plan = plan_faults(settings, services, 3)
    assert plan == plan_faults(settings, services, 3)
    assert plan != plan_faults(dataclasses.replace(settings, seed=6), services, 3)
    nodes = [f for f in plan if f.target.startswith("node")]
    assert len(nodes) == 2
    assert nodes[0].at + nodes[0].down < nodes[1].at
    assert all(f.at + f.down < settings.fault_seconds for f in plan)
    kills = [f for f in plan if not f.target.startswith("node")]
    assert all(b.at - a.at >= settings.service_kill_every[0] for a, b in pairwise(kills))
    assert all(f.down <= settings.service_down[1] for f in kills)


def _race(guarded_after: int | None) -> Verdict:
    """The overlap skip of the fire at +30 stored just after the outcome of E3, which it
    names, as when that outcome was still in flight when the ticker's guarded publish was
    checked."""
    items = healthy()
    items[12], items[13] = items[13], (items[12][0], items[13][1])
    records = [Record(n, stored, event) for n, (event, stored) in enumerate(items, start=1)]
    records[13] = Record(14, records[13].stored_at, records[13].event, guarded_after)
    return check_stream(records, until=UNTIL)


def test_an_overlap_skip_decided_before_the_outcome_it_follows_is_a_race_not_a_problem() -> None:
    verdict = _race(guarded_after=12)  # decided on the stream up to E3's TaskStarted
    assert not verdict.problems
    assert verdict.figures.skips_racing_an_outcome == 1


@pytest.mark.parametrize("guarded_after", [None, 13])
def test_an_overlap_skip_decided_after_the_outcome_is_still_caught(
    guarded_after: int | None,
) -> None:
    verdict = _race(guarded_after)
    assert "overlap skip with nothing running" in found(verdict)
    assert verdict.figures.skips_racing_an_outcome == 0
