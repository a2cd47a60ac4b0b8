"""The pure parts of a backfill: its range, its fires (what ``next`` lists), which of them ran,
how the plugin sees one, and the command line's values."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from contracts import Schedule, TaskDue, execution_id_for_fire, next_fires
from contracts.schedule import fires_in_range
from dvp_scheduler.backfill import BackfillError, BackfillPlan, check_range
from dvp_scheduler.cli.backfill import rate_argument
from executor import execution_context

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BERLIN = Schedule(cron_expression="30 * * * *", timezone="Europe/Berlin")


def test_the_range_is_past_and_not_empty() -> None:
    check_range(NOW - timedelta(hours=1), NOW, NOW)
    with pytest.raises(BackfillError, match="is not before --to"):
        check_range(NOW, NOW, NOW)
    with pytest.raises(BackfillError, match=r"is in the future .*give a --to at most now"):
        check_range(NOW - timedelta(hours=1), NOW + timedelta(seconds=1), NOW)


@pytest.mark.parametrize(
    "start",
    [datetime(2026, 10, 24, 22, 0, tzinfo=UTC), datetime(2026, 3, 28, 23, 0, tzinfo=UTC)],
)
def test_the_fires_of_a_range_are_what_next_lists_across_dst(start: datetime) -> None:
    end = start + timedelta(hours=6)
    listed = [f for f in next_fires(BERLIN, start - timedelta(microseconds=1), 20) if f < end]
    assert fires_in_range(BERLIN, start, end, limit=100) == listed
    assert len(set(listed)) == len(listed)


def test_the_range_includes_its_start_excludes_its_end_and_stops_past_the_limit() -> None:
    every_minute = Schedule(interval_seconds=60, offset_seconds=0)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    fires = fires_in_range(every_minute, start, start + timedelta(minutes=3), limit=10)
    assert fires == [start + timedelta(minutes=n) for n in range(3)]
    assert len(fires_in_range(every_minute, start, start + timedelta(days=30), limit=10)) == 11
    window = Schedule(interval_seconds=60, offset_seconds=0, end_at=start + timedelta(minutes=2))
    assert len(fires_in_range(window, start, start + timedelta(hours=1), limit=10)) == 2


def test_a_fire_that_ran_is_left_out_by_its_execution_id() -> None:
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    fires = fires_in_range(BERLIN, start, start + timedelta(hours=3), limit=10)
    ran = execution_id_for_fire("acme", "reports", fires[0])
    plan = BackfillPlan("acme", "reports", BERLIN, start, start, fires, frozenset({ran}))
    assert plan.to_run == fires[1:]
    assert plan.has_run(fires[0])


def test_a_plugin_sees_a_backfill_as_a_catchup_of_its_fire() -> None:
    fire = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    due = TaskDue(
        tenant_id="acme",
        task_id="reports",
        occurred_at=NOW,
        execution_id=execution_id_for_fire("acme", "reports", fire),
        attempt=1,
        trigger="backfill",
        scheduled_for=fire,
    )
    context = execution_context(due, max_retries=0, deadline=NOW + timedelta(minutes=1))
    assert (context.trigger, context.scheduled_for) == ("catchup", fire)


def test_the_rate_reads_per_second() -> None:
    assert rate_argument("25/s") == 25.0
    assert rate_argument("0.5") == 0.5
    for bad in ("0/s", "fast", "-1", "20000/s"):
        with pytest.raises(argparse.ArgumentTypeError, match="--rate takes"):
            rate_argument(bad)
