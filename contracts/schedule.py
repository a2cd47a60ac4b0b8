"""Schedule math: when a cron or interval schedule fires. Pure functions, no I/O.

Rules (see docs/design.md, guarantee 4):

* Interval schedules fire at ``offset_seconds`` past each whole multiple of the interval since
  the Unix epoch (UTC), so every ticker computes the same instants. Registration spreads the
  offsets by a stable hash of (tenant, task) (`spread_offset`), so that a thousand tasks "every
  minute" do not all fire in the same millisecond; an offset of 0 aligns with the clock
  (``interval_seconds=300`` fires at :00, :05, :10, ...).
* Cron schedules are read as crontab(5) reads them (`contracts.cron`: five fields or a macro,
  Vixie's day rule, Quartz's ``L``, ``W`` and ``#``) and evaluated on the wall clock of the
  schedule's IANA time zone (UTC by default).
* A local time skipped by a DST change fires once, at the instant the gap ends; a local time that
  occurs twice fires once, at its first occurrence.
* An active window (``start_at``, ``end_at``, each optional) keeps the fires ``f`` with
  ``start_at <= f < end_at``; the ``*_in_window`` functions apply it, the others do not.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from contracts.cron import parse_cron
from contracts.errors import ScheduleError, preview

OverlapPolicy = Literal["skip", "allow"]
"""What a fire does while the previous execution still runs: skip it (recorded) or run anyway."""

DEFAULT_CATCHUP_WINDOW_SECONDS: Final = 3600.0
"""After downtime, the newest missed fire runs once if it is at most this old."""

MAX_INTERVAL_SECONDS: Final = 366 * 86400
"""The longest interval (366 days): rarer runs take a cron schedule (``0 3 1 1 *``). Keeps
every fire instant a step of whole days from the last, far inside ``datetime``'s range."""

MAX_JITTER_SECONDS: Final = 86400.0
"""The longest jitter a fire may be delayed by (one day)."""

MAX_CATCHUP_WINDOW_SECONDS: Final = 366 * 86400.0
"""The longest catch-up window (366 days, so a yearly run can still be caught up)."""

MAX_ALERT_AFTER_SECONDS: Final = 2 * 366 * 86400.0
"""The longest ``alert_after_seconds`` (732 days: a yearly task may miss one year unnoticed)."""

EARLIEST_INSTANT: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""No event holds an instant before this (events are not older than dvp-scheduler); nor does a
schedule's window."""

LATEST_INSTANT: Final = datetime(9000, 12, 31, 23, 59, 59, tzinfo=UTC)
"""No event holds an instant after this, nor does a schedule's window: years of schedule
arithmetic on any instant up to it stay far inside ``datetime``'s range (year 9999)."""

MAX_TIMEZONE_LENGTH: Final = 64
"""The longest time zone name (the longest IANA name has about 30 characters)."""

_AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]

_ONE_MICROSECOND: Final = timedelta(microseconds=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    """When a task fires: exactly one of ``cron_expression`` and ``interval_seconds``."""

    cron_expression: str | None = None
    interval_seconds: int | None = None
    offset_seconds: float = 0.0
    """Interval schedules only: fire this long after each multiple of the interval."""
    timezone: str = "UTC"
    jitter_seconds: float = 0.0
    catchup_window_seconds: float = DEFAULT_CATCHUP_WINDOW_SECONDS
    overlap: OverlapPolicy = "skip"
    alert_after_seconds: float | None = None
    """The task is overdue when its last success is older than this; ``None``: by its schedule
    (`contracts.overdue`)."""
    start_at: _AwareDatetime | None = None
    """The active window's start: no fire before it (``None``: since registration)."""
    end_at: _AwareDatetime | None = None
    """The active window's end: no fire at or after it (``None``: no end)."""

    def describe(self) -> str:
        """A short human description: ``cron '0 3 * * *' (Europe/Berlin)`` or ``every 300s``,
        and its active window if it has one (``from 2026-12-01T00:00:00Z``, ``until ...``)."""
        if self.cron_expression is not None:
            zone = "" if self.timezone == "UTC" else f" ({self.timezone})"
            text = f"cron '{self.cron_expression}'{zone}"
        else:
            text = f"every {self.interval_seconds}s"
        if self.start_at is not None:
            text += f" from {_shown(self.start_at)}"
        if self.end_at is not None:
            text += f" until {_shown(self.end_at)}"
        return text


def _shown(instant: datetime) -> str:
    """``2026-12-01T00:00:00Z``: an instant in UTC to the second."""
    try:
        instant = instant.astimezone(UTC)
    except (OverflowError, ValueError, TypeError, AttributeError):
        return repr(instant)  # not an instant a valid schedule holds; shown as it is
    return instant.isoformat(timespec="seconds").replace("+00:00", "Z")


def validate_schedule(schedule: Schedule) -> None:
    """Raise `ScheduleError` saying what to fix if ``schedule`` cannot be evaluated."""
    has_cron = schedule.cron_expression is not None
    has_interval = schedule.interval_seconds is not None
    if has_cron == has_interval:
        which = "both" if has_cron else "neither"
        raise ScheduleError(
            f"schedule has {which} of cron_expression and interval_seconds: give exactly one"
        )
    if schedule.interval_seconds is not None:
        interval = schedule.interval_seconds
        if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
            raise ScheduleError(
                f"interval_seconds must be a positive whole number of seconds, got {interval!r}"
            )
        if interval > MAX_INTERVAL_SECONDS:
            raise ScheduleError(
                f"interval_seconds {interval} is too long: at most {MAX_INTERVAL_SECONDS} "
                "(366 days) allowed; for rarer runs use a cron schedule such as '0 3 1 1 *'"
            )
        offset = schedule.offset_seconds
        if not _is_non_negative_number(offset) or offset >= interval:
            raise ScheduleError(
                f"offset_seconds must be >= 0 and below interval_seconds ({interval}), "
                f"got {offset!r}"
            )
    else:
        _zone(schedule.timezone)
        parse_cron(schedule.cron_expression or "")
    jitter = schedule.jitter_seconds
    if not _is_non_negative_number(jitter) or jitter > MAX_JITTER_SECONDS:
        raise ScheduleError(
            f"jitter_seconds must be >= 0 and at most {MAX_JITTER_SECONDS:.0f} (one day), "
            f"got {jitter!r}"
        )
    window = schedule.catchup_window_seconds
    if not _is_non_negative_number(window) or window > MAX_CATCHUP_WINDOW_SECONDS:
        raise ScheduleError(
            f"catchup_window_seconds must be >= 0 and at most {MAX_CATCHUP_WINDOW_SECONDS:.0f} "
            f"(366 days), got {window!r}"
        )
    if schedule.overlap not in ("skip", "allow"):
        raise ScheduleError(f"overlap must be 'skip' or 'allow', got {schedule.overlap!r}")
    _validate_window(schedule.start_at, schedule.end_at)
    alert_after = schedule.alert_after_seconds
    if alert_after is not None and (
        not _is_non_negative_number(alert_after)
        or alert_after == 0
        or alert_after > MAX_ALERT_AFTER_SECONDS
    ):
        raise ScheduleError(
            f"alert_after_seconds must be a number > 0 and at most "
            f"{MAX_ALERT_AFTER_SECONDS:.0f} (732 days), or None to judge by the schedule, "
            f"got {alert_after!r}"
        )


def _validate_window(start_at: object, end_at: object) -> None:
    for name, instant in (("start_at", start_at), ("end_at", end_at)):
        if instant is None:
            continue
        if not isinstance(instant, datetime) or instant.utcoffset() is None:
            raise ScheduleError(
                f"{name} must be an instant: a datetime with a time zone, such as "
                f"datetime(2026, 12, 1, tzinfo=UTC), or None; got {preview(instant)}"
            )
        if not EARLIEST_INSTANT <= instant <= LATEST_INSTANT:
            raise ScheduleError(
                f"{name} {instant.isoformat()} is out of range: it must lie between "
                f"{EARLIEST_INSTANT.date()} and {LATEST_INSTANT.date()}"
            )
    if isinstance(start_at, datetime) and isinstance(end_at, datetime) and not start_at < end_at:
        raise ScheduleError(
            f"the active window is empty: start_at {start_at.isoformat()} is not before end_at "
            f"{end_at.isoformat()}; give an end_at after start_at, or leave one of them out"
        )


def window_after(schedule: Schedule, after: datetime) -> datetime:
    """The instant from which fires count, for fires strictly after ``after``: ``after``, or
    just before the window's start when that is later, so that a fire at ``start_at`` counts."""
    if schedule.start_at is not None and schedule.start_at - _ONE_MICROSECOND > after:
        return schedule.start_at - _ONE_MICROSECOND
    return after


def in_window(schedule: Schedule, fire: datetime) -> bool:
    """Whether ``fire`` lies in the schedule's active window (``start_at <= fire < end_at``)."""
    return (schedule.start_at is None or fire >= schedule.start_at) and (
        schedule.end_at is None or fire < schedule.end_at
    )


def next_fire_in_window(schedule: Schedule, after: datetime) -> datetime | None:
    """The first fire strictly after ``after`` inside the active window; ``None`` when the
    window ends before it."""
    fire = next_fire_after(schedule, window_after(schedule, after))
    return fire if in_window(schedule, fire) else None


def next_fires_in_window(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fires strictly after ``after`` inside the active window, in UTC,
    increasing; fewer (or none) when the window ends first."""
    fires: list[datetime] = []
    instant = after
    while len(fires) < count:
        fire = next_fire_in_window(schedule, instant)
        if fire is None:
            break
        fires.append(fire)
        instant = fire
    return fires


def fires_in_range(
    schedule: Schedule, start: datetime, end: datetime, *, limit: int
) -> list[datetime]:
    """The fires ``f`` with ``start <= f < end`` inside the active window, in UTC, increasing:
    the ones `next_fires_in_window` lists from just before ``start``; at most ``limit + 1``, so
    that a caller can tell that there are more than ``limit``."""
    fires: list[datetime] = []
    instant = start - _ONE_MICROSECOND
    while len(fires) <= limit:
        fire = next_fire_in_window(schedule, instant)
        if fire is None or fire >= end:
            break
        fires.append(fire)
        instant = fire
    return fires


def next_fire_after(schedule: Schedule, after: datetime) -> datetime:
    """The first fire instant strictly after ``after`` (an aware datetime), in UTC."""
    _require_aware(after)
    if schedule.interval_seconds is not None:
        # Whole microseconds: float seconds would round a fire onto itself and repeat it.
        micros = (after - _EPOCH) // _ONE_MICROSECOND
        interval = schedule.interval_seconds * 1_000_000
        offset = round(schedule.offset_seconds * 1_000_000)
        k = (micros - offset) // interval + 1
        return _EPOCH + timedelta(microseconds=k * interval + offset)
    expression, timezone = schedule.cron_expression, schedule.timezone
    if expression is None:
        raise ScheduleError("schedule has neither cron_expression nor interval_seconds")
    if type(expression) is not str or type(timezone) is not str:
        return _next_cron_fire(expression, timezone, after)  # invalid: let it say why
    key = (expression, timezone)
    spans = _cron_spans.get(key)
    if spans is not None:
        for low, fire in spans:
            if low <= after < fire:
                return fire
    fire = _next_cron_fire(expression, timezone, after)
    _remember_span(key, spans, after, fire)
    return fire


_CRON_SPANS_KEPT: Final = 4
_MAX_CRON_SPAN_KEYS: Final = 65_536
_cron_spans: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
"""For a (cron expression, time zone): spans ``(low, fire)`` with no fire in ``(low, fire)``,
newest first. The answer for any ``after`` in ``[low, fire)`` is ``fire``, so the thousands
of tasks that share a cron (a herd at midnight, a ticker starting up) compute it once."""


def _remember_span(
    key: tuple[str, str],
    spans: list[tuple[datetime, datetime]] | None,
    low: datetime,
    fire: datetime,
) -> None:
    kept = [(low, fire)]
    for old_low, old_fire in spans or ():
        if old_fire == fire:
            kept[0] = (min(low, old_low), fire)  # the same gap, known from further back
        elif len(kept) < _CRON_SPANS_KEPT:
            kept.append((old_low, old_fire))
    if spans is None and len(_cron_spans) >= _MAX_CRON_SPAN_KEYS:
        _cron_spans.clear()
    _cron_spans[key] = kept  # a new list: a reader in another thread sees the old or the new


def _next_cron_fire(expression: str, timezone: str, after: datetime) -> datetime:
    cron = parse_cron(expression)
    zone = _zone(timezone)
    wall = after.astimezone(zone).replace(tzinfo=None)
    while True:
        wall = cron.next_wall_time(wall)
        fire = _wall_to_utc(wall, zone)
        if fire > after:
            return fire


def spread_offset(tenant_id: str, task_id: str, interval_seconds: int) -> float:
    """A stable offset in ``[0, interval_seconds)`` for a task, to the millisecond.

    The same (tenant, task) always gets the same offset, so every ticker agrees on the fires.
    """
    digest = hashlib.sha256(f"{tenant_id}/{task_id}".encode()).digest()
    millis = int.from_bytes(digest[:8], "big") % (interval_seconds * 1000)
    return millis / 1000


def next_fires(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire instants strictly after ``after``, in UTC, increasing."""
    fires = iter_fires(schedule, after)
    return [next(fires) for _ in range(count)]


def iter_fires(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """Fire instants strictly after ``after``, in UTC, increasing, without end."""
    instant = after
    while True:
        instant = next_fire_after(schedule, instant)
        yield instant


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"expected an aware datetime (with a time zone), got {instant!r}")


def _is_non_negative_number(value: object) -> bool:
    """A finite int or float >= 0 (not a bool, not NaN, not infinite)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or len(name) > MAX_TIMEZONE_LENGTH:
        shown = preview(name)
        raise ScheduleError(
            f"unknown time zone {shown}: use an IANA name such as 'UTC' or 'Europe/Berlin' "
            f"(at most {MAX_TIMEZONE_LENGTH} characters)"
        )
    return _known_zone(name)


@lru_cache(maxsize=1024)
def _known_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise ScheduleError(
            f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """Map a local wall-clock time to UTC by the DST rules in the module docstring."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # exists (once, or twice: fold=0 is the first occurrence)
    # Skipped by a DST gap: fire when the gap ends, the first instant whose wall time is later.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)  # before the gap ends
    high = first  # after the gap ends
    while (high - low) > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) > wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)
