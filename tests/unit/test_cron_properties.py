"""The project's cron against cronsim, an independent reading of Debian's (Vixie) cron.

cronsim decides the day rule on the text of the fields, as Vixie does (checked in
`test_cronsim_follows_the_vixie_day_rule`), and reads ``L``, ``LW``, ``nL`` and ``n#k`` as Quartz
does. It has no ``nW``; that form is pinned by hand in test_cron.py.

In UTC the two must agree on every fire. Across DST changes cronsim follows Debian's own
handling, which is not ours, so there the comparison is with cronsim's *wall-clock* matches
mapped to instants by the documented rule (a skipped local time fires once when the gap ends; a
repeated one fires once, the first time).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import Schedule, next_fires
from contracts.cron import CronError, parse_cron
from contracts.schedule import _next_cron_fire, iter_fires, next_fire_after

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def elements(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    """One list element of a field whose values run from ``low`` to ``high``."""
    value = st.integers(low, high).map(str)
    if names:
        named = st.integers(0, len(names) - 1).map(lambda i: names[i])
        value = st.one_of(value, named, named.map(str.upper))
    span = high - low + 1
    step = st.integers(1, span + 2).map(str)
    pairs = st.tuples(st.integers(low, high), st.integers(low, high)).map(sorted)

    def named_range(pair: list[int]) -> str:
        if names and pair[1] - low < len(names) and pair[0] != pair[1]:
            return f"{names[pair[0] - low]}-{names[pair[1] - low]}"
        return f"{pair[0]}-{pair[1]}"

    ranges = pairs.map(named_range)
    # cronsim reads a one-value range with a step ('5-5/2') as '5/2', 5 to the field's end;
    # Vixie (and we) read {5}. Stepped ranges here have two ends so that the two agree.
    stepped_ranges = pairs.filter(lambda pair: pair[0] < pair[1]).map(named_range)
    return st.one_of(
        st.just("*"),
        value,
        ranges,
        st.builds(lambda s: f"*/{s}", step),
        st.builds(lambda r, s: f"{r}/{s}", stepped_ranges, step),
        st.builds(lambda v, s: f"{v}/{s}", value, step),
    )


def field(element: st.SearchStrategy[str], star_weight: int = 3) -> st.SearchStrategy[str]:
    listed = st.lists(element, min_size=1, max_size=3).map(",".join)
    return st.one_of(*([st.just("*")] * star_weight), listed)


MINUTE = field(elements(0, 59))
HOUR = field(elements(0, 23))
MONTH = field(elements(1, 12, MONTHS), star_weight=6)
DAY = field(st.one_of(elements(1, 31), st.sampled_from(["L", "LW"])))
WEEKDAY_NUMBER = st.integers(0, 7)
WEEKDAY = field(
    st.one_of(
        elements(0, 7, WEEKDAYS),
        WEEKDAY_NUMBER.map(lambda n: f"{n}L"),
        st.builds(
            lambda n, k: f"{n}#{k}",
            st.one_of(WEEKDAY_NUMBER.map(str), st.sampled_from(WEEKDAYS)),
            st.integers(1, 5),
        ),
    )
)
EXPRESSIONS = st.builds(lambda *fields: " ".join(fields), MINUTE, HOUR, DAY, MONTH, WEEKDAY)
STARTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31))
FIRES = 5


def cronsim_fires(expression: str, start: datetime, count: int) -> list[datetime]:
    """cronsim's next ``count`` naive fires after ``start`` (fewer if it finds none in 50 years)."""
    return list(itertools.islice(CronSim(expression, start), count))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=EXPRESSIONS, start=STARTS)
def test_next_fires_agree_with_cronsim_in_utc(expression: str, start: datetime) -> None:
    refusal = _refusal(expression)
    if refusal is not None:
        # The strategy writes only valid fields, so only a day no month has can be refused;
        # cronsim accepts some of those and then finds no fire.
        assert "never fires" in refusal
        assert cronsim_fires(expression, start, 1) == []
        return
    ours = next_fires(Schedule(cron_expression=expression), start.replace(tzinfo=UTC), FIRES)
    theirs = cronsim_fires(expression, start, FIRES)
    assert [fire.replace(tzinfo=None) for fire in ours[: len(theirs)]] == theirs
    if len(theirs) < FIRES:  # cronsim gives up after 50 years without a fire; we do not
        last = theirs[-1] if theirs else start
        assert ours[len(theirs)].replace(tzinfo=None) - last > timedelta(days=365 * 50)


def _refusal(expression: str) -> str | None:
    try:
        parse_cron(expression)
    except CronError as error:
        return str(error)
    return None


@pytest.mark.parametrize(
    ("expression", "first"),
    [
        ("0 0 */1 * 1", datetime(2026, 11, 2)),  # '*/1' is unrestricted: Mondays only
        ("0 0 1 * */2", datetime(2026, 11, 1)),  # the 1st, and a Sunday
        ("0 0 1 * 0-6", datetime(2026, 11, 1)),  # both restricted: any day
        ("0 0 *,13 * 5", datetime(2026, 11, 6)),  # begins with '*': Fridays only
    ],
)
def test_cronsim_follows_the_vixie_day_rule(expression: str, first: datetime) -> None:
    """Before trusting it as the reference: the day rule decided on the field's text."""
    assert next(CronSim(expression, datetime(2026, 10, 31, 12))) == first


# ---- DST days ---------------------------------------------------------------------------------

DST_ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",  # changes at midnight: the skipped hour is 00:00-00:59
    "Australia/Lord_Howe",  # a 30-minute change
    "Pacific/Chatham",  # a :45 offset
]


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """The UTC instants in 2026-2027 at which the zone's offset changes."""
    zone = ZoneInfo(zone_name)
    found = []
    instant = datetime(2026, 1, 1, tzinfo=UTC)
    offset = instant.astimezone(zone).utcoffset()
    while instant < datetime(2028, 1, 1, tzinfo=UTC):
        instant += timedelta(minutes=15)
        now = instant.astimezone(zone).utcoffset()
        if now != offset:
            found.append(instant)
            offset = now
    assert len(found) == 4, (zone_name, found)
    return tuple(found)


TRANSITION_HOURS = st.sampled_from(["*", "0", "1", "2", "3", "1-3", "*/2", "0,2,3", "2-4/2"])
TRANSITION_MINUTES = st.sampled_from(["*/15", "0", "30", "45", "0,45", "5-10", "*/7", "59"])
DST_EXPRESSIONS = st.builds(
    lambda minute, hour, day, weekday: f"{minute} {hour} {day} * {weekday}",
    st.one_of(TRANSITION_MINUTES, MINUTE),
    st.one_of(TRANSITION_HOURS, HOUR),
    st.one_of(st.just("*"), st.just("*"), DAY),
    st.one_of(st.just("*"), st.just("*"), WEEKDAY),
)


def documented_fires(
    expression: str, zone_name: str, begin: datetime, end: datetime
) -> set[datetime]:
    """Fires in (begin, end]: cronsim's wall-clock matches, placed by the documented DST rule."""
    zone = ZoneInfo(zone_name)
    wall_begin = begin.astimezone(zone).replace(tzinfo=None) - timedelta(hours=3)
    wall_end = end.astimezone(zone).replace(tzinfo=None) + timedelta(hours=3)
    matching = set(itertools.takewhile(lambda w: w <= wall_end, CronSim(expression, wall_begin)))
    fires = set()
    instant = begin.replace(second=0, microsecond=0)
    previous = instant.astimezone(zone).replace(tzinfo=None)
    while instant <= end:
        instant += timedelta(minutes=1)
        local = instant.astimezone(zone)
        wall = local.replace(tzinfo=None)
        if local.fold == 0 and wall in matching:
            fires.add(instant)  # a local time's first (or only) occurrence
        skipped = previous + timedelta(minutes=1)
        if skipped < wall and any(skipped <= w < wall for w in matching):
            fires.add(instant)  # local times the clock jumped over: once, as the gap ends
        previous = wall
    return {fire for fire in fires if begin < fire <= end}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expression=DST_EXPRESSIONS,
    zone_name=st.sampled_from(DST_ZONES),
    which=st.integers(0, 3),
    before_minutes=st.integers(0, 20 * 60),
)
def test_across_dst_changes_fires_follow_the_documented_rule(
    expression: str, zone_name: str, which: int, before_minutes: int
) -> None:
    if _refusal(expression) is not None:
        return  # a day no month has; the UTC property covers refusals
    begin = transitions(zone_name)[which] - timedelta(minutes=before_minutes, seconds=13)
    end = begin + timedelta(hours=26)
    fires = list(
        itertools.takewhile(
            lambda fire: fire <= end,
            iter_fires(Schedule(cron_expression=expression, timezone=zone_name), begin),
        )
    )
    assert fires == sorted(documented_fires(expression, zone_name, begin, end))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expression=DST_EXPRESSIONS,
    zone_name=st.sampled_from(DST_ZONES),
    which=st.integers(0, 3),
    offsets=st.lists(st.integers(-26 * 3600, 26 * 3600), min_size=1, max_size=40),
)
def test_remembered_next_fires_equal_computed_ones(
    expression: str, zone_name: str, which: int, offsets: list[int]
) -> None:
    """The next fire of a cron is remembered per expression and zone (a span with no fire in
    it); in any order of questions, also across a DST change, each answer is the one computed
    afresh."""
    if _refusal(expression) is not None:
        return
    schedule = Schedule(cron_expression=expression, timezone=zone_name)
    middle = transitions(zone_name)[which]
    for offset in offsets + offsets[::-1]:  # each question once more, from the other side
        after = middle + timedelta(seconds=offset)
        assert next_fire_after(schedule, after) == _next_cron_fire(expression, zone_name, after)
