"""The ticker's parts without a broker: the follower's fold, its waiters and its count of
tasks; when the firing part puts a task on its heap; the service's settings and errors.

(The events come from the projector's tests' builders: plain contracts events.)"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, cast

import msgspec
import pytest

from contracts import decode, encode, event_subject
from natsio.errors import ServiceStartupError
from natsio.publish import AckedPublisher, PublishAck
from tests.unit.projector import events
from tests.unit.projector.events import T0, TASK, TENANT
from ticker import Ticker, TickerSettings
from ticker._consumers import ExecutorConsumers
from ticker._firing import FirePublisher, LogBudget
from ticker._follower import Follower
from ticker._stats import TickerStats
from ticker.errors import TickerError, TickerStartupError

KEY = (TENANT, TASK)


@dataclass
class _Message:
    """What the follower's reader hands over of a message."""

    seq: int
    data: bytes
    subject: str


def message(seq: int, data: bytes, *, subject: str = "") -> _Message:
    subject = subject or event_subject(decode(data))  # an event's own subject
    return _Message(seq, data, subject)


def registered(task: str = TASK) -> bytes:
    return encode(events.registered(task=task))


def paused() -> bytes:
    return encode(events.paused(T0))


async def feed(follower: Follower, msg: _Message) -> None:
    follower._on_message(msg.seq, msg.subject.encode(), msg.data)


async def test_the_follower_folds_events_counts_tasks_and_reports_timing_changes() -> None:
    stats = TickerStats()
    follower = Follower(stats, catch_up_seconds=1.0)
    changed: list[tuple[str, str]] = []
    follower._on_change = changed.append
    await feed(follower, message(1, registered()))
    await feed(follower, message(2, registered("other")))
    await feed(follower, message(3, paused()))
    assert stats.tasks == 2
    assert len(follower.states) == 2
    assert changed == [KEY, (TENANT, "other"), KEY]
    await feed(follower, message(3, paused()))  # applied already: no change
    assert changed == [KEY, (TENANT, "other"), KEY]
    assert follower.states[KEY].paused
    assert follower.states[KEY].last_seq == 3


async def test_a_message_that_is_no_event_still_moves_its_tasks_sequence() -> None:
    stats = TickerStats()
    follower = Follower(stats, catch_up_seconds=1.0)
    await feed(follower, message(7, b"not an event", subject=f"dvp.tasks.{TENANT}.due.{TASK}"))
    assert stats.bad_messages == 1
    assert stats.tasks == 1
    assert follower.states[KEY].last_seq == 7
    await feed(follower, message(8, b"{}", subject="not.a.task.subject"))
    assert stats.bad_messages == 2
    assert stats.tasks == 1


async def test_caught_up_waits_for_the_sequence_and_gives_up_in_time() -> None:
    follower = Follower(TickerStats(), catch_up_seconds=0.05)
    await feed(follower, message(1, registered()))
    assert await follower.caught_up(KEY, 1)
    waiting = asyncio.create_task(follower.caught_up(KEY, 2))
    await asyncio.sleep(0)
    await feed(follower, message(2, paused()))
    assert await waiting
    assert not await follower.caught_up(KEY, 5)


def offline_firing(follower: Follower, stats: TickerStats) -> FirePublisher:
    """A firing part with no connection: for what it decides and records, not what it sends."""
    return FirePublisher(
        cast(AckedPublisher, None),
        follower,
        stats,
        TickerSettings(),
        spawn=_no_spawn,
        consumers=cast(ExecutorConsumers, None),
    )


async def test_the_firing_part_schedules_changed_tasks_once_live_and_not_busy() -> None:
    stats = TickerStats()
    follower = Follower(stats, catch_up_seconds=1.0)
    firing = offline_firing(follower, stats)
    follower._on_change = firing.task_changed
    await feed(follower, message(1, registered()))
    assert firing.scheduled == 0  # not live yet: schedule_all does it
    await firing.schedule_all()
    assert firing.scheduled == 1
    await feed(follower, message(2, registered("other")))
    assert firing.scheduled == 2
    firing._heap.discard(KEY)
    firing._busy.add(KEY)
    await feed(follower, message(3, paused()))
    assert firing.scheduled == 1  # a busy task goes back when its fire ends


def _no_spawn(coroutine: Any) -> None:
    coroutine.close()


def test_the_ticker_knows_no_task_before_it_starts() -> None:
    ticker = Ticker()
    assert ticker.task_count == 0
    assert ticker.stats.tasks == 0
    assert ticker.task_state(TENANT, TASK) is None


def test_the_ticker_gives_publishes_five_seconds_of_grace_by_default() -> None:
    assert TickerSettings().grace_seconds == 5.0
    assert TickerSettings(grace_seconds=1.5).grace_seconds == 1.5


def test_a_start_up_timeout_is_a_service_start_up_error_and_a_timeout() -> None:
    error = TickerStartupError("too slow")
    assert isinstance(error, TickerError)
    assert isinstance(error, ServiceStartupError)
    assert isinstance(error, TimeoutError)


async def test_a_duplicate_fire_the_follower_has_read_past_does_not_reopen_its_execution() -> None:
    """Two tickers decide the same fire; the second's publish is a duplicate of the first's,
    and its answer may come after the follower read the execution's outcome (issue 17: the
    task was then skipped as overlapping an execution long ended)."""
    stats = TickerStats()
    follower = Follower(stats, catch_up_seconds=1.0)
    firing = offline_firing(follower, stats)
    fire = events.at(60)
    the_due = events.due(fire)
    await feed(follower, message(1, registered()))
    await feed(follower, message(2, encode(the_due)))
    await feed(follower, message(3, encode(events.succeeded(fire, events.at(61)))))
    state = follower.states[KEY]
    assert the_due.execution_id not in state.running
    firing._record(state, the_due, PublishAck(stream="DVP_TASKS", seq=2, duplicate=True))
    assert the_due.execution_id not in state.running
    assert stats.duplicates == 1


def test_the_log_budget_lets_so_many_lines_a_second_and_counts_the_rest() -> None:
    budget = LogBudget(per_second=3)
    assert [budget.allow(10.0 + n / 10) for n in range(5)] == [
        (True, 0),
        (True, 0),
        (True, 0),
        (False, 0),
        (False, 0),
    ]
    assert budget.allow(11.2) == (True, 2)  # the next second says what the last one held back
    assert budget.allow(11.3) == (True, 0)


async def test_a_ticker_behind_a_burst_logs_its_catch_ups_within_a_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dvp_scheduler.ticker")
    stats = TickerStats()
    follower = Follower(stats, catch_up_seconds=1.0)
    firing = offline_firing(follower, stats)
    await feed(follower, message(1, registered()))
    state = follower.states[KEY]
    for n in range(80):
        catchup = msgspec.structs.replace(events.due(events.at(60 + n)), trigger="catchup")
        firing._record(state, catchup, PublishAck(stream="DVP_TASKS", seq=2 + n))
    info = [r for r in caplog.records if r.levelno == logging.INFO]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert 1 <= len(info) <= 50  # all 80 within one second, or across a second's end
    assert len(info) + len(debug) >= 80
    assert stats.due_published == 80
