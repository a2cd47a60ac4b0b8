"""Attempts run in worker processes (``isolation="process"``, the default): a plugin that
blocks is killed at its deadline while everything else goes on, a worker that dies is one
failed attempt, a stop or the executor's death leaves no worker behind, and a reload brings
new workers.

The first test runs in whatever mode ``DVP_EXECUTOR_ISOLATION`` names (unset: the default);
with ``inline`` it fails, which is the point of the process mode.
"""

from __future__ import annotations

import itertools
import re
import signal
import time

import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo

from contracts import Event, TaskFailed, TaskStarted, TaskSucceeded
from dvp_scheduler.natsserver import NatsServer
from natsio import NatsConnection
from tests.integration.executor.conftest import (
    SpawnExecutor,
    StartExecutor,
    events_of,
    publish_due,
)
from tests.integration.executor.test_fleet import ready
from tests.support import alive, eventually, read_events
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration

BLOCKING = "tests.plugins.blocking:BlockingPlugin"


async def outcome(js: JetStreamContext, execution_id: str, within: float = 10.0) -> Event:
    async def recorded() -> Event | None:
        events = await events_of(js, execution_id)
        return next((e for e in events if isinstance(e, TaskSucceeded | TaskFailed)), None)

    return await eventually(recorded, within=within, message=f"the outcome of {execution_id}")


async def test_a_plugin_blocking_its_loop_is_killed_at_its_timeout_and_the_rest_goes_on(
    js: JetStreamContext,
    consumer: ConsumerInfo,
    nats_server: NatsServer,
    spawn_executor: SpawnExecutor,
) -> None:
    """Two executor processes serve the tenant (a redelivery would show as a second start);
    a ticker fires ``blocking.beat`` every second while ``blocking.stuck`` blocks for 20 s
    under a 3 s timeout."""
    executors = [spawn_executor(BLOCKING, args=["--worker", name]) for name in ("left", "right")]
    await ready(*executors)
    async with Ticker(TickerSettings(connection=NatsConnection(url=nats_server.url))):

        async def beating() -> bool:
            return bool(await read_events(js, "dvp.tasks.default.succeeded.blocking.beat"))

        await eventually(beating, within=10, message="the healthy task runs")
        stuck = await publish_due(js, "blocking.stuck", trigger="manual")
        failed = await outcome(js, stuck.execution_id)
        last_beat = len(await read_events(js, "dvp.tasks.default.succeeded.blocking.beat"))
        await eventually(
            lambda: _more_beats(js, last_beat), within=5, message="the healthy task goes on"
        )
    logs = [process.log for process in executors]
    for process in executors:
        process.stop()

    assert isinstance(failed, TaskFailed), failed
    assert failed.error.kind == "timeout"
    assert failed.error.message == "task 'blocking.stuck' exceeded its timeout of 3s"
    assert 2500 <= failed.duration_ms <= 5000
    # dvp_task_failed was asked with the TaskTimeoutError, in another worker process
    assert failed.decision is not None
    assert failed.decision.source == "plugin"
    assert "exceeded its timeout of 3s" in failed.decision.reason
    started = [e for e in await events_of(js, stuck.execution_id) if isinstance(e, TaskStarted)]
    assert len(started) == 1, "run once: no redelivery to the other executor"
    killed = [
        line
        for log in logs
        for line in log.splitlines()
        if "attempt 1 of blocking.stuck" in line and "ran past its 3s timeout" in line
    ]
    assert len(killed) == 1
    assert re.search(r"its worker process \d+ was killed", killed[0])

    beats = sorted(
        e.occurred_at
        for e in await read_events(js, "dvp.tasks.default.succeeded.blocking.beat")
        if isinstance(e, TaskSucceeded)
    )
    while_stuck = [t for t in beats if started[0].occurred_at <= t <= failed.occurred_at]
    assert len(while_stuck) >= 2, beats
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(beats)]
    assert max(gaps) <= 2.5, gaps


async def _more_beats(js: JetStreamContext, than: int) -> bool:
    return len(await read_events(js, "dvp.tasks.default.succeeded.blocking.beat")) > than


async def test_a_stop_with_a_blocked_attempt_ends_within_the_grace_and_leaves_no_worker(
    js: JetStreamContext, consumer: ConsumerInfo, start_executor: StartExecutor
) -> None:
    async with start_executor(
        references=[BLOCKING], isolation="process", grace_seconds=0.5
    ) as executor:
        due = await publish_due(js, "blocking.stuck")
        await eventually(lambda: executor.in_flight == 1, within=5, message="attempt running")
        pids = executor.worker_pids
        assert pids
        began = time.monotonic()
    took = time.monotonic() - began
    assert took < 0.5 + 2, took
    assert executor.stats.returned == 1  # given back for another executor
    assert executor.worker_pids == []
    assert [pid for pid in pids if alive(pid)] == []
    kinds = [type(e).__name__ for e in await events_of(js, due.execution_id)]
    assert kinds == ["TaskDue", "TaskStarted"]  # no outcome: it is redelivered


async def test_a_worker_that_dies_fails_its_attempt_and_the_next_one_runs(
    js: JetStreamContext, consumer: ConsumerInfo, start_executor: StartExecutor
) -> None:
    async with start_executor(references=[BLOCKING], isolation="process") as executor:
        died = await outcome(js, (await publish_due(js, "blocking.exit")).execution_id)
        after = await outcome(js, (await publish_due(js, "blocking.beat")).execution_id)
    assert isinstance(died, TaskFailed)
    assert died.error.kind == "raised"
    assert re.fullmatch(
        r"worker process \d+ exited with code 3 while running the attempt", died.error.message
    )
    assert died.error.exception_type is not None
    assert died.error.exception_type.endswith("WorkerDiedError")
    assert isinstance(after, TaskSucceeded)
    assert executor.stats.workers_died == 1


async def test_the_workers_of_an_executor_that_dies_exit_with_it(
    consumer: ConsumerInfo, spawn_executor: SpawnExecutor
) -> None:
    process = spawn_executor(BLOCKING, args=["--isolation", "process"])
    await ready(process)
    workers = [int(pid) for pid in re.findall(r"worker process (\d+) started", process.log)]
    assert workers
    process.signal(signal.SIGKILL)
    assert process.wait(5) == -signal.SIGKILL
    await eventually(
        lambda: not any(alive(pid) for pid in workers), within=5, message="the workers exited"
    )


async def test_after_a_reload_new_workers_run_the_plugins_loaded_again(
    js: JetStreamContext,
    consumer: ConsumerInfo,
    start_executor: StartExecutor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DVP_TEST_BLOCKING_LABEL", "first")
    async with start_executor(references=[BLOCKING], isolation="process") as executor:
        before = await outcome(js, (await publish_due(js, "blocking.beat")).execution_id)
        monkeypatch.setenv("DVP_TEST_BLOCKING_LABEL", "second")
        await executor.reload()
        after = await outcome(js, (await publish_due(js, "blocking.beat")).execution_id)
        assert isinstance(before, TaskSucceeded)
        assert isinstance(after, TaskSucceeded)
        assert before.data is not None
        assert after.data is not None
        assert (before.data["label"], after.data["label"]) == ("first", "second")
        await eventually(
            lambda: not alive(before.data["pid"]),  # type: ignore[index]
            within=5,
            message="the worker of the first load retired",
        )
        assert executor.worker_pids == [after.data["pid"]]
