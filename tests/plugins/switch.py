"""A plugin whose one task, every second, succeeds or fails as the test says (``failing``), for
overdue detection. Run it inline (``isolation="inline"``) so that the test's switch reaches it."""

from __future__ import annotations

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

TASK_ID = "switch.beat"


class SwitchPlugin(Plugin, ScheduledTaskHooks):
    name = "switch"
    version = "1.0.0"

    def __init__(self) -> None:
        self.failing = False

    def dvp_register_scheduled_tasks(self, ctx: HookContext) -> list[ScheduledTaskDefinition]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        return [
            ScheduledTaskDefinition(
                task_id=TASK_ID,
                name="Beat",
                schedule=TaskSchedule(interval_seconds=1, offset_seconds=0),
                max_retries=0,
                timeout_seconds=1,
            )
        ]

    async def dvp_execute_scheduled_task(
        self,
        task: ScheduledTaskDefinition,
        ctx: HookContext,
        execution_ctx: TaskExecutionContext,
    ) -> TaskResult:
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        if self.failing:
            return TaskResult(success=False, error_message="switched off")
        return TaskResult(success=True)
