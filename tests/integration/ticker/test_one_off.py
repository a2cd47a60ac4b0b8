"""``trigger --at`` against a real nats-server: a one-off run waits in the stream, survives a
ticker restart before its instant, fires once with two tickers, shows in ``next``, and can be
cancelled before it fires."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from contracts import EventKind, Schedule, ScheduledRunsChanged, subject_filter
from contracts.errors import SchedulerError
from dvp_scheduler import operations
from dvp_scheduler.natsserver import NatsServer
from natsio import NatsConnection
from tests.integration.ticker.helpers import TENANT, dues, publish, registered
from tests.support import cli, eventually, read_events
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration

NEVER = Schedule(cron_expression="0 0 1 1 *")  # its own fires stay out of the way


async def waiting(js: JetStreamContext, task_id: str) -> tuple[str, ...]:
    runs, _ = await operations.scheduled_runs(js, TENANT, task_id)
    return tuple(run.run_id for run in runs)


async def next_listing(server: NatsServer, task_id: str) -> str:
    code, out, err = await cli(server, "next", task_id, "--tenant", TENANT, "-n", "2")
    assert code == 0, err
    return out


async def test_a_one_off_run_survives_a_ticker_restart_and_fires_once_with_two_tickers(
    nats_server: NatsServer,
    nc: Client,
    js: JetStreamContext,
    stream: StreamInfo,
    connection: NatsConnection,
) -> None:
    await publish(js, registered("once.task", NEVER))
    # Room for a `next` subprocess and a ticker's start and stop before the instant, even on
    # a loaded machine (checked below: otherwise the first ticker proves nothing).
    at = (datetime.now(UTC) + timedelta(seconds=10)).replace(microsecond=0)
    answer = await operations.schedule_run(
        nc, TENANT, "once.task", at=at, actor="ops@test", note="after the import"
    )
    [run_id] = await waiting(js, "once.task")
    assert answer.startswith(f"scheduled a one-off run of {TENANT}/once.task at ")
    assert run_id in answer
    listing = await next_listing(nats_server, "once.task")
    assert (
        listing.splitlines()[0] == f"{at.isoformat().replace('+00:00', 'Z')}  one-off run {run_id}"
    )
    async with Ticker(TickerSettings(connection=connection)):
        await asyncio.sleep(0.5)  # a ticker that knew of it, stopped before its instant
    assert datetime.now(UTC) < at, "the machine was too slow to stop the ticker before the run"
    assert await dues(js, "once.task") == []
    async with AsyncExitStack() as stack:
        tickers = [
            await stack.enter_async_context(Ticker(TickerSettings(connection=connection)))
            for _ in range(2)
        ]

        async def fired() -> bool:
            return bool(await dues(js, "once.task")) and await waiting(js, "once.task") == ()

        await eventually(fired, within=15, message="the one-off run fired and left its list")
        await asyncio.sleep(1.0)  # room for a second TaskDue, which must not come
        [due] = await dues(js, "once.task")
        assert sum(t.stats.runs_taken_off for t in tickers) == 1
        assert sum(t.stats.lost_closed for t in tickers) == 0
    assert (due.execution_id, due.trigger, due.scheduled_for) == (run_id, "once", at)
    assert (due.attempt, due.actor) == (1, "ops@test")
    assert timedelta(0) <= due.occurred_at - at < timedelta(seconds=2)
    changes = [
        e
        for e in await read_events(js, subject_filter(TENANT, EventKind.SCHEDULED, "once.task"))
        if isinstance(e, ScheduledRunsChanged)
    ]
    assert [(c.change, c.run_id) for c in changes] == [("scheduled", run_id), ("fired", run_id)]


async def test_a_one_off_run_cancelled_before_its_instant_never_fires(
    nc: Client, js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    await publish(js, registered("once.cancelled", NEVER))
    at = datetime.now(UTC) + timedelta(seconds=3)
    async with Ticker(TickerSettings(connection=connection)):
        await operations.schedule_run(nc, TENANT, "once.cancelled", at=at, actor="ops@test")
        [run_id] = await waiting(js, "once.cancelled")
        with pytest.raises(SchedulerError, match=r"that has not fired yet: .* --scheduled"):
            await operations.cancel(nc, run_id, None, actor="ops@test", wait_seconds=0)
        answer = await operations.cancel_scheduled_run(
            nc, run_id, None, actor="ops@test", note="not needed"
        )
        assert answer.startswith(f"cancelled the one-off run {run_id} of {TENANT}/once.cancelled")
        past = at + timedelta(seconds=1.5) - datetime.now(UTC)
        await asyncio.sleep(past.total_seconds())  # past its instant: the absence is the point
        assert await dues(js, "once.cancelled") == []
    with pytest.raises(SchedulerError, match=f"no one-off run {run_id} waits"):
        await operations.cancel_scheduled_run(nc, run_id, TENANT, actor="ops@test")
    with pytest.raises(SchedulerError, match="is not in the future"):
        await operations.schedule_run(
            nc, TENANT, "once.cancelled", at=datetime.now(UTC), actor="ops@test"
        )
