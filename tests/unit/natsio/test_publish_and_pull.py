"""The pull feed's bookkeeping and the publisher's futures, against a fake connection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import APIError, NoStreamResponseError

from contracts import TaskStarted
from natsio.publish import AckedPublisher
from natsio.pull import PullFeed

Callback = Callable[[Msg], Awaitable[None]]


class FakeSubscription:
    def __init__(self) -> None:
        self.closed = False

    async def drain(self) -> None:
        self.closed = True

    async def unsubscribe(self) -> None:
        self.closed = True


class FakeConnection:
    """Records what is published; hands the test the subscription's callback."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, str, dict[str, str] | None]] = []
        self.callback: Callback | None = None
        self.subscription = FakeSubscription()
        self.is_connected = True

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def subscribe(self, subject: str, cb: Callback) -> FakeSubscription:
        assert subject == "_INBOX.test.*"
        self.callback = cb
        return self.subscription

    async def publish(
        self, subject: str, payload: bytes, reply: str = "", headers: dict[str, str] | None = None
    ) -> None:
        self.published.append((subject, payload, reply, headers))

    async def deliver(self, subject: str, data: bytes = b"", **headers: str) -> Msg:
        msg = Msg(
            cast(Client, self),
            subject=subject,
            reply="$JS.ACK.S.D.1.1.1.0.0",
            data=data,
            headers=dict(headers) or None,
        )
        assert self.callback is not None
        await self.callback(msg)
        return msg


def status(code: str, **headers: str) -> dict[str, str]:
    return {"Status": code, **headers}


async def new_feed(
    accept: Callable[[Msg], bool] = lambda msg: True,
) -> tuple[PullFeed, FakeConnection, list[int]]:
    nc = FakeConnection()
    changes: list[int] = []
    feed = PullFeed(
        cast(Client, nc),
        "S",
        "D",
        accept=accept,
        changed=lambda: changes.append(1),
        expires=1.0,
    )
    await feed.start()
    return feed, nc, changes


async def test_a_pull_request_asks_the_consumer_and_counts_what_it_asked_for() -> None:
    feed, nc, _ = await new_feed()
    await feed.request(10)
    subject, body, reply, _ = nc.published[0]
    assert subject == "$JS.API.CONSUMER.MSG.NEXT.S.D"
    assert msgspec.json.decode(body) == {"batch": 10, "expires": 1_000_000_000}
    assert reply == "_INBOX.test.1"
    assert feed.outstanding == 10


async def test_each_message_is_handed_over_as_it_arrives() -> None:
    taken: list[Msg] = []
    feed, nc, _ = await new_feed(lambda msg: taken.append(msg) is None)
    await feed.request(3)
    await nc.deliver("dvp.tasks.default.due.a", b"{}")
    assert len(taken) == 1
    assert feed.outstanding == 2


async def test_an_expired_request_gives_back_what_it_did_not_deliver() -> None:
    feed, nc, changes = await new_feed()
    await feed.request(5)
    await feed.request(5)
    await nc.deliver("dvp.tasks.default.due.a", b"{}")
    await nc.deliver("_INBOX.test.1", **status("408", **{"Nats-Pending-Messages": "4"}))
    assert feed.outstanding == 5
    assert changes == [1]
    assert feed.problem is None


async def test_a_refused_request_is_a_problem_for_the_owner() -> None:
    feed, nc, _ = await new_feed()
    await feed.request(5)
    await nc.deliver("_INBOX.test.1", **status("409", Description="Consumer Deleted"))
    assert feed.outstanding == 0
    assert feed.problem == "409 Consumer Deleted"


async def test_a_message_the_owner_cannot_take_is_given_back() -> None:
    feed, nc, _ = await new_feed(lambda msg: False)
    await feed.request(1)
    await nc.deliver("dvp.tasks.default.due.a", b"{}")
    assert nc.published[-1][:2] == ("$JS.ACK.S.D.1.1.1.0.0", b"-NAK")


async def test_requests_whose_status_never_came_stop_counting_after_their_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed, _, _ = await new_feed()
    await feed.request(8)
    import natsio.pull as pull

    later = pull.time.monotonic() + 10
    monkeypatch.setattr(pull.time, "monotonic", lambda: later)
    assert feed.outstanding == 0


async def test_reset_and_close_forget_the_open_requests() -> None:
    feed, nc, _ = await new_feed()
    await feed.request(8)
    feed.reset()
    assert feed.outstanding == 0
    await feed.close()
    assert nc.subscription.closed


def started() -> TaskStarted:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return TaskStarted(
        tenant_id="default",
        task_id="a.b",
        occurred_at=now,
        execution_id="e1",
        attempt=1,
        worker="w",
        deadline=now,
    )


async def new_recorder(ack_timeout: float = 5.0) -> tuple[AckedPublisher, FakeConnection]:
    nc = FakeConnection()
    recorder = AckedPublisher(cast(Client, nc), ack_timeout)
    await recorder.start()
    return recorder, nc


async def test_the_recorder_publishes_with_headers_and_resolves_with_the_ack() -> None:
    recorder, nc = await new_recorder()
    future = await recorder.send(started())
    subject, _, reply, headers = nc.published[0]
    assert subject == "dvp.tasks.default.started.a.b"
    assert headers is not None
    assert headers["Nats-Msg-Id"] == "started:e1:1:w:1767225600000000"
    assert not future.done()
    await nc.deliver(reply, b'{"stream":"S","seq":7,"duplicate":true}')
    ack = await future
    assert (ack.stream, ack.seq, ack.duplicate) == ("S", 7, True)


async def test_a_refusal_is_an_api_error_with_its_code() -> None:
    recorder, nc = await new_recorder()
    future = await recorder.send(started())
    error = b'{"error":{"code":400,"err_code":10071,"description":"wrong last sequence"}}'
    await nc.deliver(nc.published[0][2], error)
    with pytest.raises(APIError) as raised:
        await future
    assert raised.value.err_code == 10071


async def test_no_stream_is_no_stream_response() -> None:
    recorder, nc = await new_recorder()
    future = await recorder.send(started())
    await nc.deliver(nc.published[0][2], **status("503"))
    with pytest.raises(NoStreamResponseError):
        await future


async def test_an_unanswered_publish_times_out_and_close_fails_the_rest() -> None:
    recorder, _ = await new_recorder(ack_timeout=0.0)
    late = await recorder.send(started())
    await asyncio.sleep(0.001)
    recorder.expire()
    with pytest.raises(TimeoutError):
        await late
    recorder._timeout = 60.0
    waiting: asyncio.Future[Any] = await recorder.send(started())
    recorder.expire()
    assert not waiting.done()
    await recorder.close()
    with pytest.raises(ConnectionError):
        await waiting
