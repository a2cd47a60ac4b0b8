"""The worker processes without a server: what the executor records when a worker overruns,
blocks in ``dvp_task_failed`` or is cancelled, how many it starts, and that it leaves none."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from dvp_cms.plugins import PluginManager, RegisteredTask, discover_plugins
from dvp_cms.plugins.attempts import Failure, Success
from dvp_cms.plugins.hooks.scheduled_tasks import TaskExecutionContext
from executor import ExecutorSettings, ExecutorStats
from executor._isolation import Ran, WorkerPool
from tests.support import alive, eventually

BLOCKING = "tests.plugins.blocking:BlockingPlugin"


@dataclass
class Pool:
    pool: WorkerPool
    manager: PluginManager
    tasks: dict[str, RegisteredTask]
    stats: ExecutorStats

    async def run(self, task_id: str) -> Ran:
        return await self.pool.run(self.manager, self.tasks[task_id], TaskExecutionContext(task_id))


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    settings = ExecutorSettings(
        plugins=(BLOCKING,), use_entry_points=False, concurrency=3, decision_timeout_seconds=0.3
    )
    manager = PluginManager(discover_plugins(settings.plugins, use_entry_points=False).plugins)
    registration = await manager.collect_tasks("default")
    stats = ExecutorStats()
    workers = WorkerPool(settings, [], stats=stats)
    await workers.start(manager)
    try:
        yield Pool(workers, manager, registration.tasks, stats)
    finally:
        pids = workers.pids
        await workers.close()
        assert workers.pids == []
        assert [pid for pid in pids if alive(pid)] == []


async def test_an_overrun_is_killed_and_decided_by_the_hook_in_another_worker(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    [first] = pool.pool.pids
    ran = await pool.run("blocking.hang")  # blocks 20 s under a 0.5 s timeout
    assert isinstance(ran.result, Failure)
    assert ran.result.error.kind == "timeout"
    assert ran.result.error.message == "task 'blocking.hang' exceeded its timeout of 0.5s"
    assert 500 <= ran.result.duration_ms < 2000
    assert ran.decision is not None
    assert ran.decision.source == "plugin"
    assert ran.decision.reason.startswith("decided in process ")
    assert str(first) not in ran.decision.reason
    assert not alive(first)
    assert pool.stats.workers_killed == 1
    messages = [(r.name, r.getMessage()) for r in caplog.records]
    # the plugin's own log line came from its worker, through the executor's logging
    assert ("dvp_cms.plugins.blocking", "blocking the event loop for 20s") in messages
    [killed] = [r for r in caplog.records if "ran past its" in r.getMessage()]
    assert killed.getMessage().startswith("attempt 1 of blocking.hang (plugin 'blocking', ")
    assert killed.getMessage().endswith(
        f"ran past its 0.5s timeout; its worker process {first} was killed"
    )
    assert (killed.levelname, killed.task_id) == ("WARNING", "blocking.hang")


async def test_a_hook_that_blocks_is_killed_and_the_default_policy_applies(pool: Pool) -> None:
    ran = await pool.run("blocking.stubborn-hook")
    assert isinstance(ran.result, Failure)
    assert ran.result.error.message == "the hook will not answer"
    assert ran.decision is None
    assert pool.stats.workers_killed == 1
    assert isinstance((await pool.run("blocking.beat")).result, Success)


async def test_a_cancelled_attempt_has_its_worker_killed(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    [busy] = pool.pool.pids
    attempt = asyncio.create_task(pool.run("blocking.stuck"))
    await eventually(
        lambda: "blocking the event loop for 20s" in caplog.text,
        within=5,
        message="the attempt running",
    )
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    await eventually(lambda: not alive(busy), within=5, message="its worker killed")


async def test_workers_start_on_demand_up_to_the_concurrency_and_are_reused(pool: Pool) -> None:
    for _ in range(3):
        await pool.run("blocking.beat")
    assert pool.stats.workers_started == 1  # one at a time: the same worker each time
    ran = await asyncio.gather(*(pool.run("blocking.beat") for _ in range(9)))
    assert all(isinstance(r.result, Success) for r in ran)
    assert pool.stats.workers_started <= 3
    assert len(pool.pool.pids) <= 3
