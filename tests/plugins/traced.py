"""A plugin for the tracing test: its task fires every 2 seconds, fails its first attempt and
succeeds its second (retried after half a second), and makes a span of its own each time,
which must land inside the attempt's plugin span; deciding the retry makes one too, which
must land inside the failed attempt's span."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import trace

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

TASK_ID = "traced.flaky"
OWN_SPAN = "traced.fetch"
"""The name of the span the plugin makes itself."""
DECIDE_SPAN = "traced.decide"
"""The name of the span the plugin makes in ``dvp_task_failed``."""

tracer = trace.get_tracer(__name__)


class TracedPlugin(Plugin, ScheduledTaskHooks):
    """Fails once, then succeeds; traces its own work."""

    name = "traced"
    version = "1.0.0"

    def dvp_register_scheduled_tasks(self, ctx: "HookContext") -> list["ScheduledTaskDefinition"]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        return [
            ScheduledTaskDefinition(
                task_id=TASK_ID,
                name="Flaky",
                schedule=TaskSchedule(interval_seconds=2, offset_seconds=0),
                max_retries=1,
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

        with tracer.start_as_current_span(OWN_SPAN) as span:
            span.set_attribute("traced.attempt", execution_ctx.attempt)
            if execution_ctx.attempt == 1:
                raise ConnectionError("the feed did not answer")
        return TaskResult(success=True)

    def dvp_task_failed(
        self,
        ctx: "HookContext",
        task: "ScheduledTaskDefinition",
        error: Exception,
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskRetryDecision | None":
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskRetryDecision

        with tracer.start_as_current_span(DECIDE_SPAN):
            return TaskRetryDecision(should_retry=True, delay_seconds=0.5)
