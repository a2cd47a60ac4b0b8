"""Hand-written events for the projector's tests: one builder per event kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from contracts import (
    EventKind,
    RetryDecision,
    RetryScheduled,
    Schedule,
    TaskDue,
    TaskError,
    TaskFailed,
    TaskPaused,
    TaskRegistered,
    TaskResumed,
    TaskSkipped,
    TaskSpec,
    TaskStarted,
    TaskSucceeded,
    TaskUnregistered,
    definition_hash,
    execution_id_for_fire,
    subject,
)

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
TENANT = "acme"
TASK = "cleanup.temp-files"
DUE_SUBJECT = subject(TENANT, EventKind.DUE, TASK)
"""Where a broken or unknown message about the task is read from."""
SPEC = TaskSpec(
    name="Clean temp files",
    description="Removes old temp files",
    schedule=Schedule(interval_seconds=300),
    max_retries=2,
    timeout_seconds=30.0,
)
ERROR = TaskError(kind="raised", message="disk full", exception_type="OSError")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def registered(
    when: datetime = T0, *, task: str = TASK, tenant: str = TENANT, spec: TaskSpec = SPEC
) -> TaskRegistered:
    return TaskRegistered(
        tenant_id=tenant,
        task_id=task,
        occurred_at=when,
        plugin="cleanup",
        plugin_version="1.0",
        spec=spec,
        definition_hash=definition_hash("cleanup", "1.0", spec),
    )


def unregistered(when: datetime, *, task: str = TASK, tenant: str = TENANT) -> TaskUnregistered:
    return TaskUnregistered(
        tenant_id=tenant, task_id=task, occurred_at=when, plugin="cleanup", reason="gone"
    )


def paused(when: datetime, note: str = "maintenance", *, task: str = TASK) -> TaskPaused:
    return TaskPaused(tenant_id=TENANT, task_id=task, occurred_at=when, note=note, actor="ops")


def resumed(when: datetime, note: str = "done", *, task: str = TASK) -> TaskResumed:
    return TaskResumed(tenant_id=TENANT, task_id=task, occurred_at=when, note=note, actor="ops")


def execution(fire: datetime, *, task: str = TASK, tenant: str = TENANT) -> str:
    return execution_id_for_fire(tenant, task, fire)


def due(
    fire: datetime,
    *,
    attempt: int = 1,
    when: datetime | None = None,
    trigger: Any = "schedule",
    task: str = TASK,
    tenant: str = TENANT,
    scheduled_for: datetime | None = None,
) -> TaskDue:
    return TaskDue(
        tenant_id=tenant,
        task_id=task,
        occurred_at=when or fire,
        execution_id=execution(fire, task=task, tenant=tenant),
        attempt=attempt,
        trigger=trigger,
        scheduled_for=scheduled_for or fire,
        fire_at=fire,
    )


def started(
    fire: datetime, when: datetime, *, attempt: int = 1, task: str = TASK, tenant: str = TENANT
) -> TaskStarted:
    return TaskStarted(
        tenant_id=tenant,
        task_id=task,
        occurred_at=when,
        execution_id=execution(fire, task=task, tenant=tenant),
        attempt=attempt,
        worker="worker-1",
        deadline=when + timedelta(seconds=30),
    )


def succeeded(
    fire: datetime,
    when: datetime,
    *,
    attempt: int = 1,
    task: str = TASK,
    tenant: str = TENANT,
    data: dict[str, Any] | None = None,
) -> TaskSucceeded:
    return TaskSucceeded(
        tenant_id=tenant,
        task_id=task,
        occurred_at=when,
        execution_id=execution(fire, task=task, tenant=tenant),
        attempt=attempt,
        worker="worker-1",
        duration_ms=1500,
        data=data if data is not None else {"deleted": 12},
    )


def retry(
    fire: datetime, when: datetime, *, attempt: int = 1, delay: float = 10.0, task: str = TASK
) -> RetryScheduled:
    return RetryScheduled(
        tenant_id=TENANT,
        task_id=task,
        occurred_at=when,
        execution_id=execution(fire, task=task),
        attempt=attempt,
        worker="worker-1",
        duration_ms=200,
        error=ERROR,
        retry_at=when + timedelta(seconds=delay),
        delay_seconds=delay,
        decision=RetryDecision(should_retry=True, delay_seconds=delay, reason="default policy"),
    )


def failed(
    fire: datetime, when: datetime, *, attempt: int = 1, task: str = TASK, tenant: str = TENANT
) -> TaskFailed:
    return TaskFailed(
        tenant_id=tenant,
        task_id=task,
        occurred_at=when,
        execution_id=execution(fire, task=task, tenant=tenant),
        attempt=attempt,
        worker="worker-1",
        duration_ms=300,
        error=ERROR,
        reason="exhausted",
        decision=RetryDecision(should_retry=False, reason="no retries left (2 allowed)"),
    )


def skipped(fire: datetime, reason: Any = "overlap", *, task: str = TASK) -> TaskSkipped:
    return TaskSkipped(
        tenant_id=TENANT,
        task_id=task,
        occurred_at=fire,
        scheduled_for=fire,
        reason=reason,
        detail="previous run still going",
        running_execution_id=None,
    )
