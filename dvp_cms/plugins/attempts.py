"""One attempt of a task, as the plugin host runs it: the plugin's hook under the task's
timeout, and what came of it (returned, raised, timed out, or returned something unusable).

The executor and `dvp_cms.plugins.testing` both run attempts through `run_attempt`, so a plugin's
own tests see exactly what the engine would record.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from contracts.events import ErrorKind, TaskError
from dvp_cms.plugins.errors import (
    BadTaskResultError,
    TaskResultFailure,
    TaskTimeoutError,
    UnserializableResultError,
)
from dvp_cms.plugins.hooks.scheduled_tasks import TaskExecutionContext, TaskResult
from dvp_cms.plugins.manager import PluginManager, RegisteredTask

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


async def run_attempt(
    manager: PluginManager, task: RegisteredTask, context: TaskExecutionContext
) -> AttemptResult:
    """Run one attempt of ``task`` on its plugin, cancelled after its ``timeout_seconds``.

    Never raises for what the plugin does: a timeout becomes a ``timeout`` failure (its
    exception a `TaskTimeoutError`), anything raised a ``raised`` failure, and the returned
    value is classified by `result_of_return`. Cancellation of the caller propagates.
    """
    timeout = task.spec.timeout_seconds
    scope = asyncio.timeout(timeout)
    began = time.monotonic()
    try:
        async with scope:
            value = await manager.execute(task, context)
    except TimeoutError as error:
        if scope.expired():
            return result_of_exception(TaskTimeoutError(task.task_id, timeout), _ms(began))
        return result_of_exception(error, _ms(began))
    except Exception as error:
        return result_of_exception(error, _ms(began))
    return result_of_return(task.plugin.name, task.task_id, value, _ms(began))


def _ms(began: float) -> int:
    return max(0, round((time.monotonic() - began) * 1000))


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
