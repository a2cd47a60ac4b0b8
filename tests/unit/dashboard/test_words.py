"""Schedules in words (dvp_scheduler.dashboard.words)."""

from __future__ import annotations

import pytest

from contracts import Schedule
from dvp_scheduler.dashboard.words import cron_in_words, interval_in_words, schedule_in_words


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("* * * * *", "every minute"),
        ("*/5 * * * *", "every 5 minutes"),
        ("0 3 * * *", "every day at 03:00"),
        ("0 9 * * 1-5", "at 09:00 on Monday to Friday"),
        ("0 9 * * mon-fri", "at 09:00 on Monday to Friday"),
        ("0 0 L * *", "on the last day of the month at 00:00"),
        ("0 0 LW * *", "on the last weekday of the month at 00:00"),
        ("0 0 15W * *", "on the weekday nearest the 15th of the month at 00:00"),
        ("0 9 * * 5L", "at 09:00 on the last Friday of the month"),
        ("0 9 * * fri#2", "at 09:00 on the second Friday of the month"),
        ("0 0 1,15 * *", "on the 1st and the 15th of the month at 00:00"),
        ("15 */6 * * *", "every day at 00:15, 06:15, 12:15 and 18:15"),
        ("0 */2 * * *", "every 2 hours on the hour"),
        ("30 * * * *", "every hour at 30 past"),
        ("*/10 9-17 * * 1-5", "every 10 minutes from 09:00 to 17:59 on Monday to Friday"),
        ("5 4 * * sun", "at 04:05 on Sunday"),
        ("5 4 * * 7", "at 04:05 on Sunday"),
        ("0 12 * * 1,3", "at 12:00 on Monday and Wednesday"),
        ("30 2 1 1 *", "on the 1st of the month at 02:30 in January"),
        ("@hourly", "every hour on the hour"),
        ("@daily", "every day at 00:00"),
        ("@midnight", "every day at 00:00"),
        ("@weekly", "at 00:00 on Sunday"),
        ("@monthly", "on the 1st of the month at 00:00"),
        ("@yearly", "on the 1st of the month at 00:00 in January"),
        ("0 0 13 * 5", "on the 13th of the month and on Friday at 00:00"),
    ],
)
def test_common_cron_forms_read_as_words(expression: str, words: str) -> None:
    assert cron_in_words(expression) == words


@pytest.mark.parametrize("expression", ["7,19 * * * *", "0 0 */2 * 1", "not a cron"])
def test_forms_without_words_are_shown_verbatim(expression: str) -> None:
    assert cron_in_words(expression) is None
    schedule = Schedule(cron_expression=expression, timezone="Europe/Berlin")
    assert schedule_in_words(schedule) == f"cron '{expression}' Europe/Berlin"


def test_a_cron_names_its_time_zone() -> None:
    berlin = Schedule(cron_expression="0 3 * * *", timezone="Europe/Berlin")
    assert schedule_in_words(berlin) == "every day at 03:00 Europe/Berlin"
    assert schedule_in_words(Schedule(cron_expression="0 3 * * *")) == "every day at 03:00 UTC"


@pytest.mark.parametrize(
    ("seconds", "offset", "words"),
    [
        (1, 0.0, "every second"),
        (6, 0.0, "every 6 seconds"),
        (90, 0.0, "every 90 seconds"),
        (300, 0.0, "every 5 minutes"),
        (3600, 0.0, "every hour"),
        (7200, 30.0, "every 2 hours, 30 s into each"),
        (86400, 0.0, "every day"),
        (172800, 0.0, "every 2 days"),
    ],
)
def test_intervals_read_as_words(seconds: int, offset: float, words: str) -> None:
    assert interval_in_words(seconds, offset) == words
    schedule = Schedule(interval_seconds=seconds, offset_seconds=offset)
    assert schedule_in_words(schedule) == words  # an interval ignores the time zone
