"""The executor's parts without a server: stats, errors, the registrar's lookups and the work
feed's bookkeeping of attempts in flight."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts import TaskDue
from dvp_cms.plugins import Plugin
from executor import (
    Executor,
    ExecutorError,
    ExecutorSettings,
    ExecutorSetupError,
    ExecutorStats,
    UnownedTaskError,
)
from executor._registrar import Registrar, unique_plugins
from executor._work import Delivery, WorkFeed, next_pause
from natsio.errors import ServiceNotRunningError, ServiceStartupError


def _due(task_id: str = "nightly", tenant_id: str = "default") -> TaskDue:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return TaskDue(
        tenant_id=tenant_id,
        task_id=task_id,
        occurred_at=now,
        execution_id="01JAAAAAAAAAAAAAAAAAAAAAAA",
        attempt=1,
        trigger="schedule",
        scheduled_for=now,
    )


def test_stats_are_plain_numbers_with_the_attempts_running() -> None:
    stats = ExecutorStats()
    assert stats.running == 0
    assert all(isinstance(value, int) for value in dataclasses.astuple(stats))
    with pytest.raises(AttributeError):
        stats.typo = 1  # type: ignore[attr-defined]


def test_a_setup_error_is_a_service_startup_error() -> None:
    assert issubclass(ExecutorSetupError, ExecutorError)
    assert issubclass(ExecutorSetupError, ServiceStartupError)


def test_an_executor_that_never_ran() -> None:
    executor = Executor(ExecutorSettings(grace_seconds=1.0))
    assert executor.settings.grace_seconds == 1.0
    assert ExecutorSettings().grace_seconds == 30.0
    assert executor.in_flight == 0
    assert executor.stats.running == 0
    assert executor.plugins == []
    assert executor.tasks == {}


async def test_reload_outside_async_with_says_so() -> None:
    with pytest.raises(ServiceNotRunningError, match="use it with 'async with'"):
        await Executor().reload()


def test_an_unowned_task_names_the_plugins_and_tenants() -> None:
    registrar = Registrar(
        ExecutorSettings(tenants=("acme",)),
        [],
        clock=lambda: datetime.now(UTC),
        stats=ExecutorStats(),
    )
    with pytest.raises(UnownedTaskError) as caught:
        registrar.owner(_due(tenant_id="acme"), "dvp.tasks.acme.due.nightly", 7)
    message = str(caught.value)
    assert "stream sequence 7" in message
    assert "plugins: none; tenants: acme" in message


def test_a_plugin_name_loaded_twice_keeps_the_first(caplog: pytest.LogCaptureFixture) -> None:
    class First(Plugin):
        name = "twin"
        version = "1"

    class Second(Plugin):
        name = "twin"
        version = "2"

    first, second = First(), Second()
    with caplog.at_level(logging.ERROR, logger="dvp_scheduler.executor"):
        assert unique_plugins([first, second]) == [first]
    assert "loaded twice" in caplog.text


def test_pauses_double_up_to_five_seconds() -> None:
    assert next_pause(0.1) == 0.2
    assert next_pause(4.0) == 5.0


async def test_the_work_feed_counts_what_runs_and_wakes_when_a_slot_frees() -> None:
    stats = ExecutorStats()
    release = asyncio.Event()
    stopping = False
    launched: list[Delivery] = []

    async def attempt() -> None:
        await release.wait()

    def launch(delivery: Delivery) -> asyncio.Task[Any]:
        launched.append(delivery)
        return asyncio.create_task(attempt())

    async def pause(seconds: float) -> None:
        await asyncio.sleep(0)

    work = WorkFeed(
        Client(),
        cast(JetStreamContext, None),
        ExecutorSettings(concurrency=2),
        ack_wait=30.0,
        stats=stats,
        launch=launch,
        stopping=lambda: stopping,
        pause=pause,
    )
    msg = cast(Msg, object())
    assert work._accept(msg)
    assert work._accept(msg)
    assert not work._accept(msg)  # full: the feed gives it back
    assert (work.in_flight, stats.running, len(launched)) == (2, 2, 2)

    work._wakeup.clear()
    release.set()
    await asyncio.sleep(0.01)
    assert (work.in_flight, stats.running) == (0, 0)
    assert work._wakeup.is_set()

    stopping = True
    assert not work._accept(msg)  # stopping: nothing more is taken
