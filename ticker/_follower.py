"""The follower: what the ticker knows of every task, folded from the stream as it grows.

An ordered reader over the whole stream (`natsio.reader.OrderedReader`) starts with the last
message of every subject (the server's per-subject index, not a scan) and then goes on live.
Each event is folded into its task's `TaskState`; a message that is not an event still moves
its task's sequence, because the publishes' guard counts it. Whoever waits for the follower to
reach a sequence (a publish the stream refused) is woken once it has.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.aio.client import Client

from contracts.errors import EventDecodeError, InvalidIdentifierError
from contracts.inbound import read_event
from contracts.subjects import SubjectParts, parse_subject
from natsio.reader import OrderedReader
from ticker._policy import TaskKey, TaskState, apply_event
from ticker._stats import TickerStats

log = logging.getLogger("dvp_scheduler.ticker")

TaskChanged = Callable[[TaskKey], None]
"""Told the key of a task whose timing an event changed (registered, paused, ...)."""

_Waiter = tuple[int, asyncio.Future[None]]
"""(the sequence waited for, the future to resolve once the task reached it)."""


def _ignore(key: TaskKey) -> None:
    """The change callback until `Follower.start` is given one."""


class Follower:
    """Keeps a `TaskState` per task, current with the stream; see the module docstring."""

    def __init__(self, stats: TickerStats, catch_up_seconds: float) -> None:
        """``catch_up_seconds``: how long `caught_up` waits before giving up."""
        self.states: dict[TaskKey, TaskState] = {}
        """Every task named by an event read so far; never shrinks (``stats.tasks`` counts it)."""
        self._stats = stats
        self._catch_up_seconds = catch_up_seconds
        self._waiters: dict[TaskKey, list[_Waiter]] = {}
        self._on_change: TaskChanged = _ignore
        self._reader: OrderedReader | None = None
        self._ready = asyncio.Event()

    @property
    def ready(self) -> asyncio.Event:
        """Set once the stream's state as of the start has been read."""
        return self._reader.caught_up if self._reader is not None else self._ready

    @property
    def newest_sequence(self) -> int:
        """The stream sequence of the newest message read so far (0 before any)."""
        return self._reader.sequence if self._reader is not None else 0

    async def start(self, nc: Client, on_change: TaskChanged) -> None:
        """Start reading; from now on every event is folded in and ``on_change`` told of the
        tasks whose timing it changed. `ready` is set once the backlog has been read."""
        self._on_change = on_change
        reader = OrderedReader(nc, self._on_message, last_per_subject=True)
        await reader.start()
        self._reader = reader

    async def run(self) -> None:
        """Wait while reading; raise what stopped the read, if anything did."""
        assert self._reader is not None, "start() first"
        await asyncio.shield(self._reader.finished)  # stopping the loop must not end the read

    async def stop(self) -> None:
        """Stop reading (best effort: the connection is about to close anyway)."""
        reader, self._reader = self._reader, None
        if reader is None:
            return
        try:
            await reader.stop()
        except Exception:
            log.debug("stopping the follower's reader failed", exc_info=True)

    async def caught_up(self, key: TaskKey, seq: int) -> bool:
        """Wait until the task's events up to ``seq`` are applied; ``False`` if that did not
        happen in time."""
        state = self.states.get(key)
        if state is not None and state.last_seq >= seq:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append((seq, future))
        try:
            await asyncio.wait_for(future, self._catch_up_seconds)
        except TimeoutError:
            log.warning("the follower did not reach sequence %d of %s/%s in time", seq, *key)
            waiters = self._waiters.get(key, [])
            if (seq, future) in waiters:
                waiters.remove((seq, future))
                if not waiters:
                    del self._waiters[key]
            return False
        return True

    def _add(self, key: TaskKey) -> TaskState:
        """The state of a task no event had named yet."""
        state = self.states[key] = TaskState(*key)
        self._stats.tasks += 1
        return state

    def _on_message(self, seq: int, subject_bytes: bytes, data: bytes) -> None:
        subject = subject_bytes.decode(errors="replace")
        try:
            try:
                parts = parse_subject(subject)
            except InvalidIdentifierError as error:
                self._stats.bad_messages += 1
                log.warning(
                    "skipping message %d on %s: not an event subject: %s", seq, subject, error
                )
                return
            known = self.states.get((parts.tenant_id, parts.task_id))
            if known is not None and seq <= known.last_seq:
                # Applied already: this ticker's own publish, recorded from its acknowledgement.
                # Not decoded again (a burst brings thousands at once).
                self._release_waiters(known)
                return
            try:
                event = read_event(subject, data, parts=parts)
            except EventDecodeError as error:
                self._stats.bad_messages += 1
                log.warning("skipping message %d on %s: %s", seq, subject, error)
                self._note_sequence(parts, seq)
                return
            key = (event.tenant_id, event.task_id)
            state = self.states.get(key) or self._add(key)
            was_invalid, invalid_seen = state.invalid_reason, state.invalid_registrations
            if apply_event(state, event, seq):
                self._on_change(key)
            if state.invalid_registrations != invalid_seen:  # one more invalid registration
                self._stats.invalid_registrations += 1
                log.warning(
                    "task %s/%s is not scheduled: its registration (message %d on %s) is "
                    "invalid: %s",
                    *key,
                    seq,
                    subject,
                    state.invalid_reason,
                )
            self._stats.invalid_tasks += (state.invalid_reason is not None) - (
                was_invalid is not None
            )
            self._release_waiters(state)
        except Exception:
            self._stats.bad_messages += 1
            log.exception("could not apply message %d on %s", seq, subject)

    def _release_waiters(self, state: TaskState) -> None:
        if not self._waiters:  # the common case: nobody waits (a publish was refused)
            return
        key = state.key
        waiters = self._waiters.get(key)
        if waiters:
            self._release(key, state.last_seq, waiters)

    def _note_sequence(self, parts: SubjectParts, seq: int) -> None:
        """A message we cannot use still moves its task's sequence, which publishes check."""
        key = (parts.tenant_id, parts.task_id)
        state = self.states.get(key) or self._add(key)
        state.last_seq = max(state.last_seq, seq)
        self._release_waiters(state)

    def _release(self, key: TaskKey, seq: int, waiters: list[_Waiter]) -> None:
        """Wake those of the task's ``waiters`` whose sequence it has reached (``seq``)."""
        remaining: list[_Waiter] = []
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
