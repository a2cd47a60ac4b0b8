"""The ticker service: the I/O around the pure decisions of `ticker._policy`.

Three pieces share one event loop:

* the *follower*, an ordered consumer over the whole stream that starts with the last message of
  every subject (the server's per-subject index, not a scan) and then goes on live, folding each
  event into a `TaskState`;
* the *timing loop*, one loop over a heap of next fire instants, which hands each task that comes
  due to a short job that decides and publishes;
* the *retry loop*, a durable pull consumer shared by all tickers that holds each
  ``RetryScheduled`` (negative acknowledgement with a delay) until its ``retry_at``.

Every publish is guarded: ``Nats-Expected-Last-Subject-Sequence`` over all of the task's
subjects (``dvp.tasks.<tenant>.*.<task>``) must equal the newest sequence the follower applied
for that task, so a decision is recorded only if it was taken on everything the stream holds
about the task. A refused publish (10071) waits until the follower has caught up and decides
again. ``Nats-Msg-Id`` makes a repeated identical decision a duplicate the stream drops.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from asyncio import Future
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from types import TracebackType
from typing import Any, Final, Self

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import APIError

from contracts import headers as header_names
from contracts.describe import describe_event, event_log_fields
from contracts.errors import EventDecodeError, InvalidIdentifierError
from contracts.events import (
    RetryScheduled,
    TaskDue,
    TaskSkipped,
    decode,
    encode,
    event_headers,
    event_subject,
)
from contracts.stream import (
    DUPLICATE_WINDOW_SECONDS,
    STREAM_NAME,
    TICKER_RETRY_DURABLE,
)
from contracts.subjects import ALL_EVENTS, PREFIX, parse_subject
from natsio import (
    executor_consumer_config,
    ticker_retry_consumer_config,
)
from natsio.errors import is_guard_refusal
from natsio.provision import ensure_consumer, ensure_stream
from natsio.publish import AckedPublisher, PublishAck
from ticker._heap import FireHeap
from ticker._policy import (
    TaskKey,
    TaskState,
    apply_event,
    decide,
    jitter_offset,
    next_due_instant,
    retry_due,
)
from ticker._stats import TickerStats
from ticker.errors import TickerError, TickerStartupError
from ticker.settings import TickerSettings

log = logging.getLogger("dvp_scheduler.ticker")

_MAX_DECISIONS: Final = 8
_NOTHING_DUE_PAUSE: Final = 0.005
_DECIDE_AHEAD_SECONDS: Final = 0.1
"""Fires are decided this long before their instant, so that a burst is sent on the instant."""
_DECISIONS_PER_TURN: Final = 32
"""Decisions taken before the loop lets other work (fires due sooner) run."""
_RETRY_FETCH_BATCH: Final = 256
_ACTUAL_SEQUENCE = re.compile(r"wrong last sequence: (\d+)")

Decider = Callable[[TaskState, datetime], TaskDue | TaskSkipped | None]


class Ticker:
    """Publishes ``TaskDue`` at each fire instant of every registered task; see the module doc.

    ``async with Ticker(settings) as ticker:`` connects, reads the stream's state and starts
    firing; `stop` asks it to stop and leaving the block waits for it.
    """

    def __init__(self, settings: TickerSettings | None = None) -> None:
        self._settings = settings or TickerSettings()
        self._connection = self._settings.connection
        self.stats = TickerStats()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._states: dict[TaskKey, TaskState] = {}
        self._heap: FireHeap[TaskKey] = FireHeap()
        self._busy: set[TaskKey] = set()
        self._waiters: dict[TaskKey, list[tuple[int, asyncio.Future[None]]]] = {}
        self._jobs: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._live = False
        self._failure: BaseException | None = None
        self._slots = asyncio.Semaphore(self._settings.max_in_flight)
        self._publisher: AckedPublisher | None = None
        self._subscription: JetStreamContext.PushSubscription | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        started = time.monotonic()
        self._nc = await nats.connect(
            **self._connection.connect_kwargs(),
            max_reconnect_attempts=-1,
            error_cb=self._on_connection_error,
        )
        try:
            self._js = self._nc.jetstream()
            await self._ensure_stream()
            self._publisher = AckedPublisher(self._nc, self._settings.publish_timeout_seconds)
            await self._publisher.start()
            await self._start_follower()
            try:
                await asyncio.wait_for(self._ready.wait(), self._settings.startup_timeout_seconds)
            except TimeoutError:
                raise TickerStartupError(
                    f"could not read the state of stream {STREAM_NAME} within "
                    f"{self._settings.startup_timeout_seconds:g}s; is the server overloaded? "
                    "Raise startup_timeout_seconds if the stream is very large"
                ) from None
            await self._schedule_all()
            await self._ensure_retry_consumer()
            self._loops = [
                asyncio.create_task(self._timing_loop(), name="ticker-timing"),
                asyncio.create_task(self._retry_loop(), name="ticker-retries"),
            ]
            for loop_task in self._loops:
                loop_task.add_done_callback(self._on_loop_done)
        except BaseException:
            await self._close()
            raise
        self.stats.startup_seconds = time.monotonic() - started
        log.info(
            "ticker ready: %d tasks, %d scheduled, start-up %.2fs",
            len(self._states),
            len(self._heap),
            self.stats.startup_seconds,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        await self._close()
        if self._failure is not None and exc is None:
            raise TickerError(f"the ticker stopped on an error: {self._failure!r}") from (
                self._failure
            )

    def stop(self) -> None:
        """Ask the ticker to stop; leaving the ``async with`` block waits for it."""
        self._stop_requested.set()

    async def wait_stopped(self) -> None:
        """Return once `stop` was called or a loop failed."""
        await self._stop_requested.wait()

    @property
    def task_count(self) -> int:
        """How many tasks the ticker knows (registered or not)."""
        return len(self._states)

    def task_state(self, tenant_id: str, task_id: str) -> TaskState | None:
        """What the ticker knows of one task (for tests and diagnostics)."""
        return self._states.get((tenant_id, task_id))

    async def _close(self) -> None:
        for loop_task in self._loops:
            loop_task.cancel()
        if self._loops:
            await asyncio.gather(*self._loops, return_exceptions=True)
        if self._jobs:
            _, pending = await asyncio.wait(
                set(self._jobs), timeout=self._settings.graceful_timeout_seconds
            )
            for job in pending:
                job.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._publisher is not None:
            await self._publisher.close()
        if self._nc is not None and not self._nc.is_closed:
            try:
                if self._subscription is not None:
                    await self._subscription.unsubscribe()
            except Exception:  # closing anyway
                log.debug("unsubscribing the follower failed", exc_info=True)
            await self._nc.close()
        self._stop_requested.set()

    def _on_loop_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("ticker loop %s failed", task.get_name(), exc_info=error)
            self._failure = error
            self._stop_requested.set()

    async def _on_connection_error(self, error: Exception) -> None:
        log.warning("NATS connection: %s", error)

    # -- start-up ----------------------------------------------------------------------------

    async def _ensure_stream(self) -> None:
        assert self._js is not None
        await ensure_stream(self._js)
        # The executors' consumer starts at new messages: it must exist before the first
        # TaskDue, or that fire would wait for no executor at all.
        await ensure_consumer(self._js, executor_consumer_config())

    async def _start_follower(self) -> None:
        assert self._js is not None
        info = await self._js.stream_info(STREAM_NAME)
        if info.state.messages == 0:
            self._ready.set()
        self._subscription = await self._js.subscribe(
            ALL_EVENTS,
            stream=STREAM_NAME,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            cb=self._on_message,
        )

    async def _schedule_all(self) -> None:
        self._live = True
        for count, key in enumerate(list(self._states)):
            self._reschedule(key)
            if count % 5000 == 4999:
                await asyncio.sleep(0)

    async def _ensure_retry_consumer(self) -> None:
        assert self._js is not None
        # Created once for all tickers: from a duplicate window ago, inside which Nats-Msg-Id
        # still drops a retry published twice.
        start = datetime.now(UTC) - timedelta(seconds=DUPLICATE_WINDOW_SECONDS)
        await ensure_consumer(self._js, ticker_retry_consumer_config(start_time=start))

    # -- the follower ------------------------------------------------------------------------

    async def _on_message(self, msg: Msg) -> None:
        try:
            metadata = msg.metadata
            seq = metadata.sequence.stream
            try:
                event = decode(msg.data)
            except EventDecodeError as error:
                self.stats.bad_messages += 1
                log.warning("skipping message %d on %s: %s", seq, msg.subject, error)
                self._note_sequence(msg.subject, seq)
            else:
                key = (event.tenant_id, event.task_id)
                state = self._states.get(key)
                if state is None:
                    state = self._states[key] = TaskState(event.tenant_id, event.task_id)
                if apply_event(state, event, seq) and self._live and key not in self._busy:
                    self._reschedule(key)
                waiters = self._waiters.get(key)
                if waiters:
                    self._release(key, state.last_seq, waiters)
            if not self._ready.is_set() and metadata.num_pending == 0:
                self._ready.set()
        except Exception:
            self.stats.bad_messages += 1
            log.exception("could not apply message on %s", msg.subject)

    def _note_sequence(self, subject: str, seq: int) -> None:
        """A message we cannot use still moves its task's sequence, which publishes check."""
        try:
            parts = parse_subject(subject)
        except InvalidIdentifierError:
            return
        key = (parts.tenant_id, parts.task_id)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = TaskState(parts.tenant_id, parts.task_id)
        state.last_seq = max(state.last_seq, seq)
        waiters = self._waiters.get(key)
        if waiters:
            self._release(key, state.last_seq, waiters)

    def _release(
        self, key: TaskKey, seq: int, waiters: list[tuple[int, asyncio.Future[None]]]
    ) -> None:
        remaining = []
        for target, future in waiters:
            if target <= seq:
                if not future.done():
                    future.set_result(None)
            else:
                remaining.append((target, future))
        if remaining:
            self._waiters[key] = remaining
        else:
            del self._waiters[key]

    async def _caught_up(self, key: TaskKey, seq: int) -> bool:
        """Wait until the follower has applied the task's events up to ``seq``."""
        state = self._states.get(key)
        if state is not None and state.last_seq >= seq:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append((seq, future))
        try:
            await asyncio.wait_for(future, self._settings.conflict_wait_seconds)
        except TimeoutError:
            log.warning("the follower did not reach sequence %d of %s/%s in time", seq, *key)
            return False
        return True

    # -- the timing loop ---------------------------------------------------------------------

    def _reschedule(self, key: TaskKey, not_before: float | None = None) -> None:
        state = self._states.get(key)
        if state is None or key in self._busy:
            return
        try:
            when = next_due_instant(state)
        except Exception:
            log.exception("cannot compute the next fire of %s/%s; not scheduling it", *key)
            when = None
        if when is None:
            self._heap.discard(key)
            return
        instant = when.timestamp()
        if not_before is not None:
            instant = max(instant, not_before)
        if self._heap.push(key, instant):
            self._wake.set()

    async def _timing_loop(self) -> None:
        heap, busy, wake = self._heap, self._busy, self._wake
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None
        try:
            while True:
                wake.clear()
                due = heap.pop_due(time.time() + _DECIDE_AHEAD_SECONDS)
                for at, group in itertools.groupby(due, key=itemgetter(0)):
                    batch = [key for _, key in group if key not in busy]
                    if batch:
                        busy.update(batch)
                        self._spawn(self._fire_batch(batch, at))
                head = heap.next_at()
                if timer is not None:
                    timer.cancel()
                    timer = None
                if head is not None:
                    delay = head - _DECIDE_AHEAD_SECONDS - time.time()
                    if delay <= 0:
                        await asyncio.sleep(0)  # let the fires just spawned run first
                        continue
                    # A timer, not wait_for: no task is created per wake-up at 1,000 fires/s.
                    timer = loop.call_later(delay, wake.set)
                await wake.wait()
        finally:
            if timer is not None:
                timer.cancel()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        job = asyncio.create_task(coroutine)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _fire_batch(self, keys: list[TaskKey], at: float) -> None:
        """Fire tasks due at the same instant ``at``.

        Each decision is taken ahead of ``at`` (on the state as of then, which the publish's
        guard pins: if the task moves on before ``at``, the stream refuses the publish and the
        task is decided again). At ``at`` every publish is sent before any acknowledgement is
        awaited, so that a burst (crons sharing a minute) is in the stream within milliseconds.
        A publish that is refused or fails goes the guarded one-by-one way.
        """
        assert self._js is not None
        instant = max(at, time.time())
        now = datetime.fromtimestamp(instant, UTC)
        ready: list[tuple[TaskKey, TaskState, TaskDue | TaskSkipped, str, bytes, dict[str, str]]]
        ready = []
        for n, key in enumerate(keys):
            if n % _DECISIONS_PER_TURN == _DECISIONS_PER_TURN - 1:
                await asyncio.sleep(0)  # fires due sooner go first
            state = self._states.get(key)
            event = decide(state, now) if state is not None else None
            if state is None or event is None:
                self._done(key, instant + _NOTHING_DUE_PAUSE)
                continue
            try:
                subject = event_subject(event)
            except InvalidIdentifierError as error:
                log.error("not publishing for %s/%s: %s", *key, error)
                self._done(key, instant + _NOTHING_DUE_PAUSE)
                continue
            ready.append((key, state, event, subject, encode(event), _guard_headers(event, state)))
        wait = at - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        publisher = self._require_publisher()
        sent: list[tuple[TaskKey, TaskState, TaskDue | TaskSkipped, Future[PublishAck]]] = []
        alone: list[TaskKey] = []
        for key, state, event, subject, payload, headers in ready:
            try:
                future = await publisher.send_message(subject, payload, headers)
            except Exception:
                alone.append(key)
                continue
            sent.append((key, state, event, future))
        if sent:
            await asyncio.wait(
                [future for *_, future in sent], timeout=self._settings.publish_timeout_seconds
            )
        for key, state, event, future in sent:
            if not future.done() or future.cancelled() or future.exception() is not None:
                future.cancel()  # refused (another ticker was first), timed out or failed
                alone.append(key)
                continue
            self._record(state, event, future.result())
            self._done(key, time.time() + _NOTHING_DUE_PAUSE)
        for key in alone:
            self._spawn(self._fire(key))  # still marked busy

    def _require_publisher(self) -> AckedPublisher:
        if self._publisher is None:
            raise TickerError("the ticker is not running: use it with 'async with'")
        return self._publisher

    def _done(self, key: TaskKey, not_before: float | None) -> None:
        self._busy.discard(key)
        self._reschedule(key, not_before)

    def _record(self, state: TaskState, event: TaskDue | TaskSkipped, ack: PublishAck) -> None:
        if ack.duplicate:
            self.stats.duplicates += 1
            apply_event(state, event)
            return
        apply_event(state, event, ack.seq)
        if isinstance(event, TaskDue):
            self.stats.due_published += 1
            if event.trigger == "schedule":
                self._observe_lateness(state, event)
        else:
            self.stats.skipped_published += 1
        # On-time fires are routine (debug); catch-ups, retries and skips explain themselves.
        routine = isinstance(event, TaskDue) and event.trigger == "schedule"
        level = logging.DEBUG if routine else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, "%s", describe_event(event), extra=event_log_fields(event))

    def _observe_lateness(self, state: TaskState, event: TaskDue) -> None:
        fire = event.scheduled_for
        spread = state.schedule.jitter_seconds if state.schedule is not None else 0.0
        jitter = jitter_offset(state.tenant_id, state.task_id, fire, spread)
        late = time.time() - fire.timestamp() - jitter
        self.stats.fire_lateness.observe(max(0.0, late))

    async def _fire(self, key: TaskKey) -> None:
        not_before: float | None = time.time() + _NOTHING_DUE_PAUSE
        try:
            if not await self._publish_guarded(key, decide):
                not_before = time.time() + self._settings.backoff_seconds
        except Exception as error:
            self.stats.publish_errors += 1
            log.warning("publishing for %s/%s failed (%s); trying again", *key, error)
            not_before = time.time() + self._settings.backoff_seconds
        finally:
            self._busy.discard(key)
            self._reschedule(key, not_before)

    async def _publish_guarded(self, key: TaskKey, make: Decider) -> bool:
        """Publish what ``make`` decides for the task, guarded by its newest sequence.

        On a refusal, wait for the follower to catch up and decide again. Return ``False`` if it
        should be tried again later.
        """
        assert self._js is not None
        for _ in range(_MAX_DECISIONS):
            state = self._states.get(key)
            if state is None:
                return True
            event = make(state, datetime.now(UTC))
            if event is None:
                return True
            try:
                subject = event_subject(event)
            except InvalidIdentifierError as error:
                log.error("not publishing for %s/%s: %s", *key, error)
                return True
            headers = _guard_headers(event, state)
            try:
                async with self._slots:
                    ack = await self._require_publisher().publish(subject, encode(event), headers)
            except APIError as error:
                if not is_guard_refusal(error):
                    raise
                self.stats.conflicts += 1
                found = _ACTUAL_SEQUENCE.search(error.description or "")
                actual = int(found.group(1)) if found else state.last_seq + 1
                if not await self._caught_up(key, actual):
                    return False
                continue
            self._record(state, event, ack)
            return True
        return False

    # -- retries -----------------------------------------------------------------------------

    async def _retry_loop(self) -> None:
        assert self._js is not None
        subscription = await self._js.pull_subscribe_bind(TICKER_RETRY_DURABLE, STREAM_NAME)
        try:
            while True:
                try:
                    messages = await subscription.fetch(_RETRY_FETCH_BATCH, timeout=1.0)
                except TimeoutError:
                    continue
                except Exception as error:
                    log.warning("fetching retries failed (%s); trying again", error)
                    await asyncio.sleep(self._settings.backoff_seconds)
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
            event = decode(msg.data)
        except EventDecodeError as error:
            self.stats.bad_messages += 1
            log.warning("terminating bad retry message on %s: %s", msg.subject, error)
            await msg.term()
            return
        if not isinstance(event, RetryScheduled):
            self.stats.bad_messages += 1
            log.warning("terminating a %s on retry subject %s", type(event).__name__, msg.subject)
            await msg.term()
            return
        delay = (event.retry_at - datetime.now(UTC)).total_seconds()
        if delay > 0.001:
            self.stats.retries_held += 1
            await msg.nak(delay=delay)
            return
        self._spawn(self._publish_retry(msg, event))

    async def _publish_retry(self, msg: Msg, event: RetryScheduled) -> None:
        key = (event.tenant_id, event.task_id)
        try:
            ok = await self._caught_up(key, msg.metadata.sequence.stream) and (
                await self._publish_guarded(key, lambda state, now: retry_due(state, event, now))
            )
        except Exception as error:
            self.stats.publish_errors += 1
            log.warning("publishing the retry of %s failed (%s)", event.execution_id, error)
            ok = False
        if ok:
            await msg.ack()
        else:
            await msg.nak(delay=self._settings.backoff_seconds)


def _guard_headers(event: TaskDue | TaskSkipped, state: TaskState) -> dict[str, str]:
    """Headers that make the publish conditional on everything the stream holds on the task."""
    headers = event_headers(event, expected_last_subject_sequence=state.last_seq)
    headers[header_names.EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT] = (
        f"{PREFIX}.{state.tenant_id}.*.{state.task_id}"
    )
    return headers
