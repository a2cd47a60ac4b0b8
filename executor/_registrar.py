"""The executor's plugins and the tasks they own: loading them, publishing what changed, and
answering which task a ``TaskDue`` is for."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import APIError

from contracts import TaskDue, TaskRegistered
from dvp_cms.plugins import (
    Plugin,
    PluginManager,
    PluginRegistrationError,
    RegisteredTask,
    TaskDefinitionError,
    discover_plugins,
)
from executor import _stream
from executor._stats import ExecutorStats
from executor.errors import UnownedTaskError
from executor.registrations import PlannedPublish, plan_registrations, plan_task
from executor.settings import ExecutorSettings
from natsio.errors import IN_FLIGHT_SETTLE_SECONDS, is_guard_refusal, winning_sequence
from natsio.service import raise_if_cancelled

log = logging.getLogger("dvp_scheduler.executor")

_REGISTRATION_CONFLICT_ATTEMPTS: Final = 5


class Registrar:
    """The loaded plugins and the registry ``(tenant_id, task_id) -> RegisteredTask``.

    `reload` loads the plugins again (the ``given`` instances are kept each time), publishes
    the definitions that are new or changed and ``TaskUnregistered`` for those that went away,
    and counts ``registered``, ``unregistered`` and ``plugin_errors`` into ``stats``.

    Args:
        settings: which plugins to load, and the tenants to register for.
        given: plugin instances to use besides those ``settings`` loads.
        clock: the current UTC time (for the events).
        stats: where the registrations and plugin errors are counted.
    """

    def __init__(
        self,
        settings: ExecutorSettings,
        given: Sequence[Plugin],
        *,
        clock: Callable[[], datetime],
        stats: ExecutorStats,
    ) -> None:
        self._settings = settings
        self._given = list(given)
        self._clock = clock
        self._stats = stats
        self._manager = PluginManager([])
        self._registry: dict[tuple[str, str], RegisteredTask] = {}
        self._lock = asyncio.Lock()
        self._requested = asyncio.Event()

    @property
    def manager(self) -> PluginManager:
        """The plugins currently loaded, which run the attempts."""
        return self._manager

    @property
    def tasks(self) -> Mapping[tuple[str, str], RegisteredTask]:
        """A copy of the registry: the tasks run, by ``(tenant_id, task_id)``."""
        return dict(self._registry)

    def owner(self, due: TaskDue, subject: str, sequence: int) -> RegisteredTask:
        """The task ``due`` is for; `UnownedTaskError` when no loaded plugin owns it (``subject``
        and ``sequence`` locate the message in the error)."""
        task = self._registry.get((due.tenant_id, due.task_id))
        if task is None:
            plugins = ", ".join(p.name for p in self._manager.plugins) or "none"
            raise UnownedTaskError(
                subject,
                sequence,
                f"no loaded plugin owns task {due.task_id!r} of tenant {due.tenant_id!r} "
                f"(plugins: {plugins}; tenants: {', '.join(self._settings.tenants)}); load "
                "the plugin that declares it (--plugin or an entry point) and serve the tenant",
            )
        return task

    def plugin_modules(self) -> dict[str, str]:
        """``{module name: plugin name}`` of the loaded plugins, for the loop watchdog."""
        return {type(plugin).__module__: plugin.name for plugin in self._manager.plugins}

    def request(self) -> None:
        """Have `reload_when_requested` load the plugins again soon (safe from a signal
        handler)."""
        self._requested.set()

    async def reload_when_requested(self, nc: Client) -> None:
        """Loop: `reload` after each `request`; a failed reload keeps the previous plugins."""
        while True:
            raise_if_cancelled()
            await self._requested.wait()
            self._requested.clear()
            log.info("loading plugins again")
            try:
                await self.reload(nc)
            except Exception:
                log.exception("loading plugins again failed; the previous plugins stay")

    async def reload(self, nc: Client) -> None:
        """Load the plugins, collect their tasks for every tenant and publish what changed.

        A plugin that fails to load or to register is reported (logged and counted); the
        others go on, and its tasks stay registered.
        """
        settings = self._settings
        js = nc.jetstream()
        async with self._lock:
            discovery = discover_plugins(
                settings.plugins, use_entry_points=settings.use_entry_points
            )
            plugins = unique_plugins([*self._given, *discovery.plugins])
            self._stats.plugin_errors += len(discovery.errors)
            manager = PluginManager(plugins)
            registry: dict[tuple[str, str], RegisteredTask] = {}
            for tenant_id in settings.tenants:
                registration = await manager.collect_tasks(tenant_id)
                self._stats.plugin_errors += len(registration.errors)
                silent = {
                    error.plugin
                    for error in registration.errors
                    if isinstance(error, PluginRegistrationError) and error.plugin
                }
                answering = {plugin.name for plugin in plugins} - silent
                keep = {
                    error.task_id
                    for error in registration.errors
                    if isinstance(error, TaskDefinitionError) and isinstance(error.task_id, str)
                }
                known = await _stream.read_known_tasks(nc, tenant_id)
                plans = plan_registrations(
                    tenant_id,
                    declared=registration.tasks,
                    known=known,
                    answering_plugins=answering,
                    keep=keep,
                    now=self._clock(),
                )
                for plan in plans:
                    declared = registration.tasks.get(plan.event.task_id)
                    await self._publish(js, plan, declared, answering)
                for task_id, task in registration.tasks.items():
                    registry[(tenant_id, task_id)] = task
            self._manager = manager
            self._registry = registry
        log.info(
            "plugins loaded: %s; %d task(s) for tenant(s) %s",
            ", ".join(f"{p.name} {p.version}" for p in plugins) or "none",
            len(registry),
            ", ".join(settings.tenants),
        )

    async def _publish(
        self,
        js: JetStreamContext,
        plan: PlannedPublish,
        declared: RegisteredTask | None,
        answering: set[str],
    ) -> None:
        event = plan.event
        current: PlannedPublish | None = plan
        for _ in range(_REGISTRATION_CONFLICT_ATTEMPTS):
            if current is None:
                return
            try:
                await _stream.publish(
                    js,
                    current.event,
                    expected_last_subject_sequence=current.expected_last_subject_sequence,
                )
            except APIError as error:
                if not is_guard_refusal(error):
                    raise
                # Another executor published for this task first: look again (once its write,
                # when still being agreed on by the replicas, has landed).
                if winning_sequence(error) is None:
                    await asyncio.sleep(IN_FLIGHT_SETTLE_SECONDS)
                known = await _stream.read_known_task(js, event.tenant_id, event.task_id)
                current = plan_task(
                    event.tenant_id,
                    event.task_id,
                    declared=declared,
                    known=known,
                    answering_plugins=answering,
                    now=self._clock(),
                )
                continue
            if isinstance(current.event, TaskRegistered):
                self._stats.registered += 1
                log.info("registered %s (tenant %s)", event.task_id, event.tenant_id)
            else:
                self._stats.unregistered += 1
                log.info("unregistered %s (tenant %s)", event.task_id, event.tenant_id)
            return
        log.warning("gave up registering %s: other executors kept changing it", event.task_id)


def unique_plugins(plugins: Sequence[Plugin]) -> list[Plugin]:
    """The plugins with a name not seen before, in order; a second one of a name is logged."""
    seen: dict[str, Plugin] = {}
    for plugin in plugins:
        if plugin.name in seen:
            log.error(
                "plugin %r is loaded twice (%r and %r); the first one is kept",
                plugin.name,
                seen[plugin.name],
                plugin,
            )
            continue
        seen[plugin.name] = plugin
    return list(seen.values())
