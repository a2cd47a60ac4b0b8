"""Validate what plugins declare, once, at the boundary; turn it into contract types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from contracts import (
    InvalidIdentifierError,
    RetryDecision,
    Schedule,
    ScheduleError,
    TaskSpec,
    spread_offset,
    validate_task_id,
)
from contracts.validation import delay_problem, validate_spec
from dvp_cms.plugins.base import Plugin
from dvp_cms.plugins.errors import TaskDefinitionError
from dvp_cms.plugins.hooks.scheduled_tasks import (
    ScheduledTaskDefinition,
    TaskRetryDecision,
    TaskSchedule,
)


def task_spec(plugin: Plugin, definition: Any, tenant_id: str) -> TaskSpec:
    """The contract form of ``definition`` for ``tenant_id``; raise `TaskDefinitionError`
    saying what to fix."""
    plugin_name = plugin.name
    if not isinstance(definition, ScheduledTaskDefinition):
        raise TaskDefinitionError(
            plugin_name,
            getattr(definition, "task_id", None),
            f"expected a ScheduledTaskDefinition, got {type(definition).__name__}",
        )
    task_id = definition.task_id
    try:
        validate_task_id(task_id)
    except InvalidIdentifierError as error:
        raise TaskDefinitionError(plugin_name, task_id, str(error)) from None
    if not isinstance(definition.schedule, TaskSchedule):
        raise TaskDefinitionError(
            plugin_name,
            task_id,
            f"schedule must be a TaskSchedule, got {type(definition.schedule).__name__}",
        )
    try:
        spec = TaskSpec(
            name=definition.name,
            description=definition.description or "",
            schedule=_schedule(definition.schedule, tenant_id, task_id),
            max_retries=definition.max_retries,
            timeout_seconds=definition.timeout_seconds,
        )
        # The same rules every reader of the stream applies to a registration read back.
        validate_spec(spec)
    except ValueError as error:  # ScheduleError is one
        raise TaskDefinitionError(plugin_name, task_id, str(error)) from None
    return msgspec.structs.replace(spec, timeout_seconds=float(spec.timeout_seconds))


def _schedule(schedule: TaskSchedule, tenant_id: str, task_id: str) -> Schedule:
    offset = schedule.offset_seconds
    interval = schedule.interval_seconds
    if offset is not None and interval is None:
        raise ScheduleError("offset_seconds applies to interval schedules only; remove it")
    if offset is None and isinstance(interval, int) and not isinstance(interval, bool):
        offset = spread_offset(tenant_id, task_id, interval) if interval > 0 else 0.0
    return Schedule(
        cron_expression=schedule.cron_expression,
        interval_seconds=interval,
        offset_seconds=0.0 if offset is None else offset,
        timezone=schedule.timezone,
        jitter_seconds=schedule.jitter_seconds,
        catchup_window_seconds=schedule.catchup_window_seconds,
        overlap=schedule.overlap,
        alert_after_seconds=schedule.alert_after_seconds,
        start_at=_utc(schedule.start_at),
        end_at=_utc(schedule.end_at),
    )


def _utc(instant: object) -> Any:
    """An aware datetime in UTC (one form per instant, so the definition hash is stable);
    anything else as it is, for `validate_spec` to name."""
    if isinstance(instant, datetime) and instant.utcoffset() is not None:
        try:
            return instant.astimezone(UTC)
        except OverflowError:  # year 1 or 9999: out of range, as validate_spec says
            return instant
    return instant


def retry_decision(plugin: Plugin, decision: TaskRetryDecision) -> RetryDecision:
    """The contract form of a plugin's ``TaskRetryDecision``; raise `ValueError` if unusable."""
    delay = decision.delay_seconds
    problem = delay_problem("delay_seconds", delay)
    if problem is not None:
        raise ValueError(problem)
    return RetryDecision(
        should_retry=bool(decision.should_retry),
        delay_seconds=float(delay),
        abort_remaining=bool(decision.abort_remaining),
        reason=str(decision.reason or ""),
        source="plugin",
        plugin=plugin.name,
        plugin_version=plugin.version,
    )
