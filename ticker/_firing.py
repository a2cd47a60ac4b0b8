"""Firing: when each task is next due, and publishing what is decided then.

One timing loop over a heap of next fire instants hands the tasks that come due to short jobs
(`_fire_batch`), which decide a little ahead and publish all of one instant's fires at once.

Every publish is guarded: ``Nats-Expected-Last-Subject-Sequence`` over all of the task's
subjects (``dvp.tasks.<tenant>.*.<task>``) must equal the newest sequence the follower applied
for that task, so a decision is recorded only if it was taken on everything the stream holds
about the task. A publish refused because another writer won the race
(`natsio.errors.is_guard_refusal`) waits until the follower has caught up and decides again
(`publish_guarded`). ``Nats-Msg-Id`` makes a repeated identical decision a duplicate the stream
drops.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from nats.js.errors import APIError

from contracts import headers as header_names
from contracts.describe import describe_event, event_log_fields
from contracts.errors import InvalidIdentifierError
from contracts.events import (
    ScheduledRunsChanged,
    TaskDue,
    TaskFailed,
    TaskSkipped,
    encode,
    event_headers,
    event_subject,
)
from contracts.subjects import PREFIX
from natsio import tracing
from natsio.errors import is_guard_refusal, winning_sequence
from natsio.publish import AckedPublisher, Answer, Message, NotConnectedError, PublishAck
from ticker._consumers import ExecutorConsumers
from ticker._follower import Follower
from ticker._heap import FireHeap, next_ready_time, take_ready_batches
from ticker._policy import (
    Decision,
    TaskKey,
    TaskState,
    apply_event,
    decide,
    jitter_offset,
    next_due_instant,
)
from ticker._stats import TickerStats
from ticker.settings import TickerSettings

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("dvp_scheduler.ticker")

_MAX_DECISIONS: Final = 8
_NOTHING_DUE_PAUSE: Final = 0.005
_DECIDE_AHEAD_SECONDS: Final = 0.1
"""Fires are decided at least this long before their instant, so that a burst is sent on it."""
_MAX_DECIDE_AHEAD_SECONDS: Final = 10.0
_AHEAD_MARGIN: Final = 2.0
"""A burst is got ready this many times as early as its size needs (at the learned cost)."""
_FIRST_COST_PER_FIRE: Final = 60e-6
"""The seconds one fire takes to get ready, until a burst has measured it on this machine."""
_REGROUP_SECONDS: Final = 0.01
"""The grid on which tasks whose instant passed already are put back (see `_reschedule`)."""
_LEARN_FROM: Final = 500
"""A batch at least this large measures the cost per fire (smaller ones are noise)."""
_TOUCH_AHEAD_SECONDS: Final = 2.0
"""How long before its instant a burst's old blocks are touched (the server keeps a block read
for 10 s after its last use; loading a few takes tens of milliseconds)."""
_BURST_FROM: Final = 50
"""Fires due together from which they are got ready `_TOUCH_AHEAD_SECONDS` ahead at least (a
fire or two go 100 ms ahead; touching their one or two blocks then is soon enough)."""
_TOUCH_BUCKET: Final = 1_000
"""One sequence touched per this many: a block of the server's (8 MB) holds thousands of events."""
_RECENT_MESSAGES: Final = 10_000
"""The newest messages of the stream, whose blocks are in the server's memory anyway."""
_RECORD_AS_ANSWERED_UP_TO: Final = 20_000
"""A burst of at most this many fires is recorded answer by answer (see `_fire_batch`)."""
_DECISIONS_PER_TURN: Final = 32
"""Decisions taken before the loop lets other work (fires due sooner) run."""
_DECISION_LINES_PER_SECOND: Final = 50
"""Catch-ups, retries and skips logged one by one each second; more are summed up in one line
(a ticker that falls behind a burst would otherwise spend its time writing lines)."""

Decider = Callable[[TaskState, datetime], Decision | None]
"""What to publish for a task at an instant (``None``: nothing)."""

Spawn = Callable[[Coroutine[Any, Any, None]], object]
"""Runs a short job that the service waits for (within its grace) when it stops."""

_Ready = tuple[TaskKey, TaskState, Decision]
"""A fire decided ahead: key, state and event (its message is in the burst, same place)."""


class LogBudget:
    """At most ``per_second`` lines a second; those held back are counted and said at once.

    `allow` answers whether this line may be logged and how many were held back in the second
    that just ended (to be summed up first). Pure: time is passed in.
    """

    def __init__(self, per_second: int) -> None:
        self._per_second = per_second
        self._window = -1
        self._used = 0
        self._held = 0

    def allow(self, now: float) -> tuple[bool, int]:
        window = int(now)
        held_before = 0
        if window != self._window:
            self._window, self._used = window, 0
            held_before, self._held = self._held, 0
        if self._used < self._per_second:
            self._used += 1
            return True, held_before
        self._held += 1
        return False, held_before


class FirePublisher:
    """Fires every task at its instants: the heap, the timing loop and the guarded publishes.

    A task is *busy* from the moment it leaves the heap until its fire is recorded or given up;
    meanwhile changes the follower reports do not put it back (the fire does, when done).
    """

    def __init__(
        self,
        publisher: AckedPublisher,
        follower: Follower,
        stats: TickerStats,
        settings: TickerSettings,
        spawn: Spawn,
        consumers: ExecutorConsumers,
    ) -> None:
        self._publisher = publisher
        self._consumers = consumers
        self._states = follower.states  # the same dict: read on every fire
        self._follower = follower
        self._caught_up = follower.caught_up
        self._stats = stats
        self._publish_timeout = settings.publish_timeout_seconds
        self._backoff = settings.backoff_seconds
        self._lost_after = settings.lost_after_seconds
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._spawn = spawn
        self._heap: FireHeap[TaskKey] = FireHeap(burst_from=_BURST_FROM)
        self._busy: set[TaskKey] = set()
        self._wake = asyncio.Event()
        self._log_budget = LogBudget(_DECISION_LINES_PER_SECOND)
        self._live = False
        self._cost_per_fire = _FIRST_COST_PER_FIRE
        """Seconds to decide and encode one fire of a burst, as last measured."""
        self._tracer = tracing.tracer("dvp_scheduler.ticker")
        """Decided once: ``None`` (tracing off) means no span and no trace header at all."""

    def _decide(self, state: TaskState, now: datetime) -> Decision | None:
        return decide(state, now, lost_after=self._lost_after)

    @property
    def scheduled(self) -> int:
        """How many tasks have a next fire pending."""
        return len(self._heap)

    async def schedule_all(self) -> None:
        """Put every task the follower knows on the heap; from now on follow its changes."""
        self._live = True
        for count, key in enumerate(list(self._states)):
            self._reschedule(key)
            if count % 5000 == 4999:
                await asyncio.sleep(0)  # a large stream: let the follower and the rest run

    def task_changed(self, key: TaskKey) -> None:
        """The follower applied an event that changed when the task fires."""
        # Before `schedule_all` the whole map is scheduled at once; a busy task is put back
        # when its fire ends.
        if self._live and key not in self._busy:
            self._reschedule(key)

    async def run(self) -> None:
        """The timing loop: hand the tasks due at each instant to a `_fire_batch`, early
        enough for all of them to be decided and encoded by then (`_ahead`)."""
        heap, busy, wake = self._heap, self._busy, self._wake
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None
        try:
            while True:
                wake.clear()
                spawned = False
                for at, keys in take_ready_batches(heap, time.time(), self._ahead):
                    batch = [key for key in keys if key not in busy]
                    if batch:
                        busy.update(batch)
                        self._spawn(self._fire_batch(batch, at))
                        spawned = True
                if timer is not None:
                    timer.cancel()
                    timer = None
                if spawned:
                    await asyncio.sleep(0)  # let the fires just spawned run first
                    continue
                ready_at = next_ready_time(heap, self._ahead)
                if ready_at is not None:
                    # A timer, not wait_for: no task is created per wake-up at 1,000 fires/s.
                    timer = loop.call_later(max(ready_at - time.time(), 0.0), wake.set)
                await wake.wait()
        finally:
            if timer is not None:
                timer.cancel()

    def _ahead(self, count: int) -> float:
        """How long before their instant ``count`` fires due together are decided: a burst
        early enough for its old blocks to be touched in time (see `_fire_batch`)."""
        needed = _AHEAD_MARGIN * count * self._cost_per_fire
        least = _TOUCH_AHEAD_SECONDS if count >= _BURST_FROM else _DECIDE_AHEAD_SECONDS
        return min(_MAX_DECIDE_AHEAD_SECONDS, max(least, needed))

    async def publish_guarded(
        self, key: TaskKey, make: Decider, trace_parent: Mapping[str, str] | None = None
    ) -> bool:
        """Publish what ``make`` decides for the task, guarded by its newest sequence.

        On a refusal, wait for the follower to catch up and decide again. Return ``False`` if it
        should be tried again later. With tracing on, a ``TaskDue`` continues the trace in the
        headers ``trace_parent`` (a retry's), or starts one.
        """
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
            payload = encode(event)
            span = None
            if self._tracer is not None and isinstance(event, TaskDue):
                operation = "retry" if event.trigger == "retry" else "fire"
                span = tracing.due_span(
                    self._tracer,
                    operation,
                    event,
                    subject,
                    payload,
                    headers,
                    parent=tracing.extract(trace_parent),
                )
            if isinstance(event, TaskDue):
                await self._consumers.ensure(event.tenant_id)
            try:
                async with self._slots:
                    ack = await self._publisher.publish(subject, payload, headers)
            except BaseException as error:
                if span is not None:
                    tracing.end_publish_span(span, error)
                if not isinstance(error, APIError) or not is_guard_refusal(error):
                    raise
                self._stats.conflicts += 1
                # The winner's message, once the follower has it, changes the decision.
                actual = winning_sequence(error) or state.last_seq + 1
                if not await self._caught_up(key, actual):
                    return False
                continue
            if span is not None:
                tracing.end_publish_span(span, ack)
            self._record(state, event, ack)
            return True
        return False

    def _reschedule(self, key: TaskKey, not_before: float | None = None) -> None:
        state = self._states.get(key)
        if state is None or key in self._busy:
            return
        try:
            when = next_due_instant(state, lost_after=self._lost_after)
        except Exception:
            log.exception("cannot compute the next fire of %s/%s; not scheduling it", *key)
            when = None
        if when is None:
            self._heap.discard(key)
            return
        instant = when.timestamp()
        if not_before is not None and not_before > instant:
            # Due already (behind, or tried again later): on a common grid, so that the tasks
            # of a burst that fell behind stay one batch rather than one instant each.
            instant = math.ceil(not_before / _REGROUP_SECONDS) * _REGROUP_SECONDS
        if self._heap.push(key, instant):
            self._wake.set()

    def _done(self, key: TaskKey, not_before: float | None) -> None:
        self._busy.discard(key)
        self._reschedule(key, not_before)

    async def _fire_batch(self, keys: list[TaskKey], at: float) -> None:
        """Fire tasks due at the same instant ``at``.

        Each decision is taken ahead of ``at`` (on the state as of then, which the publish's
        guard pins: if the task moves on before ``at``, the stream refuses the publish and the
        task is decided again), and its message encoded then. At ``at`` the whole burst is
        written at once and its answers awaited together, so that crons sharing an instant
        are in the stream within milliseconds of it. A publish that is refused or fails goes
        the guarded one-by-one way (`_fire`).
        """
        started = time.monotonic()
        instant = max(at, time.time())
        now = datetime.fromtimestamp(instant, UTC)
        ready: list[_Ready] = []
        messages: list[Message] = []
        alone: list[TaskKey] = []  # first fires of a tenant: the one-by-one way makes its consumer
        tracer = self._tracer
        spans: list[Span | None] = []  # with tracing on, one per message
        for n, key in enumerate(keys):
            if n % _DECISIONS_PER_TURN == _DECISIONS_PER_TURN - 1:
                await asyncio.sleep(0)  # fires due sooner go first
            state = self._states.get(key)
            try:
                event = self._decide(state, now) if state is not None else None
                if state is None or event is None:
                    self._done(key, instant + _NOTHING_DUE_PAUSE)
                    continue
                if isinstance(event, TaskDue) and not self._consumers.ready(event.tenant_id):
                    alone.append(key)
                    continue
                message = (event_subject(event), encode(event), _guard_headers(event, state))
                if tracer is not None:
                    spans.append(_burst_span(tracer, event, message, instant))
            except Exception:  # one task's bad state must not hold the batch's others
                log.exception("cannot decide for %s/%s; not publishing for it now", *key)
                self._done(key, instant + _NOTHING_DUE_PAUSE)
                continue
            ready.append((key, state, event))
            messages.append(message)
        burst = self._publisher.prepare(messages)
        del messages  # encoded in the burst: not held twice until the instant
        if len(keys) >= _LEARN_FROM:
            self._cost_per_fire = (time.monotonic() - started) / len(keys)
        touch = sequences_to_touch(
            (state.last_seq for _, state, _ in ready), self._follower.newest_sequence
        )
        if touch:
            # The server's block cache forgets a block after 10 s: touched just before.
            wait = at - _TOUCH_AHEAD_SECONDS - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                self._stats.blocks_touched += await self._publisher.touch(touch)
            except Exception as error:  # only an optimisation: the burst goes on without it
                log.debug("touching the blocks of a burst failed: %s", error)
        wait = at - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        recorded = [False] * len(ready)
        not_before = max(at, time.time()) + _NOTHING_DUE_PAUSE  # one for all: they stay one batch

        def on_answer(index: int, answer: Answer) -> None:
            # Recorded as each answer is read: the follower, which reads the same messages from
            # the stream, then finds them applied and skips them instead of decoding them. The
            # rest (the next instants) waits for the last answer.
            if not isinstance(answer, BaseException):
                _, state, event = ready[index]
                self._record(state, event, answer)
                recorded[index] = True

        try:
            # A herd is written for longer than its first answers take to come: work on them
            # in the read loop holds its writes back (design 7.14). Its answers wait.
            handler = on_answer if len(ready) <= _RECORD_AS_ANSWERED_UP_TO else None
            answers_due = await self._publisher.send_burst(burst, handler)
        except NotConnectedError as error:
            # Decided for a moment the stream cannot hear of now: decided again once the
            # connection is back (then what is past its instant is a catch-up or a skip).
            self._stats.held_disconnected += len(ready) + len(alone)
            _end_publish_spans(spans, error)
            for key in [key for key, *_ in ready] + alone:
                self._done(key, time.time() + self._backoff)
            return
        except Exception as error:
            log.exception("sending a burst of %d fires failed; firing them one by one", len(ready))
            _end_publish_spans(spans, error)
            alone.extend(key for key, *_ in ready)
            ready = []
        else:
            answers = await answers_due
            _end_publish_spans(spans, answers)
            for (key, state, event), answer, done in zip(ready, answers, recorded, strict=True):
                if isinstance(answer, BaseException):
                    alone.append(key)  # refused (another ticker was first), timed out or failed
                    continue
                if not done:
                    self._record(state, event, answer)  # its handling above failed: once more
                self._done(key, not_before)
        for key in alone:
            self._spawn(self._fire(key))  # still marked busy

    async def _fire(self, key: TaskKey) -> None:
        """Fire one task the guarded one-by-one way; put it back on the heap when done."""
        not_before: float | None = time.time() + _NOTHING_DUE_PAUSE
        try:
            if not await self.publish_guarded(key, self._decide):
                not_before = time.time() + self._backoff
        except NotConnectedError:
            self._stats.held_disconnected += 1
            not_before = time.time() + self._backoff
        except Exception as error:
            self._stats.publish_errors += 1
            log.warning("publishing for %s/%s failed (%s); trying again", *key, error)
            not_before = time.time() + self._backoff
        finally:
            self._done(key, not_before)

    def _record(self, state: TaskState, event: Decision, ack: PublishAck) -> None:
        """Fold a published event into the state at once (the follower sees it later) and
        count and log it."""
        stats = self._stats
        if ack.duplicate:
            stats.duplicates += 1
            # The stream had it already (at ack.seq). Once the follower has read that far it
            # may also have read the execution's end, which applying the fire again would undo.
            if ack.seq > state.last_seq:
                apply_event(state, event)
            return
        apply_event(state, event, ack.seq)
        if isinstance(event, TaskDue):
            stats.due_published += 1
            if event.trigger == "schedule":
                self._observe_lateness(state, event)
        elif isinstance(event, TaskSkipped):
            stats.skipped_published += 1
        elif isinstance(event, ScheduledRunsChanged):
            stats.runs_taken_off += 1
        elif isinstance(event, TaskFailed) and event.reason == "cancelled":
            stats.cancels_closed += 1
        else:
            stats.lost_closed += 1
        # On-time fires are routine (debug); catch-ups, retries and skips explain themselves.
        routine = isinstance(event, TaskDue) and event.trigger == "schedule"
        level = logging.DEBUG if routine else logging.INFO
        if not routine and log.isEnabledFor(logging.INFO):
            allowed, held = self._log_budget.allow(time.monotonic())
            if held:
                log.info(
                    "%d more decisions (catch-ups, retries, skips, closed attempts, one-off runs) "
                    "in the "
                    "second before were not logged one by one (at most %d a second; debug logs "
                    "each)",
                    held,
                    _DECISION_LINES_PER_SECOND,
                )
            level = logging.INFO if allowed else logging.DEBUG
        if log.isEnabledFor(level):
            log.log(level, "%s", describe_event(event), extra=event_log_fields(event))

    def _observe_lateness(self, state: TaskState, event: TaskDue) -> None:
        fire = event.scheduled_for
        spread = state.schedule.jitter_seconds if state.schedule is not None else 0.0
        jitter = jitter_offset(state.tenant_id, state.task_id, fire, spread)
        late = time.time() - fire.timestamp() - jitter
        self._stats.fire_lateness.observe(max(0.0, late))


def sequences_to_touch(
    last_sequences: Iterable[int],
    newest: int,
    *,
    bucket: int = _TOUCH_BUCKET,
    recent: int = _RECENT_MESSAGES,
) -> list[int]:
    """Which of a burst's guard sequences to have the server read just before the burst
    (`AckedPublisher.touch`): one in each ``bucket`` of sequences (far fewer messages than a
    block of the server's holds), leaving out the newest ``recent`` of the stream (the blocks
    being written, in memory anyway). Ascending."""
    oldest_recent = newest - recent
    chosen: dict[int, int] = {}
    for sequence in last_sequences:
        if 0 < sequence <= oldest_recent:
            group = sequence // bucket
            if group not in chosen or sequence < chosen[group]:
                chosen[group] = sequence
    return sorted(chosen.values())


def _guard_headers(event: Decision, state: TaskState) -> dict[str, str]:
    """Headers that make the publish conditional on everything the stream holds on the task."""
    headers = event_headers(event, expected_last_subject_sequence=state.last_seq)
    headers[header_names.EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT] = (
        f"{PREFIX}.{state.tenant_id}.*.{state.task_id}"
    )
    return headers


def _burst_span(tracer: Tracer, event: Decision, message: Message, instant: float) -> Span | None:
    """The span of a burst's ``TaskDue``, begun at the burst's instant (it is decided ahead);
    its context goes into the message's headers."""
    if not isinstance(event, TaskDue):
        return None
    subject, payload, headers = message
    assert isinstance(headers, dict)
    return tracing.due_span(
        tracer, "fire", event, subject, payload, headers, start_time=int(instant * 1e9)
    )


def _end_publish_spans(spans: list[Span | None], answers: list[Answer] | BaseException) -> None:
    """End a burst's spans: each with its answer, or all with the error that kept it unsent."""
    for n, span in enumerate(spans):
        if span is not None:
            tracing.end_publish_span(
                span, answers if isinstance(answers, BaseException) else answers[n]
            )
