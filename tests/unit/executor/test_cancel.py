"""An operator's cancel of a running attempt, without a server: inline and in a worker process,
the plugin's coroutine is cancelled as a timeout cancels it, the attempt is a ``cancelled``
failure that nobody is asked about and that is never retried."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from contracts import TaskCancelRequested, TaskDue, TaskFailed
from contracts.outcomes import cancel_applies, cancelled_error
from dvp_cms.plugins import PluginManager, RegisteredTask, discover_plugins
from dvp_cms.plugins.attempts import Failure, Success
from dvp_cms.plugins.hooks.scheduled_tasks import TaskExecutionContext
from executor import ExecutorSettings, ExecutorStats, outcome_event
from executor._cancel import AttemptCancel
from executor._isolation import Ran, WorkerPool, run_inline, until_cancelled
from tests.support import alive, eventually

SLOW = "tests.plugins.slow:SlowPlugin"
BLOCKING = "tests.plugins.blocking:BlockingPlugin"
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def request(execution_id: str = "e-1", attempt: int = 1) -> TaskCancelRequested:
    return TaskCancelRequested(
        tenant_id="default",
        task_id="slow.reindex",
        occurred_at=NOW,
        execution_id=execution_id,
        attempt=attempt,
        note="reindexing the wrong shard",
        actor="ops@host",
    )


def cancel_later(cancel: AttemptCancel, seconds: float) -> asyncio.TimerHandle:
    return asyncio.get_running_loop().call_later(seconds, cancel.fire, request())


def assert_cancelled(ran: Ran, *, within_ms: int) -> None:
    assert isinstance(ran.result, Failure)
    assert ran.result.error.kind == "cancelled"
    assert ran.result.error.message == "cancelled by ops@host: reindexing the wrong shard"
    assert ran.result.duration_ms < within_ms
    assert ran.decision is None, "nobody is asked about a cancelled attempt"


def test_a_request_cancels_the_attempt_it_names_and_every_later_one() -> None:
    asked = request("e-1", attempt=2)
    assert not cancel_applies(asked, "e-1", 1)
    assert cancel_applies(asked, "e-1", 2)
    assert cancel_applies(asked, "e-1", 3)
    assert not cancel_applies(asked, "e-2", 2)


def test_a_cancelled_attempt_fails_with_reason_cancelled_whatever_retries_remain() -> None:
    due = TaskDue(
        tenant_id="default",
        task_id="slow.reindex",
        occurred_at=NOW,
        execution_id="e-1",
        attempt=1,
        trigger="schedule",
        scheduled_for=NOW,
    )
    failure = Failure(cancelled_error(request()), RuntimeError("cancelled"), duration_ms=7)
    outcome = outcome_event(
        due, failure, worker="w", max_retries=5, decision=None, now=NOW, jitter=0.5
    )
    assert isinstance(outcome, TaskFailed)
    assert (outcome.reason, outcome.decision, outcome.error.kind) == (
        "cancelled",
        None,
        "cancelled",
    )


async def test_until_cancelled_returns_the_result_that_comes_first() -> None:
    cancel = AttemptCancel()
    assert await until_cancelled(asyncio.sleep(0, result="done"), cancel) == "done"
    cancelled: list[bool] = []

    async def long() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "never"

    cancel_later(cancel, 0.05)
    assert await until_cancelled(long(), cancel) is None
    assert cancelled == [True]


@dataclass
class Plugins:
    manager: PluginManager
    tasks: dict[str, RegisteredTask]


@pytest.fixture
async def plugins(monkeypatch: pytest.MonkeyPatch) -> Plugins:
    monkeypatch.setenv("DVP_TEST_SLOW_SECONDS", "30")
    manager = PluginManager(discover_plugins((SLOW, BLOCKING), use_entry_points=False).plugins)
    registration = await manager.collect_tasks("default")
    return Plugins(manager, registration.tasks)


async def test_inline_the_plugin_coroutine_is_cancelled_at_once(plugins: Plugins) -> None:
    cancel = AttemptCancel()
    cancel_later(cancel, 0.1)
    began = time.monotonic()
    ran = await run_inline(
        plugins.manager,
        plugins.tasks["slow.reindex"],
        TaskExecutionContext("slow.reindex"),
        cancel,
        decision_timeout=1.0,
    )
    assert time.monotonic() - began < 1.0
    assert_cancelled(ran, within_ms=1000)


@pytest.fixture
async def pool(plugins: Plugins) -> AsyncIterator[tuple[WorkerPool, ExecutorStats]]:
    settings = ExecutorSettings(plugins=(SLOW, BLOCKING), use_entry_points=False, concurrency=2)
    stats = ExecutorStats()
    workers = WorkerPool(settings, [], stats=stats)
    await workers.start(plugins.manager)
    try:
        yield workers, stats
    finally:
        pids = workers.pids
        await workers.close()
        assert workers.pids == []
        assert not [pid for pid in pids if alive(pid)]


async def cancelled_in_a_worker(
    plugins: Plugins, workers: WorkerPool, task_id: str
) -> tuple[Ran, float]:
    """Run ``task_id`` in ``workers``, cancelled 0.3 s in: what ran, and how many seconds it
    took."""
    cancel = AttemptCancel()
    cancel_later(cancel, 0.3)
    began = time.monotonic()
    ran = await workers.run(
        plugins.manager, plugins.tasks[task_id], TaskExecutionContext(task_id), cancel
    )
    return ran, time.monotonic() - began


async def test_in_a_worker_the_coroutine_is_cancelled_and_the_worker_kept(
    plugins: Plugins, pool: tuple[WorkerPool, ExecutorStats]
) -> None:
    workers, stats = pool
    [worker] = workers.pids
    ran, took = await cancelled_in_a_worker(plugins, workers, "slow.reindex")
    assert took < 1.0
    assert_cancelled(ran, within_ms=1000)
    assert stats.workers_killed == 0
    assert workers.pids == [worker], "a plugin that heeds the cancel keeps its worker"
    beat = await workers.run(
        plugins.manager, plugins.tasks["blocking.beat"], TaskExecutionContext("blocking.beat")
    )
    assert isinstance(beat.result, Success)
    assert beat.result.data is not None
    assert beat.result.data["pid"] == worker, "and the worker takes the next attempt"


async def test_a_plugin_blocking_its_worker_is_killed_half_a_second_after_the_cancel(
    plugins: Plugins, pool: tuple[WorkerPool, ExecutorStats]
) -> None:
    workers, stats = pool
    [worker] = workers.pids
    # blocking.stuck: time.sleep(20) under a 3 s timeout
    ran, took = await cancelled_in_a_worker(plugins, workers, "blocking.stuck")
    assert took < 1.5
    assert_cancelled(ran, within_ms=1500)
    assert stats.workers_killed == 1
    await eventually(lambda: not alive(worker), within=5, message="its worker gone")


async def test_an_attempt_that_ends_before_the_cancel_keeps_its_result(
    plugins: Plugins, pool: tuple[WorkerPool, ExecutorStats]
) -> None:
    workers, _ = pool
    cancel = AttemptCancel()
    ran = await workers.run(
        plugins.manager,
        plugins.tasks["blocking.beat"],
        TaskExecutionContext("blocking.beat"),
        cancel,
    )
    cancel.fire(request())  # too late: the attempt has ended
    assert isinstance(ran.result, Success)
    # The worker, still told nothing, runs the next attempt as usual.
    again = await workers.run(
        plugins.manager, plugins.tasks["blocking.beat"], TaskExecutionContext("blocking.beat")
    )
    assert isinstance(again.result, Success)
