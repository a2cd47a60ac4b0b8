"""A cluster losing a node: what the services keep at the stream's replicas, and services
starting while the stream elects a new leader (issue 17)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from contracts import STREAM_NAME
from contracts.queries import CHECKPOINT_BUCKET, TASK_STATE_BUCKET
from dvp_scheduler.natsserver import BinaryNatsCluster
from natsio import NatsConnection
from natsio.provision import prepare_stream
from projector import Projector, ProjectorSettings
from tests.integration.projector.test_projector import publish, scenario
from tests.support import eventually
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration

BUCKET_STREAMS = (f"KV_{TASK_STATE_BUCKET}", f"OBJ_{CHECKPOINT_BUCKET}")


async def _replicas(js: JetStreamContext, stream: str) -> int:
    return (await js.stream_info(stream)).config.num_replicas or 0


async def _leader(js: JetStreamContext, stream: str) -> int:
    """The index of the node that leads ``stream`` (nodes are named n1, n2, n3)."""
    info = await js.stream_info(stream)
    assert info.cluster is not None
    assert info.cluster.leader is not None
    return int(info.cluster.leader.removeprefix("n")) - 1


async def test_init_keeps_the_projectors_buckets_at_the_streams_replicas(
    cluster_nc: Client,
) -> None:
    js = cluster_nc.jetstream()
    # cluster_nc ran init at three replicas on an empty cluster: the buckets are made too.
    assert [await _replicas(js, name) for name in BUCKET_STREAMS] == [3, 3]
    # Buckets left at one replica by an earlier version are moved up by init.
    for name in BUCKET_STREAMS:
        info = await js.stream_info(name)
        await js.delete_stream(name)
        await js.add_stream(info.config.evolve(num_replicas=1))
    done = await prepare_stream(js, replicas=3)
    assert [await _replicas(js, name) for name in BUCKET_STREAMS] == [3, 3]
    assert f"updated bucket stream KV_{TASK_STATE_BUCKET} (3 replica(s))" in done


async def test_a_projector_makes_its_buckets_at_the_streams_replicas(
    cluster_nc: Client, cluster_connection: NatsConnection
) -> None:
    js = cluster_nc.jetstream()
    for name in BUCKET_STREAMS:
        await js.delete_stream(name)  # as before init made them
    last = await publish(js, scenario())
    settings = ProjectorSettings(connection=cluster_connection, checkpoint_interval=0.1)
    async with Projector(settings) as projector:
        await eventually(lambda: projector.sequence >= last, within=10, message="caught up")
    assert [await _replicas(js, name) for name in BUCKET_STREAMS] == [3, 3]


async def test_a_projector_resumes_from_its_checkpoint_with_a_node_down(
    cluster: BinaryNatsCluster, cluster_nc: Client, cluster_connection: NatsConnection
) -> None:
    js = cluster_nc.jetstream()
    last = await publish(js, scenario())
    settings = ProjectorSettings(connection=cluster_connection, checkpoint_interval=0.1)
    async with Projector(settings) as first:
        await eventually(lambda: first.sequence >= last, within=10, message="caught up")
    # The checkpoint's bucket leader goes down: its two other replicas still serve it.
    cluster.kill_node(await _leader(js, f"OBJ_{CHECKPOINT_BUCKET}"))
    async with asyncio.timeout(40), Projector(settings) as second:
        assert second.resumed_from == last
        assert second.state.tasks == first.state.tasks


@pytest.mark.parametrize("service", ["projector", "ticker"])
async def test_a_service_started_during_a_stream_leader_election_waits_for_it(
    service: str,
    cluster: BinaryNatsCluster,
    cluster_nc: Client,
    cluster_connection: NatsConnection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    js = cluster_nc.jetstream()
    await publish(js, scenario())
    leader = await _leader(js, STREAM_NAME)
    cluster.kill_node(leader)  # the stream's API is silent until the others elect a leader
    started = asyncio.get_running_loop().time()
    caplog.set_level(logging.WARNING)
    if service == "projector":
        instance: Projector | Ticker = Projector(ProjectorSettings(connection=cluster_connection))
    else:
        instance = Ticker(TickerSettings(connection=cluster_connection))
    async with asyncio.timeout(60), instance:
        took = asyncio.get_running_loop().time() - started
    new_leader = await _leader(js, STREAM_NAME)
    assert new_leader != leader
    waited = [r.getMessage() for r in caplog.records if "JetStream did not answer" in r.message]
    # Either it had to wait (and said for what), or the election was over before it asked.
    assert waited or took < 2, (took, caplog.text)
