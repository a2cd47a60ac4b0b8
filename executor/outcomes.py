"""What an attempt means, as pure functions: from a ``TaskDue`` and what the plugin did (returned,
raised, timed out) plus the retry decision, to the events the executor publishes. No I/O.

Running an attempt and classifying what the plugin did is the plugin host's part
(`dvp_cms.plugins.attempts`), shared with the plugin testing helpers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Literal

from contracts import (
    Outcome,
    RetryDecision,
    RetryScheduled,
    TaskDue,
    TaskFailed,
    TaskStarted,
    TaskSucceeded,
)
from contracts.outcomes import failure_outcome
from dvp_cms.plugins.attempts import AttemptResult, Success
from dvp_cms.plugins.hooks.scheduled_tasks import TaskExecutionContext

_PLUGIN_TRIGGERS: Final[dict[str, Literal["manual", "catchup"]]] = {
    "rerun": "manual",
    "backfill": "catchup",
    "once": "manual",
}


def execution_context(
    due: TaskDue,
    *,
    max_retries: int,
    deadline: datetime,
    previous_error: str | None = None,
) -> TaskExecutionContext:
    """The `TaskExecutionContext` a plugin gets for attempt ``due.attempt``."""
    return TaskExecutionContext(
        task_id=due.task_id,
        tenant_id=due.tenant_id,
        execution_id=due.execution_id,
        attempt=due.attempt,
        scheduled_for=due.scheduled_for,
        # The plugin API knows schedule, catchup, retry and manual, and plugins written from
        # it must not meet a value it does not list: a re-run and a one-off run are runs
        # started by hand, a backfill a past fire run late (its scheduled_for is that fire).
        trigger=_PLUGIN_TRIGGERS.get(due.trigger, due.trigger),
        deadline=deadline,
        max_attempts=1 + max_retries,
        previous_error=previous_error,
    )


def started_event(
    due: TaskDue, *, worker: str, now: datetime, timeout_seconds: float
) -> TaskStarted:
    """``TaskStarted`` for the attempt, with the instant it will be cancelled."""
    return TaskStarted(
        tenant_id=due.tenant_id,
        task_id=due.task_id,
        occurred_at=now,
        execution_id=due.execution_id,
        attempt=due.attempt,
        worker=worker,
        deadline=now + timedelta(seconds=timeout_seconds),
    )


def outcome_event(
    due: TaskDue,
    result: AttemptResult,
    *,
    worker: str,
    max_retries: int,
    decision: RetryDecision | None,
    now: datetime,
    jitter: float,
) -> Outcome:
    """The one outcome event of the attempt.

    ``decision`` is the winning ``dvp_task_failed`` answer, or ``None`` for the default policy
    (exponential backoff with ``jitter`` in [0, 1)); it is ignored on success. No decision can
    exceed ``max_retries``.
    """
    if isinstance(result, Success):
        return TaskSucceeded(
            tenant_id=due.tenant_id,
            task_id=due.task_id,
            occurred_at=now,
            execution_id=due.execution_id,
            attempt=due.attempt,
            worker=worker,
            duration_ms=result.duration_ms,
            data=result.data,
        )
    return failure_outcome(
        tenant_id=due.tenant_id,
        task_id=due.task_id,
        execution_id=due.execution_id,
        attempt=due.attempt,
        worker=worker,
        duration_ms=result.duration_ms,
        error=result.error,
        max_retries=max_retries,
        decision=decision,
        now=now,
        jitter=jitter,
    )


def is_outcome_of(event: object, due: TaskDue) -> bool:
    """Whether ``event`` is the recorded outcome of the attempt ``due`` stands for."""
    return (
        isinstance(event, TaskSucceeded | RetryScheduled | TaskFailed)
        and event.execution_id == due.execution_id
        and event.attempt == due.attempt
        and event.task_id == due.task_id
        and event.tenant_id == due.tenant_id
    )
