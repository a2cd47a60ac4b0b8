"""A schedule's active window (``start_at``, ``end_at``): fires only inside it, nothing before
its start caught up, validation that names what to fix, and every reader of a schedule (the
ticker, ``next``, the projector, the dashboard's words) respecting it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from contracts import (
    Schedule,
    ScheduleError,
    TaskDue,
    TaskSkipped,
    TaskSucceeded,
    validate_schedule,
)
from contracts.schedule import next_fire_in_window, next_fires_in_window
from dvp_cms.plugins import Plugin, TaskDefinitionError
from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule
from dvp_cms.plugins.validation import task_spec
from dvp_scheduler.dashboard.words import schedule_in_words
from projector import ProjectionState, apply, task_view
from tests.unit.projector import events as projector_events
from tests.unit.ticker.test_policy import at, due_for, state_for
from ticker import apply_event, decide, next_due_instant

START, END = at(3600), at(7200)


def windowed(**options: object) -> Schedule:
    fields: dict[str, object] = {"interval_seconds": 600, "start_at": START, "end_at": END}
    fields.update(options)
    return Schedule(**fields)  # type: ignore[arg-type]


def test_fires_lie_in_the_window_its_start_included_its_end_not() -> None:
    schedule = windowed()
    assert next_fire_in_window(schedule, at(0)) == START
    assert next_fires_in_window(schedule, at(0), 10) == [
        START + timedelta(minutes=10 * n) for n in range(6)
    ]
    assert next_fire_in_window(schedule, at(7000)) is None
    assert next_fires_in_window(Schedule(interval_seconds=600, end_at=END), at(6000), 3) == [
        at(6600)
    ]


@pytest.mark.parametrize(
    ("start_at", "end_at", "problem"),
    [
        (datetime(2026, 12, 1), None, "start_at must be an instant: a datetime with a time zone"),
        (None, "2026-12-01", "end_at must be an instant"),
        (
            END,
            START,
            "the active window is empty: start_at 2026-11-24T05:00:00+00:00 is not before end_at",
        ),
        (START, START, "the active window is empty"),
        (
            datetime(1999, 12, 31, tzinfo=UTC),
            None,
            "start_at 1999-12-31T00:00:00+00:00 is out of range",
        ),
    ],
)
def test_a_bad_window_is_refused_saying_what_to_fix(
    start_at: object, end_at: object, problem: str
) -> None:
    with pytest.raises(ScheduleError, match="^" + problem.replace("(", r"\(").replace("+", r"\+")):
        validate_schedule(Schedule(interval_seconds=60, start_at=start_at, end_at=end_at))  # type: ignore[arg-type]


class Reminders(Plugin):
    name = "reminders"
    version = "1.0"


def test_the_plugin_api_takes_aware_datetimes_in_any_zone_and_names_a_naive_one() -> None:
    berlin = timezone(timedelta(hours=1))
    definition = ScheduledTaskDefinition(
        task_id="reminders.advent",
        name="Advent",
        schedule=TaskSchedule(
            cron_expression="0 9 * * *",
            start_at=datetime(2026, 12, 1, tzinfo=berlin),
            end_at=datetime(2026, 12, 25, tzinfo=berlin),
        ),
    )
    spec = task_spec(Reminders(), definition, "acme")
    assert spec.schedule.start_at == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert spec.schedule.start_at.tzinfo is UTC
    assert spec.schedule.describe() == (
        "cron '0 9 * * *' from 2026-11-30T23:00:00Z until 2026-12-24T23:00:00Z"
    )
    assert schedule_in_words(spec.schedule).endswith(
        ", from 2026-11-30 23:00 UTC until 2026-12-24 23:00 UTC"
    )
    definition.schedule.start_at = datetime(2026, 12, 1)
    with pytest.raises(
        TaskDefinitionError, match=r"reminders\.advent.*start_at must be an instant"
    ):
        task_spec(Reminders(), definition, "acme")
    assert TaskSchedule(cron_expression="0 9 * * *").start_at is None  # the page's examples


def test_the_ticker_fires_only_inside_the_window_and_catches_up_nothing_before_it() -> None:
    state = state_for(windowed(catchup_window_seconds=86400), at(0))
    assert next_due_instant(state) == START
    assert decide(state, at(3599)) is None, "the fires before the start are not missed ones"
    fire = decide(state, START)
    assert isinstance(fire, TaskDue)
    assert (fire.trigger, fire.scheduled_for, fire.missed_fires) == ("schedule", START, 0)
    apply_event(state, fire, 2)
    apply_event(state, due_for(at(6600)), 3)  # ... up to the last fire inside
    apply_event(state, _succeeded(due_for(at(6600))), 4)
    assert next_due_instant(state) is None, "the window is over: nothing to look at"
    assert decide(state, at(9000)) is None


def test_fires_missed_inside_the_window_are_caught_up_as_usual() -> None:
    state = state_for(windowed(overlap="allow"), at(0))
    late = decide(state, at(5000))  # no ticker from before the start until 5000 s
    assert isinstance(late, TaskDue)
    assert (late.trigger, late.scheduled_for, late.missed_fires) == ("catchup", at(4800), 3)


def test_a_paused_task_records_skips_inside_the_window_only() -> None:
    state = state_for(windowed(), at(0))
    apply_event(state, projector_events.paused(at(1)), 2)
    skipped = decide(state, START + timedelta(seconds=0.5))
    assert isinstance(skipped, TaskSkipped)
    assert skipped.scheduled_for == START


def test_the_projector_shows_no_next_fire_once_the_window_is_over() -> None:
    spec = projector_events.SPEC
    schedule = windowed()
    state = ProjectionState()
    apply(
        state,
        projector_events.registered(at(0), spec=msgspec.structs.replace(spec, schedule=schedule)),
    )
    task = state.task(projector_events.TENANT, projector_events.TASK)
    assert task is not None
    assert task_view(task).next_fire_at == START
    apply(state, projector_events.due(at(6600)))
    assert task_view(task).next_fire_at is None


def _succeeded(due: TaskDue) -> TaskSucceeded:
    return TaskSucceeded(
        tenant_id=due.tenant_id,
        task_id=due.task_id,
        occurred_at=due.scheduled_for,
        execution_id=due.execution_id,
        attempt=1,
        worker="w",
        duration_ms=1,
    )
