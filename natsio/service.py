"""The lifecycle every service shares: connect, start its parts under one task group, stop.

A service (ticker, executor, projector) subclasses `NatsService` and writes only what is its
own: `_start` (provision, build its parts, start their loops), optionally `_close` (release its
parts) and the callbacks. The base gives all three the same behaviour:

* ``async with Service(settings) as s`` connects and starts; a failure during start-up closes
  what was opened and raises;
* `stop` asks it to stop (safe from a signal handler); `wait_stopped` returns once `stop` was
  called or a background loop failed;
* leaving the block cancels the loops, gives the short jobs (a fire, an attempt) up to
  ``settings.grace_seconds`` to finish, cancels the late ones, closes the parts and the
  connection; then, if a loop failed, raises `ServiceFailedError` with that loop's error, as a
  worker of a task queue does rather than limping on without the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from types import TracebackType
from typing import Any, ClassVar, Final, Self, TypeVar

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.js.errors import ServiceUnavailableError

from natsio.errors import (
    PermissionRefusal,
    ServiceFailedError,
    ServiceNotRunningError,
    ServiceStartupError,
    permission_refusal,
)
from natsio.settings import ServiceSettings

T = TypeVar("T")

_UNANSWERED: Final = (TimeoutError, NoRespondersError, ServiceUnavailableError)
"""How a JetStream request fails while nobody can answer it: during a stream or meta leader
election, or while the node a stream lives on restarts."""
STOP_STEP_SECONDS: Final = 5.0
"""How long each step of leaving after the grace (cancelling, closing the parts, closing the
connection) may take before the service goes on without it."""
_FIRST_PATIENCE_PAUSE: Final = 0.5
_LONGEST_PATIENCE_PAUSE: Final = 5.0


class NatsService:
    """Base of the services; see the module docstring."""

    service_name: ClassVar[str] = "service"
    """Names the logger (``dvp_scheduler.<service_name>``) and the NATS client."""
    job_noun: ClassVar[str] = "job"
    """What the service's short jobs are, for its logs ("attempt", "publish")."""
    late_job_note: ClassVar[str] = ""
    """Said when jobs are cancelled at the end of the grace period (what becomes of them)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._service_settings = settings
        self.log = logging.getLogger(f"dvp_scheduler.{self.service_name}")
        self._stop_requested = asyncio.Event()
        self._failure: BaseException | None = None
        self._loops: dict[asyncio.Task[None], bool] = {}
        self._jobs: set[asyncio.Task[Any]] = set()
        self._client: Client | None = None
        self._closing = False
        self._refused: PermissionRefusal | None = None

    # -- what a subclass writes ----------------------------------------------------------------

    async def _start(self) -> None:
        """Provision, build the parts and start their loops (the connection is open)."""

    async def _close(self) -> None:
        """Release the parts (the loops and jobs have ended; the connection is still open)."""

    def _client_class(self) -> type[Client]:
        return Client

    def _client_name(self) -> str:
        return f"dvp-{self.service_name}"

    def _stop_requested_hook(self) -> None:
        """Called by `stop`, e.g. to wake a loop that waits for something else."""

    async def _reconnected(self) -> None:
        """Called after the connection came back."""

    def _stop_summary(self) -> str:
        """What the service did in its life, logged when it stops ("" logs nothing)."""
        return ""

    # -- the shared surface -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            self._client = await self._connect()
            await self._start()
        except TimeoutError as error:
            await self._shutdown()
            if self._refused is None:
                raise
            # Without the grant the server drops the request, so the caller only times out.
            raise ServiceStartupError(
                f"the {self.service_name} cannot start: {self._refused.explain(self.service_name)}"
            ) from error
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        try:
            await self._shutdown()
        finally:
            summary = self._stop_summary()
            if summary:
                self.log.info("%s stopped: %s", self.service_name, summary)
        failure = self._failure
        if failure is not None and exc is None:
            raise ServiceFailedError(
                f"the {self.service_name} stopped because {failure!r} ended one of its loops"
            ) from failure

    def stop(self) -> None:
        """Ask the service to stop; leaving the ``async with`` block waits for it."""
        self._stop_requested.set()
        self._stop_requested_hook()

    async def wait_stopped(self) -> None:
        """Return once `stop` was called or a background loop failed (leaving the ``async
        with`` block then raises that loop's error)."""
        await self._stop_requested.wait()

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called (or a loop failed)."""
        return self._stop_requested.is_set()

    @property
    def failure(self) -> BaseException | None:
        """The error that ended a background loop, if one did."""
        return self._failure

    @property
    def nc(self) -> Client:
        """The open connection; raises `ServiceNotRunningError` outside ``async with``."""
        if self._client is None:
            raise ServiceNotRunningError(
                f"the {self.service_name} is not running: use it with 'async with'"
            )
        return self._client

    def start_loop(
        self, coroutine: Coroutine[Any, Any, None], name: str, *, outlives_stop: bool = False
    ) -> None:
        """Run a loop for the service's whole life; if it raises, the service stops with its
        error. ``outlives_stop``: keep it while the jobs finish (e.g. heartbeats of running
        attempts); other loops are cancelled as soon as the service is leaving."""
        task = asyncio.create_task(coroutine, name=f"{self.service_name}-{name}")
        self._loops[task] = outlives_stop
        task.add_done_callback(self._loop_ended)

    def spawn(
        self, coroutine: Coroutine[Any, Any, Any], name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run a short job (one fire, one attempt); leaving waits for it within the grace."""
        job = asyncio.create_task(coroutine, name=name)
        self._jobs.add(job)
        job.add_done_callback(self._job_ended)
        return job

    async def patiently(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """Run a start-up ``step`` (idempotent), again with backoff while JetStream does not
        answer it, saying ``what`` it waits for; after ``startup_patience_seconds`` (or when the
        server refused a grant, which also shows as a timeout) the error stands."""
        loop = asyncio.get_running_loop()
        patience = self._service_settings.startup_patience_seconds
        deadline = loop.time() + patience
        pause = _FIRST_PATIENCE_PAUSE
        while True:
            raise_if_cancelled()
            try:
                return await step()
            except _UNANSWERED as error:
                if self._refused is not None or self.stopping:
                    raise
                if loop.time() + pause > deadline:
                    raise ServiceStartupError(
                        f"the {self.service_name} cannot start: JetStream did not answer "
                        f"{what} within {patience:g}s ({_describe(error)}); check that a "
                        "majority of the cluster's nodes run, or raise startup_patience_seconds"
                    ) from error
                self.log.warning(
                    "JetStream did not answer %s (%s), as during a leader election or while "
                    "a node restarts; asking again in %.1fs",
                    what,
                    _describe(error),
                    pause,
                )
                await self.sleep_unless_stopping(pause)
                pause = min(pause * 2, _LONGEST_PATIENCE_PAUSE)

    async def sleep_unless_stopping(self, seconds: float) -> None:
        """Sleep, but wake up at once when the service is asked to stop."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), seconds)

    # -- internals ----------------------------------------------------------------------------

    async def _connect(self) -> Client:
        connection = self._service_settings.connection
        client = self._client_class()()
        patience = self._service_settings.connect_timeout_seconds
        try:
            # Each failed try is logged by _on_error; a server that is still starting is waited
            # for, up to the timeout.
            async with asyncio.timeout(patience):
                await client.connect(
                    **{"name": self._client_name(), **connection.connect_kwargs()},
                    max_reconnect_attempts=-1,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
        except Exception as error:
            self._closing = True
            with suppress(Exception):
                await client.close()
            problem = (
                f"no server answered within {patience:g}s"
                if isinstance(error, TimeoutError)
                else f"{type(error).__name__}: {error}"
            )
            raise ServiceStartupError(
                f"the {self.service_name} cannot connect to NATS at {connection.url} "
                f"({problem}); start it with 'dvp-scheduler up', or check the URL and the "
                "credentials"
            ) from error
        return client

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        self._loops.pop(task, None)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        self.log.error("%s failed; stopping", task.get_name(), exc_info=error)
        if self._failure is None:
            self._failure = error
        self.stop()

    def _job_ended(self, job: asyncio.Task[Any]) -> None:
        self._jobs.discard(job)
        if not job.cancelled() and (error := job.exception()) is not None:
            self.log.error("a job ended with an unexpected error", exc_info=error)

    async def _shutdown(self) -> None:
        # Leaving is bounded: the grace for the jobs, then a few seconds for each step of
        # closing. A step that overruns is abandoned and its tasks logged with where they wait.
        loop = asyncio.get_running_loop()
        stuck = loop.call_later(
            self._service_settings.grace_seconds + STOP_STEP_SECONDS, self._log_still_stopping
        )
        try:
            await self._cancel([task for task, outlives in self._loops.items() if not outlives])
            await self._finish_jobs()
            await self._cancel(list(self._loops))
            try:
                await self._bounded("closing its parts", self._close())
            finally:
                if self._client is not None:
                    self._closing = True
                    with suppress(Exception):
                        await self._bounded("closing its connection", self._client.close())
                    self._client = None
                self._stop_requested.set()
        finally:
            stuck.cancel()

    async def _bounded(self, what: str, step: Awaitable[None]) -> None:
        try:
            async with asyncio.timeout(STOP_STEP_SECONDS):
                await step
        except TimeoutError:
            self.log.warning(
                "%s: %s took over %gs; going on without it",
                self.service_name,
                what,
                STOP_STEP_SECONDS,
            )

    def _log_still_stopping(self) -> None:
        current = asyncio.current_task()
        waiting = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
        self.log.warning(
            "%s still stopping after %gs; %d task(s) left:\n%s",
            self.service_name,
            self._service_settings.grace_seconds + STOP_STEP_SECONDS,
            len(waiting),
            "\n".join(_where_it_waits(task) for task in waiting),
        )

    async def _finish_jobs(self) -> None:
        if not self._jobs:
            return
        grace = self._service_settings.grace_seconds
        noun = self.job_noun
        self.log.info("waiting up to %gs for %d %s(s) in flight", grace, len(self._jobs), noun)
        deadline = asyncio.get_running_loop().time() + grace
        # A job may start another as it ends (a refused publish is tried alone): wait for
        # those too, within the same grace.
        while self._jobs and (left := deadline - asyncio.get_running_loop().time()) > 0:
            await asyncio.wait(set(self._jobs), timeout=left)
        late = set(self._jobs)
        if late:
            self.log.warning(
                "cancelling %d %s(s) still running after the %gs grace period%s",
                len(late),
                noun,
                grace,
                f"; {self.late_job_note}" if self.late_job_note else "",
            )
            await self._cancel(list(late))

    async def _cancel(self, tasks: list[asyncio.Task[Any]]) -> None:
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=STOP_STEP_SECONDS)
        if pending:
            self.log.warning(
                "%s: %d task(s) did not end within %gs of being cancelled; going on without "
                "them:\n%s",
                self.service_name,
                len(pending),
                STOP_STEP_SECONDS,
                "\n".join(_where_it_waits(task) for task in pending),
            )

    async def _on_error(self, error: Exception) -> None:
        refusal = permission_refusal(error)
        if refusal is not None:
            self._refused = refusal
            self.log.error("%s", refusal.explain(self.service_name))
            return
        self.log.warning("NATS: %s: %s", type(error).__name__, error)

    async def _on_disconnected(self) -> None:
        if not self._closing:
            self.log.warning("NATS: disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        self.log.info("NATS: reconnected")
        await self._reconnected()


def raise_if_cancelled() -> None:
    """Raise `asyncio.CancelledError` if the running task was cancelled and carries on.

    nats-py's flush swallows the `CancelledError` of a task cancelled while it flushes (a
    publish, a pull request, an ack), so a loop cancelled at that moment would go on forever and
    hold up the service's stop. Each of our loops that talks to NATS calls this once a turn.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _where_it_waits(task: asyncio.Task[Any]) -> str:
    """A task's name and the innermost steps of its chain of awaits: where it waits."""
    steps: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(steps) < 50:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            steps.append(f"    awaiting {awaited!r}"[:200])
            break
        steps.append(f"    {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return "\n".join([f"  task {task.get_name()}", *steps[-6:]])


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
