"""The acknowledged publisher: messages into the stream, answered by futures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import APIError, NoStreamResponseError

from contracts.events import Event, encode, event_headers, event_subject
from contracts.stream import STREAM_NAME
from natsio.reader import direct_client

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
_MSG_GET: Final = f"$JS.API.STREAM.MSG.GET.{STREAM_NAME}"
"""Answered by the stream's leader (a direct get may be answered by any replica): the leader's
blocks are the ones a publish's guard reads."""
_TOUCH_TOKEN: Final = "touch"
"""The inbox token of `AckedPublisher.touch`'s answers: never a publish's (those are numbers)."""
_NO_RESPONDERS: Final = "503"
_NO_RESPONDERS_LINE: Final = b"NATS/1.0 503"

Answer = PublishAck | BaseException
"""The stream's answer to one message of a burst: its acknowledgement, or why there is none
(an `APIError` when the stream refused it, `TimeoutError` when no answer came)."""

Message = tuple[str, bytes, Mapping[str, str]]
"""A message to publish: subject, payload, headers."""


def encode_publish(
    subject_name: str, reply: str, payload: bytes, headers: Mapping[str, str]
) -> bytes:
    """One message in the protocol's wire form (``HPUB``), as a client sends it."""
    lines = ["NATS/1.0\r\n"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or not name or ":" in name:
            raise ValueError(f"header {name!r}: {value!r} cannot be sent on one line")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    head = "".join(lines).encode()
    size = len(head)
    return b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
        subject_name.encode(),
        reply.encode(),
        size,
        size + len(payload),
        head,
        payload,
    )


@dataclass(eq=False)
class Burst:
    """Messages made ready ahead by `AckedPublisher.prepare`, sent at once by `send_burst`."""

    messages: Sequence[Message]
    """The messages, when they are published one by one at the moment of sending (empty when
    they are `encoded`)."""
    tokens: list[str]
    encoded: list[bytes] | None
    """The messages in wire form, when the client can send them so."""


AnswerHandler = Callable[[int, Answer], None]
"""Told each answer of a burst as it is read: the message's index in the burst, its answer."""


@dataclass(eq=False)
class _BurstAnswers:
    answers: list[Answer | None]
    future: asyncio.Future[list[Answer]]
    until: float
    on_answer: AnswerHandler | None = None
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = len(self.answers)

    def answer(self, index: int, answer: Answer) -> None:
        if self.answers[index] is None:
            self.answers[index] = answer
            self.remaining -= 1
            if self.on_answer is not None and not self.future.done():
                try:
                    self.on_answer(index, answer)
                except Exception:  # the caller's bug must not lose the burst's other answers
                    log.exception("handling answer %d of a burst failed", index)
            if self.remaining == 0:
                self.finish()

    def finish(self) -> None:
        if not self.future.done():
            answers: list[Answer] = [
                TimeoutError("no acknowledgement from the stream in time") if a is None else a
                for a in self.answers
            ]
            self.future.set_result(answers)


class AckedPublisher:
    """Publishes into the stream, many at a time, each answered by a future.

    ``js.publish`` is a request per message: an inbox token, a timer and a JSON parse into a
    dataclass each time, and the caller waits before it can do anything else. Here one inbox
    subscription takes every acknowledgement, `send` returns as soon as the message is written
    (without yielding to the event loop, so a burst goes out before its first answers are
    read), and the future is awaited when the caller needs the answer. A timer of its own
    fails the futures whose answer did not come within ``timeout`` (`expire`). Nothing is
    sent while the connection is down (`send_message`).

    A burst (many messages due at one instant) is made ready ahead with `prepare`, which
    encodes every message, and sent with `send_burst`: one write, and one future for all the
    answers. With the fast client (`natsio.reader.reader_client_class`) the answers are read
    straight from the protocol parser, without nats-py's per-message queue and task.
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
        self._in_bursts: dict[str, tuple[_BurstAnswers, int]] = {}
        self._bursts: set[_BurstAnswers] = set()

    async def start(self) -> None:
        """Subscribe the inbox the acknowledgements come to, and start the expiry timer."""
        self._prefix = self._nc.new_inbox() + "."
        direct = direct_client(self._nc)
        if direct is not None:
            self._sub = await direct.subscribe_direct(self._prefix + "*", self._on_raw_reply)
        else:
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
            direct = direct_client(self._nc)
            try:
                if direct is not None:
                    await direct.unsubscribe_direct(sub)
                else:
                    await sub.unsubscribe()
            except Exception as error:
                log.debug("closing the publish inbox: %s", error)
        waiting, self._waiting = self._waiting, {}
        for future, _ in waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the publisher was closed"))
                future.exception()  # nobody may wait for it any more
        bursts, self._bursts, self._in_bursts = self._bursts, set(), {}
        for burst in bursts:
            for index, answer in enumerate(burst.answers):
                if answer is None:
                    burst.answer(index, ConnectionError("the publisher was closed"))

    async def send(
        self, event: Event, trace: Mapping[str, str] | None = None
    ) -> asyncio.Future[PublishAck]:
        """Publish ``event`` with its headers (and ``trace``'s, when tracing is on); the future
        resolves with the stream's answer (an `APIError` when the stream refuses it,
        `TimeoutError` when none comes)."""
        key = (type(event), event.tenant_id, event.task_id)
        subject_name = self._subjects.get(key)
        if subject_name is None:
            subject_name = event_subject(event)
            if len(self._subjects) < 10_000:
                self._subjects[key] = subject_name
        headers = event_headers(event)
        if trace:
            headers.update(trace)
        return await self.send_message(subject_name, encode(event), headers)

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

    def prepare(self, messages: Sequence[Message]) -> Burst:
        """Make ``messages`` ready to be sent at once by `send_burst`: each gets its answer's
        reply subject and, with the fast client, its wire form (all the per-message work)."""
        first = self._next_token + 1
        self._next_token += len(messages)
        tokens = [str(n) for n in range(first, first + len(messages))]
        encoded: list[bytes] | None = None
        if direct_client(self._nc) is not None:
            prefix = self._prefix
            encoded = [
                encode_publish(subject_name, prefix + token, payload, headers)
                for (subject_name, payload, headers), token in zip(messages, tokens, strict=True)
            ]
        # Encoded, the messages themselves are not kept: a herd of 100,000 fires would hold
        # each twice until it is sent.
        return Burst(messages if encoded is None else (), tokens, encoded)

    async def send_burst(
        self, burst: Burst, on_answer: AnswerHandler | None = None
    ) -> asyncio.Future[list[Answer]]:
        """Send a prepared burst in one go; the future resolves with one `Answer` per message,
        in order, once every answer came or ``timeout`` passed.

        ``on_answer``, if given, is told each answer the moment it is read (from the
        connection's read loop: it must not block), so that the caller can act on the first
        answers of a large burst before the last come; an answer that did not come in time
        is only in the future's list.

        Raises `NotConnectedError` (nothing sent) while the connection is down, as
        `send_message` does.
        """
        if not self._nc.is_connected:
            raise NotConnectedError("not connected to NATS: the burst was not sent")
        future: asyncio.Future[list[Answer]] = asyncio.get_running_loop().create_future()
        waiting = _BurstAnswers(
            [None] * len(burst.tokens), future, time.monotonic() + self._timeout, on_answer
        )
        if not burst.tokens:
            waiting.finish()
            return future
        self._bursts.add(waiting)
        future.add_done_callback(lambda _: self._forget(waiting, burst.tokens))
        for index, token in enumerate(burst.tokens):
            self._in_bursts[token] = (waiting, index)
        direct = direct_client(self._nc)
        try:
            if direct is not None and burst.encoded is not None:
                await direct.publish_encoded(burst.encoded)
            else:
                prefix = self._prefix
                for (subject_name, payload, headers), token in zip(
                    burst.messages, burst.tokens, strict=True
                ):
                    await self._nc.publish(
                        subject_name, payload, reply=prefix + token, headers=dict(headers)
                    )
        except BaseException:
            future.cancel()
            raise
        return future

    async def touch(self, sequences: Iterable[int]) -> int:
        """Ask the stream (its leader) for the messages at ``sequences`` without waiting for
        them, so that the server has their blocks in memory a moment later; return how many
        were asked for.

        A publish's guard (the expected last sequence of a subject) reads the subject's last
        message: one in a block the server has not read for a while (10 s) first loads the
        whole block from disk. A burst to tasks last heard of long ago (a daily report at
        midnight) pays that at its instant unless the blocks were touched just before. The
        answers come to the inbox under a token nobody waits for, and are dropped there.
        """
        if not self._nc.is_connected:
            return 0
        reply = self._prefix + _TOUCH_TOKEN
        count = 0
        for sequence in sequences:
            await self._nc.publish(_MSG_GET, b'{"seq":%d}' % sequence, reply=reply)
            count += 1
        return count

    def _forget(self, waiting: _BurstAnswers, tokens: list[str]) -> None:
        self._bursts.discard(waiting)
        in_bursts = self._in_bursts
        for token in tokens:
            in_bursts.pop(token, None)

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
        now = time.monotonic()
        for burst in [burst for burst in self._bursts if burst.until < now]:
            burst.finish()  # what has not come by now counts as timed out
        if not self._waiting:
            return
        overdue = [token for token, (_, until) in self._waiting.items() if until < now]
        for token in overdue:
            future, _ = self._waiting.pop(token)
            if not future.done():
                future.set_exception(
                    TimeoutError(f"no acknowledgement from the stream within {self._timeout:g}s")
                )

    async def _on_reply(self, msg: Msg) -> None:
        headers = msg.headers
        no_responders = (
            headers is not None and not msg.data and headers.get("Status") == _NO_RESPONDERS
        )
        self._answer(msg.subject[len(self._prefix) :], msg.data, no_responders)

    def _on_raw_reply(
        self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        no_responders = headers is not None and not data and headers.startswith(_NO_RESPONDERS_LINE)
        self._answer(subject[len(self._prefix) :].decode(), data, no_responders)

    def _answer(self, token: str, data: bytes, no_responders: bool) -> None:
        entry = self._waiting.pop(token, None)
        if entry is not None:
            future = entry[0]
            if not future.done():
                answer = _parse_answer(data, no_responders)
                if isinstance(answer, BaseException):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
            return
        in_burst = self._in_bursts.pop(token, None)
        if in_burst is not None:
            waiting, index = in_burst
            waiting.answer(index, _parse_answer(data, no_responders))


def _parse_answer(data: bytes, no_responders: bool) -> Answer:
    """The stream's answer to one publish, from the body of its reply."""
    if no_responders:
        return NoStreamResponseError()
    try:
        reply = _reply_decoder.decode(data)
        if reply.error is not None:
            APIError.from_error(reply.error)  # raises the matching subclass
    except Exception as error:
        return error
    return PublishAck(stream=reply.stream, seq=reply.seq, duplicate=reply.duplicate)
