"""A ticker that loses its connection sends nothing while it is down: a fire decided then is
never stored late as if on time; the fires it missed are caught up after (issue 17)."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path

import nats
import pytest

from contracts import EventKind, Schedule, TaskDue, subject_filter
from dvp_scheduler.natsserver import BinaryNatsServer
from natsio import NatsConnection, stream_config
from tests.integration.ticker.helpers import TENANT, publish, read_with_timestamps, registered
from tests.support import eventually, free_port
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration

EVERY_SECOND = Schedule(interval_seconds=1, overlap="allow", catchup_window_seconds=600)


async def test_fires_during_a_broker_outage_become_one_catchup_never_late_schedule_fires(
    tmp_path: Path,
) -> None:
    server = BinaryNatsServer(port=free_port(), store_dir=tmp_path / "js").start()
    try:
        nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        js = nc.jetstream()
        await js.add_stream(stream_config())
        await publish(js, registered("outage.task", EVERY_SECOND))
        settings = TickerSettings(connection=NatsConnection(url=server.url))
        async with Ticker(settings) as ticker:
            await asyncio.sleep(2.5)
            server.stop(signal.SIGKILL)
            await asyncio.sleep(5)  # the ticker decides five fires it cannot send
            server.start()
            await eventually(lambda: nc.is_connected, within=15, message="reconnected")
            await asyncio.sleep(3)
        held = ticker.stats.held_disconnected
        stored = await read_with_timestamps(
            js, subject_filter(TENANT, EventKind.DUE, "outage.task")
        )
        await nc.close()
    finally:
        server.stop()
    dues = [(event, at) for event, at in stored if isinstance(event, TaskDue)]
    late = [
        (event.scheduled_for, at)
        for event, at in dues
        if event.trigger == "schedule" and at - event.scheduled_for > timedelta(seconds=1)
    ]
    assert late == []  # before: the fires of the outage were stored on reconnect as on time
    assert held > 0
    catchups = [event for event, _ in dues if event.trigger == "catchup"]
    assert len(catchups) == 1
    assert catchups[0].missed_fires >= 3
