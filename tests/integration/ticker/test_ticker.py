"""The ticker against a real nats-server, with the stream as the witness (issue 3)."""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from contracts import (
    EventKind,
    Schedule,
    TaskDue,
    TaskPaused,
    TaskResumed,
    TaskSucceeded,
    TaskUnregistered,
    execution_id_for_fire,
    subject_filter,
)
from natsio import NatsConnection
from tests.integration.ticker.helpers import (
    TENANT,
    covered_fires,
    dues,
    early_in_a_second,
    publish,
    read_with_timestamps,
    registered,
    retry_of,
    seconds,
    skips,
    ticker_process,
)
from tests.support import eventually
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]
EVERY_SECOND = Schedule(interval_seconds=1, overlap="allow")


async def test_a_one_second_task_fires_every_second_with_one_due_per_fire(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    await publish(js, registered("every.second", EVERY_SECOND))
    async with Ticker(TickerSettings(connection=connection)):
        await eventually(lambda: _count(js, "every.second", 4), within=8, message="four fires")
    events = await read_with_timestamps(js, subject_filter(TENANT, EventKind.DUE, "every.second"))
    fires = [event.scheduled_for for event, _ in events if isinstance(event, TaskDue)]
    assert len(fires) >= 4
    assert fires == seconds(fires[0], len(fires))  # every second, once, no gap
    for event, stored_at in events:
        assert isinstance(event, TaskDue)
        assert event.trigger == "schedule"
        assert event.execution_id == execution_id_for_fire(TENANT, "every.second", event.fire_at)
        assert timedelta(0) <= stored_at - event.scheduled_for < timedelta(milliseconds=500)


async def test_three_tickers_at_once_give_exactly_one_due_per_fire_and_no_gap(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    tasks = [f"shared.task-{n}" for n in range(10)]
    for task in tasks:
        await publish(js, registered(task, EVERY_SECOND))
    async with AsyncExitStack() as stack:
        tickers = [
            await stack.enter_async_context(Ticker(TickerSettings(connection=connection)))
            for _ in range(3)
        ]

        async def enough() -> bool:
            return all([await _count(js, task, 3) for task in tasks])

        await eventually(enough, within=10, message="three fires of each of ten tasks")
    total = 0
    for task in tasks:
        fires = [event.scheduled_for for event in await dues(js, task)]
        assert fires == seconds(fires[0], len(fires)), task
        assert len({execution_id_for_fire(TENANT, task, f) for f in fires}) == len(fires)
        total += len(fires)
    assert total >= 30
    assert sum(t.stats.due_published for t in tickers) == total
    assert not await skips(js, tasks[0])


async def test_a_killed_ticker_process_restarts_missing_and_duplicating_nothing(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    schedule = Schedule(interval_seconds=1, overlap="allow", catchup_window_seconds=60)
    await publish(js, registered("survives.kill", schedule))
    with ticker_process(connection.url) as first:
        await eventually(lambda: _count(js, "survives.kill", 2), within=15, message="fires")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    before = len(await dues(js, "survives.kill"))
    await asyncio.sleep(2.2)  # deliberate downtime: at least two fire instants pass
    with ticker_process(connection.url):
        await eventually(
            lambda: _count(js, "survives.kill", before + 3), within=15, message="fires again"
        )
    events = await dues(js, "survives.kill")
    fires = covered_fires(events)
    assert fires == seconds(fires[0], len(fires))  # nothing missed, nothing twice
    # A slow first start may make its first fire a catch-up too; the restart makes exactly one.
    assert [e.trigger for e in events[before:]].count("catchup") == 1
    assert len({e.execution_id for e in events}) == len(events)


async def test_a_ticker_down_for_five_fires_publishes_one_catchup(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    now = await early_in_a_second()
    last_fire = now - timedelta(seconds=5)
    await _seed_last_fire(js, "catches.up", EVERY_SECOND, last_fire)
    async with Ticker(TickerSettings(connection=connection)):
        await eventually(lambda: _count(js, "catches.up", 3), within=8, message="fires")
    events = await dues(js, "catches.up")
    catchup = events[1]
    assert catchup.trigger == "catchup"
    assert catchup.missed_fires == 5
    assert catchup.fire_at == now
    assert catchup.execution_id == execution_id_for_fire(TENANT, "catches.up", now)
    assert events[2].trigger == "schedule"
    assert events[2].fire_at == now + timedelta(seconds=1)


async def test_fires_missed_outside_the_window_are_recorded_as_skipped(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    now = await early_in_a_second()
    schedule = Schedule(interval_seconds=1, overlap="allow", catchup_window_seconds=0)
    await _seed_last_fire(js, "too.late", schedule, now - timedelta(seconds=5))
    async with Ticker(TickerSettings(connection=connection)):
        await eventually(lambda: _count(js, "too.late", 2), within=8, message="next fire")
    [missed] = await skips(js, "too.late")
    assert missed.reason == "missed"
    assert missed.missed_fires == 5
    assert missed.scheduled_for == now
    events = await dues(js, "too.late")
    assert [e.trigger for e in events] == ["schedule", "schedule"]
    assert events[1].fire_at == now + timedelta(seconds=1)


async def test_a_fire_overlapping_a_running_execution_is_skipped_and_recorded(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    await publish(js, registered("slow.task", Schedule(interval_seconds=1)))
    async with Ticker(TickerSettings(connection=connection)):
        [first] = await eventually(lambda: dues(js, "slow.task"), within=5, message="a fire")
        [overlap] = await eventually(lambda: skips(js, "slow.task"), within=5, message="a skip")
        assert overlap.reason == "overlap"
        assert overlap.running_execution_id == first.execution_id
        assert overlap.scheduled_for == first.scheduled_for + timedelta(seconds=1)
        await publish(
            js,
            TaskSucceeded(
                tenant_id=TENANT,
                task_id="slow.task",
                occurred_at=datetime.now(UTC),
                execution_id=first.execution_id,
                attempt=1,
                worker="test-worker",
                duration_ms=1500,
            ),
        )
        await eventually(lambda: _count(js, "slow.task", 2), within=5, message="next fire")
    second = (await dues(js, "slow.task"))[1]
    skipped = {s.scheduled_for for s in await skips(js, "slow.task")}
    assert second.trigger == "schedule"
    assert second.scheduled_for not in skipped
    assert second.scheduled_for > overlap.scheduled_for


async def test_a_retry_due_while_no_ticker_runs_is_published_after_restart(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    await publish(js, registered("flaky.task", Schedule(cron_expression="0 0 1 1 *")))
    first = TaskDue(
        tenant_id=TENANT,
        task_id="flaky.task",
        occurred_at=datetime.now(UTC),
        execution_id="exec-1",
        attempt=1,
        trigger="manual",
        scheduled_for=datetime.now(UTC),
    )
    await publish(js, first)
    retry_at = datetime.now(UTC) + timedelta(seconds=1.5)
    async with Ticker(TickerSettings(connection=connection)) as ticker:
        await publish(js, retry_of(first, retry_at=retry_at))
        await eventually(lambda: ticker.stats.retries_held >= 1, within=5, message="held")
    await asyncio.sleep(max(0.0, (retry_at - datetime.now(UTC)).total_seconds()) + 0.5)
    assert len(await dues(js, "flaky.task")) == 1  # nobody was there at retry_at
    async with Ticker(TickerSettings(connection=connection)):
        await eventually(lambda: _count(js, "flaky.task", 2), within=5, message="the retry")
        second_retry_at = datetime.now(UTC) + timedelta(seconds=0.3)
        retried = (await dues(js, "flaky.task"))[1]
        await publish(js, retry_of(retried, retry_at=second_retry_at))
        await eventually(lambda: _count(js, "flaky.task", 3), within=5, message="on time")
    events = await read_with_timestamps(js, subject_filter(TENANT, EventKind.DUE, "flaky.task"))
    (_, _), (late, _), (on_time, stored_at) = events
    assert isinstance(late, TaskDue)
    assert isinstance(on_time, TaskDue)
    assert (late.trigger, late.execution_id, late.attempt) == ("retry", "exec-1", 2)
    assert late.scheduled_for == retry_at
    assert (on_time.trigger, on_time.execution_id, on_time.attempt) == ("retry", "exec-1", 3)
    assert timedelta(0) <= stored_at - second_retry_at < timedelta(milliseconds=500)


async def test_a_paused_tasks_fires_are_skipped_as_paused_and_resuming_fires_no_backlog(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    await publish(js, registered("paused.task", EVERY_SECOND))
    await publish(js, registered("witness.task", EVERY_SECOND))
    await publish(
        js, TaskPaused(tenant_id=TENANT, task_id="paused.task", occurred_at=datetime.now(UTC))
    )
    async with Ticker(TickerSettings(connection=connection)) as ticker:
        await eventually(lambda: _count(js, "witness.task", 3), within=8, message="witness")
        assert await dues(js, "paused.task") == []
        paused_skips = await skips(js, "paused.task")
        assert paused_skips, "every fire while paused is recorded"
        assert {skip.reason for skip in paused_skips} == {"paused"}
        await publish(
            js,
            TaskResumed(tenant_id=TENANT, task_id="paused.task", occurred_at=datetime.now(UTC)),
        )
        [first] = await eventually(lambda: dues(js, "paused.task"), within=5, message="resumed")
        await publish(
            js, TaskPaused(tenant_id=TENANT, task_id="paused.task", occurred_at=datetime.now(UTC))
        )
        paused = ticker.task_state(TENANT, "paused.task")
        await eventually(lambda: paused is not None and paused.paused, within=5, message="live")
        count = len(await dues(js, "paused.task"))
        await eventually(lambda: _count(js, "witness.task", 6), within=8, message="witness")
        assert len(await dues(js, "paused.task")) == count
    assert first.trigger == "schedule"
    assert first.missed_fires == 0


async def test_definitions_are_followed_live(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    async with Ticker(TickerSettings(connection=connection)) as ticker:
        assert ticker.task_count == 0
        await publish(js, registered("late.comer", EVERY_SECOND))
        await eventually(lambda: _count(js, "late.comer", 1), within=5, message="first fire")
        await publish(
            js,
            TaskUnregistered(
                tenant_id=TENANT, task_id="late.comer", occurred_at=datetime.now(UTC), plugin="t"
            ),
        )
        state = ticker.task_state(TENANT, "late.comer")
        await eventually(lambda: state is not None and state.schedule is None, within=5)
        count = len(await dues(js, "late.comer"))
        await asyncio.sleep(1.5)  # deliberate: a fire instant passes with the task gone
        assert len(await dues(js, "late.comer")) == count


async def _count(js: JetStreamContext, task_id: str, at_least: int) -> bool:
    return len(await dues(js, task_id)) >= at_least


async def _seed_last_fire(
    js: JetStreamContext, task_id: str, schedule: Schedule, last_fire: datetime
) -> None:
    """A task registered long ago whose last fire, by some earlier ticker, was ``last_fire``."""
    await publish(js, registered(task_id, schedule, occurred_at=last_fire - timedelta(seconds=30)))
    await publish(
        js,
        TaskDue(
            tenant_id=TENANT,
            task_id=task_id,
            occurred_at=last_fire,
            execution_id=execution_id_for_fire(TENANT, task_id, last_fire),
            attempt=1,
            trigger="schedule",
            scheduled_for=last_fire,
            fire_at=last_fire,
        ),
    )


async def test_a_bad_message_on_a_task_subject_does_not_stall_the_task(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    await publish(js, registered("noisy.task", EVERY_SECOND))
    await js.publish(subject_filter(TENANT, EventKind.DUE, "noisy.task"), b"not an event")
    async with Ticker(TickerSettings(connection=connection)) as ticker:
        await js.publish(subject_filter(TENANT, EventKind.STARTED, "noisy.task"), b"{}")
        await eventually(lambda: _count(js, "noisy.task", 2), within=6, message="fires")
        assert ticker.stats.bad_messages == 2
        assert ticker.stats.publish_errors == 0
