"""Schedules in words: ``every day at 03:00 Europe/Berlin`` instead of ``0 3 * * *``.

Pure. `schedule_in_words` covers the common forms of cron (macros included) and every interval;
a cron it has no words for is shown verbatim, so nothing is ever described wrongly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from contracts.cron import CronError, CronExpression, parse_cron
from contracts.schedule import Schedule

WEEKDAYS: Final = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTHS: Final = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_ORDINALS: Final = ("first", "second", "third", "fourth", "fifth")
_MAX_LISTED_TIMES: Final = 4


def schedule_in_words(schedule: Schedule) -> str:
    """How ``schedule`` reads to a person, with its time zone for a cron and its active window
    (``..., from 2026-12-01 00:00 UTC until 2026-12-24 00:00 UTC``) if it has one."""
    if schedule.interval_seconds is not None:
        text = interval_in_words(schedule.interval_seconds, schedule.offset_seconds)
    else:
        expression = schedule.cron_expression or ""
        words = cron_in_words(expression)
        zone = schedule.timezone or "UTC"
        text = f"{words} {zone}" if words is not None else f"cron '{expression}' {zone}"
    if schedule.start_at is not None:
        text += f", from {_instant(schedule.start_at)}"
    if schedule.end_at is not None:
        text += f" until {_instant(schedule.end_at)}"
    return text


def _instant(value: datetime) -> str:
    try:
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    except (OverflowError, ValueError):  # a registration read back may hold anything
        return value.isoformat()


def interval_in_words(seconds: int, offset_seconds: float = 0.0) -> str:
    """``every 5 minutes``, ``every 90 seconds``, ``every 2 hours, 30 s into each``."""
    text = f"every {_amount(seconds)}"
    if offset_seconds:
        text += f", {offset_seconds:g} s into each"
    return text


def cron_in_words(expression: str) -> str | None:
    """The words for a cron expression (without its zone), or ``None`` when it has a form this
    does not describe (or does not parse)."""
    try:
        cron = parse_cron(expression)
    except CronError:
        return None
    days = _days(cron)
    months = _months(cron)
    if days is None or months is None:
        return None
    times = _times(cron)
    if times is None:
        return None
    kind, phrase = times
    where, day_text = days
    if kind == "repeating":  # "every 5 minutes", "every hour at :15"
        text = phrase if where == "every" else f"{phrase} {day_text}"
    elif where == "every":
        text = f"every day {phrase}"
    elif where == "weekday":
        text = f"{phrase} {day_text}"
    else:
        text = f"{day_text} {phrase}"
    return f"{text}{months}"


def _amount(seconds: int) -> str:
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return "second" if seconds == 1 else f"{seconds} seconds"


def _step(values: tuple[int, ...], size: int) -> int | None:
    """The step of values evenly spaced from 0 over a cycle of ``size`` (``*/15``), else
    ``None``."""
    if len(values) < 2 or values[0] != 0:
        return None
    step = values[1] - values[0]
    if size % step or values != tuple(range(0, size, step)):
        return None
    return step


def _times(cron: CronExpression) -> tuple[str, str] | None:
    minutes, hours = cron.minutes, cron.hours
    all_hours = len(hours) == 24
    if all_hours and len(minutes) == 60:
        return "repeating", "every minute"
    minute_step = _step(minutes, 60)
    if all_hours and minute_step is not None:
        return "repeating", f"every {minute_step} minutes"
    if len(minutes) == 1:
        minute = minutes[0]
        past = "on the hour" if minute == 0 else f"at {minute} past"
        if all_hours:
            return "repeating", f"every hour {past}"
        hour_step = _step(hours, 24)
        if hour_step is not None and len(hours) > _MAX_LISTED_TIMES:
            return "repeating", f"every {hour_step} hours {past}"
    if len(minutes) * len(hours) <= _MAX_LISTED_TIMES:
        listed = [f"{h:02d}:{m:02d}" for h in hours for m in minutes]
        return "at", f"at {_and(listed)}"
    if minute_step is not None and hours == tuple(range(hours[0], hours[-1] + 1)):
        return (
            "repeating",
            f"every {minute_step} minutes from {hours[0]:02d}:00 to {hours[-1]:02d}:59",
        )
    return None


def _days(cron: CronExpression) -> tuple[str, str] | None:
    """(``every`` | ``weekday`` | ``monthday``, the phrase), or ``None`` if not described."""
    month_days = _month_days(cron)
    weekdays = _weekdays(cron)
    if cron.days_and:
        if cron.any_day and cron.any_weekday:
            return "every", ""
        if cron.any_day and weekdays is not None:
            return "weekday", weekdays
        if cron.any_weekday and month_days is not None:
            return "monthday", month_days
        return None
    if month_days is not None and weekdays is not None:  # both restricted: either one fires
        return "monthday", f"{month_days} and {weekdays}"
    return None


def _month_days(cron: CronExpression) -> str | None:
    parts = [f"the {_ordinal(day)}" for day in sorted(cron.days)]
    parts += [f"the weekday nearest the {_ordinal(day)}" for day in sorted(cron.nearest_workdays)]
    if cron.last_day:
        parts.append("the last day")
    if cron.last_workday:
        parts.append("the last weekday")
    if not parts:
        return None
    return f"on {_and(parts)} of the month"


def _weekdays(cron: CronExpression) -> str | None:
    parts: list[str] = []
    plain = sorted(cron.weekdays, key=lambda day: (day + 6) % 7)  # Monday first
    if plain:
        monday_first = [(day + 6) % 7 for day in plain]
        contiguous = monday_first == list(range(monday_first[0], monday_first[-1] + 1))
        if len(plain) == 7:
            parts.append("every day of the week")
        elif contiguous and len(plain) >= 3:
            parts.append(f"{WEEKDAYS[plain[0]]} to {WEEKDAYS[plain[-1]]}")
        else:
            parts.append(_and([WEEKDAYS[day] for day in plain]))
    for day, nth in sorted(cron.nth_weekdays):
        parts.append(f"the {_ORDINALS[nth - 1]} {WEEKDAYS[day]} of the month")
    for day in sorted(cron.last_weekdays):
        parts.append(f"the last {WEEKDAYS[day]} of the month")
    if not parts:
        return None
    return f"on {_and(parts)}"


def _months(cron: CronExpression) -> str | None:
    if len(cron.months) == 12:
        return ""
    return f" in {_and([MONTHS[month - 1] for month in sorted(cron.months)])}"


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _and(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} and {parts[-1]}"
