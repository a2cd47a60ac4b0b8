"""Dashboard benchmark: how fast the tasks page renders for 10,000 tasks.

Writes ``--tasks`` registrations (default 10,000: ten tenants, fifty plugins, cron and interval
schedules), each with one successful execution, to a fresh stream on an embedded nats-server,
runs a projector and ``dvp-scheduler dashboard`` as child processes (as a user runs them), waits
until the projector has folded everything, then times ``GET /tasks`` over HTTP: the first page,
a text-filtered page and a page filtered by tenant and status, ``--requests`` times each
(default 50), and prints p50 and p99 in ms. The very first request (no snapshot of the rows yet:
it asks the projector for all of them) is printed on its own. The target is p99 under 300 ms.
Usage: ``.venv/bin/python bench/dashboard_tasks.py [--tasks N] [--requests N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats

from contracts import (
    Event,
    Schedule,
    TaskDue,
    TaskRegistered,
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
from dvp_scheduler.natsserver.cluster import free_port
from natsio import stream_config
from projector.queries import ask_status

START = datetime.now(UTC) - timedelta(minutes=30)
CRONS = ("0 3 * * *", "*/5 * * * *", "0 9 * * 1-5", "0 0 L * *", "15 */6 * * *")


def events(tasks: int) -> list[Event]:
    """Per task: its registration and one successful execution."""
    out: list[Event] = []
    for i in range(tasks):
        tenant, task = f"tenant-{i % 10}", f"plugin-{i % 50}.task-{i:05d}"
        schedule = (
            Schedule(cron_expression=CRONS[i % 5], timezone="Europe/Berlin")
            if i % 2
            else Schedule(interval_seconds=300)
        )
        spec = TaskSpec(name=f"Task {i}", schedule=schedule, max_retries=2, timeout_seconds=60.0)
        out.append(
            TaskRegistered(
                tenant_id=tenant,
                task_id=task,
                occurred_at=START,
                plugin=task.split(".")[0],
                plugin_version="1.0",
                spec=spec,
                definition_hash=definition_hash(task.split(".")[0], "1.0", spec),
            )
        )
        fire = START + timedelta(minutes=1)
        execution = execution_id_for_fire(tenant, task, fire)
        common = {"tenant_id": tenant, "task_id": task, "execution_id": execution, "attempt": 1}
        out.append(
            TaskDue(
                occurred_at=fire, trigger="schedule", scheduled_for=fire, fire_at=fire, **common
            )
        )
        out.append(
            TaskStarted(
                occurred_at=fire,
                worker="bench:1",
                deadline=fire + timedelta(seconds=60),
                **common,
            )
        )
        out.append(TaskSucceeded(occurred_at=fire, worker="bench:1", duration_ms=120, **common))
    return out


async def publish(url: str, tasks: int) -> int:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(stream_config())
    batch: list[asyncio.Future[object]] = []
    written = 0
    for event in events(tasks):
        batch.append(
            asyncio.ensure_future(
                js.publish(event_subject(event), encode(event), headers=event_headers(event))
            )
        )
        if len(batch) >= 500:
            await asyncio.gather(*batch)
            written += len(batch)
            batch = []
    await asyncio.gather(*batch)
    written += len(batch)
    await nc.close()
    return written


async def projector_caught_up(url: str, last: int, within: float = 300) -> None:
    nc = await nats.connect(url)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            status = await ask_status(nc)
            if status is not None and status.sequence >= last:
                return
            await asyncio.sleep(0.5)
        raise TimeoutError("the projector did not catch up")
    finally:
        await nc.close()


def get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
        assert response.status == 200, response.status
    elapsed = (time.perf_counter() - started) * 1000
    assert b'<table class="tasks">' in body
    return elapsed


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   (n={len(ordered)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="dvp-bench-dashboard-") as work:
        server = BinaryNatsServer(store_dir=Path(work) / "store").start()
        try:
            written = asyncio.run(publish(server.url, args.tasks))
            print(f"stream: {args.tasks:,} tasks, {written:,} events")
            common = [sys.executable, "-m", "dvp_scheduler", "--log-level", "WARNING"]
            env = {**os.environ, "DVP_NATS_URL": server.url}
            processes.append(
                subprocess.Popen(
                    [*common, "projector", "--no-mirror", "--checkpoint-file",
                     str(Path(work) / "ckpt")],
                    env=env,
                )
            )  # fmt: skip
            started = time.monotonic()
            asyncio.run(projector_caught_up(server.url, written))
            print(f"projector caught up in {time.monotonic() - started:.1f} s")
            port = free_port()
            processes.append(subprocess.Popen([*common, "dashboard", "--port", str(port)], env=env))
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(base + "/health", timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            print(f"first request (fetches every row): {get(base + '/tasks'):.1f} ms")
            pages = {
                "tasks page 1": "/tasks",
                "text filter (q=task-012)": "/tasks?q=task-012",
                "tenant+status+page 3": "/tasks?tenant=tenant-3&status=idle&page=3",
            }
            for name, path in pages.items():
                samples = [get(base + path) for _ in range(args.requests)]
                print(f"{name:<28} {percentiles(samples)}")
        finally:
            for process in reversed(processes):
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
