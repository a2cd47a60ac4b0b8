"""Errors of the plugin host, and the exceptions ``dvp_task_failed`` receives."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts.errors import SchedulerError

if TYPE_CHECKING:
    from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult


class PluginError(SchedulerError):
    """A plugin could not be loaded or used."""


class PluginLoadError(PluginError, ImportError):
    """A plugin reference (``module:attr`` or an entry point) could not be loaded."""


class PluginRegistrationError(PluginError):
    """A plugin's ``dvp_register_scheduled_tasks`` raised or returned something unusable.

    ``plugin`` names the plugin when known, so that a host can keep that plugin's tasks.
    """

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin


class TaskDefinitionError(PluginError, ValueError):
    """A task definition is invalid. The message names the plugin, the task and the fix."""

    def __init__(self, plugin: str, task_id: object, problem: str) -> None:
        super().__init__(f"plugin {plugin!r}, task {task_id!r}: {problem}")
        self.plugin = plugin
        self.task_id = task_id
        self.problem = problem


class DuplicateTaskError(TaskDefinitionError):
    """Two definitions use the same task id."""


class TaskNotRegisteredError(PluginError, LookupError):
    """No loaded plugin registers the task id asked for."""

    def __init__(self, task_id: str, registered: list[str]) -> None:
        known = ", ".join(repr(t) for t in sorted(registered)) or "none"
        super().__init__(
            f"no plugin registers task {task_id!r} (registered: {known}); check the id, or "
            "pass the plugin that declares it"
        )
        self.task_id = task_id
        self.registered = registered


class TaskResultFailure(PluginError):
    """An attempt returned ``TaskResult(success=False)``; ``str()`` is its error message."""

    def __init__(self, result: TaskResult) -> None:
        super().__init__(result.error_message or "task reported failure without a message")
        self.result = result


class TaskTimeoutError(PluginError, TimeoutError):
    """An attempt ran longer than its ``timeout_seconds`` and was cancelled."""

    def __init__(self, task_id: str, timeout_seconds: float) -> None:
        super().__init__(f"task {task_id!r} exceeded its timeout of {timeout_seconds:g}s")
        self.task_id = task_id
        self.timeout_seconds = timeout_seconds


class BadTaskResultError(PluginError, TypeError):
    """``dvp_execute_scheduled_task`` returned something that is not a ``TaskResult``."""

    def __init__(self, plugin: str, task_id: str, value: object) -> None:
        super().__init__(
            f"plugin {plugin!r}, task {task_id!r}: dvp_execute_scheduled_task returned "
            f"{type(value).__name__} ({value!r:.80}); return a TaskResult"
        )
        self.value = value


class UnserializableResultError(BadTaskResultError):
    """``TaskResult.data`` is not a JSON object (a dict with string keys and JSON values)."""

    def __init__(self, plugin: str, task_id: str, data: object, problem: str) -> None:
        super().__init__(plugin, task_id, data)
        self.args = (
            f"plugin {plugin!r}, task {task_id!r}: TaskResult.data must be a dict with string "
            f"keys and JSON-serializable values ({problem}); got {data!r:.80}",
        )
