"""The ticker service: the I/O around the pure decisions of `ticker._policy`.

Three parts share one event loop, each in a module of its own:

* the *follower* (`ticker._follower`), an ordered consumer over the whole stream that keeps a
  `TaskState` per task and tells the firing part when a task's timing changed;
* the *firing* part (`ticker._firing`), one timing loop over a heap of next fire instants that
  hands the tasks coming due to short jobs which decide and publish, guarded by the task's
  newest sequence;
* the *retry relay* (`ticker._retries`), a durable pull consumer shared by all tickers that holds
  each ``RetryScheduled`` (negative acknowledgement with a delay) until its ``retry_at``.

The lifecycle (connection, loops, the grace given to publishes in flight, closing) is
`natsio.service.NatsService`'s.
"""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Self

from nats.aio.client import Client

from contracts.stream import DUPLICATE_WINDOW_SECONDS, STREAM_NAME
from natsio import reader_client_class, ticker_retry_consumer_config
from natsio.provision import ensure_consumer, ensure_stream
from natsio.publish import AckedPublisher
from natsio.service import NatsService
from ticker._consumers import ExecutorConsumers
from ticker._firing import FirePublisher
from ticker._follower import Follower
from ticker._policy import TaskState
from ticker._retries import RetryRelay
from ticker._stats import TickerStats
from ticker.errors import TickerStartupError
from ticker.settings import TickerSettings


class Ticker(NatsService):
    """Publishes ``TaskDue`` at each fire instant of every registered task; see the module doc.

    ``async with Ticker(settings) as ticker:`` connects, reads the stream's state and starts
    firing; `stop` asks it to stop and leaving the block waits for it (and raises
    `natsio.errors.ServiceFailedError` if one of its loops failed).
    """

    service_name: ClassVar[str] = "ticker"
    job_noun: ClassVar[str] = "publish"
    late_job_note: ClassVar[str] = "another ticker, or this one's next start, decides them again"

    def __init__(self, settings: TickerSettings | None = None) -> None:
        self._settings = settings or TickerSettings()
        super().__init__(self._settings)
        self.stats = TickerStats()
        """What this ticker counted; everything a metrics reader needs."""
        self._follower = Follower(self.stats, self._settings.conflict_wait_seconds)
        self._publisher: AckedPublisher | None = None
        self._firing: FirePublisher | None = None

    def _client_class(self) -> type[Client]:
        # The fast client: a burst's publishes are written at once and their answers read
        # without nats-py's per-message queue (natsio.publish.AckedPublisher.send_burst).
        return reader_client_class()

    @property
    def task_count(self) -> int:
        """How many tasks the ticker knows (registered or not)."""
        return len(self._follower.states)

    def task_state(self, tenant_id: str, task_id: str) -> TaskState | None:
        """What the ticker knows of one task (for tests and diagnostics)."""
        return self._follower.states.get((tenant_id, task_id))

    async def __aenter__(self) -> Self:
        started = time.monotonic()  # start-up counts the connection too
        await super().__aenter__()
        self.stats.startup_seconds = time.monotonic() - started
        self.log.info(
            "ticker ready: %d tasks, %d scheduled, start-up %.2fs",
            self.task_count,
            self._firing.scheduled if self._firing is not None else 0,
            self.stats.startup_seconds,
        )
        return self

    async def _start(self) -> None:
        settings = self._settings
        js = self.nc.jetstream()
        await self.patiently(f"for the info of stream {STREAM_NAME}", lambda: ensure_stream(js))
        publisher = self._publisher = AckedPublisher(self.nc, settings.publish_timeout_seconds)
        await publisher.start()
        consumers = ExecutorConsumers(js)
        firing = self._firing = FirePublisher(
            publisher, self._follower, self.stats, settings, self.spawn, consumers
        )
        # Safe to ask again: a consumer whose creation was not answered delivers to an inbox
        # nobody listens on, and goes away.
        await self.patiently(
            f"for a consumer following {STREAM_NAME}",
            functools.partial(self._follower.start, self.nc, on_change=firing.task_changed),
        )
        try:
            await asyncio.wait_for(self._follower.ready.wait(), settings.startup_timeout_seconds)
        except TimeoutError:
            raise TickerStartupError(
                f"could not read the state of stream {STREAM_NAME} within "
                f"{settings.startup_timeout_seconds:g}s; is the server overloaded? "
                "Raise startup_timeout_seconds if the stream is very large"
            ) from None
        # Each tenant's executor consumer starts at new messages: it must exist before the
        # tenant's first TaskDue, or that fire would wait for no executor at all.
        tenants = {state.tenant_id for state in self._follower.states.values() if state.registered}
        for tenant_id in sorted(tenants):
            await self.patiently(
                f"for the executor consumer of tenant {tenant_id}",
                functools.partial(consumers.ensure, tenant_id),
            )
        await firing.schedule_all()
        # Created once for all tickers: from a duplicate window ago, inside which Nats-Msg-Id
        # still drops a retry published twice.
        start = datetime.now(UTC) - timedelta(seconds=DUPLICATE_WINDOW_SECONDS)
        await self.patiently(
            "for the tickers' retry consumer",
            lambda: ensure_consumer(js, ticker_retry_consumer_config(start_time=start)),
        )
        retries = RetryRelay(
            js, self._follower, firing, self.stats, settings.backoff_seconds, self.spawn
        )
        self.start_loop(self._follower.run(), "follower")
        self.start_loop(firing.run(), "timing")
        self.start_loop(retries.run(), "retries")

    def _stop_summary(self) -> str:
        s = self.stats
        return (
            f"{s.due_published} TaskDue published, {s.skipped_published} skips, "
            f"{s.lost_closed} lost attempts closed, {s.cancels_closed} cancelled retries "
            f"closed, {s.runs_taken_off} one-off runs fired, {s.duplicates} duplicates and "
            f"{s.conflicts} conflicts (another ticker was first), {s.publish_errors} publish "
            f"errors, {s.held_disconnected} held while disconnected, {s.bad_messages} bad "
            f"messages, {s.retries_held} retries held"
        )

    async def _close(self) -> None:
        if self._publisher is not None:
            await self._publisher.close()
        await self._follower.stop()
