"""Retries: each ``RetryScheduled`` becomes the next attempt's ``TaskDue`` at its ``retry_at``.

A durable pull consumer shared by all tickers delivers each ``RetryScheduled`` to one of them.
Until ``retry_at`` the message is put back with a delayed negative acknowledgement, so the
server holds it (however many there are, whichever ticker runs then); at ``retry_at`` the
attempt is published the guarded way and the message acknowledged. A retry of an execution an
operator cancelled is closed instead (``TaskFailed``, kind ``cancelled``), or dropped when a
ticker closed it already.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Final

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts.errors import EventDecodeError
from contracts.events import (
    RetryScheduled,
    TaskCancelRequested,
    TaskFailed,
    TaskSucceeded,
)
from contracts.inbound import read_event
from contracts.stream import STREAM_NAME, TICKER_RETRY_DURABLE
from contracts.subjects import EventKind, subject
from natsio.lookup import decode_stored, messages_after
from natsio.publish import NotConnectedError
from natsio.service import raise_if_cancelled
from ticker._firing import FirePublisher, Spawn
from ticker._follower import Follower
from ticker._policy import retry_due
from ticker._stats import TickerStats

log = logging.getLogger("dvp_scheduler.ticker")

_LONGEST_HOLD_SECONDS: Final = 86400.0

_LONGEST_WALK: Final = 1000
"""The most messages of one subject read one by one to find a retry's cancel, or its end."""

_FETCH_BATCH: Final = 256
_FETCH_WAIT_SECONDS: Final = 1.0


class RetryRelay:
    """Holds each retry until its ``retry_at``, then publishes it; see the module docstring."""

    def __init__(
        self,
        js: JetStreamContext,
        follower: Follower,
        firing: FirePublisher,
        stats: TickerStats,
        backoff_seconds: float,
        spawn: Spawn,
    ) -> None:
        self._js = js
        self._follower = follower
        self._firing = firing
        self._stats = stats
        self._backoff = backoff_seconds
        self._spawn = spawn

    async def run(self) -> None:
        """Fetch retries from the shared consumer until cancelled."""
        subscription = await self._js.pull_subscribe_bind(TICKER_RETRY_DURABLE, STREAM_NAME)
        try:
            while True:
                raise_if_cancelled()
                try:
                    messages = await subscription.fetch(_FETCH_BATCH, timeout=_FETCH_WAIT_SECONDS)
                except TimeoutError:
                    continue
                except Exception as error:
                    log.warning("fetching retries failed (%s); trying again", error)
                    await asyncio.sleep(self._backoff)
                    continue
                for msg in messages:
                    await self._on_retry(msg)
        finally:
            try:
                await subscription.unsubscribe()
            except Exception:
                log.debug("unsubscribing the retry consumer failed", exc_info=True)

    async def _on_retry(self, msg: Msg) -> None:
        try:
            event = read_event(msg.subject, msg.data, msg.headers)
        except EventDecodeError as error:
            self._stats.bad_messages += 1
            log.warning("terminating bad retry message on %s: %s", msg.subject, error)
            await msg.term()
            return
        if not isinstance(event, RetryScheduled):
            self._stats.bad_messages += 1
            log.warning("terminating a %s on retry subject %s", type(event).__name__, msg.subject)
            await msg.term()
            return
        delay = (event.retry_at - datetime.now(UTC)).total_seconds()
        if delay > 0.001:
            self._stats.retries_held += 1
            # Held a day at most, then looked at again: a retry_at centuries away (the stream
            # is input) must not overflow the server's delay.
            await msg.nak(delay=min(delay, _LONGEST_HOLD_SECONDS))
            return
        self._spawn(self._publish_retry(msg, event))

    async def _publish_retry(self, msg: Msg, event: RetryScheduled) -> None:
        key = (event.tenant_id, event.task_id)
        sequence = msg.metadata.sequence.stream
        try:
            # Decide on the task as of the retry at least: whether its next attempt was
            # published already, and which sequence the guard must name.
            cancel, ended = await self._cancel_of(event, sequence)
            ok = await self._follower.caught_up(key, sequence) and (
                await self._firing.publish_guarded(
                    key,
                    lambda state, now: retry_due(state, event, now, cancel=cancel, ended=ended),
                    trace_parent=msg.headers,  # the failed attempt's span, when tracing is on
                )
            )
        except NotConnectedError:
            self._stats.held_disconnected += 1
            ok = False
        except Exception as error:
            self._stats.publish_errors += 1
            log.warning("publishing the retry of %s failed (%s)", event.execution_id, error)
            ok = False
        if ok:
            await msg.ack()
        else:
            await msg.nak(delay=self._backoff)

    async def _cancel_of(
        self, retry: RetryScheduled, sequence: int
    ) -> tuple[TaskCancelRequested | None, bool]:
        """A cancel request of the retry's execution recorded after it (at ``sequence``), and
        whether the execution ended since the request.

        The follower knows the newest message of each subject and what came since it started;
        a cancel that another execution's cancel has followed since is found only here. The
        cancel subject is read one message at a time from the retry on (cancels are rare),
        and the outcome subjects from the cancel on, only when there is one.
        """
        js = self._js
        tenant_id, task_id = retry.tenant_id, retry.task_id
        found: TaskCancelRequested | None = None
        found_at = 0
        cancels = subject(tenant_id, EventKind.CANCEL, task_id)
        async for raw in messages_after(js, cancels, sequence, limit=_LONGEST_WALK):
            request = decode_stored(raw)
            if isinstance(request, TaskCancelRequested) and (
                request.execution_id == retry.execution_id
            ):
                found, found_at = request, int(raw.seq or 0)
                break
        if found is None:
            return None, False
        for kind in (EventKind.FAILED, EventKind.SUCCEEDED):
            outcomes = subject(tenant_id, kind, task_id)
            async for raw in messages_after(js, outcomes, found_at, limit=_LONGEST_WALK):
                outcome = decode_stored(raw)
                if isinstance(outcome, TaskFailed | TaskSucceeded) and (
                    outcome.execution_id == retry.execution_id
                ):
                    return found, True
        return found, False
