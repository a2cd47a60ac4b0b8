"""What an attempt means, as pure functions: from a ``TaskDue`` and what the plugin did (returned,
raised, timed out) plus the retry decision, to the events the executor publishes. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec

from contracts import (
    Outcome,
    RetryDecision,
    RetryScheduled,
    TaskDue,
    TaskError,
    TaskFailed,
    TaskStarted,
    TaskSucceeded,
    resolve_retry,
)
from contracts.events import ErrorKind
from contracts.retry import Retry
from dvp_cms.plugins.errors import BadTaskResultError, TaskResultFailure, TaskTimeoutError
from dvp_cms.plugins.hooks.scheduled_tasks import TaskExecutionContext, TaskResult
from executor.errors import UnserializableResultError

MAX_ERROR_MESSAGE_CHARS: Final = 4000
"""Longer error messages are cut, so that one event stays small."""


@dataclass(frozen=True)
class Success:
    """The attempt returned ``TaskResult(success=True)``."""

    data: dict[str, Any] | None
    duration_ms: int


@dataclass(frozen=True)
class Failure:
    """The attempt failed.

    Attributes:
        error: what went wrong, as recorded in the event.
        exception: what ``dvp_task_failed`` receives (the raised exception, or a
            `TaskResultFailure`, `TaskTimeoutError` or `BadTaskResultError`).
        duration_ms: how long the attempt ran.
    """

    error: TaskError
    exception: Exception
    duration_ms: int


AttemptResult = Success | Failure
"""How one attempt ended."""


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
        trigger=due.trigger,
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


def _message(text: str) -> str:
    if len(text) <= MAX_ERROR_MESSAGE_CHARS:
        return text
    suffix = " ...(truncated)"
    return text[: MAX_ERROR_MESSAGE_CHARS - len(suffix)] + suffix


def _type_name(error: BaseException) -> str:
    cls = type(error)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _failure(kind: ErrorKind, exception: Exception, duration_ms: int, *, typed: bool) -> Failure:
    message = str(exception) or type(exception).__name__
    return Failure(
        error=TaskError(
            kind=kind,
            message=_message(message),
            exception_type=_type_name(exception) if typed else None,
        ),
        exception=exception,
        duration_ms=duration_ms,
    )


def result_of_return(plugin: str, task_id: str, value: object, duration_ms: int) -> AttemptResult:
    """Classify what ``dvp_execute_scheduled_task`` returned.

    A `TaskResult` with ``success=False`` is a ``returned`` failure; anything that is not a
    `TaskResult`, or whose ``data`` is not a JSON object, is a ``bad_result`` failure.
    ``duration_ms`` is filled into the result when the plugin left it ``None``.
    """
    if not isinstance(value, TaskResult):
        return _failure(
            "bad_result", BadTaskResultError(plugin, task_id, value), duration_ms, typed=False
        )
    if value.duration_ms is None:
        value.duration_ms = duration_ms
    if not value.success:
        return _failure("returned", TaskResultFailure(value), duration_ms, typed=False)
    try:
        data = _plain_json_object(value.data)
    except (TypeError, ValueError, msgspec.EncodeError) as error:
        problem = UnserializableResultError(plugin, task_id, value.data, str(error))
        return _failure("bad_result", problem, duration_ms, typed=False)
    return Success(data=data, duration_ms=duration_ms)


def _plain_json_object(data: object) -> dict[str, Any] | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise TypeError(f"got {type(data).__name__}")
    if not all(isinstance(key, str) for key in data):
        raise TypeError("a key is not a string")
    # A round trip keeps only what every subscriber can decode.
    plain: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(data))
    return plain


def result_of_exception(exception: Exception, duration_ms: int) -> Failure:
    """Classify an exception out of an attempt: a `TaskTimeoutError` is a ``timeout``, a
    `BadTaskResultError` a ``bad_result``, anything else ``raised``."""
    if isinstance(exception, TaskTimeoutError):
        return _failure("timeout", exception, duration_ms, typed=False)
    if isinstance(exception, BadTaskResultError):
        return _failure("bad_result", exception, duration_ms, typed=False)
    return _failure("raised", exception, duration_ms, typed=True)


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
    common: dict[str, Any] = {
        "tenant_id": due.tenant_id,
        "task_id": due.task_id,
        "occurred_at": now,
        "execution_id": due.execution_id,
        "attempt": due.attempt,
        "worker": worker,
        "duration_ms": result.duration_ms,
    }
    if isinstance(result, Success):
        return TaskSucceeded(**common, data=result.data)
    next_step = resolve_retry(
        attempt=due.attempt,
        max_retries=max_retries,
        failed_at=now,
        decision=decision,
        jitter=jitter,
    )
    if isinstance(next_step, Retry):
        return RetryScheduled(
            **common,
            error=result.error,
            retry_at=next_step.retry_at,
            delay_seconds=next_step.delay_seconds,
            decision=next_step.decision,
        )
    return TaskFailed(
        **common, error=result.error, reason=next_step.reason, decision=next_step.decision
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
