"""Helpers of the executor's integration tests: executors in-process and as processes, and
publishing ``TaskDue`` the way the ticker does."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, StreamInfo

from contracts import (
    STREAM_NAME,
    Event,
    TaskDue,
    encode,
    event_headers,
    event_subject,
    new_execution_id,
)
from contracts.events import Trigger
from dvp_cms.plugins import Plugin
from dvp_scheduler.natsserver import NatsServer
from executor import Executor, ExecutorSettings
from natsio import NatsConnection, executor_consumer_config
from tests.support import read_events

ROOT = Path(__file__).resolve().parents[3]
ACK_WAIT = 1.5
"""The shared consumer's ack wait in these tests (30 s in production), so redelivery is quick."""


async def publish_due(
    js: JetStreamContext,
    task_id: str,
    *,
    tenant_id: str = "default",
    attempt: int = 1,
    execution_id: str | None = None,
    trigger: Trigger = "schedule",
) -> TaskDue:
    """Publish a ``TaskDue`` as the ticker would, and return it."""
    now = datetime.now(UTC)
    due = TaskDue(
        tenant_id=tenant_id,
        task_id=task_id,
        occurred_at=now,
        execution_id=execution_id or new_execution_id(),
        attempt=attempt,
        trigger=trigger,
        scheduled_for=now,
    )
    await js.publish(event_subject(due), encode(due), headers=event_headers(due))
    return due


async def events_of(js: JetStreamContext, execution_id: str) -> list[Event]:
    """Every execution event of ``execution_id``, oldest first."""
    return [
        e
        for e in await read_events(js, "dvp.tasks.>")
        if getattr(e, "execution_id", None) == execution_id
    ]


@pytest.fixture
async def consumer(js: JetStreamContext, stream: StreamInfo) -> ConsumerInfo:
    """The shared executor consumer, created up front with a short ack wait."""
    config = dataclasses.replace(executor_consumer_config("default"), ack_wait=ACK_WAIT)
    return await js.add_consumer(STREAM_NAME, config)


StartExecutor = Callable[..., AbstractAsyncContextManager[Executor]]


@pytest.fixture
def start_executor(nats_server: NatsServer) -> StartExecutor:
    """``async with start_executor(plugins=[instances], references=["module:attr"],
    **settings) as executor:`` in this process."""

    @asynccontextmanager
    async def start(
        *,
        plugins: Sequence[Plugin] = (),
        references: Sequence[str] = (),
        jitter: float | None = None,
        **options: Any,
    ) -> AsyncIterator[Executor]:
        options.setdefault("use_entry_points", False)
        options.setdefault("ack_wait_seconds", ACK_WAIT)
        options.setdefault("fetch_timeout_seconds", 0.25)
        options.setdefault("grace_seconds", 5.0)
        settings = ExecutorSettings(
            connection=NatsConnection(url=nats_server.url), plugins=tuple(references), **options
        )
        kwargs: dict[str, Any] = {"plugins": plugins}
        if jitter is not None:
            kwargs["jitter"] = lambda: jitter
        async with Executor(settings, **kwargs) as executor:
            yield executor

    return start


class ExecutorProcess:
    """``python -m dvp_scheduler executor ...`` as a child process, its log in a file."""

    def __init__(self, url: str, plugins: Sequence[str], *args: str, env: dict[str, str]) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="dvp-executor-", suffix=".log")  # noqa: SIM115
        command = [sys.executable, "-m", "dvp_scheduler", "--log-level", "DEBUG", "executor"]
        command += ["--nats-url", url, "--no-entry-points", "--ack-wait", str(ACK_WAIT)]
        for plugin in plugins:
            command += ["--plugin", plugin]
        command += list(args)
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not end within 10 s; safe to call twice."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


SpawnExecutor = Callable[..., ExecutorProcess]


@pytest.fixture
def spawn_executor(nats_server: NatsServer) -> Iterator[SpawnExecutor]:
    """Start executor processes; every one still running is stopped after the test."""
    started: list[ExecutorProcess] = []

    def spawn(
        *plugins: str, args: Sequence[str] = (), env: dict[str, str] | None = None
    ) -> ExecutorProcess:
        process = ExecutorProcess(nats_server.url, plugins, *args, env=env or {})
        started.append(process)
        return process

    try:
        yield spawn
    finally:
        for process in started:
            process.stop()
