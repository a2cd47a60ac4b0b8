"""The acknowledged publisher: messages into the stream, answered by futures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Final

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import APIError, NoStreamResponseError

from contracts.events import Event, encode, event_headers, event_subject

log = logging.getLogger("dvp_scheduler.natsio")


class PublishAck(msgspec.Struct, frozen=True):
    """The stream's acknowledgement of one publish."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    """The stream already held a message with this message id: nothing new was stored."""


class NotConnectedError(ConnectionError):
    """A publish was not sent because the connection is down (see `AckedPublisher`)."""


class _Reply(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: dict[str, Any] | None = None


_reply_decoder: Final = msgspec.json.Decoder(_Reply)
_NO_RESPONDERS: Final = "503"


class AckedPublisher:
    """Publishes into the stream, many at a time, each answered by a future.

    ``js.publish`` is a request per message: an inbox token, a timer and a JSON parse into a
    dataclass each time, and the caller waits before it can do anything else. Here one inbox
    subscription takes every acknowledgement, `send` returns as soon as the message is written
    (without yielding to the event loop, so a burst goes out before its first answers are
    read), and the future is awaited when the caller needs the answer. A timer of its own
    fails the futures whose answer did not come within ``timeout`` (`expire`). Nothing is
    sent while the connection is down (`send_message`).
    """

    def __init__(self, nc: Client, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout
        self._prefix = ""
        self._sub: Subscription | None = None
        self._next_token = 0
        self._waiting: dict[str, tuple[asyncio.Future[PublishAck], float]] = {}
        self._subjects: dict[tuple[type[Event], str, str], str] = {}
        self._expiry: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe the inbox the acknowledgements come to, and start the expiry timer."""
        self._prefix = self._nc.new_inbox() + "."
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_reply)
        self._expiry = asyncio.create_task(self._expire_regularly(), name="natsio-publish-expiry")

    async def close(self) -> None:
        """Unsubscribe; futures still waiting fail with `ConnectionError`."""
        expiry, self._expiry = self._expiry, None
        if expiry is not None:
            expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await expiry
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as error:
                log.debug("closing the publish inbox: %s", error)
        waiting, self._waiting = self._waiting, {}
        for future, _ in waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the publisher was closed"))
                future.exception()  # nobody may wait for it any more

    async def send(self, event: Event) -> asyncio.Future[PublishAck]:
        """Publish ``event`` with its headers; the future resolves with the stream's answer
        (an `APIError` when the stream refuses it, `TimeoutError` when none comes)."""
        key = (type(event), event.tenant_id, event.task_id)
        subject_name = self._subjects.get(key)
        if subject_name is None:
            subject_name = event_subject(event)
            if len(self._subjects) < 10_000:
                self._subjects[key] = subject_name
        return await self.send_message(subject_name, encode(event), event_headers(event))

    @property
    def connected(self) -> bool:
        """Whether a publish would go out now (rather than wait for a reconnect)."""
        return bool(self._nc.is_connected)

    async def send_message(
        self, subject_name: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[PublishAck]:
        """Publish ``payload`` on ``subject_name`` with ``headers`` (an event already encoded,
        with guard headers of its own); the future resolves as for `send`.

        Raises `NotConnectedError` while the connection is down: the client would keep the
        message until it reconnects and send it then, a decision stored long after its moment.
        The caller decides again once connected.
        """
        if not self._nc.is_connected:
            raise NotConnectedError("not connected to NATS: the publish was not sent")
        self._next_token += 1
        token = str(self._next_token)
        future: asyncio.Future[PublishAck] = asyncio.get_running_loop().create_future()
        self._waiting[token] = (future, time.monotonic() + self._timeout)
        try:
            await self._nc.publish(
                subject_name, payload, reply=self._prefix + token, headers=headers
            )
        except BaseException:
            self._waiting.pop(token, None)
            future.cancel()
            raise
        return future

    async def record(self, event: Event) -> PublishAck:
        """Publish ``event`` and wait for the stream's answer."""
        return await (await self.send(event))

    async def publish(
        self, subject_name: str, payload: bytes, headers: dict[str, str]
    ) -> PublishAck:
        """Publish a message and wait for the stream's answer."""
        return await (await self.send_message(subject_name, payload, headers))

    async def _expire_regularly(self) -> None:
        period = min(max(self._timeout / 10, 0.05), 0.5)
        while True:
            await asyncio.sleep(period)
            self.expire()

    def expire(self) -> None:
        """Fail the futures whose answer is overdue."""
        if not self._waiting:
            return
        now = time.monotonic()
        overdue = [token for token, (_, until) in self._waiting.items() if until < now]
        for token in overdue:
            future, _ = self._waiting.pop(token)
            if not future.done():
                future.set_exception(
                    TimeoutError(f"no acknowledgement from the stream within {self._timeout:g}s")
                )

    async def _on_reply(self, msg: Msg) -> None:
        entry = self._waiting.pop(msg.subject[len(self._prefix) :], None)
        if entry is None or entry[0].done():
            return
        future = entry[0]
        headers = msg.headers
        if headers is not None and not msg.data and headers.get("Status") == _NO_RESPONDERS:
            future.set_exception(NoStreamResponseError())
            return
        try:
            reply = _reply_decoder.decode(msg.data)
            if reply.error is not None:
                APIError.from_error(reply.error)  # raises the matching subclass
        except Exception as error:
            future.set_exception(error)
            return
        future.set_result(PublishAck(stream=reply.stream, seq=reply.seq, duplicate=reply.duplicate))
