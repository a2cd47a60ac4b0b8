"""A plugin that misbehaves the ways only a worker process contains: it blocks its event loop
past its timeout, blocks in ``dvp_task_failed``, or ends its process; and a healthy task
beside them that says which process ran it.

``blocking.beat`` answers with its process id and the ``DVP_TEST_BLOCKING_LABEL`` the plugin
saw when it was instantiated, so a test can tell which worker (and which load of the plugins)
ran it.
"""

from __future__ import annotations

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
        TaskRetryDecision,
    )

NEVER = "0 0 1 1 *"
"""Once a year: a ticker in a test never fires these; the test publishes their TaskDue."""


class BlockingPlugin(Plugin, ScheduledTaskHooks):
    """Blocks, exits, and beats."""

    name = "blocking"
    version = "1.0.0"

    def __init__(self) -> None:
        self.label = os.environ.get("DVP_TEST_BLOCKING_LABEL", "")

    def dvp_register_scheduled_tasks(self, ctx: "HookContext") -> list["ScheduledTaskDefinition"]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        def task(
            task_id: str, timeout: float, schedule: TaskSchedule | None = None
        ) -> ScheduledTaskDefinition:
            return ScheduledTaskDefinition(
                task_id=f"blocking.{task_id}",
                name=task_id.replace("-", " ").capitalize(),
                schedule=schedule or TaskSchedule(cron_expression=NEVER),
                max_retries=0,
                timeout_seconds=timeout,
            )

        return [
            task("stuck", 3),
            task("hang", 0.5),
            task("exit", 5),
            task("stubborn-hook", 5),
            task("beat", 5, TaskSchedule(interval_seconds=1, offset_seconds=0)),
        ]

    async def dvp_execute_scheduled_task(
        self,
        task: "ScheduledTaskDefinition",
        ctx: "HookContext",
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskResult":
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        if task.task_id in ("blocking.stuck", "blocking.hang"):
            ctx.logger.warning("blocking the event loop for 20s")
            time.sleep(20)  # noqa: ASYNC251 - wrong on purpose: blocks the whole process
            return TaskResult(success=True)
        if task.task_id == "blocking.exit":
            os._exit(3)
        if task.task_id == "blocking.stubborn-hook":
            return TaskResult(success=False, error_message="the hook will not answer")
        return TaskResult(success=True, data={"pid": os.getpid(), "label": self.label})

    def dvp_task_failed(
        self,
        ctx: "HookContext",
        task: "ScheduledTaskDefinition",
        error: Exception,
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskRetryDecision" | None:
        from dvp_cms.plugins.errors import TaskTimeoutError
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskRetryDecision

        if task.task_id == "blocking.stubborn-hook":
            time.sleep(20)
        if isinstance(error, TaskTimeoutError):
            return TaskRetryDecision(
                should_retry=False, reason=f"decided in process {os.getpid()}: {error}"
            )
        return None
