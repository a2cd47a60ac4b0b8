"""Hook specifications: the methods a plugin may implement."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dvp_cms.plugins.context import HookContext
    from dvp_cms.plugins.hooks.scheduled_tasks import (
        ScheduledTaskDefinition,
        TaskExecutionContext,
        TaskResult,
        TaskRetryDecision,
    )


class ScheduledTaskHooks:
    """Hooks of plugins that provide scheduled tasks. Override the ones you need.

    * ``dvp_register_scheduled_tasks`` (collect): every plugin's tasks are gathered.
    * ``dvp_execute_scheduled_task`` (execute): called on the plugin that registered the task.
    * ``dvp_task_failed`` (first wins): asked after a failed attempt, the owning plugin first,
      then the others in load order; the first decision that is not ``None`` wins, and ``None``
      from all means the default policy (retry with exponential backoff while retries remain).

    Each hook may be a plain method or ``async def``; the host awaits what needs awaiting.
    """

    def dvp_register_scheduled_tasks(self, ctx: HookContext) -> list[ScheduledTaskDefinition]:
        """Return the tasks this plugin provides for ``ctx.tenant_id``."""
        return []

    async def dvp_execute_scheduled_task(
        self,
        task: ScheduledTaskDefinition,
        ctx: HookContext,
        execution_ctx: TaskExecutionContext,
    ) -> TaskResult:
        """Run one attempt of ``task`` and report how it went."""
        raise NotImplementedError(
            f"{type(self).__name__} registers task {task.task_id!r} but does not implement "
            "dvp_execute_scheduled_task"
        )

    def dvp_task_failed(
        self,
        ctx: HookContext,
        task: ScheduledTaskDefinition,
        error: Exception,
        execution_ctx: TaskExecutionContext,
    ) -> TaskRetryDecision | None:
        """Decide whether a failed attempt is retried; ``None`` leaves it to the default."""
        return None
