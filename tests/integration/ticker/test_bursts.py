"""Bursts: thousands of fires at one instant (issue 19), against a real nats-server.

Every task here fires every two seconds at offset 0, so each even second is a burst of
`BURST` fires that the ticker decides ahead and writes at once. The guarantees are those of
any fire: one ``TaskDue`` per fire whatever the number of tickers, a decision that holds only
if nothing about the task reached the stream after it was taken, and nothing lost or doubled
across a stop in the middle of a burst.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import defaultdict
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from contracts import (
    STREAM_NAME,
    Schedule,
    TaskDue,
    TaskPaused,
    TaskSkipped,
    encode,
    event_headers,
)
from contracts import event_subject as subject_of
from contracts.subjects import PREFIX
from natsio import NatsConnection
from tests.integration.ticker.helpers import (
    TENANT,
    covered_fires,
    read_with_timestamps,
    registered,
    ticker_process,
)
from tests.support import eventually
from ticker import Ticker, TickerSettings
from ticker import _firing as firing

pytestmark = pytest.mark.integration

BURST = 2000
PERIOD = 2
EVERY_TWO_SECONDS = Schedule(interval_seconds=PERIOD, offset_seconds=0, overlap="allow")
ALL_DUES = f"{PREFIX}.{TENANT}.due.>"


def task_ids() -> list[str]:
    return [f"burst.t{n:04d}" for n in range(BURST)]


async def register_all(js: JetStreamContext) -> None:
    now = datetime.now(UTC)
    await asyncio.gather(
        *(
            js.publish(subject_of(event), encode(event), headers=event_headers(event))
            for event in (
                registered(task, EVERY_TWO_SECONDS, occurred_at=now) for task in task_ids()
            )
        )
    )


async def dues_by_task(js: JetStreamContext) -> dict[str, list[TaskDue]]:
    found: dict[str, list[TaskDue]] = defaultdict(list)
    for event, _ in await read_with_timestamps(js, ALL_DUES):
        if isinstance(event, TaskDue):
            found[event.task_id].append(event)
    return found


def full_bursts(found: dict[str, list[TaskDue]]) -> list[datetime]:
    """The fire instants at which every task has an on-time ``TaskDue``."""
    per_instant: dict[datetime, int] = defaultdict(int)
    for events in found.values():
        for event in events:
            if event.trigger == "schedule" and event.fire_at is not None:
                per_instant[event.fire_at] += 1
    return sorted(at for at, count in per_instant.items() if count == BURST)


def assert_once_each_without_gap(found: dict[str, list[TaskDue]]) -> None:
    """Per task: the fires its events stand for (a catch-up for all it coalesced) are every
    `PERIOD` seconds, none twice, none missing, and every execution id is distinct."""
    assert sorted(found) == task_ids()
    for task, events in found.items():
        fires = covered_fires(events)
        expected = [fires[0] + timedelta(seconds=PERIOD * k) for k in range(len(fires))]
        assert fires == expected, task
        assert len({event.execution_id for event in events}) == len(events), task


async def wait_for_bursts(js: JetStreamContext, count: int, within: float) -> list[datetime]:
    bursts: list[datetime] = []

    async def enough() -> bool:
        bursts[:] = full_bursts(await dues_by_task(js))
        return len(bursts) >= count

    await eventually(enough, within=within, message=f"{count} full bursts of {BURST} fires")
    return bursts


@pytest.mark.parametrize(
    "record_as_answered_up_to",
    [BURST, 0],
    ids=["recorded answer by answer", "recorded once all are answered (a herd)"],
)
async def test_three_tickers_through_bursts_of_2000_fires_give_one_due_per_fire(
    js: JetStreamContext,
    stream: StreamInfo,
    connection: NatsConnection,
    monkeypatch: pytest.MonkeyPatch,
    record_as_answered_up_to: int,
) -> None:
    monkeypatch.setattr(firing, "_RECORD_AS_ANSWERED_UP_TO", record_as_answered_up_to)
    await register_all(js)
    async with AsyncExitStack() as stack:
        tickers = [
            await stack.enter_async_context(Ticker(TickerSettings(connection=connection)))
            for _ in range(3)
        ]
        await wait_for_bursts(js, 3, within=30)
    found = await dues_by_task(js)
    assert_once_each_without_gap(found)
    total = sum(len(events) for events in found.values())
    assert sum(t.stats.due_published for t in tickers) == total
    assert sum(t.stats.publish_errors for t in tickers) == 0


async def test_a_pause_stored_just_before_a_burst_is_honoured_by_it(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    await register_all(js)
    paused_task = task_ids()[BURST // 2]
    async with Ticker(TickerSettings(connection=connection)):
        last = (await wait_for_bursts(js, 1, within=20))[-1]
        # 40 ms before the next burst: the ticker decided that burst already, with a fire for
        # the task; the pause reaches the stream before the burst does.
        burst_at = last + timedelta(seconds=PERIOD)
        while burst_at.timestamp() - time.time() < 0.5:
            burst_at += timedelta(seconds=PERIOD)
        await asyncio.sleep(burst_at.timestamp() - 0.04 - time.time())
        pause = TaskPaused(tenant_id=TENANT, task_id=paused_task, occurred_at=datetime.now(UTC))
        await js.publish(subject_of(pause), encode(pause), headers=event_headers(pause))
        assert time.time() < burst_at.timestamp(), "the pause was late; the test proves nothing"

        async def burst_done() -> bool:
            found = await dues_by_task(js)
            return sum(1 for events in found.values() if events[-1].fire_at == burst_at) >= (
                BURST - 1
            )

        await eventually(burst_done, within=10, message="the burst after the pause")
    found = await dues_by_task(js)
    assert all(
        event.fire_at is not None and event.fire_at < burst_at for event in found[paused_task]
    )
    skipped = [
        event
        for event, _ in await read_with_timestamps(js, f"{PREFIX}.{TENANT}.skipped.{paused_task}")
        if isinstance(event, TaskSkipped)
    ]
    assert [event.scheduled_for for event in skipped][:1] == [burst_at]


async def test_sigterm_in_the_middle_of_a_burst_loses_and_doubles_no_fire(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    await register_all(js)
    with ticker_process(connection.url) as first:
        last = (await wait_for_bursts(js, 1, within=30))[-1]
        burst_at = last + timedelta(seconds=PERIOD)
        while burst_at.timestamp() - time.time() < 0.3:
            burst_at += timedelta(seconds=PERIOD)
        await asyncio.sleep(burst_at.timestamp() + 0.005 - time.time())
        first.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        exit_code = await asyncio.to_thread(first.wait, 15)
        stopped_after = time.monotonic() - stopping
    assert exit_code == 0
    grace = TickerSettings().grace_seconds
    assert stopped_after < grace + 2, f"stopped {stopped_after:.1f}s after SIGTERM"
    with ticker_process(connection.url):
        await eventually(
            lambda: _bursts_after(js, burst_at, 2), within=30, message="two bursts after"
        )
    assert_once_each_without_gap(await dues_by_task(js))


async def _bursts_after(js: JetStreamContext, instant: datetime, count: int) -> bool:
    return len([at for at in full_bursts(await dues_by_task(js)) if at > instant]) >= count


async def test_a_burst_to_tasks_last_heard_of_long_ago_has_their_blocks_read_just_before_it(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection, nc: Client
) -> None:
    """The registrations (sequences 1 to 2,000) are followed by 12,000 newer messages, so the
    server may long have dropped their blocks from memory: the ticker asks for one message of
    each thousand just before the burst, so that the burst's guards find the blocks loaded."""
    await register_all(js)
    filler = TaskSkipped(
        tenant_id=TENANT,
        task_id="filler",
        occurred_at=datetime.now(UTC),
        scheduled_for=datetime.now(UTC),
        reason="paused",
    )
    await asyncio.gather(*(js.publish(subject_of(filler), encode(filler)) for _ in range(12_000)))
    seen: list[int | None] = []  # in the order the server passed them on: a sequence asked
    # for, or None for a TaskDue published (both come from the ticker's one connection)

    async def on_request(msg: Msg) -> None:
        seen.append(json.loads(msg.data)["seq"])

    async def on_due(msg: Msg) -> None:
        seen.append(None)

    watches = [
        await nc.subscribe(f"$JS.API.STREAM.MSG.GET.{STREAM_NAME}", cb=on_request),
        await nc.subscribe(ALL_DUES, cb=on_due),
    ]
    try:
        async with Ticker(TickerSettings(connection=connection)) as ticker:
            await wait_for_bursts(js, 1, within=30)
    finally:
        for watch in watches:
            await watch.unsubscribe()
    asked = [seq for seq in seen if seq is not None]
    assert sorted(asked) == [1, 1000, 2000]  # one per thousand, only old ones
    assert seen[: len(asked)] == asked, "a TaskDue was published before the blocks were asked for"
    assert ticker.stats.blocks_touched == 3
