"""A plugin whose task list is read from a JSON file (``DVP_TEST_CATALOG``) each time it is
instantiated, so that a test can change what it declares and load it again (SIGHUP).

The file holds ``{"<task suffix>": <timeout_seconds>, ...}``. Every task fires every
``DVP_TEST_CATALOG_INTERVAL`` seconds (default 600) and succeeds after sleeping
``DVP_TEST_CATALOG_SLEEP`` seconds (default 0).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dvp_cms.plugins.base import Plugin
from dvp_cms.plugins.hookspec import ScheduledTaskHooks

if TYPE_CHECKING:
    from dvp_cms.plugins.context import HookContext
    from dvp_cms.plugins.hooks.scheduled_tasks import (
        ScheduledTaskDefinition,
        TaskExecutionContext,
        TaskResult,
    )


class CatalogPlugin(Plugin, ScheduledTaskHooks):
    """Declares the tasks listed in its catalog file."""

    name = "catalog"
    version = "1.0.0"

    def __init__(self, tasks: dict[str, float] | None = None) -> None:
        if tasks is None:
            path = os.environ.get("DVP_TEST_CATALOG")
            tasks = json.loads(Path(path).read_text()) if path else {}
        self.tasks: dict[str, float] = dict(tasks)

    def dvp_register_scheduled_tasks(self, ctx: HookContext) -> list[ScheduledTaskDefinition]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        return [
            ScheduledTaskDefinition(
                task_id=f"catalog.{suffix}",
                name=f"Catalog {suffix}",
                schedule=TaskSchedule(
                    interval_seconds=int(os.environ.get("DVP_TEST_CATALOG_INTERVAL", "600"))
                ),
                timeout_seconds=timeout,
            )
            for suffix, timeout in sorted(self.tasks.items())
        ]

    async def dvp_execute_scheduled_task(
        self,
        task: ScheduledTaskDefinition,
        ctx: HookContext,
        execution_ctx: TaskExecutionContext,
    ) -> TaskResult:
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        await asyncio.sleep(float(os.environ.get("DVP_TEST_CATALOG_SLEEP", "0")))
        return TaskResult(success=True, data={"task": task.task_id})


class BrokenRegistrationPlugin(Plugin, ScheduledTaskHooks):
    """A plugin whose registration hook raises: reported, and the others go on."""

    name = "broken"
    version = "0.0.1"

    def dvp_register_scheduled_tasks(self, ctx: HookContext) -> list[ScheduledTaskDefinition]:
        raise RuntimeError("settings table missing")
