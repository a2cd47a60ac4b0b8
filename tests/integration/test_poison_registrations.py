"""Poison registrations in the stream, beside a healthy task: shown as invalid, never scheduled,
and every command and service keeps working for the rest (issue 16, part 2)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from contracts import STREAM_NAME, Schedule, TaskDue, TaskRegistered
from dvp_scheduler.cli import main
from dvp_scheduler.natsserver import NatsServer
from natsio import NatsConnection
from projector import replay
from projector.queries import ask_history, ask_status, ask_tasks
from tests.integration.projector.test_projector import caught_up, running
from tests.integration.ticker.helpers import TENANT, dues, publish, registered
from tests.poison import POISONS, registration_message
from tests.support import eventually, read_events
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration

HEALTHY = "healthy.every-second"


async def cli(url: str, *args: str) -> int:
    """The command line, off the event loop (it runs its own)."""
    return await asyncio.to_thread(main, [*args, "--tenant", TENANT, "--nats-url", url])


async def test_poison_registrations_are_invalid_and_the_rest_keeps_working(
    nats_server: NatsServer,
    nc: Client,
    reader: Client,
    js: JetStreamContext,
    stream: StreamInfo,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = nats_server.url
    await publish(js, registered(HEALTHY, Schedule(interval_seconds=1, overlap="allow")))
    now = datetime.now(UTC)
    for poison in POISONS:  # raw, as a buggy or hostile publisher would write them
        subject, body, headers = registration_message(TENANT, poison.task_id, now, poison.changes)
        await js.publish(subject, body, headers=headers)

    settings = TickerSettings(connection=NatsConnection(url=url, name="ticker-under-test"))
    async with running(nats_server) as projector, Ticker(settings) as ticker:
        # The ticker fires the healthy task, and knows the others are invalid.
        await eventually(lambda: _count_dues(js, 2), within=10, message="two healthy fires")
        assert ticker.stats.invalid_tasks == len(POISONS)
        assert ticker.stats.invalid_registrations == len(POISONS)
        for poison in POISONS:
            state = ticker.task_state(TENANT, poison.task_id)
            assert state is not None
            assert state.invalid_reason is not None
            assert poison.names in state.invalid_reason

        # The projector serves every row; the poison ones say why they are invalid.
        info = await js.stream_info(STREAM_NAME)
        await caught_up(nc, info.state.last_seq)
        rows = {row["task_id"]: row for row in await ask_tasks(nc) or []}
        assert rows[HEALTHY]["status"] in ("idle", "due", "running")
        assert rows[HEALTHY]["invalid_reason"] is None
        assert rows[HEALTHY]["next_fire_at"] is not None
        for poison in POISONS:
            row = rows[poison.task_id]
            assert row["status"] == "invalid"
            assert poison.names in row["invalid_reason"]
            assert row["next_fire_at"] is None
        status = await ask_status(nc)
        assert status is not None
        assert status.invalid_tasks == len(POISONS)
        assert projector.state.invalid_tasks == len(POISONS)
        assert await ask_history(nc, HEALTHY, tenant_id=TENANT)
        assert await ask_history(nc, POISONS[0].task_id, tenant_id=TENANT) == []

        # The command line: tasks, history, replay and next work; next refuses a poison task.
        capsys.readouterr()
        assert await cli(url, "tasks") == 0
        table = capsys.readouterr().out
        assert HEALTHY in table
        for poison in POISONS:
            [line] = [line for line in table.splitlines() if f" {poison.task_id} " in line]
            assert "invalid: " in line
        assert await cli(url, "history", HEALTHY) == 0
        assert "schedule" in capsys.readouterr().out
        assert await cli(url, "replay") == 0
        replayed = capsys.readouterr()
        assert "invalid: interval_seconds must be a positive whole number" in replayed.out
        assert HEALTHY in replayed.out
        assert await cli(url, "next", HEALTHY, "-n", "2") == 0
        assert len(capsys.readouterr().out.split()) == 2
        for poison in POISONS:
            assert await cli(url, "next", poison.task_id) == 2
            err = capsys.readouterr().err
            assert f"task {TENANT}/{poison.task_id} is invalid and never fires" in err
            assert poison.names in err

    # The ticker published nothing for the poison tasks: their registration is all there is.
    events = await read_events(js)
    for poison in POISONS:
        kinds = [type(e) for e in events if e.task_id == poison.task_id]
        assert kinds == [TaskRegistered]
    assert any(isinstance(e, TaskDue) for e in events if e.task_id == HEALTHY)
    replayed_state = await replay(reader)
    assert replayed_state.invalid_tasks == len(POISONS)


async def _count_dues(js: JetStreamContext, count: int) -> bool:
    return len(await dues(js, HEALTHY)) >= count
