"""On a replicated stream, a guarded publish that loses the race is refused with codes of its
own (10164, 10158 besides 10071): they are ordinary outcomes with several writers, never
failures (issue 17)."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack

import nats
import pytest
from nats.aio.client import Client
from nats.js.errors import APIError

from contracts import STREAM_NAME, Schedule
from dvp_scheduler.natsserver import BinaryNatsCluster
from natsio import NatsConnection
from natsio.errors import is_guard_refusal, winning_sequence
from tests.integration.ticker.helpers import dues, publish, registered
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration


async def _race(
    nc: Client, subject: str, last: int, message_id: str
) -> tuple[int, APIError | None]:
    headers = {"Nats-Expected-Last-Subject-Sequence": str(last), "Nats-Msg-Id": message_id}
    try:
        await nc.jetstream().publish(subject, b"{}", headers=headers)
    except APIError as error:
        return last, error
    return last, None


async def test_every_refusal_of_racing_guarded_publishes_is_a_lost_race(
    cluster: BinaryNatsCluster, cluster_nc: Client
) -> None:
    clients = [await nats.connect(cluster.node_url(i)) for i in range(cluster.size)]
    outcomes: list[tuple[int, APIError | None]] = []
    try:
        for round_ in range(40):
            subject = f"dvp.tasks.acme.due.race-{round_ % 4}"
            try:
                last = (await cluster_nc.jetstream().get_last_msg(STREAM_NAME, subject)).seq or 0
            except nats.js.errors.NotFoundError:
                last = 0
            same_decision = round_ % 2 == 0
            outcomes += await asyncio.gather(
                *(
                    _race(nc, subject, last, f"r{round_}" if same_decision else f"r{round_}-{n}")
                    for n, nc in enumerate(clients)
                )
            )
    finally:
        for nc in clients:
            await nc.close()
    refusals = [(last, error) for last, error in outcomes if error is not None]
    assert [error for _, error in refusals if not is_guard_refusal(error)] == []
    assert all(
        (winning_sequence(error) or 0) > last for last, error in refusals if error.err_code == 10071
    )
    # Replicated streams answer a race still in flight with 10164 or 10158 (the reason for
    # the test); 10071 when the winner had landed.
    codes = Counter(error.err_code for _, error in refusals)
    assert codes[10164] + codes[10158] > 0, codes


async def test_two_tickers_on_a_replicated_stream_race_without_publish_errors(
    cluster: BinaryNatsCluster, cluster_nc: Client
) -> None:
    js = cluster_nc.jetstream()
    tasks = [f"raced.task-{n}" for n in range(30)]
    every_second = Schedule(interval_seconds=1, overlap="allow")
    for task in tasks:
        await publish(js, registered(task, every_second))
    async with AsyncExitStack() as stack:
        tickers = [  # on two nodes, as in a deployment: their publishes meet at the leader
            await stack.enter_async_context(
                Ticker(TickerSettings(connection=NatsConnection(url=cluster.node_url(n))))
            )
            for n in range(2)
        ]
        await asyncio.sleep(8)
    conflicts = sum(t.stats.conflicts for t in tickers)
    published = sum(t.stats.due_published for t in tickers)
    assert [t.stats.publish_errors for t in tickers] == [0, 0]
    assert conflicts + sum(t.stats.duplicates for t in tickers) > 0  # they did race
    fires = [event.scheduled_for for task in tasks for event in await dues(js, task)]
    assert len(fires) == len(set(fires)) or len(fires) == published
    assert published == len(fires) >= len(tasks) * 5
