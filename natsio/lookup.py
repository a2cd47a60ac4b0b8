"""Reads of single messages by subject: the last message of a subject, and where one task
stands (registered, unregistered, paused) as the last message of each control subject says."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from contracts.errors import EventDecodeError
from contracts.events import Event, TaskRegistered, TaskUnregistered
from contracts.inbound import read_event
from contracts.stream import STREAM_NAME
from contracts.subjects import EventKind, subject

log = logging.getLogger("dvp_scheduler.natsio")

_USER_INFO_SECONDS = 1.0


async def last_message(
    js: JetStreamContext, subject_name: str, *, direct: bool = True
) -> RawStreamMsg | None:
    """The stream's last message on ``subject_name``, ``None`` if it has none.

    ``direct`` (the default) reads it from any replica with a direct get by subject, which a
    tenant's grants allow; ``False`` asks the leader, whose API takes the subject in the body.
    """
    try:
        return await js.get_last_msg(STREAM_NAME, subject_name, direct=direct)
    except NotFoundError:
        return None


async def messages_after(
    js: JetStreamContext, subject_name: str, after: int, *, limit: int
) -> AsyncIterator[RawStreamMsg]:
    """The stream's messages on ``subject_name`` after sequence ``after``, oldest first, at
    most ``limit`` of them: one get by sequence each, from the leader (which the ticker's and
    the admin's grants allow, a tenant's do not)."""
    sequence = after + 1
    for _ in range(limit):
        try:
            raw = await js.get_msg(STREAM_NAME, seq=sequence, subject=subject_name, next=True)
        except NotFoundError:
            return
        yield raw
        sequence = int(raw.seq or 0) + 1


def decode_stored(raw: RawStreamMsg) -> Event | None:
    """The event a stored message holds; ``None`` (logged) for one that is not an event or
    that its subject does not allow (`contracts.inbound.read_event`)."""
    try:
        return read_event(raw.subject or "", raw.data or b"", raw.headers)
    except EventDecodeError as error:
        log.warning("ignoring message %s on %s: %s", raw.seq, raw.subject, error)
        return None


@dataclass(frozen=True)
class TaskStanding:
    """Where one task stands, from the last message on each of its control subjects.

    A sequence is 0 where the subject holds nothing; ``paused_sequence`` and
    ``resumed_sequence`` are 0 too when they were not asked for.
    """

    tenant_id: str
    task_id: str
    registration: TaskRegistered | None
    unregistration: TaskUnregistered | None
    registered_sequence: int
    unregistered_sequence: int
    paused_sequence: int = 0
    resumed_sequence: int = 0

    @property
    def known(self) -> bool:
        """Whether the task was ever registered or unregistered."""
        return self.registration is not None or self.unregistration is not None

    @property
    def registered(self) -> bool:
        """Whether its newest registration is newer than its newest unregistration."""
        return (
            self.registration is not None and self.registered_sequence > self.unregistered_sequence
        )

    @property
    def paused(self) -> bool:
        """Whether its newest pause is newer than its newest resume."""
        return self.paused_sequence > self.resumed_sequence


async def connection_user(nc: Client) -> str | None:
    """The user the server authenticated this connection as (``$SYS.REQ.USER.INFO``), or
    ``None`` when the server does not say (no authentication, or no grant to ask)."""
    try:
        reply = await nc.request("$SYS.REQ.USER.INFO", b"", timeout=_USER_INFO_SECONDS)
        user = json.loads(reply.data).get("data", {}).get("user")
    except (nats.errors.Error, TimeoutError, ValueError, AttributeError):
        return None
    return user if isinstance(user, str) and user else None


async def read_task_standing(
    js: JetStreamContext,
    tenant_id: str,
    task_id: str,
    *,
    with_pause: bool = True,
    direct: bool = True,
) -> TaskStanding:
    """Read where ``tenant_id``'s task ``task_id`` stands: two direct gets, four with the pause
    state (``with_pause``)."""

    async def last(kind: EventKind) -> tuple[int, Event | None]:
        raw = await last_message(js, subject(tenant_id, kind, task_id), direct=direct)
        event = decode_stored(raw) if raw is not None else None
        if raw is None or event is None:
            return 0, None  # a message the services skip (forged, broken) counts for nothing
        return int(raw.seq or 0), event

    registered_seq, registration = await last(EventKind.REGISTERED)
    unregistered_seq, unregistration = await last(EventKind.UNREGISTERED)
    paused_seq = resumed_seq = 0
    if with_pause:
        paused_seq, _ = await last(EventKind.PAUSED)
        resumed_seq, _ = await last(EventKind.RESUMED)
    return TaskStanding(
        tenant_id=tenant_id,
        task_id=task_id,
        registration=registration if isinstance(registration, TaskRegistered) else None,
        unregistration=unregistration if isinstance(unregistration, TaskUnregistered) else None,
        registered_sequence=registered_seq,
        unregistered_sequence=unregistered_seq,
        paused_sequence=paused_seq,
        resumed_sequence=resumed_seq,
    )
