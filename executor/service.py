"""The executor service: loads plugins, publishes their definitions, and runs ``TaskDue``
attempts taken from the shared durable pull consumer.

One attempt: ``TaskStarted`` is recorded, the owning plugin runs under its timeout (cancelled
when it runs over), ``dvp_task_failed`` decides a failure, the outcome is recorded, and only
then is the ``TaskDue`` acknowledged. Heartbeats (in-progress acks) keep a long attempt from
being redelivered while this executor lives; an executor that dies has its attempts
redelivered to the others after the consumer's ack wait. A redelivered attempt whose outcome is
already in the stream is acknowledged without running again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import APIError

from contracts import (
    STREAM_NAME,
    Event,
    EventDecodeError,
    RetryScheduled,
    TaskDue,
    TaskFailed,
    TaskRegistered,
    TaskSucceeded,
    decode,
    event_type,
)
from contracts.describe import describe_event, event_log_fields
from dvp_cms.plugins import (
    Plugin,
    PluginManager,
    PluginRegistrationError,
    RegisteredTask,
    TaskDefinitionError,
    discover_plugins,
)
from dvp_cms.plugins.attempts import AttemptResult, Failure, run_attempt
from executor import _stream
from executor._watchdog import LoopWatchdog
from executor.errors import BadInputError, ExecutorSetupError, UnownedTaskError
from executor.outcomes import execution_context, outcome_event, started_event
from executor.registrations import PlannedPublish, plan_registrations, plan_task
from executor.settings import ExecutorSettings
from natsio.errors import is_guard_refusal
from natsio.provision import ensure_stream
from natsio.publish import AckedPublisher, PublishAck
from natsio.pull import PullFeed

log = logging.getLogger("dvp_scheduler.executor")

_PUBLISH_BACKOFF_MAX_SECONDS: Final = 5.0
_API_ERROR_ATTEMPTS: Final = 3
_REGISTRATION_CONFLICT_ATTEMPTS: Final = 5
_PUBLISH_TIMEOUT_SECONDS: Final = 5.0
"""How long the stream may take to acknowledge one event before it is sent again."""
_LATE_WAKEUP_SECONDS: Final = 2.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ExecutorStats:
    """Counters of one executor's life."""

    started: int = 0
    succeeded: int = 0
    retries_scheduled: int = 0
    failed: int = 0
    bad_input: int = 0
    already_recorded: int = 0
    """Redelivered attempts whose outcome was already in the stream: acked, not run again."""
    returned: int = 0
    """Attempts cancelled at shutdown and given back for redelivery."""
    registered: int = 0
    unregistered: int = 0
    plugin_errors: int = 0
    """Plugins that failed to load, and registration problems, over every (re)load."""


@dataclass
class _InFlight:
    msg: Msg
    last_signal: float
    settled: bool = False


class Executor:
    """Runs ``TaskDue`` attempts with the loaded plugins, as one member of a fleet.

    Use as an async context manager; `stop` (or a signal handler calling it) ends consumption,
    and leaving the context lets in-flight attempts finish within ``grace_seconds``::

        async with Executor(ExecutorSettings(plugins=("my_pkg.plugin:MyPlugin",))) as executor:
            await executor.wait_stopped()

    Args:
        settings: connection, plugins, tenants, concurrency and timings.
        plugins: plugin instances to use besides those ``settings`` loads (kept on reload).
        clock: the current UTC time (for the events).
        jitter: a number in [0, 1) for the default policy's backoff.
    """

    def __init__(
        self,
        settings: ExecutorSettings | None = None,
        *,
        plugins: Sequence[Plugin] = (),
        clock: Callable[[], datetime] = _utcnow,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings or ExecutorSettings()
        self._given_plugins = list(plugins)
        self._clock = clock
        self._jitter = jitter
        self.stats = ExecutorStats()
        self._manager = PluginManager([])
        self._registry: dict[tuple[str, str], RegisteredTask] = {}
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._feed: PullFeed | None = None
        self._recorder: AckedPublisher | None = None
        self._direct = True
        self._ack_wait = self._settings.ack_wait_seconds
        self._in_flight: dict[asyncio.Task[None], _InFlight] = {}
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._reload_requested = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._consumer: asyncio.Task[None] | None = None
        self._helpers: list[asyncio.Task[None]] = []
        self._closing = False
        self._watchdog = LoopWatchdog(
            self._settings.blocked_loop_warning_seconds, self._plugin_modules
        )

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
        return self._manager.plugins

    @property
    def tasks(self) -> Mapping[tuple[str, str], RegisteredTask]:
        """The tasks this executor runs, by ``(tenant_id, task_id)``."""
        return dict(self._registry)

    @property
    def ack_wait_seconds(self) -> float:
        """The shared consumer's ack wait, which sets the heartbeat interval."""
        return self._ack_wait

    @property
    def in_flight(self) -> int:
        """How many attempts run now."""
        return len(self._in_flight)

    @property
    def blocked_loop_warnings(self) -> int:
        """How many times a plugin was reported for blocking the event loop."""
        return self._watchdog.warnings

    def stop(self) -> None:
        """Stop taking new attempts; leaving the context waits for the running ones."""
        self._stopping.set()
        self._slot_freed.set()

    async def wait_stopped(self) -> None:
        """Return once this executor has stopped taking attempts."""
        await self._stopped.wait()

    def request_reload(self) -> None:
        """Load the plugins again soon (safe to call from a signal handler)."""
        self._reload_requested.set()

    async def reload(self) -> None:
        """Load the plugins again, collect their tasks for every tenant and publish the
        definitions that are new or changed, and ``TaskUnregistered`` for those that went away.

        A plugin that fails to load or to register is reported (logged and counted); the
        others go on, and its tasks stay registered.
        """
        js = self._require_js()
        async with self._reload_lock:
            discovery = discover_plugins(
                self._settings.plugins, use_entry_points=self._settings.use_entry_points
            )
            plugins = self._unique([*self._given_plugins, *discovery.plugins])
            self.stats.plugin_errors += len(discovery.errors)
            manager = PluginManager(plugins)
            registry: dict[tuple[str, str], RegisteredTask] = {}
            for tenant_id in self._settings.tenants:
                registration = await manager.collect_tasks(tenant_id)
                self.stats.plugin_errors += len(registration.errors)
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
                known = await _stream.read_known_tasks(js, tenant_id, direct=self._direct)
                plans = plan_registrations(
                    tenant_id,
                    declared=registration.tasks,
                    known=known,
                    answering_plugins=answering,
                    keep=keep,
                    now=self._clock(),
                )
                for plan in plans:
                    await self._publish_registration(
                        js, plan, registration.tasks.get(plan.event.task_id), answering
                    )
                for task_id, task in registration.tasks.items():
                    registry[(tenant_id, task_id)] = task
            self._manager = manager
            self._registry = registry
        log.info(
            "plugins loaded: %s; %d task(s) for tenant(s) %s",
            ", ".join(f"{p.name} {p.version}" for p in plugins) or "none",
            len(registry),
            ", ".join(self._settings.tenants),
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        settings = self._settings
        kwargs: dict[str, Any] = {
            "name": f"dvp-executor {settings.worker}",
            "max_reconnect_attempts": -1,
            **settings.connection.connect_kwargs(),
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
        }
        try:
            self._nc = await nats.connect(**kwargs)
        except Exception as error:
            raise ExecutorSetupError(
                f"cannot connect to NATS at {settings.connection.url}: "
                f"{type(error).__name__}: {error}"
            ) from error
        try:
            self._js = js = self._nc.jetstream()
            info = await ensure_stream(js)
            self._direct = bool(info.config.allow_direct)
            consumer = await _stream.ensure_consumer(
                js, settings.durable, settings.ack_wait_seconds
            )
            self._ack_wait = float(consumer.config.ack_wait or settings.ack_wait_seconds)
            await self.reload()
            self._recorder = AckedPublisher(self._nc, _PUBLISH_TIMEOUT_SECONDS)
            await self._recorder.start()
            self._feed = PullFeed(
                self._nc,
                STREAM_NAME,
                settings.durable,
                accept=self._accept,
                changed=self._slot_freed.set,
                expires=settings.fetch_timeout_seconds,
            )
            await self._feed.start()
            self._watchdog.start()
            self._consumer = asyncio.create_task(self._consume(), name="executor-consume")
            self._helpers = [
                asyncio.create_task(self._heartbeat(), name="executor-heartbeat"),
                asyncio.create_task(self._reloader(), name="executor-reload"),
            ]
        except BaseException:
            await self._close()
            raise
        log.info(
            "executor %s consuming %s with up to %d attempts in flight (ack wait %gs)",
            settings.worker,
            settings.durable,
            settings.concurrency,
            self._ack_wait,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        try:
            if self._consumer is not None:
                await self._consumer
            running = list(self._in_flight)
            if running:
                log.info(
                    "waiting up to %gs for %d attempt(s) in flight",
                    self._settings.grace_seconds,
                    len(running),
                )
                _, late = await asyncio.wait(running, timeout=self._settings.grace_seconds)
                if late:
                    log.warning(
                        "cancelling %d attempt(s) still running after the %gs grace period; "
                        "they are given back for another executor",
                        len(late),
                        self._settings.grace_seconds,
                    )
                    for task in late:
                        task.cancel()
                    await asyncio.gather(*late, return_exceptions=True)
        finally:
            await self._close()
        s = self.stats
        log.info(
            "executor %s stopped: %d started, %d succeeded, %d retries scheduled, %d failed, "
            "%d bad input, %d already recorded, %d given back",
            self.worker,
            s.started,
            s.succeeded,
            s.retries_scheduled,
            s.failed,
            s.bad_input,
            s.already_recorded,
            s.returned,
        )

    async def _close(self) -> None:
        """Cancel and await every background task, unsubscribe, close the connection."""
        tasks = [t for t in [self._consumer, *self._helpers, *self._in_flight] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._consumer = None
        self._helpers = []
        self._watchdog.stop()
        self._stopped.set()
        if self._feed is not None:
            await self._feed.close()
            self._feed = None
        if self._recorder is not None:
            await self._recorder.close()
            self._recorder = None
        if self._nc is not None:
            self._closing = True
            with suppress(Exception):
                await self._nc.close()
            self._nc = None

    # -- the consumer loop ----------------------------------------------------------------

    async def _consume(self) -> None:
        feed = self._feed
        assert feed is not None
        limit = self._settings.concurrency
        # Pull again once this many slots are free (or nothing is requested any more): fewer,
        # larger requests, while the slots never stay empty for long.
        least = max(1, limit // 8)
        longest_wait = self._settings.fetch_timeout_seconds + _LATE_WAKEUP_SECONDS
        pause = 0.1
        try:
            while not self._stopping.is_set():
                if feed.problem is not None:
                    log.warning(
                        "pulling from %s failed (%s); retrying in %.1fs",
                        self._settings.durable,
                        feed.problem,
                        pause,
                    )
                    feed.problem = None
                    await self._sleep_unless_stopping(pause)
                    pause = min(pause * 2, _PUBLISH_BACKOFF_MAX_SECONDS)
                    await self._reensure_consumer()
                    continue
                outstanding = feed.outstanding
                wanted = limit - len(self._in_flight) - outstanding
                if wanted > 0 and (wanted >= least or outstanding == 0):
                    try:
                        await feed.request(wanted)
                    except Exception as error:  # a connection problem: wait and retry
                        log.warning(
                            "pulling from %s failed (%s: %s); retrying in %.1fs",
                            self._settings.durable,
                            type(error).__name__,
                            error,
                            pause,
                        )
                        await self._sleep_unless_stopping(pause)
                        pause = min(pause * 2, _PUBLISH_BACKOFF_MAX_SECONDS)
                    else:
                        pause = 0.1
                    continue
                self._slot_freed.clear()
                with suppress(TimeoutError):
                    async with asyncio.timeout(longest_wait):
                        await self._slot_freed.wait()
        finally:
            # Stop receiving at once: the server gives the open requests' work to others.
            await feed.close()
            self._stopped.set()

    def _accept(self, msg: Msg) -> bool:
        """Take a delivered message, unless stopping or full (then it is given back)."""
        if self._stopping.is_set() or len(self._in_flight) >= self._settings.concurrency:
            return False
        self._spawn(msg)
        return True

    async def _reensure_consumer(self) -> None:
        with suppress(Exception):
            await _stream.ensure_consumer(
                self._require_js(), self._settings.durable, self._settings.ack_wait_seconds
            )

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _spawn(self, msg: Msg) -> None:
        task = asyncio.create_task(self._handle(msg))
        self._in_flight[task] = _InFlight(msg, time.monotonic())
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._slot_freed.set()
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("an attempt ended with an unexpected error", exc_info=error)

    async def _heartbeat(self) -> None:
        """Mark long attempts in progress, well inside the consumer's ack wait."""
        interval = max(self._ack_wait / 4, 0.05)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for attempt in list(self._in_flight.values()):
                if attempt.settled or now - attempt.last_signal < interval:
                    continue
                attempt.last_signal = now
                try:
                    await attempt.msg.in_progress()
                except Exception as error:
                    log.debug("heartbeat failed: %s", error)

    async def _reloader(self) -> None:
        while True:
            await self._reload_requested.wait()
            self._reload_requested.clear()
            log.info("loading plugins again")
            try:
                await self.reload()
            except Exception:
                log.exception("loading plugins again failed; the previous plugins stay")

    # -- one attempt ----------------------------------------------------------------------

    async def _handle(self, msg: Msg) -> None:
        record = self._in_flight.get(asyncio.current_task())  # type: ignore[arg-type]
        try:
            metadata = msg.metadata
            sequence = metadata.sequence.stream
            try:
                due = self._due_of(msg, sequence)
                task = self._task_of(due, msg.subject, sequence)
            except BadInputError as error:
                self.stats.bad_input += 1
                log.error("%s; terminated (bad input #%d)", error, self.stats.bad_input)
                await self._settle(msg, record, "term")
                return
            js = self._require_js()
            if metadata.num_delivered > 1:
                recorded = await _stream.find_outcome(js, due, sequence)
                if recorded is not None:
                    self.stats.already_recorded += 1
                    log.info(
                        "attempt %d of %s (%s) was redelivered but its outcome %s is already "
                        "recorded; acknowledged without running it again",
                        due.attempt,
                        due.execution_id,
                        due.task_id,
                        event_type(recorded),
                    )
                    await self._settle(msg, record, "ack")
                    return
            outcome = await self._run(js, due, task)
            await self._record(outcome)
            await self._settle(msg, record, "ack")
            self._count(outcome)
        except asyncio.CancelledError:
            if record is None or not record.settled:
                self.stats.returned += 1
                with suppress(Exception):
                    await msg.nak()
            raise
        except Exception:
            log.exception(
                "attempt from %s failed unexpectedly; it will be redelivered", msg.subject
            )
            with suppress(Exception):
                await self._settle(msg, record, "nak")

    async def _settle(self, msg: Msg, record: _InFlight | None, how: str) -> None:
        if record is not None:
            record.settled = True
        if how == "ack":
            await msg.ack()
        elif how == "term":
            await msg.term()
        else:
            await msg.nak(delay=1.0)

    def _due_of(self, msg: Msg, sequence: int) -> TaskDue:
        try:
            event: Event = decode(msg.data)
        except EventDecodeError as error:
            raise BadInputError(msg.subject, sequence, str(error)) from None
        if not isinstance(event, TaskDue):
            raise BadInputError(
                msg.subject, sequence, f"expected a task.due.v1 event, got {event_type(event)}"
            )
        return event

    def _task_of(self, due: TaskDue, subject: str, sequence: int) -> RegisteredTask:
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

    async def _run(
        self, js: JetStreamContext, due: TaskDue, task: RegisteredTask
    ) -> TaskSucceeded | RetryScheduled | TaskFailed:
        manager = self._manager
        spec = task.spec
        started = started_event(
            due, worker=self.worker, now=self._clock(), timeout_seconds=spec.timeout_seconds
        )
        # TaskStarted is confirmed while the plugin runs, and before the outcome is sent, so
        # that the stream still holds them in that order.
        try:
            sent: asyncio.Future[PublishAck] | None = await self._require_recorder().send(started)
        except Exception as error:
            log.debug("sending %s failed: %s", event_type(started), error)
            sent = None
        self.stats.started += 1
        try:
            outcome = await self._attempt(js, manager, due, task, started.deadline)
            await self._record(started, sent)
        except BaseException:
            if sent is not None:
                sent.cancel()
            raise
        return outcome

    async def _attempt(
        self,
        js: JetStreamContext,
        manager: PluginManager,
        due: TaskDue,
        task: RegisteredTask,
        deadline: datetime,
    ) -> TaskSucceeded | RetryScheduled | TaskFailed:
        spec = task.spec
        previous = None
        if due.attempt > 1:
            try:
                previous = await _stream.previous_error(js, due, direct=self._direct)
            except Exception as error:
                log.debug("could not read the previous error: %s", error)
        context = execution_context(
            due, max_retries=spec.max_retries, deadline=deadline, previous_error=previous
        )
        result = await self._execute(manager, task, context)
        decision = None
        if isinstance(result, Failure):
            try:
                async with asyncio.timeout(self._settings.decision_timeout_seconds):
                    answer = await manager.task_failed(task, result.exception, context)
            except TimeoutError:
                log.warning(
                    "dvp_task_failed for task %r answered nothing within %gs; using the "
                    "default policy",
                    task.task_id,
                    self._settings.decision_timeout_seconds,
                )
                answer = None
            decision = answer.contract if answer is not None else None
        return outcome_event(
            due,
            result,
            worker=self.worker,
            max_retries=spec.max_retries,
            decision=decision,
            now=self._clock(),
            jitter=self._jitter(),
        )

    async def _execute(
        self, manager: PluginManager, task: RegisteredTask, context: Any
    ) -> AttemptResult:
        return await run_attempt(manager, task, context)

    async def _record(
        self, event: Event, sent: asyncio.Future[PublishAck] | None = None
    ) -> PublishAck:
        """Publish until the stream has it (``sent``: it was already sent, this is the
        answer); transport errors are retried without end (the attempt's heartbeats continue
        meanwhile), a refusal by the server a few times. The message id makes a retry of an
        event that was stored after all a duplicate, not a second copy."""
        recorder = self._require_recorder()
        pause = 0.1
        refusals = 0
        while True:
            try:
                if sent is None:
                    sent = await recorder.send(event)
                ack = await sent
            except APIError as error:
                refusals += 1
                if refusals >= _API_ERROR_ATTEMPTS:
                    raise
                problem = f"the server refused it ({error})"
            except Exception as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if ack.duplicate:
                    log.debug("%s was already recorded", event_type(event))
                return ack
            sent = None
            log.warning(
                "recording %s of %s failed: %s; retrying in %.1fs",
                event_type(event),
                event.task_id,
                problem,
                pause,
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, _PUBLISH_BACKOFF_MAX_SECONDS)

    def _count(self, outcome: TaskSucceeded | RetryScheduled | TaskFailed) -> None:
        if isinstance(outcome, TaskSucceeded):
            self.stats.succeeded += 1
            level = logging.DEBUG  # routine; failures and retries explain themselves
        elif isinstance(outcome, RetryScheduled):
            self.stats.retries_scheduled += 1
            level = logging.INFO
        else:
            self.stats.failed += 1
            level = logging.WARNING
        if log.isEnabledFor(level):
            log.log(level, "%s", describe_event(outcome), extra=event_log_fields(outcome))

    # -- registrations --------------------------------------------------------------------

    async def _publish_registration(
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
                # Another executor published for this task first: look again.
                known = await _stream.read_known_task(
                    js, event.tenant_id, event.task_id, direct=self._direct
                )
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
                self.stats.registered += 1
                log.info("registered %s (tenant %s)", event.task_id, event.tenant_id)
            else:
                self.stats.unregistered += 1
                log.info("unregistered %s (tenant %s)", event.task_id, event.tenant_id)
            return
        log.warning("gave up registering %s: other executors kept changing it", event.task_id)

    # -- helpers --------------------------------------------------------------------------

    def _require_js(self) -> JetStreamContext:
        if self._js is None:
            raise ExecutorSetupError("the executor is not running: use it with 'async with'")
        return self._js

    def _require_recorder(self) -> AckedPublisher:
        if self._recorder is None:
            raise ExecutorSetupError("the executor is not running: use it with 'async with'")
        return self._recorder

    def _plugin_modules(self) -> dict[str, str]:
        return {type(plugin).__module__: plugin.name for plugin in self._manager.plugins}

    @staticmethod
    def _unique(plugins: Sequence[Plugin]) -> list[Plugin]:
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

    async def _on_error(self, error: Exception) -> None:
        log.warning("NATS: %s: %s", type(error).__name__, error)

    async def _on_disconnected(self) -> None:
        if not self._closing:
            log.warning("NATS: disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        log.info("NATS: reconnected")
        if self._feed is not None:  # the server may have lost the open pull requests
            self._feed.reset()
            self._slot_freed.set()
