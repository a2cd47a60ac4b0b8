"""Tasks that take their time: an async one that sleeps (``DVP_TEST_SLOW_SECONDS``, default 1),
and one that blocks the event loop, which a plugin must never do."""

from __future__ import annotations

import asyncio
import os
import time
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


class SlowPlugin(Plugin, ScheduledTaskHooks):
    """Reindexes slowly."""

    name = "slow"
    version = "1.0.0"

    def dvp_register_scheduled_tasks(self, ctx: HookContext) -> list[ScheduledTaskDefinition]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        return [
            ScheduledTaskDefinition(
                task_id="slow.reindex",
                name="Reindex",
                schedule=TaskSchedule(cron_expression="0 2 * * *"),
                max_retries=1,
                timeout_seconds=60,
            ),
            ScheduledTaskDefinition(
                task_id="slow.blocking-export",
                name="Blocking export",
                schedule=TaskSchedule(cron_expression="0 4 * * *"),
                max_retries=0,
                timeout_seconds=60,
            ),
        ]

    async def dvp_execute_scheduled_task(
        self,
        task: ScheduledTaskDefinition,
        ctx: HookContext,
        execution_ctx: TaskExecutionContext,
    ) -> TaskResult:
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        seconds = float(os.environ.get("DVP_TEST_SLOW_SECONDS", "1"))
        if task.task_id == "slow.reindex":
            await asyncio.sleep(seconds)
            return TaskResult(success=True, data={"slept": seconds})
        if task.task_id == "slow.blocking-export":
            time.sleep(seconds)  # noqa: ASYNC251 - wrong on purpose: blocks the whole executor
            return TaskResult(success=True)
        return TaskResult(success=False, error_message="Unknown task")
