"""No task is ever stuck, whatever the fleet looks like (docs/design.md, guarantee 7):
executors as processes serving different tenants, a rolling reload one executor at a time, and
an executor killed mid-task that nobody replaces for a while; the ticker runs in-process."""

from __future__ import annotations

import json
import signal
from collections import defaultdict
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from contracts import (
    STREAM_NAME,
    Event,
    RetryScheduled,
    TaskDue,
    TaskFailed,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)
from contracts.stream import executor_durable
from dvp_scheduler.natsserver import NatsServer
from natsio import NatsConnection
from tests.integration.executor.conftest import ExecutorProcess, SpawnExecutor, publish_due
from tests.integration.executor.test_fleet import CATALOG, ready
from tests.support import eventually, read_events
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration


def by_execution(events: list[Event]) -> dict[str, list[Event]]:
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        execution_id = getattr(event, "execution_id", None)
        if execution_id is not None:
            grouped[execution_id].append(event)
    return grouped


def ended(events: list[Event]) -> bool:
    return any(isinstance(e, TaskSucceeded | TaskFailed) for e in events)


async def test_executors_of_different_tenants_each_run_only_their_tenants_tasks(
    js: JetStreamContext, stream: StreamInfo, spawn_executor: SpawnExecutor, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"job": 10}))
    env = {"DVP_TEST_CATALOG": str(catalog)}
    acme = spawn_executor(CATALOG, args=["--worker", "acme-only", "--tenant", "acme"], env=env)
    globex = spawn_executor(
        CATALOG, args=["--worker", "globex-only", "--tenant", "globex"], env=env
    )
    await ready(acme, globex)
    dues = [
        await publish_due(js, "catalog.job", tenant_id=tenant)
        for _ in range(20)
        for tenant in ("acme", "globex")
    ]

    async def all_ended() -> dict[str, list[Event]] | None:
        executions = by_execution(await read_events(js))
        done = all(ended(executions[due.execution_id]) for due in dues)
        return executions if done else None

    executions = await eventually(all_ended, within=20, message="every execution ended")
    for due in dues:
        [started] = [e for e in executions[due.execution_id] if isinstance(e, TaskStarted)]
        assert started.worker == f"{due.tenant_id}-only"
        assert any(isinstance(e, TaskSucceeded) for e in executions[due.execution_id])
    for tenant in ("acme", "globex"):
        info = await js.consumer_info(STREAM_NAME, executor_durable(tenant))
        assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (0, 0, 0)
    for process in (acme, globex):
        log = process.log
        process.stop()
        assert "terminated" not in log
        assert "no loaded plugin owns" not in log


async def test_a_rolling_reload_onto_a_new_task_loses_nothing(
    js: JetStreamContext,
    stream: StreamInfo,
    nats_server: NatsServer,
    spawn_executor: SpawnExecutor,
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"old": 10}))
    env = {"DVP_TEST_CATALOG": str(catalog), "DVP_TEST_CATALOG_INTERVAL": "1"}
    fleet = [spawn_executor(CATALOG, args=["--worker", f"e{n}"], env=env) for n in range(3)]
    await ready(*fleet)
    settings = TickerSettings(connection=NatsConnection(url=nats_server.url))
    async with Ticker(settings):
        catalog.write_text(json.dumps({"old": 10, "new": 10}))
        for process in fleet:  # one at a time, the others still without the new task
            process.signal(signal.SIGHUP)
            await eventually(lambda p=process: reloaded(p), within=10, message="reloaded")
            await eventually(
                lambda: _fired(js, "catalog.new", 1), within=10, message="the new task fires"
            )

        async def new_task_ran() -> bool:
            executions = by_execution(await read_events(js, "dvp.tasks.default.*.catalog.new"))
            return sum(1 for events in executions.values() if ended(events)) >= 3

        await eventually(new_task_ran, within=20, message="the new task's fires run")
    logs = [process.log for process in fleet]
    for process in fleet:
        process.stop()
    executions = by_execution(await read_events(js, "dvp.tasks.default.*.catalog.new"))
    dues = [e for events in executions.values() for e in events if isinstance(e, TaskDue)]
    assert dues
    # Every fire ran or is still open at the end (never ended without an outcome); none was
    # failed or terminated for lack of an owner.
    for events in executions.values():
        assert not any(isinstance(e, TaskFailed) for e in events), events
    assert sum(1 for events in executions.values() if ended(events)) >= 3
    info = await js.consumer_info(STREAM_NAME, executor_durable("default"))
    assert info.num_pending == 0
    assert not any("terminated" in log for log in logs)


def reloaded(process: ExecutorProcess) -> bool:
    """Whether the executor loaded its plugins again after a SIGHUP."""
    return "plugins loaded" in process.log.partition("loading plugins again")[2]


async def _fired(js: JetStreamContext, task_id: str, at_least: int) -> bool:
    events = await read_events(js, f"dvp.tasks.default.due.{task_id}")
    return len(events) >= at_least


async def test_an_attempt_killed_with_no_executor_left_is_closed_as_lost_and_the_task_goes_on(
    js: JetStreamContext,
    stream: StreamInfo,
    nats_server: NatsServer,
    spawn_executor: SpawnExecutor,
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"job": 2}))  # a timeout of 2 s
    env = {
        "DVP_TEST_CATALOG": str(catalog),
        "DVP_TEST_CATALOG_INTERVAL": "3",
        "DVP_TEST_CATALOG_SLEEP": "60",
    }
    first = spawn_executor(CATALOG, args=["--worker", "first"], env=env)
    await ready(first)
    settings = TickerSettings(
        connection=NatsConnection(url=nats_server.url), lost_after_seconds=2.0
    )
    async with AsyncExitStack() as stack:
        ticker = await stack.enter_async_context(Ticker(settings))

        async def started() -> TaskStarted | None:
            found = [
                e
                for e in await read_events(js, "dvp.tasks.default.started.>")
                if isinstance(e, TaskStarted)
            ]
            return found[0] if found else None

        victim = await eventually(started, within=10, message="an attempt started")
        first.signal(signal.SIGKILL)
        assert first.wait(5) == -signal.SIGKILL

        async def closed() -> RetryScheduled | TaskFailed | None:
            for event in await read_events(js, "dvp.tasks.default.*.catalog.job"):
                if (
                    isinstance(event, RetryScheduled | TaskFailed)
                    and event.execution_id == victim.execution_id
                ):
                    return event
            return None

        lost = await eventually(closed, within=15, message="the attempt closed as lost")
        assert isinstance(lost, RetryScheduled)  # retries remain: the default policy retries
        assert (lost.error.kind, lost.worker, lost.attempt) == ("lost", "first", 1)
        assert ticker.stats.lost_closed == 1
        skipped = [
            e
            for e in await read_events(js, "dvp.tasks.default.skipped.>")
            if isinstance(e, TaskSkipped)
        ]
        assert {s.reason for s in skipped} <= {"overlap"}

        second = spawn_executor(
            CATALOG, args=["--worker", "second"], env={**env, "DVP_TEST_CATALOG_SLEEP": "0"}
        )

        async def went_on() -> list[Event] | None:
            executions = by_execution(await read_events(js, "dvp.tasks.default.*.catalog.job"))
            later = [
                events
                for execution_id, events in executions.items()
                if execution_id != victim.execution_id and ended(events)
            ]
            victim_done = any(isinstance(e, TaskSucceeded) for e in executions[victim.execution_id])
            return executions[victim.execution_id] if later and victim_done else None

        history = await eventually(went_on, within=30, message="the retry and a later fire ran")
        second.stop()
    outcomes = [
        (type(e).__name__, e.attempt)
        for e in history
        if isinstance(e, TaskSucceeded | RetryScheduled | TaskFailed)
    ]
    assert outcomes == [("RetryScheduled", 1), ("TaskSucceeded", 2)]  # one outcome an attempt
