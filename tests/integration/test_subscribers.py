"""The FastStream alert example: a durable subscriber that survives its restart without gaps
or repeats."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime, timedelta

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from contracts import (
    Event,
    TaskError,
    TaskFailed,
    TaskSkipped,
    TaskSucceeded,
    encode,
    event_headers,
    event_subject,
)
from dvp_scheduler.natsserver import NatsServer

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 24, 3, tzinfo=UTC)


def failed(n: int, tenant: str = "acme") -> TaskFailed:
    return TaskFailed(
        tenant_id=tenant,
        task_id="sync.partner",
        occurred_at=T0,
        execution_id=f"exec-{n}",
        attempt=1,
        worker="w",
        duration_ms=5,
        error=TaskError(kind="raised", message=f"boom {n}"),
        reason="aborted",
    )


def skipped(n: int) -> TaskSkipped:
    return TaskSkipped(
        tenant_id="acme",
        task_id="sync.partner",
        occurred_at=T0,
        scheduled_for=T0 + timedelta(minutes=n),
        reason="overlap",
    )


async def publish(js: JetStreamContext, *events: Event) -> None:
    for event in events:
        await js.publish(event_subject(event), encode(event), headers=event_headers(event))


class AlertProcess:
    def __init__(self, url: str) -> None:
        self.url = url
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "examples.subscribers.alerts",
            "--tenant",
            "acme",
            "--nats-url",
            self.url,
            stdout=asyncio.subprocess.PIPE,
        )

    async def lines_until(self, expected: list[str], within: float = 30.0) -> list[str]:
        """Alert lines until every expected one has come (a message held by the previous
        instance's pull request comes back after the consumer's ack wait)."""
        assert self.process is not None
        assert self.process.stdout is not None
        lines: list[str] = []
        async with asyncio.timeout(within):
            while not set(expected) <= set(lines):
                raw = await self.process.stdout.readline()
                assert raw, f"the subscriber exited early; it printed {lines}"
                if raw.startswith(b"ALERT"):
                    lines.append(raw.decode().strip())
        return lines

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def test_alerts_survive_a_restart_without_gaps_or_repeats(
    nats_server: NatsServer, js: JetStreamContext, stream: StreamInfo
) -> None:
    await publish(js, failed(1), skipped(1), failed(2, tenant="other"), failed(3))
    await publish(
        js,
        TaskSucceeded(
            tenant_id="acme",
            task_id="sync.partner",
            occurred_at=T0,
            execution_id="ok",
            attempt=1,
            worker="w",
            duration_ms=1,
        ),
    )
    first_expected = [
        "ALERT failed acme/sync.partner execution exec-1 attempt 1: boom 1 (aborted)",
        "ALERT failed acme/sync.partner execution exec-3 attempt 1: boom 3 (aborted)",
        "ALERT skipped acme/sync.partner fire 2026-11-24T03:01:00+00:00: overlap",
    ]
    second_expected = [
        "ALERT failed acme/sync.partner execution exec-4 attempt 1: boom 4 (aborted)",
        "ALERT failed acme/sync.partner execution exec-5 attempt 1: boom 5 (aborted)",
        "ALERT skipped acme/sync.partner fire 2026-11-24T03:02:00+00:00: overlap",
        "ALERT skipped acme/sync.partner fire 2026-11-24T03:03:00+00:00: overlap",
    ]
    alerts = AlertProcess(nats_server.url)
    try:
        await alerts.start()
        first = await alerts.lines_until(first_expected)
        await alerts.stop()
        await publish(js, failed(4), skipped(2), failed(5), skipped(3))  # while it is down
        await alerts.start()
        second = await alerts.lines_until(second_expected)
    finally:
        await alerts.stop()
    assert sorted(first) == sorted(first_expected)  # nothing else: other tenants, successes
    assert sorted(second) == sorted(second_expected)  # no repeat of the first run
