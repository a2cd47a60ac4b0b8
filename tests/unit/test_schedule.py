"""Schedule math: hand-computed DST cases, and properties against a brute-force oracle."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import (
    Schedule,
    ScheduleError,
    next_fire_after,
    next_fires,
    spread_offset,
    validate_schedule,
)
from contracts.schedule import iter_fires


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def berlin(cron: str) -> Schedule:
    return Schedule(cron_expression=cron, timezone="Europe/Berlin")


class TestBerlinDst:
    """Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET."""

    def test_daily_time_skipped_in_spring_fires_once_when_the_gap_ends(self) -> None:
        fires = next_fires(berlin("30 2 * * *"), utc(2026, 3, 27, 12), 3)
        assert fires == [
            utc(2026, 3, 28, 1, 30),  # 02:30 CET
            utc(2026, 3, 29, 1, 0),  # 02:30 does not exist: 03:00 CEST, the gap's end
            utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        ]

    def test_hourly_across_the_spring_gap(self) -> None:
        fires = next_fires(berlin("0 * * * *"), utc(2026, 3, 28, 23, 30), 4)
        # 01:00 CET, then 02:00 (skipped) and 03:00 CEST are the same instant: one fire.
        assert fires == [
            utc(2026, 3, 29, 0),
            utc(2026, 3, 29, 1),
            utc(2026, 3, 29, 2),
            utc(2026, 3, 29, 3),
        ]

    def test_daily_time_repeated_in_autumn_fires_once(self) -> None:
        fires = next_fires(berlin("30 2 * * *"), utc(2026, 10, 24, 12), 2)
        assert fires == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]  # CEST, then CET

    def test_half_hourly_across_the_autumn_fold(self) -> None:
        fires = next_fires(berlin("*/30 * * * *"), utc(2026, 10, 24, 23, 50), 4)
        # 02:00 and 02:30 CEST fire; their repeats in CET (01:00Z, 01:30Z) do not.
        assert fires == [
            utc(2026, 10, 25, 0, 0),
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 25, 2, 0),
            utc(2026, 10, 25, 2, 30),
        ]

    def test_starting_inside_the_repeated_hour(self) -> None:
        # 01:10Z is 02:10 CET, the second pass through 02:xx: 02:30 already fired (00:30Z).
        assert next_fire_after(berlin("30 2 * * *"), utc(2026, 10, 25, 1, 10)) == utc(
            2026, 10, 26, 1, 30
        )


class TestCronFields:
    def test_weekdays_and_macros(self) -> None:
        monday_9 = next_fire_after(Schedule(cron_expression="0 9 * * 1-5"), utc(2026, 11, 28))
        assert monday_9 == utc(2026, 11, 30, 9)  # 2026-11-28 is a Saturday
        assert next_fire_after(Schedule(cron_expression="@hourly"), utc(2026, 1, 1, 0, 1)) == utc(
            2026, 1, 1, 1
        )
        sunday = next_fire_after(Schedule(cron_expression="0 0 * * 7"), utc(2026, 11, 24))
        assert sunday == utc(2026, 11, 29)

    def test_day_of_month_or_weekday_when_both_are_restricted(self) -> None:
        fires = next_fires(Schedule(cron_expression="0 0 13 * 5"), utc(2026, 11, 1), 3)
        # Fridays (6th, 13th, 20th of November 2026) or the 13th: classic cron's OR.
        assert fires == [utc(2026, 11, 6), utc(2026, 11, 13), utc(2026, 11, 20)]

    def test_leap_day(self) -> None:
        assert next_fire_after(Schedule(cron_expression="0 12 29 2 *"), utc(2026, 3, 1)) == utc(
            2028, 2, 29, 12
        )

    def test_interval_fires_at_multiples_since_the_epoch(self) -> None:
        schedule = Schedule(interval_seconds=300)
        assert next_fires(schedule, utc(2026, 11, 24, 10, 2, 30), 3) == [
            utc(2026, 11, 24, 10, 5),
            utc(2026, 11, 24, 10, 10),
            utc(2026, 11, 24, 10, 15),
        ]
        assert next_fire_after(schedule, utc(2026, 11, 24, 10, 5)) == utc(2026, 11, 24, 10, 10)

    def test_naive_datetimes_are_refused(self) -> None:
        with pytest.raises(ValueError, match="aware datetime"):
            next_fire_after(Schedule(interval_seconds=5), datetime(2026, 1, 1))


class TestValidation:
    @pytest.mark.parametrize(
        ("schedule", "message"),
        [
            (Schedule(), "neither"),
            (Schedule(cron_expression="* * * * *", interval_seconds=1), "both"),
            (Schedule(cron_expression="* * *"), "has 3 fields"),
            (Schedule(cron_expression="0 0 * * * *"), "has 6 fields"),
            (Schedule(cron_expression="61 * * * *"), "61 is outside 0-59"),
            (Schedule(cron_expression="0 0 L-2 * *"), "'L-2' is not supported"),
            (Schedule(cron_expression="0 0 30 2 *"), "never fires"),
            (Schedule(cron_expression="0 3 * * *", timezone="Nowhere/Town"), "unknown time zone"),
            (Schedule(interval_seconds=0), "positive whole number"),
            (Schedule(interval_seconds=-5), "positive whole number"),
            (Schedule(interval_seconds=1.5), "positive whole number"),  # type: ignore[arg-type]
            (Schedule(interval_seconds=60, jitter_seconds=-1), "jitter_seconds must be >= 0"),
            (Schedule(interval_seconds=60, catchup_window_seconds=-1), "catchup_window_seconds"),
            (Schedule(interval_seconds=60, overlap="queue"), "overlap must be"),  # type: ignore[arg-type]
        ],
    )
    def test_bad_schedules_say_what_to_fix(self, schedule: Schedule, message: str) -> None:
        with pytest.raises(ScheduleError) as error:
            validate_schedule(schedule)
        assert message in str(error.value)

    @pytest.mark.parametrize(
        "cron",
        [
            "0 3 * * *",
            "0 */4 * * *",
            "0 0 * * 0",
            "0 9 * * 1-5",
            "@daily",
            "@weekly",
            "@monthly",
            "@yearly",
            "0 0 L * *",
            "0 0 * * 1#2",
        ],
    )
    def test_good_crons_validate(self, cron: str) -> None:
        validate_schedule(Schedule(cron_expression=cron, timezone="America/New_York"))


# ---- properties against a brute-force oracle ------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
TRANSITIONS = [  # start near DST changes as well as on ordinary days
    utc(2026, 3, 28, 20),
    utc(2026, 10, 24, 20),
    utc(2026, 3, 7, 20),
    utc(2026, 10, 31, 20),
    utc(2026, 4, 4, 10),
    utc(2026, 6, 15, 0),
]
crons = st.builds(
    lambda m, h, dow: f"{m} {h} * * {dow}",
    st.sampled_from(["*/15", "0", "30", "0,45", "5-10", "*/7"]),
    st.sampled_from(["*", "2", "1-3", "*/2", "0,2,3", "22-23"]),
    st.sampled_from(["*", "0", "1-5", "6"]),
)


def field_matches(field: str, value: int) -> bool:
    """A deliberately separate reading of the cron fields the strategy above produces."""
    for part in field.split(","):
        if part == "*":
            return True
        if part.startswith("*/"):
            if value % int(part[2:]) == 0:
                return True
        elif "-" in part:
            low, high = part.split("-")
            if int(low) <= value <= int(high):
                return True
        elif int(part) == value:
            return True
    return False


def brute_force_fires(cron: str, zone_name: str, start: datetime, end: datetime) -> list[datetime]:
    """Every fire in (start, end] by walking minute by minute through UTC."""
    zone = ZoneInfo(zone_name)
    minute, hour, _, _, weekday = cron.split()

    def matches(wall: datetime) -> bool:
        return (
            field_matches(minute, wall.minute)
            and field_matches(hour, wall.hour)
            and field_matches(weekday, wall.isoweekday() % 7)
        )

    fires: set[datetime] = set()
    t = start.replace(second=0, microsecond=0)
    previous = t.astimezone(zone)
    while t <= end:
        t += timedelta(minutes=1)
        local = t.astimezone(zone)
        wall = local.replace(tzinfo=None)
        if local.fold == 0 and matches(wall):
            fires.add(t)
        skipped = previous.replace(tzinfo=None) + timedelta(minutes=1)
        while skipped < wall:  # a DST gap: these local times never happened
            if matches(skipped):
                fires.add(t)
            skipped += timedelta(minutes=1)
        previous = local
    return sorted(f for f in fires if start < f <= end)


@settings(max_examples=60, deadline=None)
@given(
    cron=crons,
    zone=st.sampled_from(ZONES),
    start=st.sampled_from(TRANSITIONS),
    offset_minutes=st.integers(0, 24 * 60),
)
def test_cron_fires_match_a_brute_force_walk(
    cron: str, zone: str, start: datetime, offset_minutes: int
) -> None:
    begin = start + timedelta(minutes=offset_minutes, seconds=17)
    end = begin + timedelta(hours=30)
    schedule = Schedule(cron_expression=cron, timezone=zone)
    fires = []
    for fire in iter_fires(schedule, begin):
        if fire > end:
            break
        fires.append(fire)
    assert fires == brute_force_fires(cron, zone, begin, end)
    assert all(a < b for a, b in itertools.pairwise(fires))
    assert all(f.tzinfo is UTC for f in fires)


@given(
    interval=st.integers(1, 90_000),
    fraction=st.floats(0, 1, exclude_max=True),
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_interval_offsets_shift_every_fire(interval: int, fraction: float, start: datetime) -> None:
    offset = round(interval * fraction, 3) % interval
    fires = next_fires(Schedule(interval_seconds=interval, offset_seconds=offset), start, 3)
    assert start < fires[0] <= start + timedelta(seconds=interval)
    for fire in fires:
        assert (
            abs(
                (fire.timestamp() - offset) / interval
                - round((fire.timestamp() - offset) / interval)
            )
            < 1e-6
        )


@given(
    interval=st.integers(1, 3600),
    task=st.text("abcdef", min_size=1, max_size=8),
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_stepping_from_a_fire_never_returns_the_same_fire(
    interval: int, task: str, start: datetime
) -> None:
    schedule = Schedule(
        interval_seconds=interval, offset_seconds=spread_offset("t", task, interval)
    )
    fire = next_fire_after(schedule, start)
    following = next_fire_after(schedule, fire)
    assert following - fire == timedelta(seconds=interval)
    assert next_fire_after(schedule, fire - timedelta(microseconds=1)) == fire


def test_spread_offsets_are_stable_in_range_and_spread() -> None:
    offsets = [spread_offset("acme", f"feed.t{n}", 60) for n in range(1000)]
    assert offsets == [spread_offset("acme", f"feed.t{n}", 60) for n in range(1000)]
    assert all(0 <= o < 60 for o in offsets)
    per_second = [sum(1 for o in offsets if int(o) == s) for s in range(60)]
    assert max(per_second) < 40  # about 17 per second, never a pile-up
    assert spread_offset("acme", "a.b", 300) != spread_offset("other", "a.b", 300)


def test_an_offset_at_or_beyond_the_interval_is_refused() -> None:
    with pytest.raises(ScheduleError, match="offset_seconds must be >= 0 and below"):
        validate_schedule(Schedule(interval_seconds=60, offset_seconds=60))


@given(
    interval=st.integers(1, 90_000),
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_interval_fires_strictly_increase_on_multiples(interval: int, start: datetime) -> None:
    fires = next_fires(Schedule(interval_seconds=interval), start, 5)
    assert fires[0] > start
    assert fires[0] - start <= timedelta(seconds=interval)
    for a, b in itertools.pairwise(fires):
        assert b - a == timedelta(seconds=interval)
    assert all(f.timestamp() % interval == 0 for f in fires)
