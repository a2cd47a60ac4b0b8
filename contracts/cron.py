"""Cron expressions as ``man 5 crontab`` reads them, plus Quartz's ``L``, ``W`` and ``#``.

Pure: `parse_cron` reads an expression once (and says exactly what is wrong with a bad one);
`CronExpression.next_wall_time` walks the wall clock. Time zones and DST are the caller's
(`contracts.schedule`).

The rules (Vixie cron / cronie; robfig/cron in Kubernetes agrees):

* Five fields ``minute hour day-of-month month day-of-week``, or a macro (``@hourly``,
  ``@daily``, ``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``, ``@annually``).
* Each field is a list of ``*``, ``n``, ``a-b``, each optionally stepped (``*/15``, ``9-17/2``,
  ``5/10`` meaning ``5-max/10``); months and weekdays also by name (``jan``, ``mon``, any case);
  weekdays ``0`` and ``7`` are both Sunday.
* **The day rule** is decided on the text, as Vixie decides it: if either day field *begins with*
  ``*`` (``*``, ``*/1``, ``*/2``, ``*,5``) or is ``?``, a day must match both fields; if both are
  restricted, a day matching either fires.
* Extensions, with Quartz's meaning: ``L`` (last day of the month), ``LW`` (its last weekday,
  Monday to Friday) and ``nW`` (the weekday nearest day n, never leaving the month) in the
  day-of-month field; ``nL`` (the last weekday n of the month) and ``n#k`` (the k-th weekday n)
  in the day-of-week field. A month without day n has no ``nW``, as it has no ``n``.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Final, NamedTuple, TypeVar, cast

from contracts.errors import ScheduleError, preview

MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""The macros and the five fields each stands for."""

MAX_CRON_LENGTH: Final = 100
"""The longest cron expression, in characters; five fields of lists and ranges fit easily."""

_FORMS: Final = "'*', lists (1,5), ranges (1-5), steps (*/15, 1-30/5)"


class _Field(NamedTuple):
    position: int
    name: str
    low: int
    high: int
    names: tuple[str, ...]  # names[i] stands for low + i
    takes: str  # what the field allows, for error messages


_MINUTE: Final = _Field(1, "minute", 0, 59, (), f"0-59, {_FORMS}")
_HOUR: Final = _Field(2, "hour", 0, 23, (), f"0-23, {_FORMS}")
_DAY: Final = _Field(
    3,
    "day-of-month",
    1,
    31,
    (),
    f"1-31, {_FORMS}, '?' (any), L (last day), LW (last weekday) and nW (the weekday "
    "nearest day n)",
)
_MONTH: Final = _Field(
    4,
    "month",
    1,
    12,
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    f"1-12 or jan-dec, {_FORMS}",
)
_WEEKDAY: Final = _Field(
    5,
    "day-of-week",
    0,
    7,
    ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"),
    f"0-7 or sun-sat (0 and 7 are Sunday), {_FORMS}, '?' (any), nL (the last weekday n of the "
    "month) "
    "and n#k (the k-th weekday n, k 1-5)",
)
_FIELDS: Final = (_MINUTE, _HOUR, _DAY, _MONTH, _WEEKDAY)
_PARSED_EXPRESSIONS: Final = 32_768
"""Parsed expressions kept: enough for every distinct expression of a large deployment (a
ticker's start-up parses each task's; 100,000 weekly crons at scattered times have ~10,000)."""
_V = TypeVar("_V", tuple[int, ...], frozenset[int], frozenset[tuple[int, int]])

_CYCLE_DAYS: Final = 146_097  # 400 Gregorian years: the calendar, weekdays included, repeats
_ONE_DAY: Final = timedelta(days=1)
_ONE_MINUTE: Final = timedelta(minutes=1)
_MONTH_LENGTHS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class CronError(ScheduleError):
    """A cron expression that cannot be read; the message quotes it and says what is allowed."""

    def __init__(self, expression: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.expression = expression
        self.field = field
        """The name of the bad field (``"hour"``), or None when the whole expression is bad."""


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A parsed cron expression: which wall-clock minutes it matches."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    days: frozenset[int]
    """Plain days of the month."""
    last_day: bool
    """``L``: the month's last day."""
    last_workday: bool
    """``LW``: the month's last Monday-to-Friday."""
    nearest_workdays: frozenset[int]
    """``nW``: the Monday-to-Friday nearest day n, in the same month."""
    weekdays: frozenset[int]
    """Plain weekdays, 0 = Sunday."""
    last_weekdays: frozenset[int]
    """``nL``: the month's last weekday n."""
    nth_weekdays: frozenset[tuple[int, int]]
    """``n#k``: (weekday n, k) for the month's k-th weekday n."""
    days_and: bool
    """A day must match both day fields (one of them begins with ``*`` or is ``?``)."""
    any_day: bool
    """The day-of-month field matches every day."""
    any_weekday: bool
    """The day-of-week field matches every day."""
    only_days: tuple[int, ...] = ()
    """When plain days of the month alone decide (``0 0 1,15 * *``): those days, sorted."""
    only_weekdays: tuple[int, ...] = ()
    """When plain weekdays alone decide (``0 3 * * 0``): those weekdays, sorted."""

    def day_matches(self, day: date) -> bool:
        """Whether ``day`` is one this expression fires on (month and both day fields)."""
        if day.month not in self.months:
            return False
        if self.days_and:
            return (self.any_day or self._day_of_month_matches(day)) and (
                self.any_weekday or self._day_of_week_matches(day)
            )
        return self._day_of_month_matches(day) or self._day_of_week_matches(day)

    def next_wall_time(self, wall: datetime) -> datetime:
        """The first matching naive wall-clock minute strictly after ``wall``."""
        start = wall.replace(second=0, microsecond=0) + _ONE_MINUTE
        found = self._first_time_on(start.date(), start) if self.day_matches(start.date()) else None
        if found is not None:
            return found
        try:
            day = self.next_day(start.date())
        except OverflowError:
            raise ScheduleError(f"cron '{self.text}' has no fire before the year 10000") from None
        return datetime(day.year, day.month, day.day, self.hours[0], self.minutes[0])

    def next_day(self, after: date) -> date:
        """The first day strictly after ``after`` that this expression fires on."""
        day = after + _ONE_DAY
        end = after + timedelta(days=_CYCLE_DAYS)  # parse_cron made sure one fires in a cycle
        while day <= end:
            if day.month not in self.months:
                day = _first_of_next_month(day)
            elif self.only_days:  # straight to the next listed day, or to the next month
                index = bisect_left(self.only_days, day.day)
                if index < len(self.only_days):
                    number = self.only_days[index]
                    if number <= _month_length(day.year, day.month):
                        return day.replace(day=number)
                day = _first_of_next_month(day)
            elif self.only_weekdays:  # straight to the next listed weekday
                weekday = day.isoweekday() % 7
                index = bisect_left(self.only_weekdays, weekday)
                ahead = self.only_weekdays[index] if index < len(self.only_weekdays) else None
                step = ahead - weekday if ahead is not None else self.only_weekdays[0] + 7 - weekday
                if step == 0:
                    return day
                day += timedelta(days=step)
            elif self.day_matches(day):
                return day
            else:
                day += _ONE_DAY
        raise ScheduleError(f"cron '{self.text}' never fires")  # pragma: no cover

    def _day_of_month_matches(self, day: date) -> bool:
        number = day.day
        if number in self.days:
            return True
        if not (self.last_day or self.last_workday or self.nearest_workdays):
            return False
        length = _month_length(day.year, day.month)
        if self.last_day and number == length:
            return True
        weekday = day.weekday()  # 0 = Monday here
        if weekday >= 5:
            return False  # LW and nW only ever land on Monday to Friday
        if self.last_workday and (
            number == length or (weekday == 4 and number >= length - 2)  # Friday before a weekend
        ):
            return True
        return any(_nearest_workday(n, day, length) == number for n in self.nearest_workdays)

    def _day_of_week_matches(self, day: date) -> bool:
        weekday = day.isoweekday() % 7  # 0 = Sunday
        if weekday in self.weekdays:
            return True
        if weekday in self.last_weekdays and day.day + 7 > _month_length(day.year, day.month):
            return True
        return (weekday, (day.day - 1) // 7 + 1) in self.nth_weekdays

    def _first_time_on(self, day: date, not_before: datetime) -> datetime | None:
        hour0, minute0 = not_before.hour, not_before.minute
        for hour in self.hours[bisect_left(self.hours, hour0) :]:
            index = bisect_left(self.minutes, minute0 if hour == hour0 else 0)
            if index < len(self.minutes):
                return datetime(day.year, day.month, day.day, hour, self.minutes[index])
        return None


def parse_cron(expression: str) -> CronExpression:
    """Read a cron expression, or raise `CronError` quoting it and saying what to write."""
    if not isinstance(expression, str) or not expression.strip():
        shown = preview(expression)
        raise CronError(shown, f"cron_expression must be a non-empty string, got {shown}")
    if len(expression) > MAX_CRON_LENGTH:
        raise CronError(
            expression,
            f"cron_expression {preview(expression)} has {len(expression)} characters: at most "
            f"{MAX_CRON_LENGTH} allowed; five fields of lists and ranges fit in that",
        )
    return _parse(expression)


@lru_cache(maxsize=_PARSED_EXPRESSIONS)
def _parse(expression: str) -> CronExpression:
    text = expression.strip()
    if text.startswith("@"):
        fields = MACROS.get(text.lower())
        if fields is None:
            raise CronError(
                expression,
                f"cron_expression {expression!r} is not a known macro: use one of "
                f"{', '.join(MACROS)} or five fields (minute hour day-of-month month day-of-week)",
            )
        text = fields
    parts = text.split()
    if len(parts) != 5:
        extra = (
            "; seconds (a first field, Quartz) and years (a last field) are not supported"
            if len(parts) in (6, 7)
            else ""
        )
        raise CronError(
            expression,
            f"cron_expression {expression!r} has {len(parts)} field"
            f"{'' if len(parts) == 1 else 's'}: it needs 5 (minute hour day-of-month month "
            f"day-of-week) or a macro such as '@hourly'{extra}",
        )
    minute, hour, day, month, weekday = parts
    minutes = _plain_field(expression, _MINUTE, minute)
    hours = _plain_field(expression, _HOUR, hour)
    months = _plain_field(expression, _MONTH, month)
    days, last_day, last_workday, nearest = _day_of_month_field(expression, day)
    weekdays, last_weekdays, nth = _day_of_week_field(expression, weekday)
    days_and = _unrestricted(day) or _unrestricted(weekday)
    plain_days = not (last_day or last_workday or nearest)
    plain_weekdays = not (last_weekdays or nth)
    cron = CronExpression(
        text=expression,
        minutes=_shared(tuple(sorted(minutes))),
        hours=_shared(tuple(sorted(hours))),
        months=_shared(frozenset(months)),
        days=_shared(frozenset(days)),
        last_day=last_day,
        last_workday=last_workday,
        nearest_workdays=_shared(frozenset(nearest)),
        weekdays=_shared(frozenset(weekdays)),
        last_weekdays=_shared(frozenset(last_weekdays)),
        nth_weekdays=_shared(frozenset(nth)),
        days_and=days_and,
        any_day=len(days) == 31,
        any_weekday=len(weekdays) == 7,
        only_days=(tuple(sorted(days)) if days_and and len(weekdays) == 7 and plain_days else ()),
        only_weekdays=(
            tuple(sorted(weekdays))
            if days_and and len(days) == 31 and len(weekdays) < 7 and plain_weekdays
            else ()
        ),
    )
    _require_a_fire(cron)
    return cron


_MAX_SHARED: Final = 50_000
_shared_values: dict[object, object] = {}


def _shared(value: _V) -> _V:
    """One object for equal field values: most expressions share most of their fields (``*``
    for the month...), so the parse cache holds many expressions in little memory."""
    found = _shared_values.get(value)
    if found is not None:
        return cast(_V, found)
    if len(_shared_values) < _MAX_SHARED:
        _shared_values[value] = value
    return value


def _unrestricted(field: str) -> bool:
    return field.startswith("*") or field == "?"


def _require_a_fire(cron: CronExpression) -> None:
    """Refuse an expression that matches no day at all (``0 0 30 2 *``, ``0 0 */31 * 1#2``)."""
    try:
        cron.next_day(date(1999, 12, 31))
    except ScheduleError:
        raise CronError(
            cron.text,
            f"cron_expression {cron.text!r} never fires: no day matches its day-of-month, month "
            "and day-of-week fields together (for example 30 February); check those fields",
        ) from None


def _plain_field(expression: str, field: _Field, text: str) -> set[int]:
    values: set[int] = set()
    for element in _elements(expression, field, text):
        values |= _element_values(expression, field, text, element)
    if field is _WEEKDAY:
        return {value % 7 for value in values}
    return values


def _day_of_month_field(expression: str, text: str) -> tuple[set[int], bool, bool, set[int]]:
    if text == "?":
        return set(range(1, 32)), False, False, set()
    days: set[int] = set()
    last_day = last_workday = False
    nearest: set[int] = set()
    for element in _elements(expression, _DAY, text):
        upper = element.upper()
        if upper == "L":
            last_day = True
        elif upper == "LW":
            last_workday = True
        elif upper.endswith("W") and "/" not in upper and "-" not in upper:
            nearest.add(_number(expression, _DAY, text, element[:-1], element))
        elif upper.startswith("L") or "W" in upper:
            raise _bad(
                expression,
                _DAY,
                text,
                f"{element!r} is not supported (of the extensions, only L, LW and nW are, "
                "each on its own)",
                element,
            )
        else:
            days |= _element_values(expression, _DAY, text, element)
    return days, last_day, last_workday, nearest


def _day_of_week_field(
    expression: str, text: str
) -> tuple[set[int], set[int], set[tuple[int, int]]]:
    if text == "?":
        return set(range(7)), set(), set()
    weekdays: set[int] = set()
    last: set[int] = set()
    nth: set[tuple[int, int]] = set()
    for element in _elements(expression, _WEEKDAY, text):
        if "#" in element:
            weekday_text, _, k_text = element.partition("#")
            weekday = _number(expression, _WEEKDAY, text, weekday_text, element) % 7
            if not (k_text.isascii() and k_text.isdigit() and 1 <= int(k_text) <= 5):
                raise _bad(
                    expression,
                    _WEEKDAY,
                    text,
                    "after '#' comes which of the month's weekdays, 1 to 5 "
                    "(fri#2 is the second Friday)",
                    element,
                )
            nth.add((weekday, int(k_text)))
        elif element.upper().endswith("L"):
            if len(element) == 1:
                raise _bad(
                    expression,
                    _WEEKDAY,
                    text,
                    "'L' alone is not supported here: write nL for the month's last weekday n "
                    "(5L is the last Friday), or L in the day-of-month field for the last day",
                    element,
                )
            last.add(_number(expression, _WEEKDAY, text, element[:-1], element) % 7)
        else:
            weekdays |= {v % 7 for v in _element_values(expression, _WEEKDAY, text, element)}
    return weekdays, last, nth


def _elements(expression: str, field: _Field, text: str) -> list[str]:
    elements = text.split(",")
    if "" in elements:
        raise _bad(
            expression, field, text, "has an empty list element (two commas, or one at an end)"
        )
    if "?" in elements:
        where = "alone" if field in (_DAY, _WEEKDAY) else "only in the day fields"
        raise _bad(expression, field, text, f"'?' (any day) is allowed {where}, not in a list")
    return elements


def _element_values(expression: str, field: _Field, text: str, element: str) -> set[int]:
    """The values of one list element: ``*``, ``n``, ``a-b``, each with an optional ``/step``."""
    base, slash, step_text = element.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit() and int(step_text) > 0):
            raise _bad(
                expression,
                field,
                text,
                "the step after '/' must be a whole number above 0",
                element,
            )
        step = int(step_text)
    if base == "*":
        low, high = field.low, field.high
    elif "-" in base:
        low_text, _, high_text = base.partition("-")
        low = _number(expression, field, text, low_text, element)
        high = _number(expression, field, text, high_text, element)
        if low > high:
            raise _bad(
                expression,
                field,
                text,
                f"a range runs from low to high; split a wrapping range into two "
                f"({low_text}-{field.high},{field.low}-{high_text})",
                element,
            )
    else:
        low = _number(expression, field, text, base, element)
        high = field.high if slash else low  # '5/10' steps from 5 to the field's end
    return set(range(low, high + 1, step))


def _number(expression: str, field: _Field, text: str, token: str, element: str) -> int:
    """One value: digits in the field's range, or (months, weekdays) a three-letter name."""
    lowered = token.lower()
    if lowered in field.names:
        return field.low + field.names.index(lowered)
    if token.isascii() and token.isdigit():
        value = int(token)
        if field.low <= value <= field.high:
            return value
        raise _bad(expression, field, text, f"{value} is outside {field.low}-{field.high}", element)
    if token == "*":
        reason = "'*' stands alone or with a step ('*/5'), not in a range"
    elif token == "":
        reason = "a number is missing"
    elif token.isalpha() and field.names and len(token) > 3:
        reason = f"names are the first three letters ({token[:3].lower()})"
    else:
        reason = f"{token!r} is not a number"
    raise _bad(expression, field, text, reason, element)


def _bad(
    expression: str, field: _Field, text: str, reason: str, element: str | None = None
) -> CronError:
    where = f" at {element!r}" if element is not None and element != text else ""
    return CronError(
        expression,
        f"cron_expression {expression!r}: field {field.position} ({field.name}) {text!r}{where}: "
        f"{reason}. The {field.name} field takes {field.takes}",
        field=field.name,
    )


def _month_length(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_LENGTHS[month - 1]


def _nearest_workday(n: int, day: date, length: int) -> int | None:
    """Day number of the Monday-to-Friday nearest day ``n`` of ``day``'s month (Quartz's nW)."""
    if n > length:
        return None
    weekday = (day.weekday() + n - day.day) % 7  # of day n; 0 = Monday
    if weekday == 5:  # Saturday: the Friday before, or the Monday after the 1st
        return 3 if n == 1 else n - 1
    if weekday == 6:  # Sunday: the Monday after, or the Friday before the month's last day
        return n - 2 if n == length else n + 1
    return n


def _first_of_next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)
