"""Operators' cancel requests, as the executor hears them: which attempt in flight they cancel.

A ``TaskCancelRequested`` is recorded in the stream like every event, and each executor hears it
as it is published: a plain (core NATS) subscription to ``dvp.tasks.<tenant>.cancel.>`` of each
of its tenants receives every message published there, as the stream stores it, with no consumer
of its own. Every executor of the tenant hears every request, so the one that runs the attempt
acts, whichever it is (docs/design.md, decision 7.13). What it could not hear (a request made
before it started listening, or while its connection was down) it reads from the stream: the
last request of the task, looked up when an attempt may have been asked about before (an
attempt due before the executor listened, or a retry) and for every attempt in flight after a
reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Final

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from contracts import EventDecodeError, EventKind, TaskCancelRequested, TaskDue, subject
from contracts.inbound import read_event
from contracts.outcomes import cancel_applies, cancelled_error
from contracts.subjects import subject_filter
from dvp_cms.plugins.attempts import Failure
from executor.errors import AttemptCancelledError
from natsio.lookup import decode_stored, last_message

log = logging.getLogger("dvp_scheduler.executor")

UNHEARD_MARGIN: Final = timedelta(seconds=60)
"""An attempt due less than this after the executor began to listen (or reconnected) may have
been cancelled while it did not: its task's last request is read from the stream. The margin
covers the skew between the server's clock (the message's time) and ours."""

_REMEMBERED: Final = 10_000
"""Cancel requests heard and kept, newest last, for attempts of their executions still to come."""


class AttemptCancel:
    """The cancel of one attempt in flight: set once a request that applies is heard."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.request: TaskCancelRequested | None = None

    @property
    def requested(self) -> bool:
        """Whether the attempt was cancelled."""
        return self.request is not None

    def fire(self, request: TaskCancelRequested) -> None:
        """Cancel the attempt (the first request counts)."""
        if self.request is None:
            self.request = request
            self._event.set()

    async def wait(self) -> TaskCancelRequested:
        """Wait until the attempt is cancelled; the request."""
        await self._event.wait()
        assert self.request is not None
        return self.request


def cancelled_failure(request: TaskCancelRequested, duration_ms: int, detail: str = "") -> Failure:
    """The failure of an attempt ``request`` ended: error kind ``cancelled``, never retried."""
    error = cancelled_error(request, detail)
    return Failure(error, AttemptCancelledError(error.message), duration_ms)


_Key = tuple[str, str, str]
"""(tenant, task, execution id)."""


class CancelWatch:
    """The cancel requests of the executor's tenants, and the attempts in flight they cancel.

    Args:
        nc: the connection to listen on.
        tenants: the tenants whose requests to hear.
        clock: the current UTC time.
    """

    def __init__(
        self,
        nc: Client,
        tenants: tuple[str, ...],
        clock: Callable[[], datetime],
    ) -> None:
        self._nc = nc
        self._tenants = tenants
        self._clock = clock
        self._subscriptions: list[Subscription] = []
        self._attempts: dict[_Key, tuple[int, AttemptCancel]] = {}
        self._heard: OrderedDict[_Key, TaskCancelRequested] = OrderedDict()
        self._listening_since: datetime | None = None

    async def start(self) -> None:
        """Listen to the tenants' cancel subjects."""
        for tenant_id in self._tenants:
            self._subscriptions.append(
                await self._nc.subscribe(
                    subject_filter(tenant_id, EventKind.CANCEL), cb=self._on_message
                )
            )
        self._listening_since = self._clock()

    async def close(self) -> None:
        """Stop listening."""
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            try:
                await subscription.unsubscribe()
            except Exception:
                log.debug("unsubscribing from cancel requests failed", exc_info=True)

    @contextmanager
    def watch(self, due: TaskDue) -> Iterator[AttemptCancel]:
        """The cancel of ``due``'s attempt while it is in flight; fired at once if a request
        for it was heard already."""
        key = (due.tenant_id, due.task_id, due.execution_id)
        cancel = AttemptCancel()
        heard = self._heard.get(key)
        if heard is not None and cancel_applies(heard, due.execution_id, due.attempt):
            cancel.fire(heard)
        self._attempts[key] = (due.attempt, cancel)
        try:
            yield cancel
        finally:
            if self._attempts.get(key, (0, None))[1] is cancel:
                del self._attempts[key]

    def may_be_unheard(self, due: TaskDue, due_time: datetime) -> bool:
        """Whether a request for ``due``'s attempt may have been made while this executor did
        not listen (``due_time``: when the stream stored the ``TaskDue``)."""
        since = self._listening_since
        return since is None or due.attempt > 1 or due_time < since + UNHEARD_MARGIN

    async def look_up(self, js: JetStreamContext, due: TaskDue, cancel: AttemptCancel) -> None:
        """Fire ``cancel`` if the task's last recorded request applies to ``due``'s attempt
        (one direct get)."""
        raw = await last_message(js, subject(due.tenant_id, EventKind.CANCEL, due.task_id))
        request = decode_stored(raw) if raw is not None else None
        if isinstance(request, TaskCancelRequested) and cancel_applies(
            request, due.execution_id, due.attempt
        ):
            cancel.fire(request)

    def reconnected(self) -> None:
        """Requests made while the connection was down were not heard."""
        self._listening_since = self._clock()

    async def look_up_in_flight(self, js: JetStreamContext) -> None:
        """After a reconnect: the task's last recorded request, for every attempt in flight."""
        for (tenant_id, task_id, execution_id), (attempt, cancel) in list(self._attempts.items()):
            if cancel.requested:
                continue
            raw = await last_message(js, subject(tenant_id, EventKind.CANCEL, task_id))
            request = decode_stored(raw) if raw is not None else None
            if isinstance(request, TaskCancelRequested) and cancel_applies(
                request, execution_id, attempt
            ):
                self._cancel(cancel, request)

    async def _on_message(self, msg: Msg) -> None:
        try:
            request = read_event(msg.subject, msg.data, msg.headers)
        except EventDecodeError as error:
            log.warning(
                "ignoring a message on %s that is no cancel request: %s", msg.subject, error
            )
            return
        if not isinstance(request, TaskCancelRequested):  # the subject allows nothing else
            return
        key = (request.tenant_id, request.task_id, request.execution_id)
        self._heard.setdefault(key, request)  # the first request counts
        self._heard.move_to_end(key)
        if len(self._heard) > _REMEMBERED:
            self._heard.popitem(last=False)
        running = self._attempts.get(key)
        if running is not None and cancel_applies(request, request.execution_id, running[0]):
            self._cancel(running[1], request)

    def _cancel(self, cancel: AttemptCancel, request: TaskCancelRequested) -> None:
        if cancel.requested:
            return
        log.info(
            "cancelling attempt of execution %s (%s/%s) as %s asked%s",
            request.execution_id,
            request.tenant_id,
            request.task_id,
            request.actor or "an operator",
            f": {request.note}" if request.note else "",
        )
        cancel.fire(request)
