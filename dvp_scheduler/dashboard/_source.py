"""What the dashboard reads, and the one NATS connection it reads with: the projector's rows
(a snapshot at most a second old), the live events from the stream, the stream's status.

Nothing here is stored anywhere but in memory; a restart reads it all again from NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import nats.errors
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from contracts import (
    ALL_EVENTS,
    STREAM_NAME,
    EventDecodeError,
    EventKind,
    TaskDue,
    TaskFailed,
    TaskSkipped,
    TaskSucceeded,
    subject,
)
from contracts.describe import describe_event
from contracts.inbound import read_event
from contracts.queries import TASKS_QUERY
from dvp_scheduler.dashboard.settings import DashboardSettings
from dvp_scheduler.dashboard.tables import LastHour, Row
from natsio import OrderedReader, read_to_end, reader_client_class
from projector.queries import ask_status, ask_tasks

log = logging.getLogger("dvp_scheduler.dashboard")

LIVE_BACKLOG: Final = 500
"""Events kept for a page that opens (the live page shows them, then what follows)."""
_RETRY_SECONDS: Final = 2.0
_STALE_LIMIT_SECONDS: Final = 10.0
"""Rows older than this are fetched before a page is served, not behind it."""


@dataclass(frozen=True)
class LiveEvent:
    """One event of the stream, as the live feed shows it."""

    sequence: int
    occurred_at: datetime
    kind: str
    """The subject's kind: ``due``, ``started``, ``succeeded``, ``retry``, ``failed``, ..."""
    tenant_id: str
    task_id: str
    execution_id: str | None
    text: str
    """`contracts.describe.describe_event`'s line."""

    def as_json(self) -> dict[str, Any]:
        """The object an SSE ``event`` message carries."""
        return {
            "sequence": self.sequence,
            "at": self.occurred_at.isoformat().replace("+00:00", "Z"),
            "kind": self.kind,
            "tenant_id": self.tenant_id,
            "task_id": self.task_id,
            "execution_id": self.execution_id,
            "text": self.text,
        }


@dataclass
class Snapshot:
    """Task rows as a projector answered them."""

    rows: list[Row]
    sequence: int
    """The projector had applied at least this stream sequence when it answered."""
    fetched_at: float
    projector: bool
    """Whether a projector answered (else ``rows`` is empty)."""


@dataclass
class Connection:
    """The dashboard's NATS client and whether it is connected now."""

    settings: DashboardSettings
    client: Client = field(default_factory=lambda: reader_client_class()())
    connected: bool = False
    problem: str = "connecting to NATS"
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        """The server URL(s) it connects to."""
        return self.settings.connection.url

    async def keep_connected(self) -> None:
        """Connect, trying again until it works; nats-py reconnects from then on."""

        async def disconnected() -> None:
            self._set(False, f"NATS at {self.url} is unreachable; reconnecting")

        async def reconnected() -> None:
            self._set(True, "")

        async def error(problem: Exception) -> None:
            log.debug("NATS: %s", problem)

        while True:
            try:
                await self.client.connect(
                    **self.settings.connection.connect_kwargs(),
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    connect_timeout=2,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    error_cb=error,
                )
            except (nats.errors.Error, OSError, TimeoutError) as problem:
                self._set(False, f"NATS at {self.url} is unreachable ({problem}); retrying")
                await self.client.close()
                self.client = reader_client_class()()
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            self._set(True, "")
            return

    def _set(self, connected: bool, problem: str) -> None:
        if connected != self.connected or problem != self.problem:
            log.info("NATS %s", "connected" if connected else problem)
        self.connected, self.problem = connected, problem
        self.changed.set()
        self.changed = asyncio.Event()


class LiveFeed:
    """Follows the stream from an hour ago: keeps the newest events, counts the last hour's
    fires and outcomes, and hands each new event to every listener (the SSE streams)."""

    def __init__(self, connection: Connection, on_event: Callable[[LiveEvent], None]) -> None:
        self._connection = connection
        self._on_event = on_event
        self.recent: deque[LiveEvent] = deque(maxlen=LIVE_BACKLOG)
        self.hour = LastHour()
        self.listeners: set[asyncio.Queue[LiveEvent]] = set()
        self.sequence = 0
        self.stream_missing = False

    def handle(self, sequence: int, msg_subject: bytes, data: bytes) -> None:
        """The reader's handler: one message of the stream (never blocks)."""
        self.sequence = sequence
        try:
            event = read_event(msg_subject, data)
        except EventDecodeError:
            return
        kind = msg_subject.decode().split(".")[3]
        live = LiveEvent(
            sequence=sequence,
            occurred_at=event.occurred_at,
            kind=kind,
            tenant_id=event.tenant_id,
            task_id=event.task_id,
            execution_id=getattr(event, "execution_id", None),
            text=describe_event(event),
        )
        if isinstance(event, TaskDue | TaskSucceeded | TaskFailed):
            self.hour.count(kind, event.occurred_at)
        if isinstance(event, TaskSucceeded):
            self.hour.ran(event.occurred_at, event.tenant_id, event.task_id, event.duration_ms)
        self.recent.append(live)
        for queue in list(self.listeners):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(live)
        self._on_event(live)

    async def run(self) -> None:
        """Read from an hour ago, then follow; open the reader again whenever it ends."""
        start_time: datetime | None = datetime.now(UTC) - timedelta(hours=1)
        while True:
            if not self._connection.connected:
                await asyncio.sleep(0.2)
                continue
            reader = OrderedReader(
                self._connection.client,
                self.handle,
                subject=ALL_EVENTS,
                start_time=start_time,
                start_sequence=self.sequence + 1,
            )
            try:
                async with reader:
                    self.stream_missing = False
                    await reader.finished
            except NotFoundError:
                self.stream_missing = True
            except (nats.errors.Error, OSError, TimeoutError) as problem:
                log.info("the live feed stopped (%s); opening it again", problem)
            if self.sequence:
                start_time = None  # go on after the last event handed over
            await asyncio.sleep(_RETRY_SECONDS)
            self.hour.forget_before(datetime.now(UTC) - timedelta(hours=1))


class TaskRows:
    """The projector's task rows, fetched at most every ``refresh_seconds``: a page is served
    from the snapshot while a newer one is fetched behind it, and waits only for a snapshot
    older than 10 s or behind the sequence it needs."""

    def __init__(self, connection: Connection, settings: DashboardSettings) -> None:
        self._connection = connection
        self._settings = settings
        self._snapshot: Snapshot | None = None
        self._fetching: asyncio.Task[Snapshot] | None = None

    def stale(self) -> None:
        """An event changed something: the next page fetches rows behind it."""
        if self._snapshot is not None:
            self._snapshot.fetched_at = min(
                self._snapshot.fetched_at, time.monotonic() - self._settings.refresh_seconds
            )

    async def get(self, at_least: int = 0) -> Snapshot:
        """Rows that reflect at least stream sequence ``at_least``, if a projector gets there
        within a few seconds."""
        snapshot = self._snapshot
        now = time.monotonic()
        if snapshot is not None and snapshot.sequence >= at_least:
            age = now - snapshot.fetched_at
            if age < self._settings.refresh_seconds:
                return snapshot
            if age < _STALE_LIMIT_SECONDS and snapshot.projector:
                self._fetch()
                return snapshot
        if at_least:
            await self.wait_for_projector(at_least)
        return await asyncio.shield(self._fetch())

    async def wait_for_projector(self, sequence: int, within: float = 3.0) -> bool:
        """Wait until a projector has applied ``sequence``; whether it did in time."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and self._connection.connected:
            status = await ask_status(
                self._connection.client, answer_within=self._settings.query_timeout_seconds
            )
            if status is None:
                return False
            if status.sequence >= sequence:
                return True
            await asyncio.sleep(0.05)
        return False

    def _fetch(self) -> asyncio.Task[Snapshot]:
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.create_task(self._read())
        return self._fetching

    async def _read(self) -> Snapshot:
        if not self._connection.connected:
            return self._snapshot or Snapshot([], 0, time.monotonic(), projector=False)
        nc = self._connection.client
        started = time.monotonic()
        within = self._settings.query_timeout_seconds
        try:
            status = await ask_status(nc, answer_within=within)
            rows = (
                await ask_tasks(nc, include_unregistered=True, answer_within=within)
                if status is not None
                else None
            )
        except (nats.errors.Error, OSError):
            rows = None
            status = None
        if rows is None or status is None:
            snapshot = Snapshot([], 0, started, projector=False)
        else:
            rows.sort(key=lambda r: (r["tenant_id"], r["task_id"]))
            snapshot = Snapshot(rows, status.sequence, started, projector=True)
        self._snapshot = snapshot
        return snapshot


NO_PROJECTOR: Final = (
    f"No projector answers on {TASKS_QUERY}: task state and history need one. Start it with "
    "'dvp-scheduler projector' ('dvp-scheduler up' runs one). The live feed works without it."
)


async def skipped_fires(nc: Client, tenant_id: str, task_id: str, limit: int = 20) -> list[Row]:
    """The task's newest skipped fires of the last 24 hours, newest first, with reasons."""
    kept: deque[TaskSkipped] = deque(maxlen=limit)

    def handle(sequence: int, msg_subject: bytes, data: bytes) -> None:
        try:
            event = read_event(msg_subject, data)
        except EventDecodeError:
            return
        if isinstance(event, TaskSkipped):
            kept.append(event)

    try:
        await read_to_end(
            nc,
            handle,
            subject=subject(tenant_id, EventKind.SKIPPED, task_id),
            start_time=datetime.now(UTC) - timedelta(hours=24),
        )
    except NotFoundError:
        return []
    return [
        {
            "scheduled_for": e.scheduled_for,
            "recorded_at": e.occurred_at,
            "reason": e.reason,
            "detail": e.detail,
            "missed_fires": e.missed_fires,
        }
        for e in reversed(kept)
    ]


async def stream_exists(nc: Client) -> bool:
    """Whether the stream has been created."""
    try:
        await nc.jetstream().stream_info(STREAM_NAME)
    except NotFoundError:
        return False
    return True
