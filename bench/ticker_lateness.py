"""How late is a ``TaskDue``? The ticker under 1,000 fires per second and 100,000 cron tasks.

Registers 1,000 tasks on a 1 s interval (offsets spread as registration spreads them) and
100,000 on assorted crons (10% hourly, 60% daily, 30% weekly, at scattered minutes, in five time
zones), starts ``dvp-scheduler ticker`` as its own process, lets it run, and prints:

* the lateness of each ``TaskDue``: the stream's own timestamp of the message minus the fire
  instant it is for, as p50 / p99 / max, over a window that starts ``--warmup`` seconds after
  the ticker is ready and (unless ``--no-boundary``) contains a minute boundary, where about
  200 crons fire at the same instant;
* the ticker's CPU use during the window;
* the ticker's resident memory (peak and at the end);
* its start-up time with all those tasks: from spawning the process to its "ready" log line,
  and the part of it the ticker itself measured (connect, read the stream, build the heap).

Usage: ``python bench/ticker_lateness.py [--duration 30] [--nats-url URL]``. Without
``--nats-url`` an embedded nats-server with a temporary store is started and stopped.
The 1 s tasks use ``overlap="allow"``, since no executor runs to finish their executions.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from contracts import (
    ALL_DUE,
    STREAM_NAME,
    Schedule,
    TaskDue,
    TaskRegistered,
    TaskSpec,
    decode,
    definition_hash,
    encode,
    event_headers,
    event_subject,
    spread_offset,
)
from dvp_scheduler.natsserver import BinaryNatsServer
from natsio import stream_config

REPO_ROOT = Path(__file__).resolve().parents[1]
TENANT = "bench"
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
READY = re.compile(r"ticker ready: (\d+) tasks, (\d+) scheduled, start-up ([\d.]+)s")


def cron_for(n: int) -> str:
    """An assorted mix: 10% hourly, 60% daily, 30% weekly, at scattered minutes and hours.

    At a minute boundary about 200 crons fire at once (hourly ones share 60 minute slots); the
    measured window always contains one (see ``--no-boundary``).
    """
    spread = int.from_bytes(hashlib.blake2b(n.to_bytes(4, "big"), digest_size=4).digest(), "big")
    minute, hour, weekday = spread % 60, (spread // 60) % 24, (spread // 1440) % 7
    kind = n % 10
    if kind < 1:
        return f"{minute} * * * *"  # hourly
    if kind < 7:
        return f"{minute} {hour} * * *"  # daily
    return f"{minute} {hour} * * {weekday}"  # weekly


def registration(task_id: str, schedule: Schedule, now: datetime) -> TaskRegistered:
    spec = TaskSpec(name=task_id, schedule=schedule, max_retries=0, timeout_seconds=60)
    return TaskRegistered(
        tenant_id=TENANT,
        task_id=task_id,
        occurred_at=now,
        plugin="bench",
        plugin_version="1",
        spec=spec,
        definition_hash=definition_hash("bench", "1", spec),
    )


async def register(js: JetStreamContext, interval_tasks: int, cron_tasks: int) -> None:
    now = datetime.now(UTC)
    # Offsets as registration gives them (spread by a hash of tenant and task), so the 1,000
    # tasks fire 1,000 times a second rather than all in one millisecond.
    events = [
        registration(
            f"every-second.t{n}",
            Schedule(
                interval_seconds=1,
                offset_seconds=spread_offset(TENANT, f"every-second.t{n}", 1),
                overlap="allow",
            ),
            now,
        )
        for n in range(interval_tasks)
    ]
    events += [
        registration(
            f"cron.t{n}", Schedule(cron_expression=cron_for(n), timezone=ZONES[n % 5]), now
        )
        for n in range(cron_tasks)
    ]
    pending = []
    for event in events:
        pending.append(
            await js.publish_async(
                event_subject(event), encode(event), headers=event_headers(event)
            )
        )
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def lateness_ms(
    js: JetStreamContext, since: datetime, until: datetime
) -> tuple[list[float], list[float]]:
    """Lateness of each ``schedule`` TaskDue whose fire is in [since, until): (1 s, crons)."""
    info = await js.stream_info(STREAM_NAME, subjects_filter=ALL_DUE)
    interval: list[float] = []
    cron: list[float] = []
    if not info.state.subjects:
        return interval, cron
    done = asyncio.Event()

    async def on_message(msg: Msg) -> None:
        event = decode(msg.data)
        metadata = msg.metadata
        if isinstance(event, TaskDue) and event.trigger == "schedule":
            late = (metadata.timestamp - event.scheduled_for).total_seconds() * 1000
            if since <= event.scheduled_for < until:
                (interval if event.task_id.startswith("every") else cron).append(late)
        if metadata.num_pending == 0:
            done.set()

    sub = await js.subscribe(
        ALL_DUE,
        stream=STREAM_NAME,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        cb=on_message,
    )
    try:
        await asyncio.wait_for(done.wait(), 120)
    finally:
        await sub.unsubscribe()
    return interval, cron


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_ticker(url: str) -> tuple[subprocess.Popen[str], float, float]:
    """Spawn the ticker; return it, the wall time to its ready line and its own start-up."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "dvp_scheduler", "ticker", "--nats-url", url],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        found = READY.search(line)
        if found:
            wall = time.monotonic() - started
            # Keep draining stderr so the ticker never blocks on a full pipe.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process, wall, float(found.group(3))
    raise SystemExit(f"the ticker exited ({process.wait()}) before it was ready")


async def main(args: argparse.Namespace) -> None:
    server = None
    url = args.nats_url
    if url is None:
        server = BinaryNatsServer().start()
        url = server.url
    process = None
    try:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(stream_config())
        began = time.monotonic()
        await register(js, args.interval_tasks, args.cron_tasks)
        print(
            f"registered {args.interval_tasks} 1 s tasks and {args.cron_tasks} cron tasks "
            f"in {time.monotonic() - began:.1f}s"
        )
        process, wall, own = start_ticker(url)
        print(
            f"start-up with {args.interval_tasks + args.cron_tasks} tasks: {wall:.2f}s to "
            f"ready (process start included), {own:.2f}s measured by the ticker"
        )
        await asyncio.sleep(args.warmup)  # the start-up pass (catch-ups) is not steady state
        if not args.no_boundary and args.duration < 60:
            # Start so that a minute boundary, when the crons fire together, is mid-window.
            second = datetime.now(UTC).second + datetime.now(UTC).microsecond / 1e6
            await asyncio.sleep((60 - args.duration / 2 - second) % 60)
        since = datetime.now(UTC)
        cpu_before = cpu_seconds(process.pid)
        peak = 0.0
        deadline = time.monotonic() + args.duration
        while time.monotonic() < deadline:
            peak = max(peak, rss_mb(process.pid))
            await asyncio.sleep(0.5)
        until = datetime.now(UTC)
        cpu = (cpu_seconds(process.pid) - cpu_before) / args.duration * 100
        end_rss, high_water = rss_mb(process.pid), rss_mb(process.pid, "VmHWM")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        interval, cron = await lateness_ms(js, since, until)
        everything = interval + cron
        print(
            f"ran {args.duration:g}s: {len(everything)} TaskDue "
            f"({len(everything) / args.duration:.0f}/s; {len(interval)} of 1 s tasks, "
            f"{len(cron)} of crons)"
        )
        for name, values in (("all", everything), ("1 s tasks", interval), ("crons", cron)):
            if values:
                print(
                    f"lateness {name:>9}: p50 {percentile(values, 0.5):7.1f} ms   "
                    f"p99 {percentile(values, 0.99):7.1f} ms   max {max(values):7.1f} ms"
                )
        print(f"ticker CPU: {cpu:.0f}% of one core during the window")
        print(f"ticker RSS: {end_rss:.0f} MB at the end, peak {max(peak, high_water):.0f} MB")
        await nc.close()
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to run (30)")
    parser.add_argument("--interval-tasks", type=int, default=1000)
    parser.add_argument("--cron-tasks", type=int, default=100_000)
    parser.add_argument("--nats-url", help="an existing server (default: start one)")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds after ready not measured (2)"
    )
    parser.add_argument(
        "--no-boundary",
        action="store_true",
        help="do not place a minute boundary (crons firing together) inside the window",
    )
    asyncio.run(main(parser.parse_args()))
