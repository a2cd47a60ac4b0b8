"""Helpers for testing a plugin the way the engine runs it, without NATS or a running service.

Registration, execution and retry decisions go through the same code as in the executor: tasks
are collected and validated by `PluginManager.collect_tasks`, an attempt runs under the task's
``timeout_seconds`` and its result is checked by `run_attempt`, and after a failure
``dvp_task_failed`` is asked (owner first, first non-``None`` answer wins) and the retry policy
applied. What a test sees is what the engine would record.

Example::

    from dvp_cms.plugins.testing import run_task

    async def test_sync_reports_its_records() -> None:
        run = await run_task(SyncPlugin(), "sync.records")
        assert run.succeeded, run.error_message
        assert run.data == {"synced": 3}

        failed = await run_task(SyncPlugin(offline=True), "sync.records")
        decision = await failed.retry_decision()
        assert decision.retry and decision.delay_seconds == 60

Every function takes one plugin or a list of plugins; a list is loaded in its order, as
``--plugin`` options are, so that first-wins hooks of other plugins take part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.events import ErrorKind
from contracts.retry import FailureReason, Retry, RetryDecision, resolve_retry
from dvp_cms.plugins.attempts import AttemptResult, Failure, Success, run_attempt
from dvp_cms.plugins.base import Plugin
from dvp_cms.plugins.context import HookContext
from dvp_cms.plugins.errors import TaskNotRegisteredError, TaskResultFailure
from dvp_cms.plugins.hooks.scheduled_tasks import (
    ScheduledTaskDefinition,
    TaskExecutionContext,
    TaskResult,
)
from dvp_cms.plugins.manager import PluginManager, RegisteredTask

__all__ = [
    "RetryOutcome",
    "TaskRun",
    "context_for",
    "hook_context",
    "registered_tasks",
    "retry_decision",
    "run_task",
]

Plugins = Plugin | Sequence[Plugin]
"""One plugin, or several in load order."""


@dataclass(frozen=True)
class RetryOutcome:
    """What the engine does after a failed attempt.

    Attributes:
        retry: whether another attempt follows.
        delay_seconds: how long the engine waits before it (``None`` when giving up).
        next_attempt: the number of that attempt (``None`` when giving up).
        give_up_reason: why no attempt follows: ``"exhausted"`` (no retries left),
            ``"declined"`` (a plugin said no) or ``"aborted"`` (``abort_remaining=True``);
            ``None`` when retrying.
        reason: the text of the deciding answer (a plugin's ``reason`` or the default policy's).
        decided_by: the name of the plugin whose ``dvp_task_failed`` answered, or ``None`` when
            every plugin answered ``None`` and the default policy decided.
        decision: the decision as the engine records it in the outcome event.
    """

    retry: bool
    delay_seconds: float | None
    next_attempt: int | None
    give_up_reason: FailureReason | None
    reason: str
    decided_by: str | None
    decision: RetryDecision


@dataclass(frozen=True)
class TaskRun:
    """How one attempt of a task ended, as the engine sees it.

    Attributes:
        task: the task as registered (its definition and validated limits).
        context: the `TaskExecutionContext` the plugin received.
        result: the engine's classification of the attempt (`Success` or `Failure`).
    """

    task: RegisteredTask
    context: TaskExecutionContext
    result: AttemptResult
    _manager: PluginManager = field(repr=False, compare=False)

    @property
    def succeeded(self) -> bool:
        """Whether the attempt returned ``TaskResult(success=True)`` with usable data."""
        return isinstance(self.result, Success)

    @property
    def data(self) -> dict[str, Any] | None:
        """The recorded ``TaskResult.data`` of a successful attempt (as JSON decodes it)."""
        return self.result.data if isinstance(self.result, Success) else None

    @property
    def error_kind(self) -> ErrorKind | None:
        """``returned``, ``raised``, ``timeout`` or ``bad_result``; ``None`` on success."""
        return self.result.error.kind if isinstance(self.result, Failure) else None

    @property
    def error_message(self) -> str | None:
        """The recorded error message of a failed attempt; ``None`` on success."""
        return self.result.error.message if isinstance(self.result, Failure) else None

    @property
    def exception(self) -> Exception | None:
        """What ``dvp_task_failed`` receives for this failure; ``None`` on success.

        The raised exception itself, a `TaskResultFailure` for a returned failure, a
        `TaskTimeoutError` for a timeout, or a `BadTaskResultError` for an unusable result.
        """
        return self.result.exception if isinstance(self.result, Failure) else None

    @property
    def duration_ms(self) -> int:
        """How long the attempt ran."""
        return self.result.duration_ms

    async def retry_decision(self, *, jitter: float = 0.0) -> RetryOutcome:
        """What the engine does after this failed attempt; see `retry_decision`.

        Raises:
            ValueError: the attempt succeeded, so nothing is decided.
        """
        if not isinstance(self.result, Failure):
            raise ValueError(
                f"task {self.task.task_id!r} succeeded, so no retry is decided; run a failing "
                "attempt first"
            )
        return await _decide(self._manager, self.task, self.result.exception, self.context, jitter)


def context_for(
    definition: ScheduledTaskDefinition,
    *,
    tenant_id: str = "default",
    attempt: int = 1,
    execution_id: str | None = None,
    previous_error: str | None = None,
    scheduled_for: datetime | None = None,
) -> TaskExecutionContext:
    """The `TaskExecutionContext` the engine would pass for ``attempt`` of ``definition``.

    ``deadline`` is ``scheduled_for`` (default: now) plus the definition's ``timeout_seconds``,
    ``max_attempts`` is ``1 + max_retries``, and the trigger is ``schedule`` for the first
    attempt and ``retry`` for later ones. Without ``execution_id``, a fresh one is made.

    Raises:
        ValueError: ``attempt`` is below 1.
    """
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    when = scheduled_for if scheduled_for is not None else datetime.now(UTC)
    extra: dict[str, Any] = {} if execution_id is None else {"execution_id": execution_id}
    return TaskExecutionContext(
        task_id=definition.task_id,
        tenant_id=tenant_id,
        attempt=attempt,
        scheduled_for=when,
        trigger="schedule" if attempt == 1 else "retry",
        deadline=when + timedelta(seconds=definition.timeout_seconds),
        max_attempts=1 + definition.max_retries,
        previous_error=previous_error,
        **extra,
    )


def hook_context(plugin: Plugin, tenant_id: str = "default") -> HookContext:
    """The `HookContext` the engine passes to ``plugin``'s hooks for ``tenant_id``."""
    return PluginManager([plugin]).context(plugin, tenant_id)


async def registered_tasks(
    plugins: Plugins, *, tenant_id: str = "default"
) -> dict[str, ScheduledTaskDefinition]:
    """Collect and validate the plugins' task definitions as the engine does, by task id.

    Raises:
        PluginError: a definition is invalid or a duplicate (`TaskDefinitionError`), or a
            plugin's ``dvp_register_scheduled_tasks`` raised or returned something unusable
            (`PluginRegistrationError`). The message names the plugin, the task and the fix;
            further problems are attached as notes.
        InvalidIdentifierError: ``tenant_id`` is not a valid tenant id.
    """
    _, tasks = await _register(plugins, tenant_id)
    return {task_id: task.definition for task_id, task in tasks.items()}


async def run_task(
    plugins: Plugins,
    task_id: str,
    *,
    tenant_id: str = "default",
    attempt: int = 1,
    execution_id: str | None = None,
    previous_error: str | None = None,
) -> TaskRun:
    """Register the plugins' tasks and run one attempt of ``task_id`` as the engine would.

    The attempt runs under the task's ``timeout_seconds``, and what the plugin returns is
    checked as the engine checks it. A failing attempt does not raise: inspect
    `TaskRun.succeeded`, `TaskRun.error_kind` and `TaskRun.error_message`. Pass the same
    ``execution_id`` to run several attempts of one execution.

    Raises:
        PluginError: registration failed, as in `registered_tasks`.
        TaskNotRegisteredError: no plugin registers ``task_id``.
    """
    manager, tasks = await _register(plugins, tenant_id)
    task = _task(tasks, task_id)
    context = context_for(
        task.definition,
        tenant_id=tenant_id,
        attempt=attempt,
        execution_id=execution_id,
        previous_error=previous_error,
    )
    result = await run_attempt(manager, task, context)
    return TaskRun(task=task, context=context, result=result, _manager=manager)


async def retry_decision(
    plugins: Plugins,
    task_id: str,
    error: Exception | TaskResult,
    *,
    tenant_id: str = "default",
    attempt: int = 1,
    jitter: float = 0.0,
) -> RetryOutcome:
    """What the engine does when ``attempt`` of ``task_id`` fails with ``error``.

    ``dvp_task_failed`` is asked as the engine asks it: the owning plugin first, then the others
    in load order; the first answer that is not ``None`` wins, and a hook that raises counts as
    ``None`` (and is logged). Without an answer the default policy decides: exponential backoff
    whose random part is ``jitter`` (0 gives the shortest delay). No decision exceeds the task's
    ``max_retries``.

    Args:
        plugins: the plugin that registers ``task_id``, or a list of plugins including it.
        task_id: the task whose attempt failed.
        error: what the hook receives: a raised exception, a `TaskTimeoutError` for a timeout,
            or the failed `TaskResult` (passed on as a `TaskResultFailure`, as the engine does).
        tenant_id: the tenant the attempt ran for.
        attempt: the number of the attempt that failed (1 for the first run).
        jitter: the default policy's random factor, in [0, 1).

    Raises:
        PluginError: registration failed, as in `registered_tasks`.
        TaskNotRegisteredError: no plugin registers ``task_id``.
        ValueError: ``error`` is a successful `TaskResult`, or ``attempt`` is below 1.
    """
    if isinstance(error, TaskResult):
        if error.success:
            raise ValueError("a TaskResult with success=True is not a failure; nothing to decide")
        error = TaskResultFailure(error)
    manager, tasks = await _register(plugins, tenant_id)
    task = _task(tasks, task_id)
    context = context_for(task.definition, tenant_id=tenant_id, attempt=attempt)
    return await _decide(manager, task, error, context, jitter)


async def _register(
    plugins: Plugins, tenant_id: str
) -> tuple[PluginManager, dict[str, RegisteredTask]]:
    manager = PluginManager([plugins] if isinstance(plugins, Plugin) else list(plugins))
    registration = await manager.collect_tasks(tenant_id)
    if registration.errors:
        first, *others = registration.errors
        for other in others:
            first.add_note(f"also: {other}")
        raise first
    return manager, registration.tasks


def _task(tasks: dict[str, RegisteredTask], task_id: str) -> RegisteredTask:
    task = tasks.get(task_id)
    if task is None:
        raise TaskNotRegisteredError(task_id, list(tasks))
    return task


async def _decide(
    manager: PluginManager,
    task: RegisteredTask,
    error: Exception,
    context: TaskExecutionContext,
    jitter: float,
) -> RetryOutcome:
    answer = await manager.task_failed(task, error, context)
    step = resolve_retry(
        attempt=context.attempt,
        max_retries=task.spec.max_retries,
        failed_at=datetime.now(UTC),
        decision=answer.contract if answer is not None else None,
        jitter=jitter,
    )
    decided_by = answer.plugin.name if answer is not None else None
    if isinstance(step, Retry):
        return RetryOutcome(
            retry=True,
            delay_seconds=step.delay_seconds,
            next_attempt=step.next_attempt,
            give_up_reason=None,
            reason=step.decision.reason,
            decided_by=decided_by,
            decision=step.decision,
        )
    return RetryOutcome(
        retry=False,
        delay_seconds=None,
        next_attempt=None,
        give_up_reason=step.reason,
        reason=step.decision.reason,
        decided_by=decided_by,
        decision=step.decision,
    )
