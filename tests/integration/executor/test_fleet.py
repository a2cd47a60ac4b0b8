"""Executors as processes: a fleet shares the work, survives a SIGKILL mid-task, stops
gracefully on SIGTERM and loads its plugins again on SIGHUP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, StreamInfo

from contracts import (
    STREAM_NAME,
    Event,
    TaskRegistered,
    TaskStarted,
    TaskSucceeded,
    TaskUnregistered,
)
from contracts.stream import executor_durable
from natsio import executor_consumer_config
from tests.integration.executor.conftest import (
    ExecutorProcess,
    SpawnExecutor,
    StartExecutor,
    events_of,
    publish_due,
)
from tests.plugins.slow import SlowPlugin
from tests.support import eventually, read_events

pytestmark = pytest.mark.integration

SLOW = "tests.plugins.slow:SlowPlugin"
CATALOG = "tests.plugins.catalog:CatalogPlugin"


async def ready(*processes: ExecutorProcess) -> None:
    """Wait until every process consumes (its plugins are loaded and registered)."""
    for process in processes:

        def consuming(process: ExecutorProcess = process) -> bool:
            assert process.process.poll() is None, f"executor exited:\n{process.log}"
            return " consuming " in process.log

        await eventually(consuming, within=15, message="executor ready")


async def count(js: JetStreamContext, filter_subject: str) -> int:
    info = await js.stream_info(STREAM_NAME, subjects_filter=filter_subject)
    return sum((info.state.subjects or {}).values())


async def test_an_attempt_killed_mid_task_is_completed_by_another_executor(
    js: JetStreamContext, consumer: ConsumerInfo, spawn_executor: SpawnExecutor
) -> None:
    env = {"DVP_TEST_SLOW_SECONDS": "1.0"}
    first = spawn_executor(SLOW, args=["--worker", "first"], env=env)
    await ready(first)
    due = await publish_due(js, "slow.reindex")

    async def started_by_first() -> bool:
        events = await events_of(js, due.execution_id)
        return any(isinstance(e, TaskStarted) and e.worker == "first" for e in events)

    await eventually(started_by_first, within=5, message="first executor started the attempt")
    first.signal(signal.SIGKILL)
    assert first.wait(5) == -signal.SIGKILL
    second = spawn_executor(SLOW, args=["--worker", "second"], env=env)

    async def outcome() -> list[Event] | None:
        events = await events_of(js, due.execution_id)
        return events if any(isinstance(e, TaskSucceeded) for e in events) else None

    events = await eventually(outcome, within=15, message="the attempt completed")
    second.stop()
    events = await events_of(js, due.execution_id)  # after the stop: nothing more came
    started = [e.worker for e in events if isinstance(e, TaskStarted)]
    outcomes = [e for e in events if isinstance(e, TaskSucceeded)]
    assert started == ["first", "second"]
    assert len(outcomes) == 1
    assert outcomes[0].worker == "second"
    assert outcomes[0].attempt == 1


async def test_two_executors_share_1000_due_tasks_none_lost_none_twice(
    js: JetStreamContext,
    consumer: ConsumerInfo,
    spawn_executor: SpawnExecutor,
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({f"t{i}": 10 for i in range(10)}))
    env = {"DVP_TEST_CATALOG": str(catalog)}
    executors = [
        spawn_executor(CATALOG, args=["--worker", name, "--concurrency", "64"], env=env)
        for name in ("left", "right")
    ]
    await ready(*executors)
    dues = await asyncio.gather(*(publish_due(js, f"catalog.t{i % 10}") for i in range(1000)))

    async def all_done() -> bool:
        return await count(js, "dvp.tasks.default.succeeded.>") >= 1000

    await eventually(all_done, within=30, interval=0.2, message="1000 tasks done")
    for process in executors:
        process.stop()
    started: dict[str, list[str]] = defaultdict(list)
    succeeded: Counter[str] = Counter()
    registered: Counter[str] = Counter()
    out_of_order: list[str] = []
    for event in await read_events(js):
        if isinstance(event, TaskStarted):
            started[event.execution_id].append(event.worker)
        elif isinstance(event, TaskSucceeded):
            succeeded[event.execution_id] += 1
            if event.execution_id not in started:  # TaskStarted is confirmed first
                out_of_order.append(event.execution_id)
        elif isinstance(event, TaskRegistered):
            registered[event.task_id] += 1
    ids = {due.execution_id for due in dues}
    assert out_of_order == []
    assert set(started) == ids
    assert all(len(workers) == 1 for workers in started.values())
    assert set(succeeded) == ids
    assert set(succeeded.values()) == {1}
    shares = Counter(workers[0] for workers in started.values())
    assert set(shares) == {"left", "right"}, shares
    assert set(registered.values()) == {1}  # both registered at once, recorded once
    info = await js.consumer_info(STREAM_NAME, executor_durable("default"))
    assert (info.num_ack_pending, info.num_pending, info.num_redelivered) == (0, 0, 0)


async def test_sigterm_lets_the_attempt_in_flight_finish(
    js: JetStreamContext, consumer: ConsumerInfo, spawn_executor: SpawnExecutor
) -> None:
    process = spawn_executor(SLOW, env={"DVP_TEST_SLOW_SECONDS": "1.0"})
    await ready(process)
    due = await publish_due(js, "slow.reindex")

    async def started() -> bool:
        return any(isinstance(e, TaskStarted) for e in await events_of(js, due.execution_id))

    await eventually(started, within=5, message="attempt started")
    process.signal(signal.SIGTERM)
    assert process.wait(10) == 0, process.log
    kinds = [type(e).__name__ for e in await events_of(js, due.execution_id)]
    assert kinds == ["TaskDue", "TaskStarted", "TaskSucceeded"]
    info = await js.consumer_info(STREAM_NAME, executor_durable("default"))
    assert (info.num_ack_pending, info.num_pending) == (0, 0)
    assert "waiting up to 30s for 1 attempt(s) in flight" in process.log


async def test_an_attempt_over_the_grace_period_is_given_back(
    js: JetStreamContext,
    stream: StreamInfo,
    start_executor: StartExecutor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A long ack wait: the attempt can only come back this fast by a negative ack.
    await js.add_consumer(
        STREAM_NAME, dataclasses.replace(executor_consumer_config("default"), ack_wait=60)
    )
    monkeypatch.setenv("DVP_TEST_SLOW_SECONDS", "30")
    async with start_executor(
        plugins=[SlowPlugin()], grace_seconds=0.2, worker="first"
    ) as executor:
        due = await publish_due(js, "slow.reindex")

        async def running() -> bool:
            return executor.in_flight == 1 and executor.stats.started == 1

        await eventually(running, within=5, message="attempt running")
    assert executor.stats.returned == 1
    monkeypatch.setenv("DVP_TEST_SLOW_SECONDS", "0")
    async with start_executor(plugins=[SlowPlugin()], worker="second") as executor:

        async def done() -> bool:
            return executor.stats.succeeded == 1

        await eventually(done, within=10, message="attempt done by the next executor")
    kinds = [type(e).__name__ for e in await events_of(js, due.execution_id)]
    assert kinds == ["TaskDue", "TaskStarted", "TaskStarted", "TaskSucceeded"]


async def test_sighup_loads_the_plugins_again(
    js: JetStreamContext,
    consumer: ConsumerInfo,
    spawn_executor: SpawnExecutor,
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"alpha": 10, "beta": 10}))
    process = spawn_executor(CATALOG, env={"DVP_TEST_CATALOG": str(catalog)})
    await ready(process)
    catalog.write_text(json.dumps({"alpha": 20, "gamma": 10}))
    process.signal(signal.SIGHUP)

    async def changes() -> list[tuple[str, str]] | None:
        found = [
            (type(e).__name__, e.task_id)
            for e in await read_events(js)
            if isinstance(e, TaskRegistered | TaskUnregistered)
        ]
        return found if len(found) >= 5 else None

    found = await eventually(changes, within=10, message="definitions published again")
    assert sorted(found[:2]) == [
        ("TaskRegistered", "catalog.alpha"),
        ("TaskRegistered", "catalog.beta"),
    ]
    assert sorted(found[2:]) == [
        ("TaskRegistered", "catalog.alpha"),
        ("TaskRegistered", "catalog.gamma"),
        ("TaskUnregistered", "catalog.beta"),
    ]
    due = await publish_due(js, "catalog.gamma")

    async def gamma_ran() -> bool:
        events = await events_of(js, due.execution_id)
        return any(isinstance(e, TaskSucceeded) for e in events)

    await eventually(gamma_ran, within=5, message="the new task runs")
