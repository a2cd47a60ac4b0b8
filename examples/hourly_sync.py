"""Syncs records from a partner API that is flaky, rate-limited and sometimes refuses us.

In production this runs hourly (``interval_seconds=3600``); the demo runs every 3 s so that
retries and ``dvp_task_failed`` show within seconds: the second run of every three is
rate-limited at first (retried after a short wait), and every fourth run is refused for bad
credentials (no retry).
"""

from __future__ import annotations

import asyncio
import itertools
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

RATE_LIMIT_BACKOFF_SECONDS = 3  # a real integration would wait minutes


class RateLimitError(Exception):
    """The partner API said: too many requests."""


class AuthenticationError(Exception):
    """The partner API refused our credentials."""


class PartnerApi:
    """A stand-in for the partner's API with deterministic misbehaviour."""

    def __init__(self) -> None:
        self._calls = itertools.count(1)

    async def fetch_records(self, tenant_id: str, execution_number: int, attempt: int) -> int:
        await asyncio.sleep(0.05)
        next(self._calls)
        if execution_number % 4 == 0:
            raise AuthenticationError(f"API key for tenant {tenant_id} was revoked")
        if execution_number % 3 == 2 and attempt == 1:
            raise RateLimitError("429 Too Many Requests")
        return 40 + execution_number % 10


class HourlySyncPlugin(Plugin, ScheduledTaskHooks):
    """Pulls partner records into the evidence store."""

    name = "hourly-sync"
    version = "1.2.0"

    def __init__(self) -> None:
        self.api = PartnerApi()
        self._executions: dict[str, int] = {}

    def dvp_register_scheduled_tasks(self, ctx: "HookContext") -> list["ScheduledTaskDefinition"]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        return [
            ScheduledTaskDefinition(
                task_id="hourly-sync.partner-records",
                name="Sync partner records",
                schedule=TaskSchedule(interval_seconds=3),
                description="Pull new and changed records from the partner API",
                max_retries=2,
                timeout_seconds=30,
            ),
        ]

    async def dvp_execute_scheduled_task(
        self,
        task: "ScheduledTaskDefinition",
        ctx: "HookContext",
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskResult":
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        if task.task_id != "hourly-sync.partner-records":
            return TaskResult(success=False, error_message=f"unknown task {task.task_id}")
        number = self._executions.setdefault(execution_ctx.execution_id, len(self._executions) + 1)
        try:
            synced = await self.api.fetch_records(ctx.tenant_id, number, execution_ctx.attempt)
        except RateLimitError as error:
            return TaskResult(success=False, error_message=f"Rate limited: {error}")
        return TaskResult(success=True, data={"synced_records": synced})

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
                should_retry=True,
                delay_seconds=RATE_LIMIT_BACKOFF_SECONDS,
                reason="Rate limited - backing off",
            )
        if isinstance(error, AuthenticationError):
            return TaskRetryDecision(
                should_retry=False,
                abort_remaining=True,
                reason="Credentials refused - renew the API key",
            )
        return None
