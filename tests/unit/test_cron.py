"""Cron expressions as crontab(5) reads them: each field form, the day rule, the extensions, and
errors that quote the expression, name the field and say what it takes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts import Schedule, ScheduleError, next_fires, validate_schedule
from contracts.cron import CronError, parse_cron


def days(cron: str, start: str, count: int = 4) -> list[str]:
    """The next ``count`` fires after midnight UTC of ``start``, as ``Mon 2026-11-02 00:00``."""
    after = datetime.fromisoformat(start).replace(tzinfo=UTC)
    return [f.strftime("%a %Y-%m-%d %H:%M") for f in next_fires(_schedule(cron), after, count)]


def _schedule(cron: str) -> Schedule:
    return Schedule(cron_expression=cron)


class TestTheIssuesExamples:
    def test_a_stepped_star_day_of_month_leaves_the_weekday_in_charge(self) -> None:
        assert days("0 0 */1 * 1", "2026-11-01") == [
            "Mon 2026-11-02 00:00",
            "Mon 2026-11-09 00:00",
            "Mon 2026-11-16 00:00",
            "Mon 2026-11-23 00:00",
        ]

    def test_a_stepped_star_weekday_leaves_the_day_of_month_in_charge(self) -> None:
        assert days("0 0 1 * */1", "2026-11-01", 3) == [
            "Tue 2026-12-01 00:00",
            "Fri 2027-01-01 00:00",
            "Mon 2027-02-01 00:00",
        ]

    def test_odd_days_that_are_mondays(self) -> None:
        assert days("0 0 */2 * 1", "2026-11-01") == [
            "Mon 2026-11-09 00:00",
            "Mon 2026-11-23 00:00",
            "Mon 2026-12-07 00:00",
            "Mon 2026-12-21 00:00",
        ]

    def test_a_weekday_range_written_out_is_restricted_so_either_day_field_fires(self) -> None:
        assert days("0 0 11-24,*/11 * 0-6", "2026-11-01", 3) == [
            "Mon 2026-11-02 00:00",
            "Tue 2026-11-03 00:00",
            "Wed 2026-11-04 00:00",
        ]

    def test_1w_moves_a_saturday_first_to_monday_the_third(self) -> None:
        assert days("0 0 1W * *", "2026-07-15", 2) == [
            "Mon 2026-08-03 00:00",
            "Tue 2026-09-01 00:00",
        ]

    def test_a_star_inside_a_list(self) -> None:
        assert days("* 18,0-16,* * * *", "2026-11-01", 2) == [
            "Sun 2026-11-01 00:01",
            "Sun 2026-11-01 00:02",
        ]
        assert parse_cron("* 18,0-16,* * * *").hours == tuple(range(24))


class TestTheDayRule:
    def test_both_restricted_fires_on_either(self) -> None:
        # Fridays of November 2026 are the 6th, 13th, 20th and 27th; the 13th is one of them.
        assert days("0 0 12 * 5", "2026-11-01") == [
            "Fri 2026-11-06 00:00",
            "Thu 2026-11-12 00:00",
            "Fri 2026-11-13 00:00",
            "Fri 2026-11-20 00:00",
        ]

    def test_star_day_of_month_means_the_weekday_decides(self) -> None:
        assert days("0 0 * * 5", "2026-11-01", 2) == [
            "Fri 2026-11-06 00:00",
            "Fri 2026-11-13 00:00",
        ]

    def test_the_text_decides_not_the_expanded_set(self) -> None:
        every_day = ["Mon 2026-11-02 00:00", "Tue 2026-11-03 00:00"]
        assert days("0 0 1-31 * 1", "2026-11-01", 2) == every_day  # all days, but restricted
        assert days("0 0 13,* * 5", "2026-11-01", 2) == every_day  # begins with 13: restricted
        # Begins with '*': unrestricted, so the weekday must match too.
        assert days("0 0 *,13 * 5", "2026-11-01", 2) == [
            "Fri 2026-11-06 00:00",
            "Fri 2026-11-13 00:00",
        ]

    def test_question_mark_is_unrestricted(self) -> None:
        assert days("0 0 ? * mon", "2026-11-01", 2) == days("0 0 * * 1", "2026-11-01", 2)
        assert days("0 0 1 * ?", "2026-11-01", 2) == days("0 0 1 * *", "2026-11-01", 2)


class TestFieldForms:
    def test_steps_on_star_ranges_and_single_values(self) -> None:
        assert parse_cron("*/25 * * * *").minutes == (0, 25, 50)
        assert parse_cron("10-30/10 * * * *").minutes == (10, 20, 30)
        assert parse_cron("5/20 * * * *").minutes == (5, 25, 45)
        assert parse_cron("0 1-23/7 * * *").hours == (1, 8, 15, 22)

    def test_names_in_any_case_in_lists_and_ranges(self) -> None:
        cron = parse_cron("0 9 * jan,JUL Mon-FRI")
        assert cron.months == {1, 7}
        assert cron.weekdays == {1, 2, 3, 4, 5}
        assert parse_cron("0 0 * mar-may/2 *").months == {3, 5}

    def test_seven_is_sunday(self) -> None:
        sundays = days("0 0 * * 0", "2026-11-02", 2)
        assert sundays == ["Sun 2026-11-08 00:00", "Sun 2026-11-15 00:00"]
        assert days("0 0 * * 7", "2026-11-02", 2) == sundays
        assert days("0 0 * * sun", "2026-11-02", 2) == sundays
        assert parse_cron("0 0 * * 5-7").weekdays == {5, 6, 0}

    def test_stepped_star_weekdays(self) -> None:
        assert parse_cron("0 0 * * */2").weekdays == {0, 2, 4, 6}

    def test_macros_in_any_case(self) -> None:
        assert days("@MONTHLY", "2026-11-02", 2) == days("0 0 1 * *", "2026-11-02", 2)
        assert days("@weekly", "2026-11-02", 2) == days("0 0 * * 0", "2026-11-02", 2)
        assert days("@hourly", "2026-11-02", 2) == ["Mon 2026-11-02 01:00", "Mon 2026-11-02 02:00"]


class TestExtensions:
    def test_last_day_of_the_month(self) -> None:
        assert days("0 0 L * *", "2026-11-01", 4) == [
            "Mon 2026-11-30 00:00",
            "Thu 2026-12-31 00:00",
            "Sun 2027-01-31 00:00",
            "Sun 2027-02-28 00:00",
        ]
        assert days("0 0 L 2 *", "2027-03-01", 1) == ["Tue 2028-02-29 00:00"]

    def test_last_weekday_of_the_month(self) -> None:
        # October 2026 ends on a Saturday, November on a Monday, January 2027 on a Sunday.
        assert days("0 0 LW * *", "2026-10-01", 4) == [
            "Fri 2026-10-30 00:00",
            "Mon 2026-11-30 00:00",
            "Thu 2026-12-31 00:00",
            "Fri 2027-01-29 00:00",
        ]

    def test_nearest_weekday(self) -> None:
        # 15 August 2026 is a Saturday, 15 November a Sunday.
        assert days("0 0 15W 8 *", "2026-01-01", 1) == ["Fri 2026-08-14 00:00"]
        assert days("0 0 15W 11 *", "2026-01-01", 1) == ["Mon 2026-11-16 00:00"]
        assert days("0 0 15W 12 *", "2026-01-01", 1) == ["Tue 2026-12-15 00:00"]

    def test_nearest_weekday_never_leaves_the_month(self) -> None:
        # 31 May 2026 is a Sunday and the month's last day: the Friday before, not 1 June.
        assert days("0 0 31W 5 *", "2026-01-01", 1) == ["Fri 2026-05-29 00:00"]
        # A month without day 31 has no 31W: April, June and September are passed over.
        assert days("0 0 31W 4-7 *", "2026-04-01", 2) == [
            "Fri 2026-05-29 00:00",
            "Fri 2026-07-31 00:00",
        ]

    def test_last_weekday_n(self) -> None:
        assert days("0 0 * * 5L", "2026-11-01", 2) == [
            "Fri 2026-11-27 00:00",
            "Fri 2026-12-25 00:00",
        ]
        assert days("0 0 * * 0L", "2026-11-01", 1) == days("0 0 * * 7L", "2026-11-01", 1)

    def test_kth_weekday_n(self) -> None:
        assert days("0 0 * * fri#2", "2026-11-01", 2) == [
            "Fri 2026-11-13 00:00",
            "Fri 2026-12-11 00:00",
        ]
        assert days("0 0 * * 7#1", "2026-10-31", 1) == ["Sun 2026-11-01 00:00"]
        # A fifth Monday in February needs 29 February on a Monday: rare, but it comes.
        assert days("0 0 * 2 mon#5", "2026-01-01", 3) == [
            "Mon 2044-02-29 00:00",
            "Mon 2072-02-29 00:00",
            "Mon 2112-02-29 00:00",
        ]

    def test_extensions_in_lists_and_under_the_day_rule(self) -> None:
        assert days("0 0 1,L * *", "2026-11-02", 3) == [
            "Mon 2026-11-30 00:00",
            "Tue 2026-12-01 00:00",
            "Thu 2026-12-31 00:00",
        ]
        # Both restricted: the 13th, or the last Friday.
        assert days("0 0 13 * 5L", "2026-11-01", 3) == [
            "Fri 2026-11-13 00:00",
            "Fri 2026-11-27 00:00",
            "Sun 2026-12-13 00:00",
        ]
        # Begins with "*": an odd day that is the last Friday (26 Feb to 28 May 2027 are even).
        assert days("0 0 */2 * 5L", "2026-11-01", 4) == [
            "Fri 2026-11-27 00:00",
            "Fri 2026-12-25 00:00",
            "Fri 2027-01-29 00:00",
            "Fri 2027-06-25 00:00",
        ]


BAD = [
    # (expression, the field named, a piece of the reason)
    ("0 0 * * * *", None, "has 6 fields"),
    ("0 * 18,0-16,* * * * *", None, "has 7 fields"),
    ("* * *", None, "has 3 fields"),
    ("@reboot", None, "not a known macro"),
    ("61 * * * *", "minute", "61 is outside 0-59"),
    ("0 24 * * *", "hour", "24 is outside 0-23"),
    ("0 0 0 * *", "day-of-month", "0 is outside 1-31"),
    ("0 0 * 13 *", "month", "13 is outside 1-12"),
    ("0 0 * * 8", "day-of-week", "8 is outside 0-7"),
    ("0 0 5-2 * *", "day-of-month", "split a wrapping range into two (5-31,1-2)"),
    ("*/0 * * * *", "minute", "the step after '/' must be a whole number above 0"),
    ("1,,2 * * * *", "minute", "empty list element"),
    ("1- * * * *", "minute", "a number is missing"),
    ("1-*/2 * * * *", "minute", "'*' stands alone or with a step"),
    ("0 0 * * monday", "day-of-week", "first three letters (mon)"),
    ("H * * * *", "minute", "'H' is not a number"),
    ("¹ * * * *", "minute", "is not a number"),
    ("? * * * *", "minute", "'?' (any day) is allowed only in the day fields"),
    ("0 0 ?,1 * *", "day-of-month", "'?' (any day) is allowed alone"),
    ("0 0 L-2 * *", "day-of-month", "'L-2' is not supported"),
    ("0 0 L/2 * *", "day-of-month", "'L/2' is not supported"),
    ("0 0 1-5W * *", "day-of-month", "'1-5W' is not supported"),
    ("0 0 W * *", "day-of-month", "a number is missing"),
    ("0 0 32W * *", "day-of-month", "32 is outside 1-31"),
    ("0 0 * * L", "day-of-week", "'L' alone is not supported here"),
    ("0 0 * * 1#6", "day-of-week", "after '#' comes which of the month's weekdays, 1 to 5"),
    ("0 0 * * 1#", "day-of-week", "after '#' comes"),
    ("0 0 * * 9L", "day-of-week", "9 is outside 0-7"),
]


class TestRejections:
    @pytest.mark.parametrize(("expression", "field", "reason"), BAD)
    def test_errors_quote_the_expression_name_the_field_and_say_what_it_takes(
        self, expression: str, field: str | None, reason: str
    ) -> None:
        with pytest.raises(CronError) as caught:
            parse_cron(expression)
        message = str(caught.value)
        assert repr(expression) in message
        assert reason in message
        assert caught.value.field == field
        if field is not None:
            assert f"({field}) " in message
            assert f"The {field} field takes " in message

    def test_an_element_of_a_list_is_pointed_at(self) -> None:
        with pytest.raises(CronError, match=r"field 1 \(minute\) '1,99' at '99': 99 is outside"):
            parse_cron("1,99 * * * *")

    @pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 */31 * 1#2"])
    def test_an_expression_that_never_fires_is_refused(self, expression: str) -> None:
        with pytest.raises(CronError, match="never fires"):
            parse_cron(expression)

    def test_validation_raises_the_same_error(self) -> None:
        with pytest.raises(ScheduleError, match=r"field 2 \(hour\)"):
            validate_schedule(Schedule(cron_expression="0 25 * * *"))
