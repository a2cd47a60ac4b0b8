"""A burst through `AckedPublisher`: written at once, one answer per message, in order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamInfo
from nats.js.errors import APIError

from contracts import headers as header_names
from dvp_scheduler.natsserver.base import NatsServer
from natsio import connect_for_reading
from natsio.publish import AckedPublisher, Answer, Message, NotConnectedError, PublishAck
from natsio.reader import direct_client

pytestmark = pytest.mark.integration


@pytest.fixture(params=["fast client", "plain client"])
async def client(request: pytest.FixtureRequest, nats_server: NatsServer) -> AsyncIterator[Client]:
    if request.param == "fast client":
        nc = await connect_for_reading(servers=nats_server.url)
        assert direct_client(nc) is not None
    else:
        nc = await nats.connect(nats_server.url)
    try:
        yield nc
    finally:
        await nc.close()


def burst_messages(count: int) -> list[Message]:
    """``count`` messages; the third is guarded by a sequence its subject never had."""
    messages: list[Message] = []
    for n in range(count):
        headers = {header_names.MSG_ID: f"burst-{n}"}
        if n == 2:
            headers[header_names.EXPECTED_LAST_SUBJECT_SEQUENCE] = "999"
        messages.append((f"dvp.tasks.acme.due.t{n}", str(n).encode(), headers))
    return messages


async def test_a_burst_is_answered_in_order_with_acks_and_refusals(
    client: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    publisher = AckedPublisher(client, timeout=5.0)
    await publisher.start()
    try:
        burst = publisher.prepare(burst_messages(500))
        answers = await (await publisher.send_burst(burst))
        again = await (await publisher.send_burst(publisher.prepare(burst_messages(2))))
    finally:
        await publisher.close()

    assert len(answers) == 500
    refused = answers[2]
    assert isinstance(refused, APIError)
    assert refused.err_code == 10071  # wrong last sequence
    stored = [answer for n, answer in enumerate(answers) if n != 2]
    assert all(isinstance(answer, PublishAck) for answer in stored)
    sequences = [answer.seq for answer in stored if isinstance(answer, PublishAck)]
    assert sequences == list(range(1, 500))  # in the order sent, none lost
    assert [isinstance(a, PublishAck) and a.duplicate for a in again] == [True, True]
    info = await js.stream_info(stream.config.name or "")
    assert info.state.messages == 499


async def test_a_burst_is_not_sent_while_disconnected(nats_server: NatsServer) -> None:
    nc = await connect_for_reading(servers=nats_server.url)
    publisher = AckedPublisher(nc, timeout=5.0)
    await publisher.start()
    burst = publisher.prepare(burst_messages(3))
    await publisher.close()
    await nc.close()
    with pytest.raises(NotConnectedError):
        await publisher.send_burst(burst)


async def test_each_answer_is_handed_over_as_it_is_read_and_a_failing_handler_loses_none(
    client: Client, stream: StreamInfo
) -> None:
    publisher = AckedPublisher(client, timeout=5.0)
    await publisher.start()
    handed: dict[int, Answer] = {}

    def on_answer(index: int, answer: Answer) -> None:
        assert index not in handed
        handed[index] = answer
        if index == 7:
            raise RuntimeError("a bug in the caller's handler")

    try:
        answers = await (
            await publisher.send_burst(publisher.prepare(burst_messages(300)), on_answer)
        )
    finally:
        await publisher.close()

    assert sorted(handed) == list(range(300))  # each once, the failing one's included
    assert [handed[n] for n in range(300)] == answers  # the same answers as the future's
    assert isinstance(handed[2], APIError)  # refusals are handed over too
