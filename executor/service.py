"""The executor service: loads plugins, publishes their definitions, and runs ``TaskDue``
attempts taken from its tenants' durable pull consumers (one per tenant, shared by every
executor that serves the tenant).

The parts: `Registrar` (plugins, registry, registrations), `WorkFeed` (pull loop, attempts in
flight, heartbeats), `AttemptRunner` (one attempt), `CancelWatch` (operators' cancel requests,
heard as they are published) and, with ``isolation="process"``, the
`WorkerPool` whose processes run the plugins' attempts. Heartbeats (in-progress acks) keep a
long attempt from being redelivered while this executor lives; an executor that dies has its
attempts redelivered to the others after the consumer's ack wait.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

from contracts.stream import executor_durable
from dvp_cms.plugins import Plugin, RegisteredTask
from executor import _stream
from executor._cancel import CancelWatch
from executor._isolation import RunAttempt, WorkerPool, run_inline
from executor._registrar import Registrar
from executor._runner import AttemptRunner
from executor._stats import ExecutorStats
from executor._watchdog import LoopWatchdog
from executor._work import Delivery, WorkFeed
from executor.settings import ExecutorSettings
from natsio.publish import AckedPublisher
from natsio.service import NatsService

_PUBLISH_TIMEOUT_SECONDS: Final = 5.0
"""How long the stream may take to acknowledge one event before it is sent again."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Executor(NatsService):
    """Runs ``TaskDue`` attempts with the loaded plugins, as one member of a fleet.

    Use as an async context manager; `stop` (or a signal handler calling it) ends consumption,
    and leaving the context lets in-flight attempts finish within ``grace_seconds``::

        async with Executor(ExecutorSettings(plugins=("my_pkg.plugin:MyPlugin",))) as executor:
            await executor.wait_stopped()

    Args:
        settings: connection, plugins, tenants, concurrency, timings and isolation.
        plugins: plugin instances to use besides those ``settings`` loads (kept on reload);
            with ``isolation="process"``, each worker process gets a copy, pickled here.
        clock: the current UTC time (for the events).
        jitter: a number in [0, 1) for the default policy's backoff.

    Raises:
        ExecutorSetupError: with ``isolation="process"``, a plugin of ``plugins`` cannot be
            pickled.
    """

    service_name = "executor"
    job_noun = "attempt"
    late_job_note = "they are given back for another executor"

    def __init__(
        self,
        settings: ExecutorSettings | None = None,
        *,
        plugins: Sequence[Plugin] = (),
        clock: Callable[[], datetime] = _utcnow,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings or ExecutorSettings()
        super().__init__(self._settings)
        self._clock = clock
        self._jitter = jitter
        self._stats = ExecutorStats()
        self._registrar = Registrar(self._settings, plugins, clock=clock, stats=self._stats)
        self._pool = (
            WorkerPool(self._settings, plugins, stats=self._stats)
            if self._settings.isolation == "process"
            else None
        )
        self._watchdog = LoopWatchdog(
            self._settings.blocked_loop_warning_seconds, self._registrar.plugin_modules
        )
        self._ack_wait = self._settings.ack_wait_seconds
        self._publisher: AckedPublisher | None = None
        self._work: WorkFeed | None = None
        self._cancels: CancelWatch | None = None

    # -- public surface -------------------------------------------------------------------

    @property
    def settings(self) -> ExecutorSettings:
        """The settings this executor runs with."""
        return self._settings

    @property
    def worker(self) -> str:
        """The worker name recorded in this executor's events."""
        return self._settings.worker

    @property
    def plugins(self) -> list[Plugin]:
        """The plugins currently loaded."""
        return self._registrar.manager.plugins

    @property
    def tasks(self) -> Mapping[tuple[str, str], RegisteredTask]:
        """The tasks this executor runs, by ``(tenant_id, task_id)``."""
        return self._registrar.tasks

    @property
    def ack_wait_seconds(self) -> float:
        """The shared consumer's ack wait, which sets the heartbeat interval."""
        return self._ack_wait

    @property
    def in_flight(self) -> int:
        """How many attempts run now."""
        return self._stats.running

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the worker processes alive now (none with
        ``isolation="inline"``)."""
        return self._pool.pids if self._pool is not None else []

    @property
    def blocked_loop_warnings(self) -> int:
        """How many times a plugin was reported for blocking the event loop."""
        return self._watchdog.warnings

    @property
    def stats(self) -> ExecutorStats:
        """The counters of this executor's life, and the attempts running now."""
        return self._stats

    def request_reload(self) -> None:
        """Load the plugins again soon (safe to call from a signal handler)."""
        self._registrar.request()

    async def reload(self) -> None:
        """Load the plugins again, collect their tasks for every tenant and publish the
        definitions that are new or changed, and ``TaskUnregistered`` for those that went away.

        A plugin that fails to load or to register is reported (logged and counted); the
        others go on, and its tasks stay registered.
        """
        await self._registrar.reload(self.nc)

    def _stop_summary(self) -> str:
        s = self._stats
        workers = (
            f"; worker processes: {s.workers_started} started, {s.workers_killed} killed, "
            f"{s.workers_died} died"
            if self._pool is not None
            else ""
        )
        return (
            f"{self.worker}: {s.started} started, {s.succeeded} succeeded, "
            f"{s.retries_scheduled} retries scheduled, {s.failed} failed, {s.bad_input} bad "
            f"input, {s.already_recorded} already recorded, {s.returned} given back{workers}"
        )

    # -- the lifecycle's parts ------------------------------------------------------------

    async def _start(self) -> None:
        settings = self._settings
        nc = self.nc
        js = nc.jetstream()
        # Heartbeats keep to the shortest ack wait among the tenants' consumers.
        waits = []
        for tenant_id in settings.tenants:
            consumer = await self.patiently(
                f"for the executor consumer of tenant {tenant_id}",
                partial(_stream.ensure_consumer, js, tenant_id, settings.ack_wait_seconds),
            )
            waits.append(float(consumer.config.ack_wait or settings.ack_wait_seconds))
        self._ack_wait = min(waits)
        # Safe to do again: what is published is planned from what the stream holds.
        await self.patiently("for the task registrations", self.reload)
        run_attempt: RunAttempt
        if self._pool is not None:
            await self._pool.start(self._registrar.manager)
            run_attempt = self._pool.run
        else:
            run_attempt = partial(run_inline, decision_timeout=settings.decision_timeout_seconds)
        self._publisher = publisher = AckedPublisher(nc, _PUBLISH_TIMEOUT_SECONDS)
        await publisher.start()
        self._cancels = cancels = CancelWatch(nc, settings.tenants, self._clock)
        await cancels.start()
        runner = AttemptRunner(
            js,
            publisher,
            self._registrar,
            settings,
            run_attempt,
            cancels,
            stats=self._stats,
            clock=self._clock,
            jitter=self._jitter,
        )

        def launch(delivery: Delivery) -> asyncio.Task[Any]:
            return self.spawn(runner.run(delivery))

        self._work = work = WorkFeed(
            nc,
            js,
            settings,
            ack_wait=self._ack_wait,
            stats=self._stats,
            launch=launch,
            stopping=lambda: self.stopping,
            pause=self.sleep_unless_stopping,
        )
        await work.start()
        self._watchdog.start()
        self.start_loop(work.pull(), "consume")
        # Heartbeats go on while the attempts in flight finish within the grace period.
        self.start_loop(work.heartbeat(), "heartbeat", outlives_stop=True)
        self.start_loop(self._registrar.reload_when_requested(nc), "reload")
        self.log.info(
            "executor %s consuming %s with up to %d attempts in flight, %s (ack wait %gs)",
            settings.worker,
            ", ".join(executor_durable(t) for t in settings.tenants),
            settings.concurrency,
            "each in a worker process" if self._pool is not None else "in this process",
            self._ack_wait,
        )

    async def _close(self) -> None:
        self._watchdog.stop()
        if self._pool is not None:
            await self._pool.close()
        work, self._work = self._work, None
        if work is not None:
            await work.close()
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.close()
        cancels, self._cancels = self._cancels, None
        if cancels is not None:
            await cancels.close()

    def _client_name(self) -> str:
        return f"dvp-executor {self._settings.worker}"

    def _stop_requested_hook(self) -> None:
        if self._work is not None:
            self._work.wake()

    async def _reconnected(self) -> None:
        if self._work is not None:
            self._work.reset()
        if self._cancels is not None:
            self._cancels.reconnected()
            self.spawn(self._look_up_cancels(self._cancels))

    async def _look_up_cancels(self, cancels: CancelWatch) -> None:
        """Cancel requests made while disconnected, for the attempts in flight."""
        try:
            await cancels.look_up_in_flight(self.nc.jetstream())
        except Exception as error:
            self.log.warning("reading the cancel requests after a reconnect failed: %s", error)
