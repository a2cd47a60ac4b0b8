"""With a nats-py the fast client was not tested with, readers go through nats-py's own ordered
consumer: one warning, then the same messages, once each and in order."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from dvp_scheduler.natsserver import NatsServer
from natsio import OrderedReader, ReadProgress, connect_for_reading, read_to_end
from natsio import reader as natsio_reader
from natsio.reader import _DirectClient
from tests.integration.natsio.test_reader import (
    check_a_handler_error_ends_the_read,
    check_filter_start_sequence_and_start_time,
    check_last_per_subject_then_live,
    consumers,
    numbers,
    publish_numbered,
    recorder,
)
from tests.support import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def untested_nats_py(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The check as if nats-py were a version the fast client was not tested with."""
    monkeypatch.setattr(natsio_reader, "_installed_nats_py", lambda: "2.99.0")
    natsio_reader._fast_client_usable.cache_clear()
    yield
    natsio_reader._fast_client_usable.cache_clear()


@pytest.fixture
async def fallback_reader(untested_nats_py: None, nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await connect_for_reading(servers=nats_server.url, max_reconnect_attempts=0)
    try:
        yield client
    finally:
        await client.close()


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.usefixtures("untested_nats_py")
async def test_an_untested_nats_py_reads_every_message_once_in_order_with_one_warning(
    nats_server: NatsServer,
    js: JetStreamContext,
    stream: StreamInfo,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Enough messages that the server asks for flow control on the way.
    await publish_numbered(js, 20_000)
    seen, handle = recorder()
    reports: list[ReadProgress] = []

    reader = await connect_for_reading(servers=nats_server.url, max_reconnect_attempts=0)
    try:
        assert not isinstance(reader, _DirectClient)
        read = await read_to_end(reader, handle, progress=reports.append)
    finally:
        await reader.close()
    another = await connect_for_reading(servers=nats_server.url, max_reconnect_attempts=0)
    await another.close()

    assert read == 20_000
    assert [sequence for sequence, _, _ in seen] == list(range(1, 20_001))
    assert numbers(seen) == list(range(20_000))
    assert seen[1][1] == "dvp.tasks.alpha.due.t1"
    assert reports[-1].read == 20_000
    assert reports[-1].sequence == 20_000
    assert await consumers(js) == 0  # the read's consumer is gone with it
    [warning] = warnings_logged(caplog)  # one per process, however many connect
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert "nats-py 2.99.0" in message
    assert "not among the tested versions (2.16)" in message
    assert "nats-py's own ordered consumer" in message


async def test_an_untested_nats_py_keeps_the_filter_the_start_sequence_and_the_start_time(
    fallback_reader: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    await check_filter_start_sequence_and_start_time(fallback_reader, js)
    assert await consumers(js) == 0


async def test_an_untested_nats_py_follows_new_messages_until_stopped(
    fallback_reader: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    await publish_numbered(js, 5)
    seen, handle = recorder()
    async with OrderedReader(fallback_reader, handle, start_sequence=3) as ordered:
        await eventually(lambda: len(seen) == 3, message="the three from sequence 3")
        await publish_numbered(js, 5, first=5)
        await eventually(lambda: len(seen) == 8, message="and the five published while following")
        assert not ordered.finished.done()
    assert ordered.finished.done()
    assert numbers(seen) == list(range(2, 10))
    assert ordered.sequence == 10
    assert await consumers(js) == 0


async def test_an_untested_nats_py_reads_last_per_subject_then_live(
    fallback_reader: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    await check_last_per_subject_then_live(fallback_reader, js)


async def test_an_untested_nats_py_ends_the_read_with_the_handlers_error(
    fallback_reader: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    await check_a_handler_error_ends_the_read(fallback_reader, js)


async def test_any_plain_client_reads_through_nats_py_ordered_consumer(
    nc: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    await publish_numbered(js, 100)
    seen, handle = recorder()
    assert await read_to_end(nc, handle) == 100
    assert numbers(seen) == list(range(100))
