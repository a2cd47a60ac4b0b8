"""The overdue rule (`contracts.overdue`) and the ``alert_after_seconds`` a plugin may give."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import Schedule, TaskRegistered, TaskSpec, definition_hash, iter_fires
from contracts.overdue import overdue_at, overdue_reference, overdue_seconds
from contracts.validation import registration_problem
from dvp_cms.plugins import Plugin
from dvp_cms.plugins.errors import TaskDefinitionError
from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule
from dvp_cms.plugins.validation import task_spec

T0 = datetime(2026, 11, 27, 9, 0, 5, tzinfo=UTC)  # a Friday, 5 s after a 09:00 fire
EVERY_FIVE_MINUTES = Schedule(interval_seconds=300, offset_seconds=0.0)
WEEKDAYS_AT_NINE = Schedule(cron_expression="0 9 * * 1-5")


def test_an_interval_task_is_overdue_once_two_fires_passed_with_their_timeout() -> None:
    # Last success 5 s after the 09:00 fire: the 09:05 and 09:10 fires may both fail.
    assert overdue_at(EVERY_FIVE_MINUTES, 30.0, T0) == datetime(2026, 11, 27, 9, 10, 30, tzinfo=UTC)


def test_at_most_two_intervals_and_the_timeout_after_the_last_success() -> None:
    for seconds_after_fire in (0.001, 5, 150, 299.999):
        reference = datetime(2026, 11, 27, 9, tzinfo=UTC) + timedelta(seconds=seconds_after_fire)
        deadline = overdue_at(EVERY_FIVE_MINUTES, 30.0, reference)
        assert deadline - reference <= timedelta(seconds=2 * 300 + 30)
        assert deadline - reference > timedelta(seconds=300 + 30)


def test_a_weekday_cron_is_not_overdue_over_the_weekend() -> None:
    # Friday's run succeeded: Monday's and Tuesday's runs are its two chances.
    deadline = overdue_at(WEEKDAYS_AT_NINE, 60.0, T0)
    assert deadline == datetime(2026, 12, 1, 9, 1, tzinfo=UTC)  # Tuesday 09:01
    assert deadline.weekday() == 1


def test_jitter_delays_the_deadline_like_it_delays_the_fire() -> None:
    jittered = msgspec.structs.replace(EVERY_FIVE_MINUTES, jitter_seconds=20.0)
    assert overdue_at(jittered, 30.0, T0) - overdue_at(EVERY_FIVE_MINUTES, 30.0, T0) == timedelta(
        seconds=20
    )


def test_a_cron_deadline_follows_its_time_zone() -> None:
    berlin = Schedule(cron_expression="0 3 * * *", timezone="Europe/Berlin")
    # 03:00 in Berlin is 02:00 UTC in winter; the second fire after Friday 09:00 UTC is Sunday's.
    assert overdue_at(berlin, 0.5, T0) == datetime(2026, 11, 29, 2, 0, 0, 500000, tzinfo=UTC)


def test_alert_after_seconds_replaces_the_rule() -> None:
    schedule = msgspec.structs.replace(WEEKDAYS_AT_NINE, alert_after_seconds=3600.0)
    assert overdue_at(schedule, 60.0, T0) == T0 + timedelta(hours=1)


def test_the_reference_is_the_later_of_the_last_success_and_since() -> None:
    since = T0
    assert overdue_reference(None, since) == since
    assert overdue_reference(since + timedelta(seconds=1), since) == since + timedelta(seconds=1)
    assert overdue_reference(since - timedelta(days=3), since) == since


def test_how_late_is_none_until_past_the_deadline() -> None:
    assert overdue_seconds(None, T0) is None
    assert overdue_seconds(T0, T0) is None
    assert overdue_seconds(T0, T0 - timedelta(seconds=1)) is None
    assert overdue_seconds(T0, T0 + timedelta(seconds=90)) == 90.0


@given(
    cron=st.sampled_from(["*/15 * * * *", "0 9 * * 1-5", "30 2 1 * *", "0 0 L * *", "0 9 * * 5L"]),
    offset=st.integers(min_value=0, max_value=400 * 86400),
    timeout=st.floats(min_value=0.5, max_value=7 * 86400),
)
def test_exactly_two_fires_have_their_timeout_before_the_deadline(
    cron: str, offset: int, timeout: float
) -> None:
    schedule = Schedule(cron_expression=cron, timezone="Europe/Berlin")
    reference = T0 + timedelta(seconds=offset)
    last_start = overdue_at(schedule, timeout, reference) - timedelta(seconds=timeout)
    chances = list(itertools.takewhile(lambda f: f <= last_start, iter_fires(schedule, reference)))
    assert len(chances) == 2
    assert chances[-1] == last_start


class _Plugin(Plugin):
    name = "p"


def _registered(schedule: Schedule) -> TaskRegistered:
    spec = TaskSpec(name="T", schedule=schedule, max_retries=0, timeout_seconds=30.0)
    return TaskRegistered(
        tenant_id="acme",
        task_id="p.t",
        occurred_at=T0,
        plugin="p",
        plugin_version="1",
        spec=spec,
        definition_hash=definition_hash("p", "1", spec),
    )


def test_a_plugins_alert_after_seconds_reaches_the_registration() -> None:
    definition = ScheduledTaskDefinition(
        "p.t", "T", TaskSchedule(cron_expression="0 3 * * *", alert_after_seconds=2 * 86400)
    )
    spec = task_spec(_Plugin(), definition, "acme")
    assert spec.schedule.alert_after_seconds == 2 * 86400
    default = task_spec(
        _Plugin(), ScheduledTaskDefinition("p.t", "T", TaskSchedule(interval_seconds=60)), "acme"
    )
    assert default.schedule.alert_after_seconds is None


@pytest.mark.parametrize("bad", [0, -5.0, math.nan, math.inf, 800 * 86400.0, "1h", True])
def test_a_bad_alert_after_seconds_is_refused_naming_the_value(bad: object) -> None:
    definition = ScheduledTaskDefinition(
        "p.t",
        "T",
        TaskSchedule(interval_seconds=60, alert_after_seconds=bad),  # type: ignore[arg-type]
    )
    with pytest.raises(TaskDefinitionError) as caught:
        task_spec(_Plugin(), definition, "acme")
    message = str(caught.value)
    assert "alert_after_seconds must be a number > 0 and at most 63244800 (732 days)" in message
    assert f"got {bad!r}" in message
    # A registration read back from the stream is judged by the same rule.
    problem = registration_problem(
        _registered(Schedule(interval_seconds=60, alert_after_seconds=bad))  # type: ignore[arg-type]
    )
    assert problem is not None
    assert "alert_after_seconds" in problem


def test_only_fires_inside_the_active_window_count() -> None:
    # The window opens Monday 09:00: its first two weekday runs are Monday's and Tuesday's.
    later = msgspec.structs.replace(
        WEEKDAYS_AT_NINE, start_at=datetime(2026, 11, 30, 9, tzinfo=UTC)
    )
    assert overdue_at(later, 60.0, T0 - timedelta(days=10)) == datetime(
        2026, 12, 1, 9, 1, tzinfo=UTC
    )
    # It closes after Monday's run: one chance left is not two, so no deadline.
    closing = msgspec.structs.replace(
        WEEKDAYS_AT_NINE, end_at=datetime(2026, 11, 30, 12, tzinfo=UTC)
    )
    assert overdue_at(closing, 60.0, T0) is None
    assert overdue_at(closing, 60.0, datetime(2026, 12, 24, tzinfo=UTC)) is None


def test_alert_after_seconds_counts_from_the_windows_start_and_ends_with_it() -> None:
    start = datetime(2026, 12, 7, tzinfo=UTC)
    window = msgspec.structs.replace(
        WEEKDAYS_AT_NINE, alert_after_seconds=3600.0, start_at=start, end_at=start + timedelta(7)
    )
    assert overdue_at(window, 60.0, T0) == start + timedelta(hours=1)
    thursday = start + timedelta(days=3)
    assert overdue_at(window, 60.0, thursday) == thursday + timedelta(hours=1)
    saturday = start + timedelta(days=5)
    assert overdue_at(window, 60.0, saturday) is None  # no run left in the window
