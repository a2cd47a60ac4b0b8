"""The plugin host: calls the collect, execute and first-wins hooks of scheduled tasks."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts import RetryDecision, TaskSpec, definition_hash, validate_tenant_id
from dvp_cms.plugins.base import Plugin
from dvp_cms.plugins.context import HookContext
from dvp_cms.plugins.errors import (
    BadTaskResultError,
    DuplicateTaskError,
    PluginError,
    PluginRegistrationError,
    TaskDefinitionError,
)
from dvp_cms.plugins.hooks.scheduled_tasks import (
    ScheduledTaskDefinition,
    TaskExecutionContext,
    TaskResult,
    TaskRetryDecision,
)
from dvp_cms.plugins.hookspec import ScheduledTaskHooks
from dvp_cms.plugins.validation import retry_decision, task_spec

log = logging.getLogger("dvp_cms.plugins")

_REGISTER = "dvp_register_scheduled_tasks"
_EXECUTE = "dvp_execute_scheduled_task"
_FAILED = "dvp_task_failed"


@dataclass(frozen=True)
class RegisteredTask:
    """A validated task: who declared it, what it declared, and its contract form."""

    tenant_id: str
    plugin: Plugin
    definition: ScheduledTaskDefinition
    spec: TaskSpec
    definition_hash: str

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self.definition.task_id


@dataclass
class Registration:
    """The outcome of collecting every plugin's tasks for one tenant."""

    tenant_id: str
    tasks: dict[str, RegisteredTask] = field(default_factory=dict)
    errors: list[PluginError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PluginDecision:
    """The winning answer of ``dvp_task_failed``: which plugin gave it, and what it is."""

    plugin: Plugin
    decision: TaskRetryDecision
    contract: RetryDecision


def implements(plugin: object, hook: str) -> bool:
    """Whether ``plugin`` overrides ``hook`` (a base class's default does not count)."""
    method = getattr(type(plugin), hook, None)
    return method is not None and method is not getattr(ScheduledTaskHooks, hook, None)


async def _call(function: Any, *args: Any) -> Any:
    """Call a hook that may be sync or async; a coroutine is awaited, never taken as a result."""
    result = function(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class PluginManager:
    """Holds the loaded plugins and calls their scheduled-task hooks."""

    def __init__(self, plugins: Sequence[Plugin]) -> None:
        self._plugins = list(plugins)

    @property
    def plugins(self) -> list[Plugin]:
        """The plugins, in load order."""
        return list(self._plugins)

    def context(self, plugin: Plugin, tenant_id: str) -> HookContext:
        """The `HookContext` a hook of ``plugin`` gets for ``tenant_id``."""
        return HookContext(
            tenant_id=tenant_id,
            logger=logging.getLogger(f"dvp_cms.plugins.{plugin.name}"),
            plugin_name=plugin.name,
        )

    async def collect_tasks(self, tenant_id: str) -> Registration:
        """Call every plugin's ``dvp_register_scheduled_tasks`` and validate the results.

        A plugin that raises, or a definition that is invalid or a duplicate, is reported in
        `Registration.errors`; everything else still registers.
        """
        validate_tenant_id(tenant_id)
        registration = Registration(tenant_id=tenant_id)
        for plugin in self._plugins:
            if not implements(plugin, _REGISTER):
                continue
            try:
                declared = await _call(getattr(plugin, _REGISTER), self.context(plugin, tenant_id))
            except Exception as error:
                registration.errors.append(
                    PluginRegistrationError(
                        f"plugin {plugin.name!r}: {_REGISTER} raised "
                        f"{type(error).__name__}: {error}",
                        plugin=plugin.name,
                    )
                )
                continue
            if declared is None:
                declared = []
            if not isinstance(declared, list | tuple):
                registration.errors.append(
                    PluginRegistrationError(
                        f"plugin {plugin.name!r}: {_REGISTER} returned "
                        f"{type(declared).__name__}; return a list of ScheduledTaskDefinition",
                        plugin=plugin.name,
                    )
                )
                continue
            for definition in declared:
                self._register_one(registration, plugin, definition)
        for problem in registration.errors:
            log.error("tenant %s: %s", tenant_id, problem)
        for warning in registration.warnings:
            log.warning("tenant %s: %s", tenant_id, warning)
        return registration

    def _register_one(self, registration: Registration, plugin: Plugin, definition: Any) -> None:
        try:
            spec = task_spec(plugin, definition, registration.tenant_id)
        except TaskDefinitionError as error:
            registration.errors.append(error)
            return
        task_id = definition.task_id
        existing = registration.tasks.get(task_id)
        if existing is not None:
            registration.errors.append(
                DuplicateTaskError(
                    plugin.name,
                    task_id,
                    f"already declared by plugin {existing.plugin.name!r}: task ids must be "
                    "unique; prefix them with the plugin name",
                )
            )
            return
        if task_id.split(".", 1)[0] != plugin.name:
            registration.warnings.append(
                f"plugin {plugin.name!r}, task {task_id!r}: task ids should start with the "
                f"plugin name, e.g. '{plugin.name}.{task_id.rsplit('.', 1)[-1]}'"
            )
        registration.tasks[task_id] = RegisteredTask(
            tenant_id=registration.tenant_id,
            plugin=plugin,
            definition=definition,
            spec=spec,
            definition_hash=definition_hash(plugin.name, plugin.version, spec),
        )

    async def execute(
        self, task: RegisteredTask, execution_ctx: TaskExecutionContext
    ) -> TaskResult:
        """Run one attempt on the plugin that owns ``task``.

        Exceptions from the plugin propagate; a return value that is not a `TaskResult` raises
        `BadTaskResultError`.
        """
        plugin = task.plugin
        result = await _call(
            getattr(plugin, _EXECUTE),
            task.definition,
            self.context(plugin, task.tenant_id),
            execution_ctx,
        )
        if not isinstance(result, TaskResult):
            raise BadTaskResultError(plugin.name, task.task_id, result)
        return result

    async def task_failed(
        self, task: RegisteredTask, error: Exception, execution_ctx: TaskExecutionContext
    ) -> PluginDecision | None:
        """Ask ``dvp_task_failed``: the owning plugin first, then the others in load order.

        The first answer that is not ``None`` wins; ``None`` means the default policy. A hook
        that raises or answers with the wrong type is logged and counts as ``None``.
        """
        owner = task.plugin
        for plugin in [owner, *(p for p in self._plugins if p is not owner)]:
            if not implements(plugin, _FAILED):
                continue
            try:
                answer = await _call(
                    getattr(plugin, _FAILED),
                    self.context(plugin, task.tenant_id),
                    task.definition,
                    error,
                    execution_ctx,
                )
                if answer is None:
                    continue
                if not isinstance(answer, TaskRetryDecision):
                    raise TypeError(
                        f"returned {type(answer).__name__}; return a TaskRetryDecision or None"
                    )
                return PluginDecision(plugin, answer, retry_decision(plugin, answer))
            except Exception as hook_error:
                log.error(
                    "plugin %r: %s for task %r failed, ignoring its answer: %s: %s",
                    plugin.name,
                    _FAILED,
                    task.task_id,
                    type(hook_error).__name__,
                    hook_error,
                )
        return None
