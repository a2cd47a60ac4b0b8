"""Reading a stream in order, fast: what replay, the projector and ``events`` read with.

nats-py's ordered consumer spends about 15 µs on each message before its callback starts: it
builds a ``Msg``, parses every header, queues the message for a task of the subscription and
awaits a coroutine per message. Decoding and folding an event costs less than that. So this
module keeps nats-py for the connection (reconnects, TLS, credentials) and its protocol parser,
and takes over from there for one kind of subscription: the parser hands each message of an
`OrderedReader`'s delivery subject straight to a synchronous handler.

That hand-over overrides a private method of nats-py's client, in one small class
(`_DirectClient`). It is used only with the nats-py versions it was tested with
(`TESTED_NATS_PY`) and only while the internals it relies on have the shape it expects;
otherwise `connect_for_reading` logs one warning and gives nats-py's plain client, and
`OrderedReader` reads through nats-py's own ordered consumer: the same messages, once each and
in order, only slower.

With the fast client, `OrderedReader` is an ordered consumer of its own, as the NATS clients
build theirs: an ephemeral push consumer with acks off, flow control and idle heartbeats, whose
delivery sequence it checks. On a gap, or when the consumer falls silent (a server restart loses
it), it opens a new one just after the last stream sequence it handed over; so every message is
handed over once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import inspect
import itertools
import logging
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.protocol.parser import Parser

from contracts.stream import STREAM_NAME
from contracts.subjects import ALL_EVENTS

log = logging.getLogger("dvp_scheduler.natsio")

TESTED_NATS_PY: Final = ("2.16",)
"""The nats-py release series (major.minor) the fast client was tested with.

To add one, install it and run ``tests/integration/natsio`` and ``bench/replay.py``; with any
other version readers use nats-py's own ordered consumer (and say so once, as a warning)."""

DEFAULT_HEARTBEAT_SECONDS: Final = 5.0
"""How often the server tells an idle reader's consumer is still there."""

_INACTIVE_THRESHOLD_SECONDS: Final = 120.0
"""The server removes a reader's consumer this long after its reader went away unannounced."""

_CLEANUP_TIMEOUT_SECONDS: Final = 2.0
_REOPEN_DELAYS: Final = (0.1, 0.5, 1.0, 2.0, 5.0)

_CONTROL_STATUS: Final = b"NATS/1.0 100"
"""How flow control requests and idle heartbeats begin: headers only, with this status."""

_WHITESPACE: Final = re.compile(r"\s")

StreamHandler = Callable[[int, bytes, bytes], object]
"""Called with (stream sequence, subject, body) of each message, once each, in stream order."""

_DirectHandler = Callable[[bytes, bytes, bytes, bytes | None], None]
"""Called by the protocol parser with (subject, reply, body, raw headers) of one message."""


# ---------------------------------------------------------------------------------------------
# The fast client: the one place that relies on nats-py internals


class _DirectClient(Client):
    """nats-py's client, whose protocol parser hands the messages of a direct subscription
    straight to a synchronous function (no ``Msg``, no queue, no task), and which sends
    messages encoded ahead (`publish_encoded`).

    It overrides ``Client._process_msg``, keys handlers by ``Subscription._id`` and writes
    through ``Client._send_command`` and ``Client._flush_pending``: none is public, so
    `reader_client_class` gives this class only when `_internals_problems` finds them as
    expected. Every other subscription behaves as with nats-py's own client.
    """

    def __init__(self) -> None:
        super().__init__()
        self._direct: dict[int, _DirectHandler] = {}

    async def subscribe_direct(self, subject: str, handler: _DirectHandler) -> Subscription:
        """Subscribe to ``subject``; its messages go to ``handler`` as the parser reads them.

        ``handler`` runs inside the connection's read loop: it must not block. What it raises
        is logged and the message dropped; the connection goes on.
        """
        subscription = await self.subscribe(subject)
        # nats-py names a subscription only by this private id, which is what the parser gives.
        self._direct[subscription._id] = handler
        return subscription

    async def unsubscribe_direct(self, subscription: Subscription) -> None:
        """Stop handing ``subscription``'s messages over (at once), and unsubscribe it."""
        self._direct.pop(subscription._id, None)
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()

    async def publish_encoded(self, frames: list[bytes]) -> None:
        """Send messages already in the protocol's wire form (``frames``, one each; see
        `natsio.publish.encode_publish`) in one write: no per-message work at the moment of
        sending, which is what a burst of thousands of fires at one instant needs."""
        # The buffer and the flusher nats-py's own publish uses: same ordering, same limits.
        for frame in frames:
            await self._send_command(frame)
        self.stats["out_msgs"] += len(frames)
        await self._flush_pending()

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        handler = self._direct.get(sid)
        if handler is None:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        try:
            handler(subject, reply, data, headers)
        except Exception:  # a bug in the handler must not break the connection's read loop
            log.exception(
                "the handler of subscription %d failed on %r; message dropped", sid, subject
            )


_PROCESS_MSG_PARAMETERS: Final = ("self", "sid", "subject", "reply", "data", "headers")
"""The parameters of ``Client._process_msg`` that `_DirectClient` overrides."""


def _installed_nats_py() -> str:
    try:
        return importlib.metadata.version("nats-py")
    except importlib.metadata.PackageNotFoundError:
        return "(unknown version)"


def _is_tested(version: str) -> bool:
    return any(version == tested or version.startswith(f"{tested}.") for tested in TESTED_NATS_PY)


def _code_names(function: object) -> tuple[str, ...]:
    """The attribute and global names a Python function's code refers to (none if it has no
    Python code, such as a compiled replacement, which then fails the checks using it)."""
    code = getattr(function, "__code__", None)
    return tuple(code.co_names) if code is not None else ()


def _internals_problems() -> list[str]:
    """Why `_DirectClient` must not be used with the installed nats-py; empty if it may.

    It may when nats-py is of a tested series (`TESTED_NATS_PY`) and the internals it relies on
    are there in the shape it expects: ``Client._process_msg`` is a coroutine function taking
    exactly the parameters it overrides, the protocol parser calls it, and ``Subscription``
    keeps its id in ``_id`` (both read from the functions' code: nothing is run).
    """
    problems: list[str] = []
    version = _installed_nats_py()
    if not _is_tested(version):
        problems.append(f"it is not among the tested versions ({', '.join(TESTED_NATS_PY)})")
    process_msg = getattr(Client, "_process_msg", None)
    if process_msg is None:
        problems.append("Client._process_msg is missing")
    else:
        parameters = tuple(inspect.signature(process_msg).parameters)
        if parameters != _PROCESS_MSG_PARAMETERS:
            problems.append(
                f"Client._process_msg takes ({', '.join(parameters)}), "
                f"not ({', '.join(_PROCESS_MSG_PARAMETERS)})"
            )
        if not inspect.iscoroutinefunction(process_msg):
            problems.append("Client._process_msg is not a coroutine function")
    if "_process_msg" not in _code_names(Parser.parse):
        problems.append("the protocol parser (Parser.parse) does not call _process_msg")
    if "_id" not in _code_names(Subscription.__init__):
        problems.append("Subscription does not keep its id in _id")
    for name in ("_send_command", "_flush_pending"):
        if not inspect.iscoroutinefunction(getattr(Client, name, None)):
            problems.append(f"Client.{name} is missing or not a coroutine function")
    return problems


@functools.cache
def _fast_client_usable() -> bool:
    """Whether `_DirectClient` may be used; when not, one warning (per process) says why."""
    problems = _internals_problems()
    if problems:
        log.warning(
            "nats-py %s: %s. Reading streams through nats-py's own ordered consumer instead: "
            "the same messages, more slowly (natsio.reader's fast client is tested with "
            "nats-py %s)",
            _installed_nats_py(),
            "; ".join(problems),
            ", ".join(TESTED_NATS_PY),
        )
    return not problems


def direct_client(nc: Client) -> _DirectClient | None:
    """``nc`` as the fast client, if it is one (see `reader_client_class`)."""
    return nc if isinstance(nc, _DirectClient) else None


def reader_client_class() -> type[Client]:
    """The client class to read streams with, for callers that connect it themselves.

    The fast one when the installed nats-py is one it was tested with, else nats-py's plain
    `Client` (and a warning, once, says why); `OrderedReader` reads with either.
    """
    return _DirectClient if _fast_client_usable() else Client


async def connect_for_reading(**options: Any) -> Client:
    """Like ``nats.connect(**options)``, giving a client of `reader_client_class`."""
    client = reader_client_class()()
    await client.connect(**options)
    return client


# ---------------------------------------------------------------------------------------------
# The ordered reader


def _ack_fields(reply: bytes) -> tuple[int, int, int]:
    """(stream sequence, consumer delivery sequence, pending) from a JetStream reply subject:
    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`` (9 tokens) or the
    form with domain and account hash first (12 tokens)."""
    tokens = reply.split(b".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[6]), int(tokens[8])
    if len(tokens) >= 12:
        return int(tokens[7]), int(tokens[8]), int(tokens[10])
    raise ValueError(f"not a JetStream message reply subject: {reply!r}")


def _header_fields(raw: bytes) -> dict[str, str]:
    """The header lines of a control message, parsed as nats-py parses header lines."""
    out: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if _WHITESPACE.search(key):
            continue
        out[key] = value.strip().decode("utf-8", "replace")
    return out


class OrderedReader:
    """Hands every message on ``subject`` in ``stream`` to ``handle``, once each, in order.

    It starts at ``start_time`` if given, else at ``start_sequence`` (1: the beginning); with
    ``last_per_subject`` it starts with the newest message of every subject instead (in
    stream order: the server's per-subject index, not a scan) and goes on from there. With
    ``to_end`` the read is over (`finished`) after the last message the stream held when it
    started; otherwise it follows new messages until `stop`, and `caught_up` is set once it
    handed over what the stream held when it started. If ``handle`` raises, the read
    stops and `finished` holds the exception. ``nc`` is best a client of `connect_for_reading`
    (or `reader_client_class`); with any other client it reads through nats-py's ordered
    consumer. Use it as an async context manager::

        async with OrderedReader(nc, handle, to_end=True) as reader:
            await reader.finished
    """

    def __init__(
        self,
        nc: Client,
        handle: StreamHandler,
        *,
        stream: str = STREAM_NAME,
        subject: str = ALL_EVENTS,
        start_sequence: int = 1,
        start_time: datetime | None = None,
        to_end: bool = False,
        last_per_subject: bool = False,
        heartbeat: float = DEFAULT_HEARTBEAT_SECONDS,
    ) -> None:
        self._nc = nc
        self._direct = direct_client(nc)
        self._js = nc.jetstream()
        self._handle = handle
        self._stream = stream
        self._subject = subject
        self._start_sequence = max(1, start_sequence)
        self._start_time = start_time
        self._to_end = to_end
        self._last_per_subject = last_per_subject
        self._heartbeat = heartbeat
        self.caught_up = asyncio.Event()
        """Set once everything the stream held when the read started was handed over."""
        self._finished: asyncio.Future[None] | None = None
        self._subscription: Subscription | None = None
        self._consumer: str | None = None
        self._ordered: JetStreamContext.PushSubscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_delivery = 1
        self._reopening = False
        self._active = False
        self.end_sequence = 0
        """With ``to_end``: the stream's last sequence when the read started."""
        self.sequence = 0
        """The stream sequence of the last message handed over (0: none yet)."""
        self.read = 0
        """How many messages were handed over."""
        self.reopened = 0
        """How often it went for a new consumer (after a gap or a silent consumer); counted
        when it decides to, so before the new consumer's first message. Always 0 through
        nats-py's ordered consumer, which replaces its consumer without telling."""

    @property
    def finished(self) -> asyncio.Future[None]:
        """Done when the read is over: at the end (``to_end``), on `stop`, or with the error
        ``handle`` raised."""
        if self._finished is None:
            raise RuntimeError("the reader has not started: call start() first")
        return self._finished

    async def start(self) -> None:
        """Create the consumer; messages flow to ``handle`` from now on.

        Raises ``nats.js.errors.NotFoundError`` when the stream does not exist.
        """
        self._finished = asyncio.get_running_loop().create_future()
        if self._to_end:
            info = await self._js.stream_info(self._stream)
            self.end_sequence = info.state.last_seq
            if self.end_sequence < self._start_sequence:
                self._finish(None)
                return
        if self._direct is None:
            await self._subscribe_ordered()
            return
        await self._open()
        self._spawn(self._watch())

    async def stop(self) -> None:
        """Stop reading, and remove the consumer."""
        self._finish(None)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_consumer()
        await self._unsubscribe_ordered()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _hand_over(self, sequence: int, subject: bytes, data: bytes, pending: int) -> None:
        self.sequence = sequence
        self.read += 1
        try:
            self._handle(sequence, subject, data)
        except Exception as error:
            self._finish(error)
            return
        if pending == 0:
            self.caught_up.set()
        if self._to_end and (pending == 0 or sequence >= self.end_sequence):
            self._finish(None)

    # The consumer of its own, with the fast client.

    def _on_message(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        self._active = True
        if not data and headers is not None and headers.startswith(_CONTROL_STATUS):
            self._on_control(reply, headers)
            return
        finished = self._finished
        if self._reopening or finished is None or finished.done():
            return
        try:
            sequence, delivery, pending = _ack_fields(reply)
        except ValueError:
            log.warning("ignoring a message on %r that is not from a stream", subject)
            return
        if delivery != self._next_delivery:
            self._reopen(
                f"delivery {delivery} of the consumer arrived, {self._next_delivery} expected"
            )
            return
        self._next_delivery = delivery + 1
        self._hand_over(sequence, subject, data, pending)

    def _on_control(self, reply: bytes, headers: bytes) -> None:
        if reply:  # a flow control request: everything before it was handled already
            self._spawn(self._publish(reply.decode()))
            return
        fields = _header_fields(headers.partition(b"\r\n")[2])
        stalled = fields.get("Nats-Consumer-Stalled")
        if stalled:
            self._spawn(self._publish(stalled))
        last = fields.get("Nats-Last-Consumer")
        if last is not None and last.isdigit() and int(last) != self._next_delivery - 1:
            self._reopen(
                f"the consumer delivered {last} messages, {self._next_delivery - 1} arrived"
            )

    async def _open(self) -> None:
        assert self._direct is not None
        subscription = await self._direct.subscribe_direct(self._nc.new_inbox(), self._on_message)
        self._subscription = subscription
        self._next_delivery = 1
        self._reopening = False
        self._active = True
        config = ConsumerConfig(
            deliver_subject=subscription.subject,
            filter_subject=self._subject,
            ack_policy=AckPolicy.NONE,
            max_deliver=1,
            flow_control=True,
            idle_heartbeat=self._heartbeat,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=_INACTIVE_THRESHOLD_SECONDS,
            **self._position(),
        )
        try:
            info = await self._js.add_consumer(self._stream, config)
        except BaseException:
            self._reopening = True
            self._subscription = None
            await self._direct.unsubscribe_direct(subscription)
            raise
        self._consumer = info.name
        if info.num_pending == 0:
            self.caught_up.set()
            if self._to_end:
                self._finish(None)  # nothing (more) on this subject up to the end

    def _position(self) -> dict[str, Any]:
        if self.sequence > 0:
            return {
                "deliver_policy": DeliverPolicy.BY_START_SEQUENCE,
                "opt_start_seq": self.sequence + 1,
            }
        if self._start_time is not None:
            return {
                "deliver_policy": DeliverPolicy.BY_START_TIME,
                "opt_start_time": self._start_time,
            }
        if self._last_per_subject:
            return {"deliver_policy": DeliverPolicy.LAST_PER_SUBJECT}
        if self._start_sequence > 1:
            return {
                "deliver_policy": DeliverPolicy.BY_START_SEQUENCE,
                "opt_start_seq": self._start_sequence,
            }
        return {"deliver_policy": DeliverPolicy.ALL}

    def _reopen(self, why: str) -> None:
        if self._reopening or self._finished is None or self._finished.done():
            return
        self._reopening = True
        self.reopened += 1
        log.info("reading %s again after sequence %d: %s", self._stream, self.sequence, why)
        self._spawn(self._reopen_consumer())

    async def _reopen_consumer(self) -> None:
        await self._close_consumer()
        for attempt in itertools.count():
            try:
                await self._open()
            except (nats.errors.Error, TimeoutError) as error:
                delay = _REOPEN_DELAYS[min(attempt, len(_REOPEN_DELAYS) - 1)]
                log.warning(
                    "cannot open a consumer on %s (%s); trying again in %.1f s",
                    self._stream,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                return

    async def _watch(self) -> None:
        """Open a new consumer when the current one falls silent: no message and no heartbeat
        for two heartbeat intervals."""
        silence = 2 * self._heartbeat
        while True:
            await asyncio.sleep(silence)
            if not self._active and not self._reopening:
                self._reopen(f"no message nor heartbeat for {silence:g} s")
            self._active = False

    async def _close_consumer(self) -> None:
        subscription, consumer = self._subscription, self._consumer
        self._subscription = self._consumer = None
        if subscription is not None and self._direct is not None:
            await self._direct.unsubscribe_direct(subscription)
        if consumer is not None and self._nc.is_connected:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                async with asyncio.timeout(_CLEANUP_TIMEOUT_SECONDS):
                    await self._js.delete_consumer(self._stream, consumer)

    async def _publish(self, subject: str) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._nc.publish(subject)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # nats-py's ordered consumer, with any other client: it checks the delivery sequence and
    # replaces a lost consumer itself.

    async def _subscribe_ordered(self) -> None:
        config = ConsumerConfig(inactive_threshold=_INACTIVE_THRESHOLD_SECONDS, **self._position())
        subscription = self._ordered = await self._js.subscribe(
            self._subject,
            stream=self._stream,
            cb=self._on_ordered_message,
            ordered_consumer=True,
            idle_heartbeat=self._heartbeat,
            config=config,
        )
        info = await subscription.consumer_info()
        delivered = info.delivered.consumer_seq if info.delivered is not None else 0
        if not info.num_pending and not delivered:
            self.caught_up.set()
            if self._to_end:
                self._finish(None)  # nothing on this subject up to the end
        # else the last message says it is the last (pending 0), or the end is reached

    async def _on_ordered_message(self, msg: Msg) -> None:
        finished = self._finished
        if finished is None or finished.done():
            return
        metadata = msg.metadata
        self._hand_over(
            metadata.sequence.stream, msg.subject.encode(), msg.data, metadata.num_pending
        )

    async def _unsubscribe_ordered(self) -> None:
        subscription, self._ordered = self._ordered, None
        if subscription is None:
            return
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()
        if self._nc.is_connected:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                async with asyncio.timeout(_CLEANUP_TIMEOUT_SECONDS):
                    # Asked, not remembered: nats-py may have replaced the consumer meanwhile.
                    info = await subscription.consumer_info()
                    await self._js.delete_consumer(self._stream, info.name)

    def _finish(self, error: Exception | None) -> None:
        finished = self._finished
        if finished is None or finished.done():
            return
        if error is None:
            finished.set_result(None)
        else:
            finished.set_exception(error)


@dataclass(slots=True, frozen=True)
class ReadProgress:
    """How far a read has come."""

    read: int
    sequence: int
    last_sequence: int
    elapsed_seconds: float

    @property
    def rate(self) -> float:
        """Messages per second so far."""
        return self.read / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


ProgressCallback = Callable[[ReadProgress], None]
"""Called with how far a read has come."""


async def read_to_end(
    nc: Client,
    handle: StreamHandler,
    *,
    subject: str = ALL_EVENTS,
    start_sequence: int = 1,
    start_time: datetime | None = None,
    progress: ProgressCallback | None = None,
    progress_interval: float = 0.5,
) -> int:
    """Hand every message on ``subject`` from the start position up to the stream's end (as of
    the call) to ``handle``, in order; return how many were read.

    ``progress``, if given, hears how far the read is every ``progress_interval`` seconds and
    once at the end. Raises ``nats.js.errors.NotFoundError`` when there is no stream.
    """
    started = time.perf_counter()
    reader = OrderedReader(
        nc,
        handle,
        subject=subject,
        start_sequence=start_sequence,
        start_time=start_time,
        to_end=True,
    )

    def report() -> None:
        if progress is not None:
            progress(
                ReadProgress(
                    reader.read, reader.sequence, reader.end_sequence, time.perf_counter() - started
                )
            )

    async with reader:
        finished = reader.finished
        while not finished.done():
            await asyncio.wait([finished], timeout=progress_interval)
            if not finished.done():
                report()
        finished.result()
    report()
    return reader.read
