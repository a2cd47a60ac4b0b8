"""What the services say when they start and stop (issue 17): each logs its counters on stop,
and the projector says where it started reading."""

from __future__ import annotations

import logging

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from dvp_scheduler.natsserver import NatsServer
from natsio import NatsConnection
from projector import Projector, ProjectorSettings
from tests.integration.projector.test_projector import publish, scenario
from tests.support import eventually
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration


async def test_the_ticker_and_projector_log_their_counters_on_stop_and_where_they_started(
    js: JetStreamContext,
    stream: StreamInfo,
    nats_server: NatsServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    last = 0
    for _ in range(20):  # a backlog the reader is still folding when the start line is logged
        last = await publish(js, scenario())
    connection = NatsConnection(url=nats_server.url)
    caplog.set_level(logging.INFO)
    async with Projector(ProjectorSettings(connection=connection)) as projector:
        await eventually(lambda: projector.sequence >= last, message="caught up")
    async with Ticker(TickerSettings(connection=connection)):
        pass
    lines = [record.getMessage() for record in caplog.records]
    assert f"projector following DVP_TASKS from sequence 1 (stream at {last} when it started)" in (
        lines
    )
    stopped = [line for line in lines if " stopped: " in line]
    assert any(line.startswith(f"projector stopped: at sequence {last}, ") for line in stopped)
    assert any(
        line.startswith("ticker stopped: ") and "TaskDue published" in line for line in stopped
    )
