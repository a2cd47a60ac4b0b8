"""Executor throughput: no-op tasks through 2 executor processes vs. the raw limit, with the
plugin run in the executor's event loop and in worker processes.

(a) raw: 2 bare nats-py worker processes on the same shared durable pull consumer doing the
    same round trip as an attempt at its barest: pull a ``TaskDue``, publish one event (a
    ``TaskSucceeded`` of the same size and headers as the executor's, with a message id,
    awaiting the stream's ack), ack the ``TaskDue``; same in-flight bound, and the same way of
    pulling as the executor (open pull requests delivering to a callback, topped up as slots
    free), so that the raw side is as fast as nats-py can do it.
(b) inline: 2 ``dvp-scheduler executor --isolation inline`` processes running a no-op plugin,
    which per task decode the ``TaskDue``, record ``TaskStarted``, call the plugin in their
    own event loop, record ``TaskSucceeded`` and ack.
(c) process: the same with ``--isolation process``: each attempt goes to a worker process and
    its result comes back (the workers start on demand, so the first tasks also pay for
    starting them).

Each phase runs on its own fresh nats-server. The ``TaskDue`` messages are published first,
with the consumer paused; both workers start and subscribe; then the consumer is resumed and
the clock runs until every message is acknowledged. Prints tasks/s for each and the ratios.
``--phase`` picks phases (repeatable; all three by default).

    .venv/bin/python bench/executor_throughput.py --tasks 20000 --concurrency 256

Target (issue 4): the executor reaches at least 50% of the raw round trip and 2,000 tasks/s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

import nats
from nats.aio.msg import Msg

from contracts import (
    STREAM_NAME,
    TaskDue,
    TaskSucceeded,
    encode,
    event_headers,
    event_subject,
    new_execution_id,
)
from contracts.stream import executor_durable
from dvp_cms.plugins.base import Plugin
from dvp_cms.plugins.hookspec import ScheduledTaskHooks
from dvp_scheduler.natsserver import BinaryNatsServer
from natsio import executor_consumer_config, stream_config

if TYPE_CHECKING:
    from dvp_cms.plugins.context import HookContext
    from dvp_cms.plugins.hooks.scheduled_tasks import (
        ScheduledTaskDefinition,
        TaskExecutionContext,
        TaskResult,
    )

ROOT = Path(__file__).resolve().parents[1]
TASKS = 10
PHASES: Final = ("raw", "inline", "process")


class NoopPlugin(Plugin, ScheduledTaskHooks):
    """Ten tasks that succeed at once."""

    name = "bench"
    version = "1.0.0"

    def dvp_register_scheduled_tasks(self, ctx: HookContext) -> list[ScheduledTaskDefinition]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        return [
            ScheduledTaskDefinition(
                task_id=f"bench.noop-{i}",
                name=f"No-op {i}",
                schedule=TaskSchedule(interval_seconds=3600),
            )
            for i in range(TASKS)
        ]

    async def dvp_execute_scheduled_task(
        self,
        task: ScheduledTaskDefinition,
        ctx: HookContext,
        execution_ctx: TaskExecutionContext,
    ) -> TaskResult:
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        return TaskResult(success=True)


# -- the raw worker (a child process) ---------------------------------------------------------


async def raw_worker(url: str, concurrency: int) -> None:
    """The round trip at its barest, with the fastest means nats-py offers.

    Pull requests stay open on the consumer and deliver to a callback (nats-py's ``fetch``
    waits for a whole batch, one ``next_msg`` per message); each message publishes one
    ``TaskSucceeded`` of the size and headers the executor sends (``publish_async``, its
    PubAck awaited) and is then acked; pulls keep at most ``concurrency`` in flight.
    """
    nc = await nats.connect(url)
    js = nc.jetstream()
    now = datetime.now(UTC)
    outcome = TaskSucceeded(
        tenant_id="default",
        task_id="bench.noop-0",
        occurred_at=now,
        execution_id=new_execution_id(),
        attempt=1,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        duration_ms=0,
    )
    subject_name = event_subject(outcome)
    payload = encode(outcome)
    headers = event_headers(outcome)
    pull_subject = f"$JS.API.CONSUMER.MSG.NEXT.{STREAM_NAME}.{executor_durable('default')}"
    inbox = nc.new_inbox()
    in_flight = 0
    requested = 0
    freed = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def handle(msg: Msg) -> None:
        nonlocal in_flight
        try:
            future = await js.publish_async(
                subject_name, payload, headers={**headers, "Nats-Msg-Id": f"raw:{msg.reply}"}
            )
            await future
            await msg.ack()
        finally:
            in_flight -= 1
            freed.set()

    async def on_message(msg: Msg) -> None:
        nonlocal in_flight, requested
        if msg.headers is not None and not msg.data and "Status" in msg.headers:
            pending = msg.headers.get("Nats-Pending-Messages", "0")
            requested = max(0, requested - int(pending))
            freed.set()
            return
        requested = max(0, requested - 1)
        in_flight += 1
        task = asyncio.create_task(handle(msg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await nc.subscribe(inbox, cb=on_message)
    print("ready", flush=True)
    while True:
        wanted = concurrency - in_flight - requested
        if wanted > 0 and (wanted >= max(1, concurrency // 8) or requested == 0):
            requested += wanted
            body = json.dumps({"batch": wanted, "expires": 1_000_000_000}).encode()
            await nc.publish(pull_subject, body, reply=inbox)
            continue
        freed.clear()
        await freed.wait()


# -- the driver -------------------------------------------------------------------------------


async def prepare(url: str, tasks: int) -> None:
    """Stream, paused consumer, and ``tasks`` TaskDue messages waiting in it."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(stream_config())
        await js.add_consumer(STREAM_NAME, dataclasses.replace(executor_consumer_config("default")))
        until = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        await js.pause_consumer(STREAM_NAME, executor_durable("default"), until)
        now = datetime.now(UTC)
        for start in range(0, tasks, 1000):
            for i in range(start, min(tasks, start + 1000)):
                due = TaskDue(
                    tenant_id="default",
                    task_id=f"bench.noop-{i % TASKS}",
                    occurred_at=now,
                    execution_id=new_execution_id(),
                    attempt=1,
                    trigger="manual",
                    scheduled_for=now,
                )
                await js.publish_async(event_subject(due), encode(due), headers=event_headers(due))
            await js.publish_async_completed()
    finally:
        await nc.close()


async def run_and_time(url: str, tasks: int) -> float:
    """Resume the consumer; seconds until every TaskDue is acknowledged."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        began = time.perf_counter()
        await js.resume_consumer(STREAM_NAME, executor_durable("default"))
        while True:
            info = await js.consumer_info(STREAM_NAME, executor_durable("default"))
            settled = info.num_pending == 0 and info.num_ack_pending == 0
            if settled and info.ack_floor.stream_seq >= tasks:
                return time.perf_counter() - began
            await asyncio.sleep(0.02)
    finally:
        await nc.close()


def start_workers(
    kind: str, url: str, concurrency: int, log: Path
) -> list[subprocess.Popen[bytes]]:
    if kind == "raw":
        command = [sys.executable, __file__, "--raw-worker", url, "--concurrency", str(concurrency)]
    else:
        command = [
            sys.executable, "-m", "dvp_scheduler", "--log-level", "INFO", "executor",
            "--nats-url", url, "--no-entry-points", "--concurrency", str(concurrency),
            "--plugin", "bench.executor_throughput:NoopPlugin", "--isolation", kind,
        ]  # fmt: skip
    processes = []
    for n in range(2):
        out = (log.parent / f"{log.name}-{kind}-{n}.log").open("wb")
        processes.append(subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT))
    return processes


def wait_ready(kind: str, log: Path, count: int, timeout: float = 30) -> None:
    marker = "ready" if kind == "raw" else " consuming "
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = [log.parent / f"{log.name}-{kind}-{n}.log" for n in range(count)]
        if all(p.exists() and marker in p.read_text(errors="replace") for p in logs):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{kind} workers not ready within {timeout}s; see {log.parent}")


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def phase(kind: str, tasks: int, concurrency: int, workdir: Path) -> float:
    server = BinaryNatsServer().start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(prepare(server.url, tasks))
        processes = start_workers(kind, server.url, concurrency, workdir / "worker")
        wait_ready(kind, workdir / "worker", 2)
        seconds = asyncio.run(run_and_time(server.url, tasks))
    finally:
        stop(processes)
        server.stop()
    rate = tasks / seconds
    print(f"{kind:>8}: {tasks} tasks in {seconds:.2f}s = {rate:,.0f} tasks/s", flush=True)
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256, help="in flight per worker")
    parser.add_argument(
        "--phase",
        dest="phases",
        action="append",
        choices=PHASES,
        help="run this phase (repeatable; default: all three)",
    )
    parser.add_argument("--raw-worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_worker:
        asyncio.run(raw_worker(args.raw_worker, args.concurrency))
        return 0
    print(
        f"{args.tasks} no-op tasks, 2 worker processes, {args.concurrency} in flight each, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dvp-bench-") as tmp:
        for kind in PHASES:
            if kind in (args.phases or PHASES):
                rates[kind] = phase(kind, args.tasks, args.concurrency, Path(tmp))
    for kind, base in (("inline", "raw"), ("process", "raw"), ("process", "inline")):
        if kind in rates and base in rates:
            print(f"   ratio: {kind} = {rates[kind] / rates[base]:.0%} of {base}", flush=True)
    for kind in ("inline", "process"):
        if kind in rates and "raw" in rates:
            met = rates[kind] / rates["raw"] >= 0.5 and rates[kind] >= 2000
            print(
                f"  target for {kind} (>= 50% of raw and >= 2,000 tasks/s): "
                f"{'met' if met else 'NOT met'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
