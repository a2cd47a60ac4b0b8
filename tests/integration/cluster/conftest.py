"""Fixtures: one three-node nats-server cluster per test module, and a fresh stream at three
replicas per test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from contracts import STREAM_NAME
from contracts.queries import CHECKPOINT_BUCKET, TASK_STATE_BUCKET
from dvp_scheduler.natsserver import BinaryNatsCluster
from natsio import NatsConnection
from natsio.provision import prepare_stream

READY_SECONDS = 30.0


async def js_ready(urls: list[str], within: float = READY_SECONDS) -> None:
    """Wait until the cluster's JetStream answers (its meta leader is elected)."""
    nc = await nats.connect(urls, max_reconnect_attempts=-1)
    try:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            try:
                await nc.jetstream().account_info()
                return
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await nc.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[BinaryNatsCluster]:
    """Three nodes on loopback, shared by the module's tests (each restarts what it kills)."""
    with BinaryNatsCluster(3) as started:
        asyncio.run(js_ready(started.urls))
        yield started


@pytest.fixture
async def cluster_nc(cluster: BinaryNatsCluster) -> AsyncIterator[Client]:
    """A client of the cluster (any node), with the stream made anew at three replicas and
    the projector's buckets removed."""
    for index in range(cluster.size):
        cluster.restart_node(index)  # a test that failed may have left one down
    await js_ready(cluster.urls)
    nc = await nats.connect(cluster.urls, max_reconnect_attempts=-1)
    try:
        js = nc.jetstream()
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(STREAM_NAME)
        with contextlib.suppress(NotFoundError):
            await js.delete_key_value(TASK_STATE_BUCKET)
        with contextlib.suppress(NotFoundError):
            await js.delete_object_store(CHECKPOINT_BUCKET)
        await _prepare(js)
        yield nc
    finally:
        await nc.close()


async def _prepare(js: JetStreamContext) -> None:
    """Init at three replicas, once every node is known to the meta leader (until then the
    server answers "no suitable peers for placement")."""
    deadline = asyncio.get_running_loop().time() + READY_SECONDS
    while True:
        try:
            await prepare_stream(js, replicas=3)
            return
        except (APIError, TimeoutError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.3)


@pytest.fixture
def cluster_connection(cluster: BinaryNatsCluster) -> NatsConnection:
    """Connection settings for services under test: every node, so they fail over."""
    return NatsConnection(url=cluster.url, name="under-test")
