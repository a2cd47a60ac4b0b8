"""The ordered reader against a real nats-server: every message once and in order, whatever
happens to its consumer on the way."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import nats.errors
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from contracts import STREAM_NAME
from dvp_scheduler.natsserver import BinaryNatsServer
from natsio import (
    OrderedReader,
    ReadProgress,
    StreamHandler,
    connect_for_reading,
    read_to_end,
    stream_config,
)
from natsio.reader import _DirectClient
from tests.support import eventually, free_port

pytestmark = pytest.mark.integration

Seen = list[tuple[int, str, bytes]]


async def publish_numbered(js: JetStreamContext, count: int, *, first: int = 0) -> None:
    """``count`` messages ``b"<n>"`` over two tenants' subjects, in one burst."""
    acks = []
    for n in range(first, first + count):
        tenant = "alpha" if n % 2 else "beta"
        acks.append(await js.publish_async(f"dvp.tasks.{tenant}.due.t{n}", str(n).encode()))
    await asyncio.wait_for(asyncio.gather(*acks), 10)


def recorder() -> tuple[Seen, StreamHandler]:
    seen: Seen = []

    def handle(sequence: int, subject: bytes, data: bytes) -> None:
        seen.append((sequence, subject.decode(), data))

    return seen, handle


def numbers(seen: Seen) -> list[int]:
    return [int(data) for _, _, data in seen]


async def consumers(js: JetStreamContext) -> int:
    return (await js.stream_info(STREAM_NAME)).state.consumer_count


async def test_reads_every_message_once_in_order_with_its_subject(
    reader: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    # Enough messages that the server asks for flow control on the way.
    await publish_numbered(js, 20_000)
    seen, handle = recorder()
    reports: list[ReadProgress] = []

    read = await read_to_end(reader, handle, progress=reports.append)

    assert read == 20_000
    assert [sequence for sequence, _, _ in seen] == list(range(1, 20_001))
    assert numbers(seen) == list(range(20_000))
    assert seen[1][1] == "dvp.tasks.alpha.due.t1"
    assert reports[-1].read == 20_000
    assert reports[-1].sequence == 20_000
    assert await consumers(js) == 0  # the read's consumer is gone with it


async def test_a_filter_a_start_sequence_and_a_start_time(
    reader: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    await check_filter_start_sequence_and_start_time(reader, js)


async def check_filter_start_sequence_and_start_time(reader: Client, js: JetStreamContext) -> None:
    """Reads with a subject filter, a start sequence and a start time each get what they ask
    for, and a filter that matches nothing ends at once (shared with the fallback's tests)."""
    await publish_numbered(js, 10)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await publish_numbered(js, 10, first=10)

    seen, handle = recorder()
    await read_to_end(reader, handle, subject="dvp.tasks.alpha.>")
    assert numbers(seen) == list(range(1, 20, 2))

    seen, handle = recorder()
    await read_to_end(reader, handle, start_sequence=15)
    assert numbers(seen) == list(range(14, 20))

    seen, handle = recorder()
    await read_to_end(reader, handle, start_time=middle)
    assert numbers(seen) == list(range(10, 20))

    seen, handle = recorder()
    assert await read_to_end(reader, handle, subject="dvp.tasks.nobody.>") == 0
    assert seen == []


async def test_last_per_subject_then_live_and_caught_up(
    reader: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    await check_last_per_subject_then_live(reader, js)


async def check_last_per_subject_then_live(reader: Client, js: JetStreamContext) -> None:
    """A read from the last message of every subject hands over those (in stream order), says
    it caught up, then follows everything new (shared with the fallback's tests)."""
    for n in range(6):  # t0, t1, t2 twice each: the second round is the newest of each
        await js.publish(f"dvp.tasks.alpha.due.t{n % 3}", str(n).encode())
    seen, handle = recorder()
    async with OrderedReader(reader, handle, last_per_subject=True) as ordered:
        await asyncio.wait_for(ordered.caught_up.wait(), 5)
        assert numbers(seen) == [3, 4, 5]
        await js.publish("dvp.tasks.alpha.due.t0", b"6")
        await js.publish("dvp.tasks.alpha.due.t0", b"7")
        await eventually(lambda: len(seen) == 5, message="the two published while following")
    assert numbers(seen) == [3, 4, 5, 6, 7]
    assert [sequence for sequence, _, _ in seen] == [4, 5, 6, 7, 8]

    seen, handle = recorder()
    async with OrderedReader(reader, handle, subject="dvp.tasks.nobody.>") as empty:
        await asyncio.wait_for(empty.caught_up.wait(), 5)  # nothing to read: caught up at once
    assert seen == []


async def test_a_gap_in_delivery_opens_a_new_consumer_after_the_last_message(
    reader: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    await publish_numbered(js, 2_000)
    seen: Seen = []
    reader_box: list[OrderedReader] = []

    def handle(sequence: int, subject: bytes, data: bytes) -> None:
        seen.append((sequence, subject.decode(), data))
        if sequence == 700:
            # As if deliveries 701 and 702 were lost on the way: the next one skips ahead.
            ordered = reader_box[0]
            ordered._on_message(
                b"dvp.tasks.beta.due.t702",
                f"$JS.ACK.{STREAM_NAME}.c.1.703.703.0.1297".encode(),
                b"702",
                None,
            )

    ordered = OrderedReader(reader, handle, to_end=True)
    reader_box.append(ordered)
    async with ordered:
        await asyncio.wait_for(ordered.finished, 10)

    assert numbers(seen) == list(range(2_000))
    assert ordered.reopened == 1


async def test_a_lost_consumer_is_replaced_after_two_silent_heartbeats(
    reader: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    await publish_numbered(js, 5)
    seen, handle = recorder()
    async with OrderedReader(reader, handle, heartbeat=0.2) as ordered:
        await eventually(lambda: len(seen) == 5, message="first five")
        [info] = await js.consumers_info(STREAM_NAME)
        name = info.name
        await js.delete_consumer(STREAM_NAME, name)
        await publish_numbered(js, 5, first=5)
        await eventually(lambda: len(seen) == 10, within=5, message="all ten after the loss")
        assert ordered.reopened >= 1
    assert numbers(seen) == list(range(10))


async def test_following_survives_a_server_restart(tmp_path: Path) -> None:
    server = BinaryNatsServer(port=free_port(), store_dir=tmp_path / "js").start()
    try:
        nc = await connect_for_reading(
            servers=server.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1
        )
        try:
            js = nc.jetstream()
            await js.add_stream(stream_config())
            await publish_numbered(js, 3)
            seen, handle = recorder()
            async with OrderedReader(nc, handle, heartbeat=0.2) as ordered:
                await eventually(lambda: len(seen) == 3, message="before the restart")
                server.stop()
                server.start()
                await eventually(lambda: nc.is_connected, message="reconnected")
                await eventually(lambda: _stream_answers(js), message="the stream back")
                await publish_numbered(js, 3, first=3)
                await eventually(lambda: len(seen) == 6, within=10, message="after the restart")
                assert not ordered.finished.done()
                assert ordered.reopened >= 1  # its consumer, kept in memory, died with the server
            assert numbers(seen) == list(range(6))
        finally:
            await nc.close()
    finally:
        server.stop()


async def _stream_answers(js: JetStreamContext) -> bool:
    try:
        async with asyncio.timeout(0.5):
            await js.stream_info(STREAM_NAME)
    except (nats.errors.Error, TimeoutError):
        return False
    return True


async def test_an_error_in_the_handler_ends_the_read_with_it(
    reader: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    await check_a_handler_error_ends_the_read(reader, js)


async def check_a_handler_error_ends_the_read(reader: Client, js: JetStreamContext) -> None:
    """A handler that raises at the 4th message ends the read with its error, having handed
    over 1 to 3, and leaves no consumer behind (shared with the fallback's tests)."""
    await publish_numbered(js, 10)
    seen: list[int] = []

    def handle(sequence: int, subject: bytes, data: bytes) -> None:
        if sequence == 4:
            raise ZeroDivisionError("a bug in the handler")
        seen.append(sequence)

    with pytest.raises(ZeroDivisionError, match="a bug in the handler"):
        await read_to_end(reader, handle)
    assert seen == [1, 2, 3]
    assert await consumers(js) == 0


async def test_other_subscriptions_of_the_client_work_as_usual(
    reader: Client, stream: StreamInfo
) -> None:
    sub = await reader.subscribe("plain.subject")
    await reader.publish("plain.subject", b"hello", headers={"X-Test": "yes"})
    msg = await sub.next_msg(timeout=2)
    assert msg.data == b"hello"
    assert msg.headers == {"X-Test": "yes"}


async def test_a_direct_handler_that_raises_does_not_break_the_connection(
    reader: Client, caplog: pytest.LogCaptureFixture
) -> None:
    assert isinstance(reader, _DirectClient)  # nats-py is as tested (tests/unit/natsio)
    got: list[bytes] = []

    def handler(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        if data == b"bad":
            raise RuntimeError("a bug")
        got.append(data)

    subscription = await reader.subscribe_direct("direct.subject", handler)
    for data in (b"one", b"bad", b"two"):
        await reader.publish("direct.subject", data)
    await reader.flush()
    await eventually(lambda: got == [b"one", b"two"], message="the messages around the bad one")
    assert reader.is_connected
    assert "message dropped" in caplog.text
    await reader.unsubscribe_direct(subscription)
