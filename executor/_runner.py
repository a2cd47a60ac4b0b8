"""One attempt, from the delivered ``TaskDue`` to its acknowledgement.

``TaskStarted`` is recorded, the owning plugin runs under its timeout (cancelled when it runs
over; in a worker process, killed), ``dvp_task_failed`` decides a failure, the outcome is
recorded, and only then is the ``TaskDue`` acknowledged. A redelivered attempt whose outcome
is already in the stream is acknowledged without running again. Where the plugin runs is the
`RunAttempt` given: in this event loop, or in a worker process (`executor._isolation`). An
operator's cancel (`executor._cancel`) cuts the plugin short, or keeps an attempt it reaches
before the start from running: the outcome is ``TaskFailed``, kind and reason ``cancelled``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from typing import Final, Literal

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import APIError

from contracts import (
    Event,
    EventDecodeError,
    RetryScheduled,
    TaskCancelRequested,
    TaskDue,
    TaskFailed,
    TaskSucceeded,
    event_type,
)
from contracts.describe import describe_event, event_log_fields
from contracts.inbound import read_event
from dvp_cms.plugins import PluginManager, RegisteredTask
from executor import _stream, _tracing
from executor._cancel import AttemptCancel, CancelWatch, cancelled_failure
from executor._isolation import RunAttempt
from executor._registrar import Registrar
from executor._stats import ExecutorStats
from executor._work import Delivery, next_pause
from executor.errors import BadInputError, UnownedTaskError
from executor.outcomes import execution_context, outcome_event, started_event
from executor.settings import ExecutorSettings
from natsio import tracing
from natsio.publish import AckedPublisher, PublishAck
from natsio.service import raise_if_cancelled

log = logging.getLogger("dvp_scheduler.executor")

_API_ERROR_ATTEMPTS: Final = 3
UNOWNED_RETRY_SECONDS: Final = 5.0
"""A ``TaskDue`` no loaded plugin owns is offered again after this long (to any executor of
its tenant), until one that owns it takes it."""
_UNOWNED_REPORT_SECONDS: Final = 60.0

_Outcome = TaskSucceeded | RetryScheduled | TaskFailed


class AttemptRunner:
    """Runs the attempt of each delivered ``TaskDue`` and counts how it ended.

    Args:
        js: JetStream, to read an attempt's recorded outcome and the previous attempt's error.
        publisher: records ``TaskStarted`` and the outcome.
        registrar: which plugin owns a task.
        settings: the worker name recorded in the events.
        run_attempt: runs the plugin's attempt and asks ``dvp_task_failed`` if it failed.
        cancels: the operators' cancel requests, by attempt in flight.
        stats: where the attempts are counted.
        clock: the current UTC time (for the events).
        jitter: a number in [0, 1) for the default policy's backoff.
    """

    def __init__(
        self,
        js: JetStreamContext,
        publisher: AckedPublisher,
        registrar: Registrar,
        settings: ExecutorSettings,
        run_attempt: RunAttempt,
        cancels: CancelWatch,
        *,
        stats: ExecutorStats,
        clock: Callable[[], datetime],
        jitter: Callable[[], float],
    ) -> None:
        self._js = js
        self._publisher = publisher
        self._registrar = registrar
        self._settings = settings
        self._run_attempt = run_attempt
        self._cancels = cancels
        self._stats = stats
        self._clock = clock
        self._jitter = jitter
        self._tracer = tracing.tracer(_tracing.TRACER_NAME)  # None: tracing off
        self._unowned_reported: dict[tuple[str, str], float] = {}

    async def run(self, delivery: Delivery) -> None:
        """Run the attempt and answer its message: ``term`` for bad input, ``ack`` once the
        outcome is recorded (or was already), ``nak`` on an unexpected error; cancelled, it
        is given back (``nak``) unless already answered."""
        msg = delivery.msg
        stats = self._stats
        try:
            metadata = msg.metadata
            sequence = metadata.sequence.stream
            try:
                due = _due_of(msg, sequence)
            except BadInputError as error:
                stats.bad_input += 1
                log.error("%s; terminated (bad input #%d)", error, stats.bad_input)
                await _settle(delivery, "term")
                return
            try:
                task = self._registrar.owner(due, msg.subject, sequence)
            except UnownedTaskError as error:
                # A rolling deploy: another executor of the tenant may own it, or this one
                # after its reload. Never ended here: it waits for an owner.
                stats.unowned += 1
                self._report_unowned(due, error)
                await _settle(delivery, "nak", delay=UNOWNED_RETRY_SECONDS)
                return
            if metadata.num_delivered > 1 and await self._already_recorded(due, sequence, task):
                await _settle(delivery, "ack")
                return
            with _tracing.attempt_span(self._tracer, msg, due) as span:
                trace = _tracing.headers_of(span)
                with self._cancels.watch(due) as cancel:
                    if self._cancels.may_be_unheard(due, metadata.timestamp):
                        await self._cancels.look_up(self._js, due, cancel)
                    if cancel.request is not None:
                        outcome = self._not_run(due, task, cancel.request)
                    else:
                        outcome = await self._run(due, task, cancel, trace)
                _tracing.record_outcome(span, outcome)
                await self._record(outcome, trace=trace)
            await _settle(delivery, "ack")
            self._count(outcome)
        except asyncio.CancelledError:
            if not delivery.settled:
                stats.returned += 1
                with suppress(Exception):
                    await msg.nak()
            raise
        except Exception:
            log.exception(
                "attempt from %s failed unexpectedly; it will be redelivered", msg.subject
            )
            with suppress(Exception):
                await _settle(delivery, "nak")

    def _report_unowned(self, due: TaskDue, error: UnownedTaskError) -> None:
        """Log a task nobody here owns, once a minute per task (it comes back every
        `UNOWNED_RETRY_SECONDS` until an owner takes it)."""
        key = (due.tenant_id, due.task_id)
        now = time.monotonic()
        if (
            now - self._unowned_reported.get(key, -_UNOWNED_REPORT_SECONDS)
            < _UNOWNED_REPORT_SECONDS
        ):
            return
        self._unowned_reported[key] = now
        log.warning(
            "%s; given back for an executor that owns it (offered again every %gs)",
            error,
            UNOWNED_RETRY_SECONDS,
        )

    async def _already_recorded(self, due: TaskDue, sequence: int, task: RegisteredTask) -> bool:
        """Whether the attempt ended already: its outcome is in the stream, or the ticker
        published what can only follow its end (the next attempt of its execution, or a later
        fire of a task whose overlap rule holds fires back while one runs)."""
        recorded = await _stream.find_outcome(self._js, due, sequence)
        if recorded is not None:
            how = f"its outcome {event_type(recorded)} is already recorded"
        else:
            later = await _stream.later_due(self._js, due, sequence)
            if later is None:
                return False
            if later.execution_id == due.execution_id and later.attempt > due.attempt:
                how = f"its next attempt ({later.attempt}) was published since"
            elif later.execution_id != due.execution_id and task.spec.schedule.overlap != "allow":
                how = f"a later fire ({later.execution_id}) was published since"
            else:
                return False
        self._stats.already_recorded += 1
        log.info(
            "attempt %d of %s (%s) was delivered again but %s; acknowledged without running "
            "it again",
            due.attempt,
            due.execution_id,
            due.task_id,
            how,
        )
        return True

    def _not_run(
        self, due: TaskDue, task: RegisteredTask, request: TaskCancelRequested
    ) -> _Outcome:
        """The outcome of an attempt cancelled before it started: it is not started."""
        return outcome_event(
            due,
            cancelled_failure(request, 0, " (before it started)"),
            worker=self._settings.worker,
            max_retries=task.spec.max_retries,
            decision=None,
            now=self._clock(),
            jitter=0.0,
        )

    async def _run(
        self,
        due: TaskDue,
        task: RegisteredTask,
        cancel: AttemptCancel,
        trace: dict[str, str] | None = None,
    ) -> _Outcome:
        manager = self._registrar.manager
        started = started_event(
            due,
            worker=self._settings.worker,
            now=self._clock(),
            timeout_seconds=task.spec.timeout_seconds,
        )
        # TaskStarted is confirmed while the plugin runs, and before the outcome is sent, so
        # that the stream still holds them in that order.
        try:
            sent: asyncio.Future[PublishAck] | None = await self._publisher.send(started, trace)
        except Exception as error:
            log.debug("sending %s failed: %s", event_type(started), error)
            sent = None
        self._stats.started += 1
        try:
            outcome = await self._attempt(manager, due, task, started.deadline, cancel)
            await self._record(started, sent, trace)
        except BaseException:
            if sent is not None:
                sent.cancel()
            raise
        return outcome

    async def _attempt(
        self,
        manager: PluginManager,
        due: TaskDue,
        task: RegisteredTask,
        deadline: datetime,
        cancel: AttemptCancel,
    ) -> _Outcome:
        spec = task.spec
        previous = None
        if due.attempt > 1:
            try:
                previous = await _stream.previous_error(self._js, due)
            except Exception as error:
                log.debug("could not read the previous error: %s", error)
        context = execution_context(
            due, max_retries=spec.max_retries, deadline=deadline, previous_error=previous
        )
        ran = await self._run_attempt(manager, task, context, cancel)
        return outcome_event(
            due,
            ran.result,
            worker=self._settings.worker,
            max_retries=spec.max_retries,
            decision=ran.decision,
            now=self._clock(),
            jitter=self._jitter(),
        )

    async def _record(
        self,
        event: Event,
        sent: asyncio.Future[PublishAck] | None = None,
        trace: dict[str, str] | None = None,
    ) -> PublishAck:
        """Publish until the stream has it (``sent``: it was already sent, this is the
        answer; ``trace``: the attempt's trace headers, with tracing on); transport errors are
        retried without end (the attempt's heartbeats continue meanwhile), a refusal by the
        server a few times. The message id makes a retry of an event that was stored after all
        a duplicate, not a second copy."""
        pause = 0.1
        refusals = 0
        while True:
            raise_if_cancelled()
            try:
                if sent is None:
                    sent = await self._publisher.send(event, trace)
                ack = await sent
            except APIError as error:
                refusals += 1
                if refusals >= _API_ERROR_ATTEMPTS:
                    raise
                problem = f"the server refused it ({error})"
            except Exception as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if ack.duplicate:
                    log.debug("%s was already recorded", event_type(event))
                return ack
            sent = None
            log.warning(
                "recording %s of %s failed: %s; retrying in %.1fs",
                event_type(event),
                event.task_id,
                problem,
                pause,
            )
            await asyncio.sleep(pause)
            pause = next_pause(pause)

    def _count(self, outcome: _Outcome) -> None:
        if isinstance(outcome, TaskSucceeded):
            self._stats.succeeded += 1
            level = logging.DEBUG  # routine; failures and retries explain themselves
        elif isinstance(outcome, RetryScheduled):
            self._stats.retries_scheduled += 1
            level = logging.INFO
        else:
            self._stats.failed += 1
            if outcome.reason == "cancelled":
                self._stats.cancelled += 1
            level = logging.WARNING
        if log.isEnabledFor(level):
            log.log(level, "%s", describe_event(outcome), extra=event_log_fields(outcome))


def _due_of(msg: Msg, sequence: int) -> TaskDue:
    """The ``TaskDue`` in ``msg``; `BadInputError` when it is not one."""
    try:
        event: Event = read_event(msg.subject, msg.data, msg.headers)
    except EventDecodeError as error:
        raise BadInputError(msg.subject, sequence, str(error)) from None
    if not isinstance(event, TaskDue):
        raise BadInputError(
            msg.subject, sequence, f"expected a task.due.v1 event, got {event_type(event)}"
        )
    return event


async def _settle(
    delivery: Delivery, how: Literal["ack", "term", "nak"], *, delay: float = 1.0
) -> None:
    """Answer the message; marked first, so that no heartbeat follows the answer."""
    delivery.settled = True
    if how == "ack":
        await delivery.msg.ack()
    elif how == "term":
        await delivery.msg.term()
    else:
        await delivery.msg.nak(delay=delay)
