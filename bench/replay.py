"""Replay benchmark: how fast ``dvp-scheduler replay`` folds the stream, against a bare read.

Writes ``--events`` events (default 1,000,000) of a realistic mix over ``--tasks`` tasks
(default 10,000) to a fresh stream on an embedded nats-server (or ``--nats-url``), then in one
run measures

(a) the bare read: a nats-py ordered consumer with a message callback that decodes nothing, and
(b) ``dvp-scheduler replay --json`` run as a user runs it (a child process), which reads
    every event with its own ordered reader (`natsio.reader`), decodes it and folds it,

alternating them ``--rounds`` times (default 3; on a shared machine the best round is the one
least disturbed), and prints events/s for each, the ratio (b)/(a) and the peak memory (max RSS)
of the replay process. Usage:
``.venv/bin/python bench/replay.py [--events N] [--tasks N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
from nats.aio.msg import Msg

from contracts import (
    STREAM_NAME,
    Event,
    RetryDecision,
    RetryScheduled,
    Schedule,
    TaskDue,
    TaskError,
    TaskFailed,
    TaskRegistered,
    TaskSkipped,
    TaskSpec,
    TaskStarted,
    TaskSucceeded,
    definition_hash,
    encode,
    event_headers,
    event_subject,
    execution_id_for_fire,
)
from dvp_scheduler.natsserver import BinaryNatsServer
from natsio import stream_config

START = datetime(2026, 1, 1, tzinfo=UTC)
ERROR = TaskError(kind="raised", message="connection reset by peer", exception_type="OSError")


def realistic_events(count: int, tasks: int, seed: int = 7) -> Iterator[Event]:
    """Each task registers, then fires every 5 minutes: mostly due/started/succeeded; 10% of
    executions fail once and succeed on retry; 3% fail for good after a retry; 2% of fires are
    skipped (overlap)."""
    rng = random.Random(seed)
    ids = [(f"tenant-{i % 10}", f"plugin-{i % 50}.task-{i}") for i in range(tasks)]
    emitted = 0
    for tenant, task in ids:
        spec = TaskSpec(
            name=f"Task {task}",
            schedule=Schedule(interval_seconds=300),
            max_retries=2,
            timeout_seconds=60.0,
        )
        yield TaskRegistered(
            tenant_id=tenant,
            task_id=task,
            occurred_at=START,
            plugin=task.split(".")[0],
            plugin_version="1.4.2",
            spec=spec,
            definition_hash=definition_hash(task.split(".")[0], "1.4.2", spec),
        )
        emitted += 1
    fire = START
    while emitted < count:
        fire += timedelta(seconds=300)
        for tenant, task in ids:
            if emitted >= count:
                return
            for event in _execution(rng, tenant, task, fire):
                yield event
                emitted += 1
                if emitted >= count:
                    return


def _execution(rng: random.Random, tenant: str, task: str, fire: datetime) -> list[Event]:
    roll = rng.random()
    if roll < 0.02:
        return [
            TaskSkipped(
                tenant_id=tenant,
                task_id=task,
                occurred_at=fire,
                scheduled_for=fire,
                reason="overlap",
                detail="previous execution still running",
            )
        ]
    execution = execution_id_for_fire(tenant, task, fire)
    worker = f"executor-{rng.randrange(8)}"
    common = {"tenant_id": tenant, "task_id": task, "execution_id": execution}
    events: list[Event] = []
    attempts = 1 if roll >= 0.15 else 2
    now = fire
    for attempt in range(1, attempts + 1):
        due_at = now
        events.append(
            TaskDue(
                **common,
                occurred_at=due_at,
                attempt=attempt,
                trigger="schedule" if attempt == 1 else "retry",
                scheduled_for=due_at,
                fire_at=fire,
            )
        )
        events.append(
            TaskStarted(
                **common,
                occurred_at=due_at + timedelta(milliseconds=5),
                attempt=attempt,
                worker=worker,
                deadline=due_at + timedelta(seconds=60),
            )
        )
        duration = rng.randrange(20, 3000)
        end = due_at + timedelta(milliseconds=5 + duration)
        if attempt < attempts:
            decision = RetryDecision(should_retry=True, delay_seconds=10.0, reason="default")
            events.append(
                RetryScheduled(
                    **common,
                    occurred_at=end,
                    attempt=attempt,
                    worker=worker,
                    duration_ms=duration,
                    error=ERROR,
                    retry_at=end + timedelta(seconds=10),
                    delay_seconds=10.0,
                    decision=decision,
                )
            )
            now = end + timedelta(seconds=10)
        elif roll < 0.03:
            events.append(
                TaskFailed(
                    **common,
                    occurred_at=end,
                    attempt=attempt,
                    worker=worker,
                    duration_ms=duration,
                    error=ERROR,
                    reason="exhausted",
                    decision=RetryDecision(should_retry=False, reason="no retries left"),
                )
            )
        else:
            events.append(
                TaskSucceeded(
                    **common,
                    occurred_at=end,
                    attempt=attempt,
                    worker=worker,
                    duration_ms=duration,
                    data={"processed": rng.randrange(1000), "status": "ok"},
                )
            )
    return events


async def write(url: str, count: int, tasks: int) -> int:
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=4000)
    await js.add_stream(stream_config())
    started = time.perf_counter()
    for n, event in enumerate(realistic_events(count, tasks), start=1):
        await js.publish_async(event_subject(event), encode(event), headers=event_headers(event))
        if n % 100_000 == 0:
            print(f"  written {n:,} ({n / (time.perf_counter() - started):,.0f}/s)", flush=True)
    await js.publish_async_completed()
    info = await js.stream_info(STREAM_NAME)
    await nc.close()
    return info.state.messages


async def bare_read(url: str) -> tuple[int, float]:
    """Read the whole stream with an ordered consumer; the callback only counts."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    total = (await js.stream_info(STREAM_NAME)).state.messages
    done = asyncio.get_running_loop().create_future()
    read = 0

    async def on_message(msg: Msg) -> None:
        nonlocal read
        read += 1
        if read == total and not done.done():
            done.set_result(None)

    started = time.perf_counter()
    sub = await js.subscribe(
        "dvp.tasks.>", stream=STREAM_NAME, cb=on_message, ordered_consumer=True
    )
    await done
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    await nc.close()
    return read, elapsed


def cli_replay(url: str) -> tuple[float, float, str]:
    """Run ``dvp-scheduler replay --json`` as a child; its wall time, its max RSS (MB), and what
    it said on stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "dvp_scheduler", "replay", "--json", "--nats-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kb <= before:
        print("  (max RSS of the replay child not above earlier children; figure is a bound)")
    return wall, peak_kb / 1024, result.stderr.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternate (a) and (b) this often; best counts"
    )
    parser.add_argument("--nats-url", help="use this server (its DVP_TASKS stream is replaced)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dvp-bench-") as temp:
        server = None
        url = args.nats_url
        if url is None:
            server = BinaryNatsServer(store_dir=Path(temp) / "js").start()
            url = server.url
        try:
            print(f"writing {args.events:,} events over {args.tasks:,} tasks to {url}")
            written = asyncio.run(write(url, args.events, args.tasks))
            print(f"stream holds {written:,} messages")

            bare_rates: list[float] = []
            replay_rates: list[float] = []
            peak_mb = 0.0
            for round_ in range(1, args.rounds + 1):
                read, bare_seconds = asyncio.run(bare_read(url))
                bare_rates.append(read / bare_seconds)
                print(
                    f"round {round_}: (a) bare ordered consumer: {read:,} in {bare_seconds:.2f} s"
                    f" = {bare_rates[-1]:,.0f}/s"
                )
                wall, peak, said = cli_replay(url)
                peak_mb = max(peak_mb, peak)
                match = re.search(r"in ([\d.]+) s", said)
                fold_seconds = float(match.group(1)) if match else wall
                replay_rates.append(written / fold_seconds)
                print(
                    f"round {round_}: (b) dvp-scheduler replay: {written:,} in {fold_seconds:.2f} s"
                    f" = {replay_rates[-1]:,.0f}/s (process wall time {wall:.2f} s with start-up"
                    " and JSON output)"
                )
            best_bare, best_replay = max(bare_rates), max(replay_rates)
            print(f"(a) bare ordered consumer, best of {args.rounds}: {best_bare:,.0f} events/s")
            print(f"(b) dvp-scheduler replay,  best of {args.rounds}: {best_replay:,.0f} events/s")
            print(f"ratio (b)/(a), best to best: {best_replay / best_bare:.0%}")
            print(
                "ratio (b)/(a), round by round: "
                + ", ".join(f"{b / a:.0%}" for a, b in zip(bare_rates, replay_rates, strict=True))
            )
            print(f"peak memory of the replay process (max RSS): {peak_mb:,.0f} MB")
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
