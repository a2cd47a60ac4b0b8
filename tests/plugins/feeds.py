"""A feed plugin that steers its retries with ``dvp_task_failed``, as the reference page shows:
a longer backoff when rate limited, no retries when the credentials are refused."""

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


class RateLimitError(Exception):
    """The feed asked us to slow down."""


class AuthenticationError(Exception):
    """The feed refused our API key."""


class FeedsPlugin(Plugin, ScheduledTaskHooks):
    """Pulls exchange rates and news headlines."""

    name = "feeds"
    version = "0.4.0"

    def __init__(self) -> None:
        self.decisions_asked: list[str] = []

    def dvp_register_scheduled_tasks(self, ctx: HookContext) -> list[ScheduledTaskDefinition]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        return [
            ScheduledTaskDefinition(
                task_id="feeds.exchange-rates",
                name="Exchange rates",
                schedule=TaskSchedule(interval_seconds=300),
                description="Pull the latest exchange rates",
                max_retries=3,
                timeout_seconds=30,
            ),
            ScheduledTaskDefinition(
                task_id="feeds.headlines",
                name="Headlines",
                schedule=TaskSchedule(cron_expression="*/15 * * * *"),
                max_retries=5,
                timeout_seconds=30,
            ),
        ]

    async def dvp_execute_scheduled_task(
        self,
        task: ScheduledTaskDefinition,
        ctx: HookContext,
        execution_ctx: TaskExecutionContext,
    ) -> TaskResult:
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        if task.task_id == "feeds.exchange-rates":
            try:
                await self._fetch_rates()
            except RateLimitError as e:
                return TaskResult(success=False, error_message=f"Rate limited: {e}")
            return TaskResult(success=True)
        if task.task_id == "feeds.headlines":
            await self._fetch_headlines()
            return TaskResult(success=True)
        return TaskResult(success=False, error_message="Unknown task")

    def dvp_task_failed(
        self,
        ctx: HookContext,
        task: ScheduledTaskDefinition,
        error: Exception,
        execution_ctx: TaskExecutionContext,
    ) -> TaskRetryDecision | None:
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskRetryDecision

        self.decisions_asked.append(task.task_id)
        if "rate limit" in str(error).lower():
            return TaskRetryDecision(
                should_retry=True,
                delay_seconds=300,
                reason="Rate limited - extending backoff",
            )
        if isinstance(error, AuthenticationError):
            return TaskRetryDecision(
                should_retry=False,
                abort_remaining=True,
                reason="Auth failed - manual intervention needed",
            )
        return None

    async def _fetch_rates(self) -> None:
        raise RateLimitError("429 Too Many Requests, retry later")

    async def _fetch_headlines(self) -> None:
        raise AuthenticationError("API key revoked")
