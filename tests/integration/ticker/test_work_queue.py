"""A ticker makes sure the tenant's executor consumer exists before its first TaskDue."""

from __future__ import annotations

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from contracts import STREAM_NAME, Schedule
from contracts.stream import executor_durable
from natsio import NatsConnection
from tests.integration.ticker.helpers import TENANT, publish, registered
from tests.support import eventually
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration


async def test_fires_wait_in_the_executor_queue_even_before_any_executor_started(
    connection: NatsConnection, js: JetStreamContext, stream: StreamInfo
) -> None:
    await publish(js, registered("queue.every-second", Schedule(interval_seconds=1)))
    async with Ticker(TickerSettings(connection=connection)):
        consumer = await js.consumer_info(STREAM_NAME, executor_durable(TENANT))
        assert consumer.config.filter_subject == f"dvp.tasks.{TENANT}.due.>"

        async def queued() -> int:
            return (await js.consumer_info(STREAM_NAME, executor_durable(TENANT))).num_pending

        assert await eventually(queued, within=5, message="a TaskDue waiting for executors") >= 1
