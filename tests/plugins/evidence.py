"""Plugins written the way the plugin reference page teaches: its import paths, TYPE_CHECKING
imports, string annotations, class and field names, and the three hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


class QuotaExceededError(Exception):
    """The upstream source said: rate limit exceeded."""


class CredentialsRejectedError(Exception):
    """The upstream source refused our credentials."""


class ArchivePlugin(Plugin, ScheduledTaskHooks):
    """Prunes old evidence snapshots every night (a cron task)."""

    name = "archive"
    version = "2.1.0"

    def __init__(self) -> None:
        self.pruned: dict[str, int] = {}

    def dvp_register_scheduled_tasks(self, ctx: "HookContext") -> list["ScheduledTaskDefinition"]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        return [
            ScheduledTaskDefinition(
                task_id="archive.prune-snapshots",
                name="Prune evidence snapshots",
                schedule=TaskSchedule(cron_expression="30 4 * * *"),
                description="Drop snapshots superseded for 30 days",
                max_retries=2,
                timeout_seconds=900,
            ),
        ]

    async def dvp_execute_scheduled_task(
        self,
        task: "ScheduledTaskDefinition",
        ctx: "HookContext",
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskResult":
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        if task.task_id == "archive.prune-snapshots":
            self.pruned[ctx.tenant_id] = self.pruned.get(ctx.tenant_id, 0) + 7
            return TaskResult(success=True, data={"pruned": 7, "attempt": execution_ctx.attempt})
        return TaskResult(success=False, error_message="Unknown task")


class MarketFeedPlugin(Plugin, ScheduledTaskHooks):
    """Pulls a live price feed every few minutes (an interval task) and steers its retries."""

    name = "market-feed"
    version = "0.3.1"

    def __init__(self) -> None:
        self.next_error: Exception | None = None

    def dvp_register_scheduled_tasks(self, ctx: "HookContext") -> list["ScheduledTaskDefinition"]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        return [
            ScheduledTaskDefinition(
                task_id="market-feed.refresh-prices",
                name="Refresh prices",
                schedule=TaskSchedule(interval_seconds=300),
                description="Pull current prices for cited figures",
                max_retries=4,
                timeout_seconds=60,
            ),
        ]

    async def dvp_execute_scheduled_task(
        self,
        task: "ScheduledTaskDefinition",
        ctx: "HookContext",
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskResult":
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        if task.task_id != "market-feed.refresh-prices":
            return TaskResult(success=False, error_message="Unknown task")
        try:
            quotes = self._fetch(ctx.tenant_id)
        except QuotaExceededError as error:
            return TaskResult(success=False, error_message=f"Rate limited: {error}")
        return TaskResult(success=True, data={"quotes": quotes})

    def _fetch(self, tenant_id: str) -> int:
        if self.next_error is not None:
            raise self.next_error
        return len(tenant_id)

    def dvp_task_failed(
        self,
        ctx: "HookContext",
        task: "ScheduledTaskDefinition",
        error: Exception,
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskRetryDecision" | None:
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskRetryDecision

        if "rate limit" in str(error).lower():
            return TaskRetryDecision(
                should_retry=True, delay_seconds=300, reason="Quota exhausted - waiting it out"
            )
        if isinstance(error, CredentialsRejectedError):
            return TaskRetryDecision(
                should_retry=False,
                abort_remaining=True,
                reason="Credentials rejected - an operator must renew them",
            )
        return None


class AsyncPolicyPlugin(Plugin, ScheduledTaskHooks):
    """Declares no tasks; answers dvp_task_failed asynchronously, but only with None."""

    name = "async-policy"
    version = "1.0.0"

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def dvp_task_failed(  # type: ignore[override]
        self,
        ctx: "HookContext",
        task: "ScheduledTaskDefinition",
        error: Exception,
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskRetryDecision" | None:
        self.asked.append(task.task_id)
        return None


def plugin_factory_attribute() -> Any:
    """Not a plugin: used to check that load_plugin rejects it clearly."""
    return object()
