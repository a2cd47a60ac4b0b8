"""Taking ``TaskDue`` messages from the consumers of the executor's tenants (one per tenant,
shared by every executor serving it), never more than there are free slots, and keeping the
ones in flight from being redelivered while they run.

The free slots are shared out evenly among the tenants: each tenant's feed keeps at most its
share requested, so a busy tenant cannot hold every slot while another's work waits. With one
tenant (the usual case) the share is all of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Final

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts import STREAM_NAME
from contracts.stream import executor_durable
from executor import _stream
from executor._stats import ExecutorStats
from executor.settings import ExecutorSettings
from natsio.pull import PullFeed
from natsio.service import raise_if_cancelled

log = logging.getLogger("dvp_scheduler.executor")

_FIRST_PAUSE_SECONDS: Final = 0.1
_LONGEST_PAUSE_SECONDS: Final = 5.0
_LATE_WAKEUP_SECONDS: Final = 2.0
"""How long past a pull request's expiry the pull loop looks again without being woken."""


def next_pause(pause: float) -> float:
    """The pause after ``pause`` in a retry loop: twice as long, at most 5 s."""
    return min(pause * 2, _LONGEST_PAUSE_SECONDS)


@dataclass(slots=True)
class Delivery:
    """One delivered ``TaskDue`` in flight.

    Attributes:
        msg: the message, answered (ack, nak, term) once the attempt ends.
        last_signal: when the server last heard of it (delivery or in-progress ack), monotonic.
        settled: whether it was answered; heartbeats stop then.
    """

    msg: Msg
    last_signal: float
    settled: bool = False


class WorkFeed:
    """The pull loop, the attempts in flight and their heartbeats.

    Args:
        nc: the connection.
        js: JetStream, to make the consumer again when the server says it is gone.
        settings: the consumer's name, the concurrency and the pull timings.
        ack_wait: the consumer's ack wait, which sets the heartbeat interval.
        stats: where ``running`` is kept current.
        launch: starts the attempt of a delivery as a job and returns its task.
        stopping: whether the executor is asked to stop (then nothing more is taken).
        pause: sleeps for the given seconds, or less when the executor is asked to stop.
    """

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        settings: ExecutorSettings,
        *,
        ack_wait: float,
        stats: ExecutorStats,
        launch: Callable[[Delivery], asyncio.Task[Any]],
        stopping: Callable[[], bool],
        pause: Callable[[float], Awaitable[None]],
    ) -> None:
        self._js = js
        self._settings = settings
        self._ack_wait = ack_wait
        self._stats = stats
        self._launch = launch
        self._stopping = stopping
        self._pause = pause
        self._in_flight: dict[asyncio.Task[Any], Delivery] = {}
        self._wakeup = asyncio.Event()
        self._retry_pause = _FIRST_PAUSE_SECONDS
        self._feeds = {
            tenant_id: PullFeed(
                nc,
                STREAM_NAME,
                executor_durable(tenant_id),
                accept=self._accept,
                changed=self.wake,
                expires=settings.fetch_timeout_seconds,
            )
            for tenant_id in settings.tenants
        }

    @property
    def in_flight(self) -> int:
        """How many attempts run now."""
        return len(self._in_flight)

    async def start(self) -> None:
        """Subscribe the inboxes the pull requests deliver to."""
        for feed in self._feeds.values():
            await feed.start()

    async def close(self) -> None:
        """Stop receiving; what still arrives is given back."""
        for feed in self._feeds.values():
            await feed.close()

    def wake(self) -> None:
        """Have the pull loop look again now rather than at its next timeout.

        Called when an attempt ends (a slot is free), when a pull request ends (its unused
        part may be asked for again), when the executor is asked to stop (the loop ends), and
        after a reconnect (`reset`).
        """
        self._wakeup.set()

    def reset(self) -> None:
        """Forget the open pull requests, which the server may have lost while disconnected,
        and pull again."""
        for feed in self._feeds.values():
            feed.reset()
        self.wake()

    async def pull(self) -> None:
        """Loop until stopping: keep pull requests open for the free slots, each tenant's feed
        up to its share."""
        feeds = self._feeds
        limit = self._settings.concurrency
        share = max(1, limit // len(feeds))
        # Pull again once this many of a share are free (or nothing is requested any more):
        # fewer, larger requests, while the slots never stay empty for long.
        least = max(1, share // 8)
        longest_wait = self._settings.fetch_timeout_seconds + _LATE_WAKEUP_SECONDS
        try:
            while not self._stopping():
                raise_if_cancelled()
                if await self._recover(feeds):
                    continue
                requested = False
                free = limit - len(self._in_flight) - sum(f.outstanding for f in feeds.values())
                for feed in feeds.values():
                    outstanding = feed.outstanding
                    wanted = min(share - outstanding, free)
                    if wanted <= 0 or (wanted < least and outstanding > 0):
                        continue
                    try:
                        await feed.request(wanted)
                    except Exception as error:  # a connection problem: wait and retry
                        await self._back_off(feed.durable, f"{type(error).__name__}: {error}")
                        break
                    self._retry_pause = _FIRST_PAUSE_SECONDS
                    free -= wanted
                    requested = True
                if requested:
                    continue
                self._wakeup.clear()
                with suppress(TimeoutError):
                    async with asyncio.timeout(longest_wait):
                        await self._wakeup.wait()
        finally:
            # Stop receiving at once: the server gives the open requests' work to others.
            await self.close()

    async def _recover(self, feeds: dict[str, PullFeed]) -> bool:
        """Back off and make the consumer again for a feed the server refused; whether any."""
        for tenant_id, feed in feeds.items():
            if feed.problem is not None:
                problem, feed.problem = feed.problem, None
                await self._back_off(feed.durable, problem)
                with suppress(Exception):
                    await _stream.ensure_consumer(
                        self._js, tenant_id, self._settings.ack_wait_seconds
                    )
                return True
        return False

    async def heartbeat(self) -> None:
        """Loop: mark long attempts in progress, well inside the consumer's ack wait."""
        interval = max(self._ack_wait / 4, 0.05)
        while True:
            raise_if_cancelled()
            await asyncio.sleep(interval)
            now = time.monotonic()
            for delivery in list(self._in_flight.values()):
                if delivery.settled or now - delivery.last_signal < interval:
                    continue
                delivery.last_signal = now
                try:
                    await delivery.msg.in_progress()
                except Exception as error:
                    log.debug("heartbeat failed: %s", error)

    async def _back_off(self, durable: str, problem: str) -> None:
        pause = self._retry_pause
        log.warning("pulling from %s failed (%s); retrying in %.1fs", durable, problem, pause)
        await self._pause(pause)
        self._retry_pause = next_pause(pause)

    def _accept(self, msg: Msg) -> bool:
        """Take a delivered message, unless stopping or full (then it is given back)."""
        if self._stopping() or len(self._in_flight) >= self._settings.concurrency:
            return False
        delivery = Delivery(msg, time.monotonic())
        job = self._launch(delivery)
        self._in_flight[job] = delivery
        self._stats.running = len(self._in_flight)
        job.add_done_callback(self._finished)
        return True

    def _finished(self, job: asyncio.Task[Any]) -> None:
        self._in_flight.pop(job, None)
        self._stats.running = len(self._in_flight)
        self.wake()
