"""Reading the stream fast, and replaying it in-process: the audit path, with no projector.

Reads use an ordered push consumer with a message callback: the fastest way nats-py has to read
a stream (several times a ``next_msg()`` loop or a pull ``fetch()``). The callback decodes and
folds each message at once; the stream sequence and the number still pending come from the
reply subject, parsed here without building nats-py's metadata object.
"""

from __future__ import annotations

import asyncio
import gc
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from contracts.stream import STREAM_NAME
from contracts.subjects import ALL_EVENTS
from projector.fold import ingest
from projector.state import DEFAULT_HISTORY_LIMIT, ProjectionState

_WHITESPACE: Final = re.compile(r"\s")

_PROGRESS_EVERY: Final = 4096
"""Messages between two looks at the clock for progress reports."""


class FastHeadersClient(Client):
    """nats-py's client with a faster parser of header lines, for reading streams.

    The stock parser tests every character of every header name through a generator; with the
    three or four headers each event carries, that is about a quarter of the cost of reading a
    message. This one gives the same result (a property test compares them).
    """

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
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


async def connect_for_reading(**options: Any) -> Client:
    """Like ``nats.connect(**options)``, with the faster header parser."""
    client = FastHeadersClient()
    await client.connect(**options)
    return client


@dataclass(slots=True, frozen=True)
class ReplayProgress:
    """How far a read has come."""

    read: int
    sequence: int
    last_sequence: int
    elapsed_seconds: float

    @property
    def rate(self) -> float:
        """Messages per second so far."""
        return self.read / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


ProgressCallback = Callable[[ReplayProgress], None]
MessageHandler = Callable[[int, bytes], object]
"""Called with (stream sequence, body) for each message, in stream order."""


def stream_position(reply: str) -> tuple[int, int]:
    """(stream sequence, messages still pending) of a JetStream message, from its reply subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` (9 tokens) or the
    newer form with domain and account hash first (12 tokens).
    """
    tokens = reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[8])
    return int(tokens[7]), int(tokens[10])


def consumer_config(
    *,
    start_sequence: int = 1,
    start_time: datetime | None = None,
) -> ConsumerConfig:
    """Where an ordered consumer starts: a stream sequence (1: the beginning) or an instant."""
    if start_time is not None:
        return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start_time)
    if start_sequence <= 1:
        return ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    return ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start_sequence
    )


async def read_to_end(
    js: JetStreamContext,
    handle: MessageHandler,
    *,
    subject: str = ALL_EVENTS,
    start_sequence: int = 1,
    start_time: datetime | None = None,
    progress: ProgressCallback | None = None,
    progress_interval: float = 0.5,
) -> int:
    """Hand every message on ``subject`` from the start position up to the stream's end (as of
    the call) to ``handle``, in order; return how many were read."""
    info = await js.stream_info(STREAM_NAME)
    last = info.state.last_seq
    if last == 0 or last < start_sequence:
        return 0
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    started = time.perf_counter()
    next_report = started + progress_interval
    read = 0

    async def on_message(msg: Msg) -> None:
        nonlocal read, next_report
        if done.done():
            return
        sequence, pending = stream_position(msg.reply)
        try:
            handle(sequence, msg.data)
        except Exception as error:  # a bug in the handler: end the read with it
            done.set_exception(error)
            return
        read += 1
        if sequence >= last or pending == 0:
            done.set_result(None)
        elif progress is not None and read % _PROGRESS_EVERY == 0:
            now = time.perf_counter()
            if now >= next_report:
                next_report = now + progress_interval
                progress(ReplayProgress(read, sequence, last, now - started))

    sub = await js.subscribe(
        subject,
        stream=STREAM_NAME,
        cb=on_message,
        ordered_consumer=True,
        config=consumer_config(start_sequence=start_sequence, start_time=start_time),
    )
    try:
        if subject != ALL_EVENTS or start_time is not None:
            # A filtered read may match nothing at all: then no callback would ever end it.
            consumer = await sub.consumer_info()
            delivered = consumer.delivered.consumer_seq if consumer.delivered else 0
            if consumer.num_pending == 0 and not delivered and not done.done():
                done.set_result(None)
        await done
    finally:
        await sub.unsubscribe()
    if progress is not None:
        progress(ReplayProgress(read, last, last, time.perf_counter() - started))
    return read


async def replay(
    js: JetStreamContext,
    *,
    until: datetime | None = None,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    progress: ProgressCallback | None = None,
) -> ProjectionState:
    """Fold the whole stream (or the events that occurred at or before ``until``) in-process."""
    state = ProjectionState(history_limit=history_limit)

    def handle(sequence: int, data: bytes) -> None:
        ingest(state, sequence, data, until=until)

    # The state is a tree (no reference cycles), yet as it grows the cyclic collector keeps
    # re-scanning it: pausing the collector for the read makes a long replay ~15% faster.
    collecting = gc.isenabled()
    gc.disable()
    try:
        await read_to_end(js, handle, progress=progress)
    finally:
        if collecting:
            gc.enable()
    return state
