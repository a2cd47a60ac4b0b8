"""One task per way an attempt can end: succeed, return a failure, raise, hang, return junk."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from dvp_cms.plugins.base import Plugin
from dvp_cms.plugins.hookspec import ScheduledTaskHooks

if TYPE_CHECKING:
    from dvp_cms.plugins.context import HookContext
    from dvp_cms.plugins.hooks.scheduled_tasks import (
        ScheduledTaskDefinition,
        TaskExecutionContext,
        TaskResult,
    )


class InventoryCorruptError(Exception):
    """The inventory could not be read."""


class OutcomesPlugin(Plugin, ScheduledTaskHooks):
    """Tasks whose attempts end every way there is."""

    name = "outcomes"
    version = "1.2.0"

    def __init__(self) -> None:
        self.contexts: list[TaskExecutionContext] = []
        self.cancelled: list[str] = []

    def dvp_register_scheduled_tasks(self, ctx: HookContext) -> list[ScheduledTaskDefinition]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        def task(task_id: str, **limits: Any) -> ScheduledTaskDefinition:
            return ScheduledTaskDefinition(
                task_id=f"outcomes.{task_id}",
                name=task_id.replace("-", " ").capitalize(),
                schedule=TaskSchedule(interval_seconds=3600),
                **limits,
            )

        return [
            task("count-items", max_retries=2, timeout_seconds=5),
            task("return-failure", max_retries=3, timeout_seconds=5),
            task("raise", max_retries=1, timeout_seconds=5),
            task("hang", max_retries=0, timeout_seconds=0.3),
            task("wrong-type", max_retries=0, timeout_seconds=5),
        ]

    async def dvp_execute_scheduled_task(
        self,
        task: ScheduledTaskDefinition,
        ctx: HookContext,
        execution_ctx: TaskExecutionContext,
    ) -> TaskResult:
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        self.contexts.append(execution_ctx)
        ctx.logger.info("running %s attempt %d", task.task_id, execution_ctx.attempt)
        if task.task_id == "outcomes.count-items":
            return TaskResult(
                success=True, data={"items": 42, "tenant": ctx.tenant_id, "attempt": 1}
            )
        if task.task_id == "outcomes.return-failure":
            return TaskResult(success=False, error_message="inventory service answered 503")
        if task.task_id == "outcomes.raise":
            raise InventoryCorruptError("row 17 of the inventory is corrupt")
        if task.task_id == "outcomes.hang":
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.cancelled.append(execution_ctx.execution_id)
                raise
        if task.task_id == "outcomes.wrong-type":
            return {"success": True}  # type: ignore[return-value]
        return TaskResult(success=False, error_message="Unknown task")
