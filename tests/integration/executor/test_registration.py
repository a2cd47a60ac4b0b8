"""Definitions are published only when new or changed; tasks that went away are unregistered;
a plugin that fails to load or register is reported and the others go on."""

from __future__ import annotations

import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo

from contracts import TaskRegistered, TaskUnregistered
from dvp_cms.plugins.context import HookContext
from tests.integration.executor.conftest import StartExecutor
from tests.plugins.catalog import BrokenRegistrationPlugin, CatalogPlugin
from tests.support import read_events

pytestmark = pytest.mark.integration


async def definitions(js: JetStreamContext) -> list[tuple[str, str, str]]:
    """(kind, tenant, task) of every registration event, oldest first."""
    found = []
    for event in await read_events(js, "dvp.tasks.>"):
        if not isinstance(event, TaskRegistered | TaskUnregistered):
            continue
        assert isinstance(event, TaskRegistered | TaskUnregistered)
        kind = "registered" if isinstance(event, TaskRegistered) else "unregistered"
        found.append((kind, event.tenant_id, event.task_id))
    return found


async def test_registers_new_and_changed_definitions_only(
    js: JetStreamContext, consumer: ConsumerInfo, start_executor: StartExecutor
) -> None:
    catalog = CatalogPlugin({"alpha": 10, "beta": 10})
    async with start_executor(
        plugins=[catalog, BrokenRegistrationPlugin()], tenants=("default", "acme")
    ) as executor:
        assert executor.stats.plugin_errors == 2  # the broken plugin, once per tenant
        assert sorted(executor.tasks) == [
            ("acme", "catalog.alpha"),
            ("acme", "catalog.beta"),
            ("default", "catalog.alpha"),
            ("default", "catalog.beta"),
        ]
    first = await definitions(js)
    assert sorted(first) == [
        ("registered", tenant, f"catalog.{name}")
        for tenant in ("acme", "default")
        for name in ("alpha", "beta")
    ]

    # A restart with the same definitions publishes nothing.
    async with start_executor(plugins=[catalog], tenants=("default", "acme")) as executor:
        assert executor.stats.registered == 0
        assert await definitions(js) == first

        # Changed, added and removed definitions, loaded again.
        catalog.tasks = {"alpha": 20, "gamma": 10}
        await executor.reload()
        assert executor.stats.registered == 4
        assert executor.stats.unregistered == 2
        assert sorted(executor.tasks)[:2] == [("acme", "catalog.alpha"), ("acme", "catalog.gamma")]
    changes = (await definitions(js))[len(first) :]
    assert sorted(changes) == [
        ("registered", "acme", "catalog.alpha"),
        ("registered", "acme", "catalog.gamma"),
        ("registered", "default", "catalog.alpha"),
        ("registered", "default", "catalog.gamma"),
        ("unregistered", "acme", "catalog.beta"),
        ("unregistered", "default", "catalog.beta"),
    ]


async def test_a_plugin_that_fails_keeps_its_tasks_and_others_go_on(
    js: JetStreamContext, consumer: ConsumerInfo, start_executor: StartExecutor
) -> None:
    async with start_executor(plugins=[CatalogPlugin({"alpha": 10})]):
        pass
    before = await definitions(js)

    def broken(ctx: HookContext) -> list[object]:
        raise RuntimeError("catalog database unreachable")

    failing = CatalogPlugin({"alpha": 10})
    failing.dvp_register_scheduled_tasks = broken  # type: ignore[assignment]
    async with start_executor(
        plugins=[failing, BrokenRegistrationPlugin()],
        isolation="inline",  # `failing` holds a local function: it cannot go to a worker
        references=["tests.plugins.no_such_module:Plugin", "tests.plugins.slow:SlowPlugin"],
    ) as executor:
        # one load error and two registration errors; the slow plugin still registers
        assert executor.stats.plugin_errors == 3
        assert executor.stats.unregistered == 0
        assert sorted(task for _, task in executor.tasks) == [
            "slow.blocking-export",
            "slow.reindex",
        ]
    assert (await definitions(js))[: len(before)] == before
    assert sorted((await definitions(js))[len(before) :]) == [
        ("registered", "default", "slow.blocking-export"),
        ("registered", "default", "slow.reindex"),
    ]
