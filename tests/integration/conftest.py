"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client

from dvp_scheduler.natsserver import NatsServer
from natsio import connect_for_reading


@pytest.fixture
async def reader(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A client to read streams with (what replay needs) connected to the test server; closed
    after."""
    client = await connect_for_reading(servers=nats_server.url, max_reconnect_attempts=0)
    try:
        yield client
    finally:
        await client.close()
