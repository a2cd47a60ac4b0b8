"""Where plugin attempts run: in the executor's event loop, or in worker processes it can kill.

``isolation="inline"`` runs an attempt in the executor's own event loop (`run_inline`): the
fastest way, for trusted plugins, but a plugin that blocks the loop (``time.sleep`` in an
``async def``) stalls every other attempt, the heartbeats and the shutdown, and its timeout
cannot fire. ``isolation="process"`` (the default) runs each attempt in a worker process of a
`WorkerPool`, one attempt per process at a time, so that killing one ends that attempt only:

* **Processes.** Workers are forked by multiprocessing's forkserver, a clean process that has
  imported this module once; a worker is ready in about 7 ms here, where ``spawn`` (a new
  interpreter importing everything) takes about 450 ms, and ``fork`` would copy the executor's
  event loop, threads and sockets. They start on demand, one for each attempt that has found
  none idle for `GROW_AFTER_SECONDS`, up to ``concurrency``; the first at the executor's start.
  Each has about 5 MB of memory of its own (30 MB resident, the rest shared with the
  forkserver). They are reused, the most recently used first, and run with the executor's
  environment, working directory and ``sys.path``. Like every start method but ``fork``, the
  forkserver imports the executor's ``__main__`` module: a script that builds an
  `executor.Executor` must guard its entry point with ``if __name__ == "__main__":``.
* **Plugins.** A worker loads the plugins as the executor does: `discover_plugins` over the
  settings' references and entry points, plus the plugin instances given to the executor,
  which are pickled once, at its start (one that cannot be pickled is a setup error). A plugin
  keeps its state in memory per worker process, not per executor. After the plugins are loaded
  again (SIGHUP), the registry holds a new `PluginManager`: from the next attempt on, idle
  workers are retired and new ones (the next generation) load the plugins anew; a busy one is
  retired when its attempt ends.
* **Protocol.** Two Unix socket pairs per worker, orders in and answers out; each frame is a
  4-byte length and a pickle. The executor sends `_Run` (the execution context, and the task
  as its registry holds it the first time the worker gets that task) or `_Ask`. The worker
  runs `run_attempt`, so a well-behaved plugin times out exactly as inline, and answers
  `_Ran`: the `Success`, or the failure's `TaskError` and duration (the plugin's exception may
  not pickle). After a failure it asks ``dvp_task_failed``, where the real exception exists,
  under ``decision_timeout_seconds``, and answers `_Decided`. Its log records are written to
  the answers socket at once, from whatever thread logs, and handled by the executor's
  logging; so are the spans that end in it, with tracing on (`executor._tracing`): `_Run`
  and `_Ask` carry the attempt's trace context, and the executor exports what comes back.
* **Cancel.** An operator's cancel (`AttemptCancel`) sends `_Cancel`: the worker cancels the
  plugin's coroutine, as its timeout would, and answers `_Cancelled` without asking
  ``dvp_task_failed``; no answer within `KILL_GRACE_SECONDS` and the worker is killed. Either
  way the attempt is a ``cancelled`` failure. Inline, the coroutine is cancelled the same way.
  An answer that comes first (the plugin had just finished) stands: the cancel came too late.
* **Deadline.** No answer within ``timeout_seconds`` + `KILL_GRACE_SECONDS`: the worker is
  killed (SIGKILL: a stuck plugin would not heed a polite signal) and replaced, and the
  attempt is a ``timeout`` failure with the same `TaskTimeoutError` as inline. Then
  ``dvp_task_failed`` is asked in another worker with that error (`_Ask`), so that a plugin
  decides about a timeout the same way in both modes. A hook that does not answer within
  ``decision_timeout_seconds`` + the grace has its worker killed too, and the default policy
  applies. A worker that dies on its own (a crash, ``os._exit``) makes the attempt a
  ``raised`` failure, a `WorkerDiedError` naming the exit code or signal, decided the same way.
* **Lifetime.** The event loop never waits on a worker: the sockets are asyncio streams, and
  starting or reaping a process runs in a thread. On the executor's stop, attempts in flight
  get the grace period; one still running then has its worker killed, and `WorkerPool.close`
  kills the rest and waits until each has exited. A worker exits when its orders socket
  closes, which also happens when the executor dies, whatever kills it: a thread of the
  worker waits for that alone, so a plugin blocking the worker's loop does not hold it up.
  Workers ignore SIGINT, which a terminal sends to the whole process group: the executor
  decides when they end.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Final, NoReturn, Protocol, TypeVar

from contracts import RetryDecision, TaskSpec
from contracts.events import TaskError
from dvp_cms.plugins import (
    Plugin,
    PluginManager,
    RegisteredTask,
    TaskTimeoutError,
    discover_plugins,
)
from dvp_cms.plugins.attempts import (
    AttemptResult,
    Failure,
    Success,
    result_of_exception,
)
from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskExecutionContext
from executor import _tracing
from executor._cancel import AttemptCancel, cancelled_failure
from executor._registrar import unique_plugins
from executor._stats import ExecutorStats
from executor.errors import ExecutorSetupError, WorkerDiedError
from executor.settings import ExecutorSettings
from natsio import tracing

log = logging.getLogger("dvp_scheduler.executor")

KILL_GRACE_SECONDS: Final = 0.5
"""How long past its timeout an attempt may take to answer before its worker is killed: the
worker's own timeout cancels a well-behaved plugin at the timeout, and its answer needs a
moment to arrive."""
GROW_AFTER_SECONDS: Final = 0.05
"""An attempt that finds no idle worker waits this long for one to come free before another
is started for it (about what a start takes on a busy machine): a few short attempts in a row
share a worker instead of starting one each, and a long one waits a moment for its own."""
_READY_TIMEOUT_SECONDS: Final = 60.0
"""How long a new worker may take to load the plugins."""
_REAP_TIMEOUT_SECONDS: Final = 5.0
_HEADER: Final = struct.Struct("!I")


@dataclass(frozen=True)
class Ran:
    """What came of one attempt: its result and the winning ``dvp_task_failed`` answer
    (``None`` for the default policy, and after a success)."""

    result: AttemptResult
    decision: RetryDecision | None


class RunAttempt(Protocol):
    """Runs one attempt of a task with the plugins of a manager, until done or cancelled
    (``cancel``): `run_inline` or `WorkerPool.run`."""

    def __call__(
        self,
        manager: PluginManager,
        task: RegisteredTask,
        context: TaskExecutionContext,
        cancel: AttemptCancel | None = None,
    ) -> Awaitable[Ran]: ...


class ReportedFailure(Exception):
    """A failure as a worker process reported it (``str()`` is the recorded message): the
    plugin's own exception stayed in the worker, where ``dvp_task_failed`` received it."""


async def decide(
    manager: PluginManager,
    task: RegisteredTask,
    error: Exception,
    context: TaskExecutionContext,
    *,
    decision_timeout: float,
) -> RetryDecision | None:
    """Ask ``dvp_task_failed`` about a failed attempt; ``None`` (the default policy) when no
    plugin answers, or when the answers take longer than ``decision_timeout`` seconds."""
    try:
        async with asyncio.timeout(decision_timeout):
            answer = await manager.task_failed(task, error, context)
    except TimeoutError:
        log.warning(
            "dvp_task_failed for task %r answered nothing within %gs; using the default policy",
            task.task_id,
            decision_timeout,
        )
        return None
    return answer.contract if answer is not None else None


async def run_inline(
    manager: PluginManager,
    task: RegisteredTask,
    context: TaskExecutionContext,
    cancel: AttemptCancel | None = None,
    *,
    decision_timeout: float,
) -> Ran:
    """Run one attempt in this event loop, and ask ``dvp_task_failed`` if it failed; a
    cancelled attempt (``cancel``) is a ``cancelled`` failure, about which nobody is asked."""
    if cancel is None:
        result = await _tracing.run_traced(manager, task, context)
    else:
        began = time.monotonic()
        finished = await until_cancelled(_tracing.run_traced(manager, task, context), cancel)
        if finished is None:
            assert cancel.request is not None
            return Ran(cancelled_failure(cancel.request, _ms(began)), None)
        result = finished
    if isinstance(result, Success):
        return Ran(result, None)
    decision = await decide(
        manager, task, result.exception, context, decision_timeout=decision_timeout
    )
    return Ran(result, decision)


_R = TypeVar("_R")


async def until_cancelled(work: Awaitable[_R], cancel: AttemptCancel) -> _R | None:
    """What ``work`` returns, or ``None`` if ``cancel`` fires first: then ``work`` is cancelled
    and waited for (what it does then changes nothing). Cancelling the caller cancels ``work``."""
    running = asyncio.ensure_future(work)
    asked = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait((running, asked), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        running.cancel()
        raise
    finally:
        asked.cancel()
    if running.done():
        return running.result()
    running.cancel()
    await asyncio.wait((running,))
    if not running.cancelled():
        running.exception()  # retrieved, so that nothing is logged about it
    return None


# -- what travels between the executor and a worker --------------------------------------------


@dataclass(frozen=True)
class _TaskRef:
    """A registered task without its plugin instance, which the worker has a copy of."""

    plugin: str
    tenant_id: str
    definition: ScheduledTaskDefinition
    spec: TaskSpec
    definition_hash: str

    @classmethod
    def of(cls, task: RegisteredTask) -> _TaskRef:
        return cls(
            task.plugin.name, task.tenant_id, task.definition, task.spec, task.definition_hash
        )

    def bind(self, plugins: Mapping[str, Plugin]) -> RegisteredTask | None:
        """The task with this process's instance of its plugin; ``None`` if it did not load."""
        plugin = plugins.get(self.plugin)
        if plugin is None:
            return None
        return RegisteredTask(
            self.tenant_id, plugin, self.definition, self.spec, self.definition_hash
        )


_TaskKey = tuple[str, str, str]
"""A registered task's tenant, id and definition hash: how a worker recognises a task."""


@dataclass(frozen=True)
class _Run:
    """Run one attempt, then (if it failed) ask ``dvp_task_failed``; ``ref`` comes the first
    time a worker gets the task of ``key``."""

    key: _TaskKey
    ref: _TaskRef | None
    context: TaskExecutionContext
    trace: dict[str, str] | None = None
    """The attempt's span (trace headers), parent of the plugin call's; with tracing on."""


@dataclass(frozen=True)
class _Ask:
    """Ask ``dvp_task_failed`` about an attempt whose worker was killed or died."""

    key: _TaskKey
    ref: _TaskRef | None
    context: TaskExecutionContext
    error: TaskError
    trace: dict[str, str] | None = None
    """The attempt's span (trace headers), current while the hook runs; with tracing on."""


@dataclass(frozen=True)
class _Cancel:
    """Cancel the attempt running now (an operator asked); ignored when none runs."""


@dataclass(frozen=True)
class _Cancelled:
    """The attempt was cancelled after ``duration_ms``; nobody is asked about it."""

    duration_ms: int


@dataclass(frozen=True)
class _Ready:
    """The worker loaded its plugins (``problems``: those that did not load, and why)."""

    plugins: tuple[str, ...]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class _Failed:
    error: TaskError
    duration_ms: int


@dataclass(frozen=True)
class _Ran:
    result: Success | _Failed | _Cancelled


@dataclass(frozen=True)
class _Decided:
    decision: RetryDecision | None


@dataclass(frozen=True)
class _WorkerSetup:
    """What a worker needs to start: the plugins to load and the executor's environment."""

    references: tuple[str, ...]
    use_entry_points: bool
    given: bytes
    environment: dict[str, str]
    log_level: int
    decision_timeout_seconds: float
    tracing: bool = False
    """Tracing is on in the executor: the worker sends it the spans that end here."""


def _frame(message: object) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


async def _read_frame(reader: asyncio.StreamReader) -> object:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))


def _pickled(plugins: Sequence[Plugin]) -> bytes:
    """``plugins`` pickled for the workers; `ExecutorSetupError` naming one that cannot be."""
    for plugin in plugins:
        try:
            pickle.dumps(plugin, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            kind = type(plugin)
            raise ExecutorSetupError(
                f"plugin {plugin.name!r} ({kind.__module__}.{kind.__qualname__}) cannot be "
                f"sent to the executor's worker processes: pickling it failed "
                f"({type(error).__name__}: {error}); make it picklable, or importable and "
                "loaded by reference (--plugin module:Class, which each worker loads itself), "
                "or run the executor with --isolation inline"
            ) from error
    return pickle.dumps(list(plugins), protocol=pickle.HIGHEST_PROTOCOL)


def _ended(code: int | None) -> str:
    """How a worker process ended, from its exit code."""
    if code is None:
        return "exited"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _ms(began: float) -> int:
    return max(0, round((time.monotonic() - began) * 1000))


# -- the executor's side ------------------------------------------------------------------------


class _WorkerExited(Exception):
    """The worker's socket closed: the process exited, or was killed."""


_EXITED: Final = object()
_A = TypeVar("_A")


class _Worker:
    """The executor's handle on one worker process: its sockets, its answers, its exit."""

    def __init__(self, process: BaseProcess, pid: int, generation: int) -> None:
        self.process = process
        self.pid = pid
        self.generation = generation
        self.killed = False
        self.exit_code: int | None = None
        self.reaped = asyncio.Event()
        self._tasks_sent: set[_TaskKey] = set()
        self._answers: asyncio.Queue[object] = asyncio.Queue()
        self._closed = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None

    @property
    def alive(self) -> bool:
        """Whether it can take an order: not killed, its socket open."""
        return not self.killed and not self._closed.is_set()

    async def connect(
        self, orders: socket.socket, answers: socket.socket, closed: Callable[[_Worker], None]
    ) -> asyncio.Task[None]:
        """Read its answers from now on; ``closed`` is called once its answers socket has
        closed."""
        _, self._writer = await asyncio.open_unix_connection(sock=orders)
        reader, answering = await asyncio.open_unix_connection(sock=answers)
        return asyncio.create_task(
            self._listen(reader, answering, closed), name=f"dvp-worker-{self.pid}"
        )

    def order(
        self,
        task: RegisteredTask,
        build: Callable[[_TaskKey, _TaskRef | None], _Run | _Ask],
    ) -> bytes:
        """The frame of an order about ``task``, with the task itself the first time."""
        key = (task.tenant_id, task.task_id, task.definition_hash)
        frame = _frame(build(key, None if key in self._tasks_sent else _TaskRef.of(task)))
        self._tasks_sent.add(key)
        return frame

    async def send(self, order: bytes) -> None:
        """Send an order (a frame); if the worker is gone, `answer` says so."""
        assert self._writer is not None
        with suppress(ConnectionError):
            self._writer.write(order)
            await self._writer.drain()

    async def answer(self, kind: type[_A], within: float) -> _A:
        """Its next answer, of ``kind``; `TimeoutError` if none comes ``within`` seconds,
        `_WorkerExited` if its socket closes first."""
        async with asyncio.timeout(within):
            message = await self._answers.get()
        if message is _EXITED:
            self._answers.put_nowait(_EXITED)  # for whoever asks next
            raise _WorkerExited
        if not isinstance(message, kind):
            raise TypeError(
                f"worker process {self.pid} answered {type(message).__name__}, not {kind.__name__}"
            )
        return message

    def kill(self) -> None:
        """SIGKILL, unless it was killed already or is known to have exited."""
        if self.alive:
            self.killed = True
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    async def _listen(
        self,
        reader: asyncio.StreamReader,
        answering: asyncio.StreamWriter,
        closed: Callable[[_Worker], None],
    ) -> None:
        try:
            while True:
                message = await _read_frame(reader)
                if isinstance(message, logging.LogRecord):
                    _log_from_worker(message)
                elif isinstance(message, _tracing.EndedSpans):
                    _tracing.export_from_worker(message)
                else:
                    self._answers.put_nowait(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # it exited, or was killed
        except Exception:  # a frame that does not unpickle: the stream is of no use
            log.exception("worker process %d sent something unreadable; killing it", self.pid)
            self.kill()
        finally:
            self._closed.set()
            self._answers.put_nowait(_EXITED)
            answering.close()
            if self._writer is not None:
                self._writer.close()
            closed(self)


def _log_from_worker(record: logging.LogRecord) -> None:
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


def _log_fields(context: TaskExecutionContext) -> dict[str, object]:
    return {
        "tenant_id": context.tenant_id,
        "task_id": context.task_id,
        "execution_id": context.execution_id,
        "attempt": context.attempt,
    }


class WorkerPool:
    """Worker processes that run attempts, one at a time each, killed when one overruns.

    See the module docstring for the process model, the protocol and the kill path. `start`
    starts the first worker; `run` is a `RunAttempt`; `close` kills every worker and waits
    until each has exited.

    Args:
        settings: the plugins to load, the most workers (``concurrency``), and the
            ``dvp_task_failed`` timeout.
        given: plugin instances to load besides those ``settings`` names; sent pickled.
        stats: where the workers are counted.

    Raises:
        ExecutorSetupError: a plugin of ``given`` cannot be pickled.
    """

    def __init__(
        self, settings: ExecutorSettings, given: Sequence[Plugin], *, stats: ExecutorStats
    ) -> None:
        self._settings = settings
        self._given = _pickled(given)
        self._stats = stats
        self._context = multiprocessing.get_context("forkserver")
        self._manager: PluginManager | None = None
        self._generation = 0
        self._processes_alive: set[_Worker] = set()
        """Every worker process started and not yet reaped."""
        self._workers: set[_Worker] = set()
        """The ready ones that can take orders, idle or busy."""
        self._idle: list[_Worker] = []
        self._starting = 0
        self._waiters: deque[asyncio.Future[_Worker]] = deque()
        """Attempts waiting for a worker, the longest-waiting first."""
        self._overdue: set[asyncio.Future[_Worker]] = set()
        """Those that have waited `GROW_AFTER_SECONDS`."""
        self._chores: set[asyncio.Task[None]] = set()
        # multiprocessing's bookkeeping of children is not thread-safe: one start or reap
        # at a time.
        self._processes = asyncio.Lock()
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers alive now, starting ones included."""
        return sorted(worker.pid for worker in self._processes_alive)

    async def start(self, manager: PluginManager) -> None:
        """Start the first worker with the plugins ``manager`` holds.

        Raises:
            ExecutorSetupError: it cannot start, or lacks a plugin the executor loaded.
        """
        preload = ["__main__", __name__]
        if tracing.enabled():
            # Imported once in the forkserver rather than by every worker it forks.
            preload += _tracing.WORKER_MODULES
        self._context.set_forkserver_preload(preload)
        self._manager = manager
        self._generation = 1
        try:
            worker, ready = await self._launch(self._generation)
        except WorkerDiedError as error:
            raise ExecutorSetupError(
                f"the executor cannot start its worker processes: {error}; run it with "
                "--isolation inline to run the plugins in its own process"
            ) from error
        missing = self._missing(ready)
        if missing:
            self._retire(worker)
            raise ExecutorSetupError(
                f"plugin(s) {', '.join(map(repr, missing))} loaded in the executor but not in "
                f"its worker process ({'; '.join(ready.problems) or 'no error given'}); make "
                "them load in a fresh process, or run the executor with --isolation inline"
            )
        self._offer(worker)

    async def run(
        self,
        manager: PluginManager,
        task: RegisteredTask,
        context: TaskExecutionContext,
        cancel: AttemptCancel | None = None,
    ) -> Ran:
        """Run one attempt in a worker, and ask ``dvp_task_failed`` if it failed; a cancelled
        attempt (``cancel``) is a ``cancelled`` failure, about which nobody is asked."""
        worker = await self._acquire(manager)
        began = time.monotonic()
        try:
            outcome = await self._attempt(worker, task, context, cancel)
        except BaseException as error:
            # Its worker may be in the middle of anything. Cancelled, the executor stops and
            # the grace period is over: the attempt is given back for another executor.
            if worker.alive:
                worker.kill()
                if isinstance(error, asyncio.CancelledError):
                    log.warning(
                        "attempt %d of %s was still running at shutdown; its worker process "
                        "%d was killed",
                        context.attempt,
                        task.task_id,
                        worker.pid,
                        extra=_log_fields(context),
                    )
            raise
        finally:
            self._release(worker)
        if isinstance(outcome, Ran):
            return outcome
        if cancel is not None and cancel.request is not None:
            # Killed or dead after the cancel: what the operator asked for, whatever ended it.
            return Ran(cancelled_failure(cancel.request, _ms(began)), None)
        return Ran(outcome, await self._ask(manager, task, context, outcome.error))

    async def close(self) -> None:
        """Kill every worker and wait until each has exited."""
        self._closed = True
        for worker in self._processes_alive:
            worker.kill()
        while self._chores:
            await asyncio.gather(*self._chores, return_exceptions=True)

    # -- one attempt ------------------------------------------------------------------------

    async def _attempt(
        self,
        worker: _Worker,
        task: RegisteredTask,
        context: TaskExecutionContext,
        cancel: AttemptCancel | None,
    ) -> Ran | Failure:
        """The attempt and its decision; or the failure alone when the worker was lost
        (killed at the deadline or at a cancel, or died), whose decision is asked elsewhere."""
        timeout = task.spec.timeout_seconds
        try:
            trace = _tracing.current_headers()  # the attempt's span, with tracing on
            order = worker.order(task, lambda key, ref: _Run(key, ref, context, trace))
        except Exception as error:  # say, a definition of a class that cannot be pickled
            return Ran(result_of_exception(error, 0), None)
        began = time.monotonic()
        await worker.send(order)
        try:
            ran = await self._answer(worker, timeout + KILL_GRACE_SECONDS, cancel, context, task)
            if ran is None:
                ran = _Ran(_Cancelled(_ms(began)))
        except TimeoutError:
            worker.kill()
            self._stats.workers_killed += 1
            log.warning(
                "attempt %d of %s (plugin %r, execution %s, tenant %s) ran past its %gs "
                "timeout; its worker process %d was killed",
                context.attempt,
                task.task_id,
                task.plugin.name,
                context.execution_id,
                context.tenant_id,
                timeout,
                worker.pid,
                extra=_log_fields(context),
            )
            return result_of_exception(TaskTimeoutError(task.task_id, timeout), _ms(began))
        except _WorkerExited:
            died = await self._died(worker, "running the attempt", context)
            return result_of_exception(died, _ms(began))
        if isinstance(ran.result, Success):
            return Ran(ran.result, None)
        if isinstance(ran.result, _Cancelled):
            assert cancel is not None
            assert cancel.request is not None
            return Ran(cancelled_failure(cancel.request, ran.result.duration_ms), None)
        reported = ran.result.error
        failure = Failure(reported, ReportedFailure(reported.message), ran.result.duration_ms)
        return Ran(failure, await self._decision(worker, task, context))

    async def _answer(
        self,
        worker: _Worker,
        within: float,
        cancel: AttemptCancel | None,
        context: TaskExecutionContext,
        task: RegisteredTask,
    ) -> _Ran | None:
        """The worker's answer to a `_Run`, within ``within`` seconds; once ``cancel`` fires,
        the worker is told (`_Cancel`), and killed if it has not answered `KILL_GRACE_SECONDS`
        later (then ``None``)."""
        if cancel is None:
            return await worker.answer(_Ran, within)
        answer = asyncio.ensure_future(worker.answer(_Ran, within))
        try:
            if await until_cancelled(asyncio.shield(answer), cancel) is None:
                await worker.send(_frame(_Cancel()))
                await asyncio.wait((answer,), timeout=KILL_GRACE_SECONDS)
                if not answer.done():
                    worker.kill()
                    self._stats.workers_killed += 1
                    log.warning(
                        "attempt %d of %s (execution %s) was cancelled and its plugin did not "
                        "stop within %gs; its worker process %d was killed",
                        context.attempt,
                        task.task_id,
                        context.execution_id,
                        KILL_GRACE_SECONDS,
                        worker.pid,
                        extra=_log_fields(context),
                    )
                    return None
            return answer.result()
        finally:
            answer.cancel()

    async def _ask(
        self,
        manager: PluginManager,
        task: RegisteredTask,
        context: TaskExecutionContext,
        error: TaskError,
    ) -> RetryDecision | None:
        """``dvp_task_failed``, asked in a worker, about an attempt whose worker was lost."""
        try:
            worker = await self._acquire(manager)
        except WorkerDiedError as problem:
            log.warning("%s; using the default policy for task %r", problem, task.task_id)
            return None
        try:
            trace = _tracing.current_headers()
            await worker.send(
                worker.order(task, lambda key, ref: _Ask(key, ref, context, error, trace))
            )
            return await self._decision(worker, task, context)
        except BaseException:
            worker.kill()
            raise
        finally:
            self._release(worker)

    async def _decision(
        self, worker: _Worker, task: RegisteredTask, context: TaskExecutionContext
    ) -> RetryDecision | None:
        timeout = self._settings.decision_timeout_seconds
        try:
            decided = await worker.answer(_Decided, timeout + KILL_GRACE_SECONDS)
        except TimeoutError:
            worker.kill()
            self._stats.workers_killed += 1
            log.warning(
                "dvp_task_failed for task %r answered nothing within %gs; its worker process "
                "%d was killed; using the default policy",
                task.task_id,
                timeout,
                worker.pid,
                extra=_log_fields(context),
            )
            return None
        except _WorkerExited:
            await self._died(worker, "asking dvp_task_failed", context)
            return None
        return decided.decision

    async def _died(
        self, worker: _Worker, doing: str, context: TaskExecutionContext
    ) -> WorkerDiedError:
        await worker.reaped.wait()
        self._stats.workers_died += 1
        died = WorkerDiedError(
            f"worker process {worker.pid} {_ended(worker.exit_code)} while {doing}"
        )
        log.warning(
            "attempt %d of %s: %s",
            context.attempt,
            context.task_id,
            died,
            extra=_log_fields(context),
        )
        return died

    # -- the workers ------------------------------------------------------------------------

    async def _acquire(self, manager: PluginManager) -> _Worker:
        """An idle worker of ``manager``'s generation, started if need be."""
        if manager is not self._manager:
            self._renew(manager)
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Worker] = loop.create_future()
        self._waiters.append(waiter)
        loop.call_later(GROW_AFTER_SECONDS, self._waited_long, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())
            raise

    def _renew(self, manager: PluginManager) -> None:
        """The plugins were loaded again: retire the idle workers, and the busy ones as they
        come free."""
        self._manager = manager
        self._generation += 1
        idle, self._idle = self._idle, []
        for worker in idle:
            self._retire(worker)
        log.info(
            "plugins loaded again: worker processes of generation %d take over",
            self._generation,
        )

    def _waited_long(self, waiter: asyncio.Future[_Worker]) -> None:
        if not waiter.done():
            self._overdue.add(waiter)
            self._grow()

    def _grow(self) -> None:
        """Start a worker for each attempt that has waited `GROW_AFTER_SECONDS` for one,
        unless one is starting for it."""
        self._overdue = {waiter for waiter in self._overdue if not waiter.done()}
        while (
            not self._closed
            and self._starting < len(self._overdue)
            and self._starting + len(self._workers) < self._settings.concurrency
        ):
            self._starting += 1
            self._chore(self._start_one(self._generation))

    async def _start_one(self, generation: int) -> None:
        try:
            worker, ready = await self._launch(generation)
        except Exception as error:
            if self._closed:
                return
            log.error("a worker process could not start: %s", error)
            for waiter in self._waiters:
                if not waiter.done():  # its attempt is given back, to be offered again
                    waiter.set_exception(error)
                    break
            return
        finally:
            self._starting -= 1
        missing = self._missing(ready) if generation == self._generation else []
        if missing:
            log.error(
                "worker process %d lacks plugin(s) %s, loaded in the executor (%s); their "
                "attempts fail in it",
                worker.pid,
                ", ".join(map(repr, missing)),
                "; ".join(ready.problems) or "no error given",
            )
        self._release(worker)

    async def _launch(self, generation: int) -> tuple[_Worker, _Ready]:
        """Start a worker process and wait until it has loaded the plugins."""
        settings = self._settings
        setup = _WorkerSetup(
            references=settings.plugins,
            use_entry_points=settings.use_entry_points,
            given=self._given,
            environment=dict(os.environ),
            log_level=logging.getLogger().getEffectiveLevel(),
            decision_timeout_seconds=settings.decision_timeout_seconds,
            tracing=tracing.enabled(),
        )
        async with self._processes:
            process, pid, orders, answers = await asyncio.to_thread(self._spawn, setup)
        worker = _Worker(process, pid, generation)
        self._processes_alive.add(worker)
        self._count()
        try:
            listener = await worker.connect(orders, answers, self._closed_channel)
        except BaseException:
            orders.close()
            answers.close()
            worker.kill()
            self._chore(self._reap(worker, None))
            raise
        self._chore(self._reap(worker, listener))
        if self._closed:
            worker.kill()
        try:
            ready = await worker.answer(_Ready, _READY_TIMEOUT_SECONDS)
        except BaseException as error:
            worker.kill()
            if isinstance(error, TimeoutError):
                raise WorkerDiedError(
                    f"worker process {pid} did not load the plugins within "
                    f"{_READY_TIMEOUT_SECONDS:g}s and was killed"
                ) from None
            if isinstance(error, _WorkerExited):
                await worker.reaped.wait()
                raise WorkerDiedError(
                    f"worker process {pid} {_ended(worker.exit_code)} before it was ready "
                    "(its output, if any, is above)"
                ) from None
            raise
        self._workers.add(worker)
        self._stats.workers_started += 1
        log.info(
            "worker process %d started (generation %d) with plugin(s) %s",
            pid,
            generation,
            ", ".join(ready.plugins) or "none",
        )
        return worker, ready

    def _spawn(self, setup: _WorkerSetup) -> tuple[BaseProcess, int, socket.socket, socket.socket]:
        """Start a worker process (in a thread: `BaseProcess.start` waits for the fork)."""
        orders, their_orders = socket.socketpair()
        answers, their_answers = socket.socketpair()
        try:
            process = self._context.Process(
                target=serve_worker,
                args=(their_orders, their_answers, setup),
                name="dvp-executor-worker",
                # Only for multiprocessing's exit handler, which then ends a worker left
                # behind; the worker clears the flag for itself (see serve_worker).
                daemon=True,
            )
            process.start()
        except BaseException:
            orders.close()
            answers.close()
            raise
        finally:
            their_orders.close()
            their_answers.close()
        pid = process.pid
        assert pid is not None  # set by start()
        return process, pid, orders, answers

    async def _reap(self, worker: _Worker, listener: asyncio.Task[None] | None) -> None:
        """Once its answers socket has closed, wait for the process to end and release it."""
        if listener is not None:
            await listener
        process = worker.process
        async with self._processes:
            await asyncio.to_thread(process.join, _REAP_TIMEOUT_SECONDS)
            if process.exitcode is None:  # its socket closed, yet it lives on
                process.kill()
                await asyncio.to_thread(process.join)
        worker.exit_code = process.exitcode
        process.close()
        self._processes_alive.discard(worker)
        self._count()
        worker.reaped.set()
        log.debug("worker process %d %s", worker.pid, _ended(worker.exit_code))

    def _closed_channel(self, worker: _Worker) -> None:
        """A worker's answers socket closed: it can take no more orders."""
        if worker in self._idle:
            self._idle.remove(worker)
            if not worker.killed:
                log.warning("idle worker process %d exited", worker.pid)
        self._workers.discard(worker)
        self._grow()

    def _offer(self, worker: _Worker) -> None:
        """Give a ready worker to the longest-waiting attempt, or keep it idle."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle.append(worker)

    def _release(self, worker: _Worker) -> None:
        """An attempt is done with ``worker``: keep it for the next one, or retire it."""
        if worker.alive and worker.generation == self._generation and not self._closed:
            self._offer(worker)
        else:
            self._retire(worker)

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        self._workers.discard(worker)
        self._grow()

    def _missing(self, ready: _Ready) -> list[str]:
        """The executor's plugins that a worker did not load."""
        assert self._manager is not None
        return [p.name for p in self._manager.plugins if p.name not in ready.plugins]

    def _count(self) -> None:
        self._stats.workers = len(self._processes_alive)

    def _chore(self, coroutine: Awaitable[None]) -> None:
        """Run a start or a reap in the background; `close` waits for it."""
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)


# -- the worker's side --------------------------------------------------------------------------


def _exit_now(code: int) -> NoReturn:
    """End the worker at once, whatever its event loop is doing."""
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    os._exit(code)


class _Link:
    """The worker's answers socket: frames out, from any thread."""

    def __init__(self, answers: socket.socket) -> None:
        self._answers = answers
        self._lock = threading.Lock()

    def send(self, message: object) -> None:
        """Send ``message``; if the executor is gone, so is this process."""
        frame = _frame(message)
        try:
            with self._lock:
                self._answers.sendall(frame)
        except OSError:
            _exit_now(0)


class _Forward(logging.Handler):
    """Sends the worker's log records to the executor, which logs them its way."""

    def __init__(self, link: _Link) -> None:
        super().__init__()
        self._link = link

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # The text as formatted here (with any traceback), and only the plain fields:
            # arguments and extras may not pickle.
            fields = {
                key: value
                for key, value in vars(record).items()
                if value is None or isinstance(value, str | int | float)
            }
            fields.update(msg=self.format(record), args=None, exc_text=None, stack_info=None)
            self._link.send(logging.makeLogRecord(fields))
        except Exception:
            self.handleError(record)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A handler that does nothing; unlike ``SIG_IGN``, it is not inherited by programs
    a plugin runs."""


def _load_plugins(setup: _WorkerSetup) -> tuple[PluginManager, tuple[str, ...]]:
    """The plugins, loaded as the executor loads them, and what failed to load."""
    # The executor reported these problems when it loaded the same plugins.
    plugin_log = logging.getLogger("dvp_cms.plugins")
    plugin_log.disabled = True
    try:
        discovery = discover_plugins(setup.references, use_entry_points=setup.use_entry_points)
    finally:
        plugin_log.disabled = False
    problems = [str(error) for error in discovery.errors]
    try:
        given: list[Plugin] = pickle.loads(setup.given)
    except Exception as error:
        problems.append(
            f"the plugin instances given to the executor did not unpickle: "
            f"{type(error).__name__}: {error}"
        )
        given = []
    return PluginManager(unique_plugins([*given, *discovery.plugins])), tuple(problems)


def _exit_on_hangup(orders: socket.socket) -> None:
    """Exit once the executor closes the orders socket, or dies: at once, even while a plugin
    blocks the event loop (which would notice too, but only once it runs again)."""
    poller = select.poll()
    # POLLHUP and POLLERR come whatever is asked for; POLLRDHUP (Linux) is the peer's close.
    poller.register(orders, getattr(select, "POLLRDHUP", 0))
    poller.poll()
    _exit_now(0)


def serve_worker(orders: socket.socket, answers: socket.socket, setup: _WorkerSetup) -> None:
    """A worker process: load the plugins, then run the executor's orders one at a time
    until the orders socket closes."""
    # The flag makes multiprocessing's exit handler in the executor end this process; here
    # it would forbid plugins to start processes of their own.
    multiprocessing.current_process().daemon = False
    signal.signal(signal.SIGINT, _ignore)
    os.environ.clear()
    os.environ.update(setup.environment)
    link = _Link(answers)
    root = logging.getLogger()
    root.handlers[:] = [_Forward(link)]
    root.setLevel(setup.log_level)
    if setup.tracing:
        _tracing.forward_from_worker(link.send)
    manager, problems = _load_plugins(setup)
    link.send(_Ready(tuple(plugin.name for plugin in manager.plugins), problems))
    threading.Thread(target=_exit_on_hangup, args=(orders,), name="hangup", daemon=True).start()
    asyncio.run(_serve(orders, link, manager, setup.decision_timeout_seconds))


class _Orders:
    """The executor's orders, read one frame at a time; a read once begun is kept for the next
    `take` (a frame read half is lost), so an attempt can run while the next order is awaited."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._next: asyncio.Future[object] | None = None

    def arriving(self) -> asyncio.Future[object]:
        """The next order, as a future."""
        if self._next is None:
            self._next = asyncio.ensure_future(_read_frame(self._reader))
        return self._next

    async def take(self) -> object:
        """The next order; the process exits if the executor closed the socket or sent
        something unreadable."""
        arriving = self.arriving()
        try:
            order = await arriving
        except (asyncio.IncompleteReadError, ConnectionError):
            _exit_now(0)  # the executor closed the socket, or died
        except Exception as error:
            log.critical(
                "worker process %d cannot read what the executor sent (%s: %s); exiting",
                os.getpid(),
                type(error).__name__,
                error,
            )
            _exit_now(70)
        self._next = None
        return order


async def _run_unless_cancelled(
    manager: PluginManager,
    task: RegisteredTask,
    context: TaskExecutionContext,
    orders: _Orders,
    trace: dict[str, str] | None = None,
) -> AttemptResult | _Cancelled:
    """The attempt, cancelled if the executor sends `_Cancel` while it runs; its plugin call's
    span is a child of ``trace`` (with tracing on)."""
    began = time.monotonic()
    running = asyncio.ensure_future(_tracing.run_traced(manager, task, context, trace))
    while True:
        await asyncio.wait((running, orders.arriving()), return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            return running.result()
        order = await orders.take()
        if not isinstance(order, _Cancel):
            running.cancel()
            raise TypeError(f"the executor sent {type(order).__name__} while an attempt ran")
        running.cancel()
        await asyncio.wait((running,))
        if not running.cancelled():
            running.exception()  # retrieved, so that nothing is logged about it
        return _Cancelled(_ms(began))


async def _serve(
    orders_socket: socket.socket, link: _Link, manager: PluginManager, decision_timeout: float
) -> None:
    reader, _ = await asyncio.open_unix_connection(sock=orders_socket)
    orders = _Orders(reader)
    plugins = {plugin.name: plugin for plugin in manager.plugins}
    refs: dict[_TaskKey, _TaskRef] = {}
    while True:
        order = await orders.take()
        if isinstance(order, _Cancel):
            continue  # for an attempt that had ended when it came
        if not isinstance(order, _Run | _Ask):
            raise TypeError(f"the executor sent {type(order).__name__}, not an order")
        if order.ref is not None:
            refs[order.key] = order.ref
        ref = refs[order.key]
        task = ref.bind(plugins)
        if isinstance(order, _Ask):
            decision = None
            if task is not None:
                lost: Exception = (
                    TaskTimeoutError(task.task_id, task.spec.timeout_seconds)
                    if order.error.kind == "timeout"
                    else WorkerDiedError(order.error.message)
                )
                with _tracing.attached(order.trace):
                    decision = await decide(
                        manager, task, lost, order.context, decision_timeout=decision_timeout
                    )
            link.send(_Decided(decision))
            continue
        if task is None:
            missing = TaskError(
                kind="raised",
                message=f"plugin {ref.plugin!r} did not load in worker process "
                f"{os.getpid()}; see the executor's log",
            )
            link.send(_Ran(_Failed(missing, 0)))
            link.send(_Decided(None))
            continue
        result = await _run_unless_cancelled(manager, task, order.context, orders, order.trace)
        if isinstance(result, Success | _Cancelled):
            link.send(_Ran(result))
            continue
        link.send(_Ran(_Failed(result.error, result.duration_ms)))
        with _tracing.attached(order.trace):  # as inline: the hook runs in the attempt's span
            decision = await decide(
                manager, task, result.exception, order.context, decision_timeout=decision_timeout
            )
        link.send(_Decided(decision))
