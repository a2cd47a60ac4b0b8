"""Helpers for the ticker's integration tests: building and publishing events, reading the
stream back with its own timestamps."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from contracts import (
    STREAM_NAME,
    Event,
    EventDecodeError,
    EventKind,
    RetryDecision,
    RetryScheduled,
    Schedule,
    TaskDue,
    TaskError,
    TaskRegistered,
    TaskSkipped,
    TaskSpec,
    decode,
    definition_hash,
    encode,
    event_headers,
    event_subject,
    subject_filter,
)

TENANT = "acme"
_REPO_ROOT = Path(__file__).resolve().parents[3]


def registered(
    task_id: str, schedule: Schedule, *, occurred_at: datetime | None = None
) -> TaskRegistered:
    spec = TaskSpec(name=task_id, schedule=schedule, max_retries=3, timeout_seconds=30)
    return TaskRegistered(
        tenant_id=TENANT,
        task_id=task_id,
        occurred_at=occurred_at or datetime.now(UTC),
        plugin="tests",
        plugin_version="1",
        spec=spec,
        definition_hash=definition_hash("tests", "1", spec),
    )


def retry_of(due: TaskDue, *, retry_at: datetime) -> RetryScheduled:
    return RetryScheduled(
        tenant_id=due.tenant_id,
        task_id=due.task_id,
        occurred_at=datetime.now(UTC),
        execution_id=due.execution_id,
        attempt=due.attempt,
        worker="test-worker",
        duration_ms=1,
        error=TaskError(kind="returned", message="try again"),
        retry_at=retry_at,
        delay_seconds=(retry_at - datetime.now(UTC)).total_seconds(),
        decision=RetryDecision(should_retry=True),
    )


async def publish(js: JetStreamContext, event: Event) -> int:
    ack = await js.publish(event_subject(event), encode(event), headers=event_headers(event))
    return int(ack.seq)


async def read_with_timestamps(js: JetStreamContext, subject: str) -> list[tuple[Event, datetime]]:
    """Every event on ``subject`` (a filter) with the stream's timestamp, oldest first."""
    info = await js.stream_info(STREAM_NAME, subjects_filter=subject)
    if not info.state.subjects:
        return []
    found: list[tuple[Event, datetime]] = []
    sub = await js.subscribe(
        subject, stream=STREAM_NAME, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    try:
        while True:
            msg = await sub.next_msg(timeout=5.0)
            with contextlib.suppress(EventDecodeError):  # a test may store garbage on purpose
                found.append((decode(msg.data), msg.metadata.timestamp))
            if msg.metadata.num_pending == 0:
                return found
    finally:
        await sub.unsubscribe()


async def dues(js: JetStreamContext, task_id: str) -> list[TaskDue]:
    events = await read_with_timestamps(js, subject_filter(TENANT, EventKind.DUE, task_id))
    return [event for event, _ in events if isinstance(event, TaskDue)]


async def skips(js: JetStreamContext, task_id: str) -> list[TaskSkipped]:
    events = await read_with_timestamps(js, subject_filter(TENANT, EventKind.SKIPPED, task_id))
    return [event for event, _ in events if isinstance(event, TaskSkipped)]


async def early_in_a_second(limit: float = 0.4) -> datetime:
    """Wait (at most a second) until the clock is early in a second; return the whole second.

    Tests that count fires of a one-second schedule start here so that a second does not tick
    over between setting up and checking.
    """
    fraction = time.time() % 1.0
    if fraction > limit:
        await asyncio.sleep(1.0 - fraction + 0.01)
    return datetime.fromtimestamp(math.floor(time.time()), UTC)


def seconds(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(seconds=k) for k in range(count)]


def covered_fires(events: list[TaskDue]) -> list[datetime]:
    """The fire instants the ``TaskDue`` events stand for, a catch-up for all it coalesced."""
    fires: list[datetime] = []
    for event in events:
        assert event.fire_at is not None
        if event.trigger == "catchup":
            fires.extend(
                event.fire_at - timedelta(seconds=k) for k in reversed(range(event.missed_fires))
            )
        else:
            fires.append(event.fire_at)
    return fires


@contextlib.contextmanager
def ticker_process(url: str) -> Iterator[subprocess.Popen[bytes]]:
    """``dvp-scheduler ticker`` as its own process; killed on the way out if still running."""
    env = {**os.environ, "PYTHONPATH": str(_REPO_ROOT)}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dvp_scheduler", "ticker", "--nats-url", url],
            cwd=_REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            yield process
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
