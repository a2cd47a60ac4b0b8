"""The outcome of a failed attempt, as a pure function: whoever closes an attempt (the executor
after running it, the ticker when it was lost or its retry was cancelled) records the same shape
of event."""

from __future__ import annotations

from datetime import datetime

from contracts.events import RetryScheduled, TaskCancelRequested, TaskError, TaskFailed
from contracts.retry import FailureReason, Retry, RetryDecision, resolve_retry


def cancel_applies(request: TaskCancelRequested, execution_id: str, attempt: int) -> bool:
    """Whether ``request`` cancels attempt ``attempt`` of ``execution_id``: it cancels its
    execution's attempt it names and every later one."""
    return request.execution_id == execution_id and attempt >= request.attempt


def cancelled_error(request: TaskCancelRequested, detail: str = "") -> TaskError:
    """The error of an attempt ended by ``request``: who cancelled it, their note, and
    ``detail`` (what was cut short)."""
    who = f"cancelled by {request.actor}" if request.actor else "cancelled by an operator"
    message = f"{who}: {request.note}" if request.note else who
    return TaskError(kind="cancelled", message=f"{message}{detail}")


def failure_outcome(
    *,
    tenant_id: str,
    task_id: str,
    execution_id: str,
    attempt: int,
    worker: str,
    duration_ms: int,
    error: TaskError,
    max_retries: int,
    decision: RetryDecision | None,
    now: datetime,
    jitter: float,
) -> RetryScheduled | TaskFailed:
    """``RetryScheduled`` or ``TaskFailed`` for failed attempt ``attempt``, as `resolve_retry`
    decides from ``decision`` (``None``: the default policy, with ``jitter`` in [0, 1)).

    A cancelled attempt (error kind ``cancelled``) is never retried, whatever ``decision``
    says: ``TaskFailed`` with reason ``cancelled`` and no decision.
    """
    reason: FailureReason = "cancelled"
    made: RetryDecision | None = None
    if error.kind != "cancelled":
        next_step = resolve_retry(
            attempt=attempt,
            max_retries=max_retries,
            failed_at=now,
            decision=decision,
            jitter=jitter,
        )
        if isinstance(next_step, Retry):
            return RetryScheduled(
                tenant_id=tenant_id,
                task_id=task_id,
                occurred_at=now,
                execution_id=execution_id,
                attempt=attempt,
                worker=worker,
                duration_ms=duration_ms,
                error=error,
                retry_at=next_step.retry_at,
                delay_seconds=next_step.delay_seconds,
                decision=next_step.decision,
            )
        reason, made = next_step.reason, next_step.decision
    return TaskFailed(
        tenant_id=tenant_id,
        task_id=task_id,
        occurred_at=now,
        execution_id=execution_id,
        attempt=attempt,
        worker=worker,
        duration_ms=duration_ms,
        error=error,
        reason=reason,
        decision=made,
    )
