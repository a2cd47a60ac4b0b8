"""A fast plugin for end-to-end runs: every second; succeeds, fails then succeeds on retry, or
is refused for good, in turn."""

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
        TaskRetryDecision,
    )


class RefusedError(Exception):
    """The source refused the request for good."""


class PulsePlugin(Plugin, ScheduledTaskHooks):
    name = "pulse"
    version = "1.0.0"

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def dvp_register_scheduled_tasks(self, ctx: "HookContext") -> list["ScheduledTaskDefinition"]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        return [
            ScheduledTaskDefinition(
                task_id="pulse.beat",
                name="Beat",
                schedule=TaskSchedule(interval_seconds=1, offset_seconds=0),
                max_retries=2,
                timeout_seconds=5,
            )
        ]

    async def dvp_execute_scheduled_task(
        self,
        task: "ScheduledTaskDefinition",
        ctx: "HookContext",
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskResult":
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        number = self._numbers.setdefault(execution_ctx.execution_id, len(self._numbers) + 1)
        if number % 3 == 0:
            raise RefusedError("the source refused the request")
        if number % 3 == 2 and execution_ctx.attempt == 1:
            return TaskResult(success=False, error_message="flaky: try again")
        return TaskResult(success=True, data={"beat": number})

    def dvp_task_failed(
        self,
        ctx: "HookContext",
        task: "ScheduledTaskDefinition",
        error: Exception,
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskRetryDecision" | None:
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskRetryDecision

        if isinstance(error, RefusedError):
            return TaskRetryDecision(should_retry=False, abort_remaining=True, reason="refused")
        return TaskRetryDecision(should_retry=True, delay_seconds=0, reason="try again at once")
