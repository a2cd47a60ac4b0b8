"""A schedule's active window against a real nats-server: the ticker starts firing at the
window's start, stops at its end, and catches up nothing from before the start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from contracts import Schedule, TaskDue
from natsio import NatsConnection
from tests.integration.ticker.helpers import (
    dues,
    early_in_a_second,
    publish,
    registered,
    seconds,
    skips,
)
from tests.support import eventually
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration


async def test_a_window_starts_and_stops_the_fires(
    js: JetStreamContext, stream: StreamInfo, connection: NatsConnection
) -> None:
    now = await early_in_a_second()
    start, end = now + timedelta(seconds=3), now + timedelta(seconds=6)
    # Registered a minute before: the fires between then and the start are not missed ones.
    window = Schedule(
        interval_seconds=1,
        overlap="allow",
        catchup_window_seconds=3600,
        start_at=start,
        end_at=end,
    )
    await publish(js, registered("window.task", window, occurred_at=now - timedelta(minutes=1)))
    async with Ticker(TickerSettings(connection=connection)):
        assert await dues(js, "window.task") == [], "nothing before the start"
        fired = await eventually(
            lambda: _at_least(js, 3), within=10, message="the fires inside the window"
        )
        # Past the end and then some: nothing more.
        await eventually(lambda: _past(end + timedelta(seconds=1.5)), within=10)
        after = await dues(js, "window.task")
    assert [d.scheduled_for for d in after] == seconds(start, 3)
    assert [d.trigger for d in after] == ["schedule"] * 3
    assert fired == after[:3]
    assert await skips(js, "window.task") == [], "no fire outside the window is recorded"


async def _at_least(js: JetStreamContext, count: int) -> list[TaskDue] | None:
    found = await dues(js, "window.task")
    return found if len(found) >= count else None


def _past(instant: datetime) -> bool:
    return datetime.now(UTC) >= instant
