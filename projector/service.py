"""The projector service: follow the stream from a checkpoint, serve queries, mirror task state.

``async with Projector(settings) as projector: await projector.wait_stopped()``. On entry it
loads the checkpoint (if it belongs to this stream and this fold's format), catches up and
follows the stream with an `OrderedReader` that folds each message, and starts the query
service. A housekeeping loop writes changed tasks to the key-value bucket every
``mirror_interval`` and a checkpoint every ``checkpoint_interval``; both happen once more on
the way out, within ``grace_seconds``. Housekeeping errors are logged and tried again the next
round, never fatal.

The lifecycle (connection, loops, closing) is `natsio.service.NatsService`'s; the projector
connects with `natsio.reader.reader_client_class`, so its reader takes the fast path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Final

import msgspec
import nats
from nats.aio.client import Client
from nats.js.kv import KeyValue
from nats.micro import add_service
from nats.micro.service import Service
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from contracts.errors import SchedulerError
from contracts.queries import (
    EXECUTION_QUERY,
    FAILURES_QUERY,
    HISTORY_QUERY,
    QUERY_QUEUE_GROUP,
    QUERY_SERVICE_NAME,
    STATUS_QUERY,
    TASK_STATE_BUCKET,
    TASKS_QUERY,
    task_state_key,
)
from contracts.stream import STREAM_NAME
from natsio.backlog import Backlog, read_backlog
from natsio.provision import ensure_stream, ensure_task_state_bucket
from natsio.reader import OrderedReader, reader_client_class
from natsio.service import NatsService
from natsio.settings import ServiceSettings
from projector._stats import ProjectorStats
from projector.checkpoint import (
    Checkpoint,
    CheckpointStore,
    FileCheckpoints,
    ObjectStoreCheckpoints,
    decode_checkpoint,
    encode_checkpoint,
)
from projector.errors import CheckpointError
from projector.fold import ingest
from projector.overdue import OverdueWatch, TaskHealth, TaskSeries, task_series
from projector.queries import QueryHandlers
from projector.state import DEFAULT_HISTORY_LIMIT, ProjectionState, task_key
from projector.views import task_view

log = logging.getLogger("dvp_scheduler.projector")

SERVICE_VERSION: Final = "1.0.0"
"""The query service's version as NATS micro reports it."""

_MIRROR_BATCH: Final = 256
"""Key-value puts in flight at once."""

_HEALTH_INTERVAL: Final = 2.0
"""Seconds between rebuilds of the per-task metrics' snapshot (only when a task changed): a
rebuild walks every task, and a scrape comes every 15 s or so."""

_BACKLOG_INTERVAL: Final = 5.0
"""Seconds between reads of the stream's and its consumers' info, for the metrics."""

DEFAULT_TASK_METRICS_LIMIT: Final = 1000
"""Tasks with per-task metrics series, unless ``task_metrics_limit`` says otherwise."""


class ProjectorSettings(ServiceSettings):
    """How a projector runs."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_prefix="DVP_PROJECTOR_")

    checkpoint_interval: float = Field(
        default=10.0, gt=0, description="seconds between checkpoints (only when something changed)"
    )
    mirror_interval: float = Field(
        default=0.5, gt=0, description="seconds between writes of changed tasks to the KV bucket"
    )
    history_limit: int = Field(
        default=DEFAULT_HISTORY_LIMIT, ge=1, description="executions kept per task"
    )
    checkpoint_file: Path | None = Field(
        default=None,
        description="keep the checkpoint in this file instead of the JetStream object store",
    )
    mirror: bool = Field(
        default=True, description="mirror each task's state into the dvp-task-state KV bucket"
    )
    task_metrics_limit: int = Field(
        default=DEFAULT_TASK_METRICS_LIMIT,
        ge=0,
        description="tasks with per-task metrics (dvp_task_overdue, "
        "dvp_task_last_success_timestamp_seconds): the overdue ones first, then the others by "
        "tenant and task",
    )


class Projector(NatsService):
    """The projector service (see the module docstring)."""

    service_name: ClassVar[str] = "projector"

    def __init__(self, settings: ProjectorSettings) -> None:
        super().__init__(settings)
        self._settings = settings
        self._state = ProjectionState(history_limit=settings.history_limit)
        self._checkpoints: CheckpointStore | None = None
        self._stream_created: datetime | None = None
        self._checkpointed = 0
        self._next_checkpoint = 0.0
        self._dirty: set[str] = set()
        self._watch = OverdueWatch()
        self._health: tuple[TaskHealth, ...] = ()
        """Every registered task's deadline and last success, rebuilt by the housekeeping loop
        (at most `_HEALTH_INTERVAL` old): immutable, so the metrics thread may read it."""
        self._health_built = float("-inf")
        self._health_generation = -1
        self._backlog: Backlog | None = None
        self._next_backlog = 0.0
        self._backlog_failing = False
        self._kv: KeyValue | None = None
        self._service: Service | None = None
        self._reader: OrderedReader | None = None
        self._housekeeping_started = False
        self._round: asyncio.Task[None] | None = None
        self.failed_messages = 0
        """Messages whose folding raised (a bug): logged and skipped."""
        self.resumed_from: int | None = None
        """The checkpoint's stream sequence this projector started from (``None``: replayed)."""

    @property
    def state(self) -> ProjectionState:
        """The live read model (do not change it)."""
        return self._state

    @property
    def sequence(self) -> int:
        """The last stream sequence folded in."""
        return self._state.sequence

    @property
    def backlog(self) -> Backlog | None:
        """The stream and what waits in it (executor queues, retries), read every
        `_BACKLOG_INTERVAL` seconds for the metrics; ``None`` until read, or when the last read
        failed. Immutable, so the metrics thread may read it."""
        return self._backlog

    def task_series(self, now: datetime) -> TaskSeries:
        """The per-task metrics series to serve at ``now``: at most ``task_metrics_limit``,
        the overdue ones first (`projector.overdue.task_series`). Safe from another thread."""
        return task_series(self._health, now, self._settings.task_metrics_limit)

    @property
    def stats(self) -> ProjectorStats:
        """A fresh snapshot of what this projector counted; all a metrics reader needs."""
        state = self._state
        return ProjectorStats(
            sequence=state.sequence,
            tasks=len(state.tasks),
            events_applied=state.events_applied,
            unknown_events=sum(state.unknown_events.values()),
            invalid_messages=state.invalid_messages,
            invalid_tasks=state.invalid_tasks,
            failed_messages=self.failed_messages,
        )

    def _client_class(self) -> type[Client]:
        return reader_client_class()

    async def _start(self) -> None:
        settings = self._settings
        nc = self.nc
        js = nc.jetstream()
        info = await self.patiently(
            f"for the info of stream {STREAM_NAME}", lambda: ensure_stream(js)
        )
        replicas = info.config.num_replicas or 1
        self._stream_created = info.created
        self._checkpoints = (
            FileCheckpoints(settings.checkpoint_file)
            if settings.checkpoint_file is not None
            else ObjectStoreCheckpoints(js, replicas=replicas)
        )
        await self._restore(info.state.last_seq)
        if settings.mirror:
            self._kv = await self.patiently(
                f"for the key-value bucket {TASK_STATE_BUCKET}",
                lambda: ensure_task_state_bucket(js, replicas=replicas),
            )
            self._dirty.update(self._state.tasks)  # the bucket may lag the checkpoint
        start_sequence = self._state.sequence + 1
        reader = self._reader = OrderedReader(nc, self._on_message, start_sequence=start_sequence)
        await self.patiently(f"for a consumer on {STREAM_NAME}", reader.start)
        handlers = QueryHandlers(lambda: self._state, nc.max_payload, self._watch)
        service = self._service = await add_service(
            nc,
            name=QUERY_SERVICE_NAME,
            version=SERVICE_VERSION,
            description="dvp-scheduler read model: task state and execution history",
            queue_group=QUERY_QUEUE_GROUP,
        )
        await service.add_endpoint(name="tasks", subject=TASKS_QUERY, handler=handlers.tasks)
        await service.add_endpoint(name="history", subject=HISTORY_QUERY, handler=handlers.history)
        await service.add_endpoint(
            name="failures", subject=FAILURES_QUERY, handler=handlers.failures
        )
        await service.add_endpoint(
            name="execution", subject=EXECUTION_QUERY, handler=handlers.execution
        )
        await service.add_endpoint(name="status", subject=STATUS_QUERY, handler=handlers.status)
        self._housekeeping_started = True
        self.start_loop(self._housekeep(), "housekeeping")
        log.info(
            "projector following %s from sequence %d (stream at %d when it started)",
            STREAM_NAME,
            start_sequence,
            info.state.last_seq,
        )

    async def _restore(self, last_sequence: int) -> None:
        checkpoints = self._checkpoints
        assert checkpoints is not None
        try:
            data = await self.patiently("for the checkpoint", checkpoints.load)
        except (OSError, nats.errors.Error) as error:
            log.warning("cannot load the checkpoint (%s); replaying from the start", error)
            return
        if data is None:
            log.info("no checkpoint yet; replaying from the start")
            return
        try:
            checkpoint = decode_checkpoint(data)
        except CheckpointError as error:
            log.warning("%s", error)
            return
        if (
            checkpoint.stream != STREAM_NAME
            or checkpoint.stream_created != self._stream_created
            or checkpoint.sequence > last_sequence
        ):
            log.warning(
                "the checkpoint (sequence %d) belongs to another incarnation of stream %s; "
                "replaying from the start",
                checkpoint.sequence,
                STREAM_NAME,
            )
            return
        state = checkpoint.state
        state.history_limit = self._settings.history_limit
        self._state = state
        self._checkpointed = state.sequence
        self.resumed_from = state.sequence
        log.info("resuming from the checkpoint at sequence %d", state.sequence)

    def _on_message(self, sequence: int, subject: bytes, data: bytes) -> None:
        try:
            event = ingest(self._state, sequence, subject, data)
        except Exception:  # a bug in the fold: never let one message stop the projector
            self.failed_messages += 1
            log.exception("cannot fold message %d on %s; skipped", sequence, subject.decode())
            return
        if event is None:
            log.warning(
                "message %d on %s is not a known event; skipped", sequence, subject.decode()
            )
        else:
            key = task_key(event.tenant_id, event.task_id)
            self._watch.changed(key)
            if self._kv is not None:
                self._dirty.add(key)

    async def _housekeep(self) -> None:
        """Every ``mirror_interval``, a round of housekeeping, until the projector stops (then
        `_close` writes the last one)."""
        loop = asyncio.get_running_loop()
        self._next_checkpoint = loop.time() + self._settings.checkpoint_interval
        while True:
            await self.sleep_unless_stopping(self._settings.mirror_interval)
            if self.stopping:
                return
            # Shielded from the cancellation that stops this loop: a round cut short would
            # lose the keys its mirror had taken, or let `_close` write the checkpoint while
            # this one is still being written; `_close` waits for the round instead.
            self._round = asyncio.create_task(self._housekeeping_round())
            await asyncio.shield(self._round)

    async def _housekeeping_round(self) -> None:
        """Mirror the changed tasks; checkpoint when one is due. Errors are logged: the next
        round tries again."""
        loop = asyncio.get_running_loop()
        try:
            self._update_health(loop.time())
            await self._mirror()
            if loop.time() >= self._next_checkpoint:
                self._next_checkpoint = loop.time() + self._settings.checkpoint_interval
                await self._checkpoint()
        except Exception as error:  # never let housekeeping die: the next round retries
            log.warning("housekeeping failed (%r); trying again", error)
        if loop.time() >= self._next_backlog:
            self._next_backlog = loop.time() + _BACKLOG_INTERVAL
            await self._read_backlog()

    async def _read_backlog(self) -> None:
        """Read the stream's backlog for the metrics; a failure leaves none (the metrics say
        nothing rather than something stale) and is logged once until a read succeeds."""
        try:
            async with asyncio.timeout(_BACKLOG_INTERVAL):
                self._backlog = await read_backlog(self.nc.jetstream())
        except (nats.errors.Error, OSError, TimeoutError) as error:
            self._backlog = None
            if not self._backlog_failing:
                log.warning(
                    "cannot read the stream's backlog for the metrics (%r); trying again every "
                    "%.0f s",
                    error,
                    _BACKLOG_INTERVAL,
                )
            self._backlog_failing = True
            return
        if self._backlog_failing:
            log.info("reading the stream's backlog for the metrics again")
        self._backlog_failing = False

    def _update_health(self, now: float) -> None:
        """Rebuild the per-task metrics' snapshot when a task changed and the last rebuild is
        old enough."""
        if now - self._health_built < _HEALTH_INTERVAL:
            return
        watch = self._watch
        watch.refresh(self._state)
        if watch.generation != self._health_generation:
            self._health = watch.health(self._state)
            self._health_generation = watch.generation
            self._health_built = now

    async def _mirror(self) -> None:
        """Write the changed tasks' current state to the key-value bucket."""
        if self._kv is None or not self._dirty:
            return
        kv = self._kv
        keys, self._dirty = self._dirty, set()
        self._watch.refresh(self._state)
        deadlines = self._watch.deadlines
        puts = []
        for key in keys:
            task = self._state.tasks.get(key)
            if task is None:
                continue
            try:
                bucket_key = task_state_key(task.tenant_id, task.task_id)
            except SchedulerError as error:
                log.warning("task %r cannot be mirrored: %s", key, error)
                continue
            puts.append((bucket_key, msgspec.json.encode(task_view(task, deadlines))))
        for start in range(0, len(puts), _MIRROR_BATCH):
            batch = puts[start : start + _MIRROR_BATCH]
            results = await asyncio.gather(
                *(kv.put(k, v) for k, v in batch), return_exceptions=True
            )
            for (key, _), result in zip(batch, results, strict=True):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                if isinstance(result, BaseException):
                    self._dirty.add(key)  # tried again next round
                    log.warning("cannot mirror task %s: %s", key, result)

    async def _checkpoint(self) -> None:
        """Save the state if it moved since the last checkpoint."""
        state = self._state
        if self._checkpoints is None or state.sequence == self._checkpointed:
            return
        sequence = state.sequence
        data = encode_checkpoint(
            Checkpoint(stream=STREAM_NAME, stream_created=self._stream_created, state=state)
        )
        await self._checkpoints.save(data)
        self._checkpointed = sequence
        log.debug("checkpoint at sequence %d (%d bytes)", sequence, len(data))

    def _stop_summary(self) -> str:
        s = self.stats
        return (
            f"at sequence {s.sequence}, {s.tasks} tasks, {s.events_applied} events applied, "
            f"{s.unknown_events} unknown, {s.invalid_messages} invalid, {s.failed_messages} "
            f"that failed to fold"
        )

    async def _close(self) -> None:
        if self._housekeeping_started:
            await self._last_round()
        if self._service is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._service.stop()
            self._service = None
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None

    async def _last_round(self) -> None:
        """Within the grace: let a round in progress end, then mirror and checkpoint once more.
        The reader still runs, so these take in whatever it folded until then."""
        try:
            async with asyncio.timeout(self._settings.grace_seconds):
                if self._round is not None:
                    await self._round
                await self._mirror()
                await self._checkpoint()
        except Exception as error:
            log.warning("final checkpoint not written (%r)", error)
