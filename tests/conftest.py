"""Fixtures: a real nats-server with JetStream per test, a client, and the dvp stream."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from hypothesis import settings
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from dvp_scheduler.natsserver import BinaryNatsServer, NatsServer
from natsio import stream_config

# Wall-clock deadlines per example make property tests flaky on a loaded 2-core CI machine.
settings.register_profile("dvp", deadline=None)
settings.load_profile("dvp")


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A fresh nats-server with JetStream on a free loopback port and an empty temp store.

    With ``DVP_TEST_DOCKER=1`` and a Docker engine present, a container is used instead.
    """
    server: NatsServer
    if os.environ.get("DVP_TEST_DOCKER") == "1":
        from dvp_scheduler.natsserver.docker import DockerNatsServer, docker_available

        if not docker_available():
            pytest.skip("DVP_TEST_DOCKER=1 but no Docker engine answers")
        server = DockerNatsServer().start()
    else:
        server = BinaryNatsServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A client connected to the test server; closed after the test."""
    client = await nats.connect(nats_server.url, max_reconnect_attempts=0)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    """The JetStream context of `nc`."""
    return nc.jetstream()


@pytest.fixture
async def stream(js: JetStreamContext) -> StreamInfo:
    """The dvp-scheduler stream, created fresh on the test's own server."""
    return await js.add_stream(stream_config())
