"""Subject names: ``dvp.tasks.<tenant>.<kind>.<task_id>``.

The tenant and the event kind come before the task id, so that a dotted task id stays whole at
the end and can be matched with ``>``: all due events are ``dvp.tasks.*.due.>``; one task's
whole history is ``dvp.tasks.acme.*.cleanup.temp-files``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, NamedTuple

from contracts.errors import InvalidIdentifierError
from contracts.identifiers import validate_task_id, validate_tenant_id

PREFIX: Final = "dvp.tasks"
"""Every dvp-scheduler subject starts with this."""

ALL_EVENTS: Final = f"{PREFIX}.>"
"""Filter matching every event of every tenant."""


class EventKind(StrEnum):
    """The kind token of a subject; one per event type."""

    REGISTERED = "registered"
    UNREGISTERED = "unregistered"
    PAUSED = "paused"
    RESUMED = "resumed"
    DUE = "due"
    SKIPPED = "skipped"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    FAILED = "failed"
    CANCEL = "cancel"
    SCHEDULED = "scheduled"


ALL_DUE: Final = f"{PREFIX}.*.{EventKind.DUE}.>"
"""Filter matching every ``TaskDue`` of every tenant: what executors consume."""

DEFINITION_KINDS: Final = (
    EventKind.REGISTERED,
    EventKind.UNREGISTERED,
    EventKind.PAUSED,
    EventKind.RESUMED,
)
"""Kinds that change a task's definition or status (what the ticker follows)."""


class SubjectParts(NamedTuple):
    """A subject taken apart."""

    tenant_id: str
    kind: EventKind
    task_id: str


def subject(tenant_id: str, kind: EventKind, task_id: str) -> str:
    """The subject of one event: ``dvp.tasks.<tenant>.<kind>.<task_id>``."""
    validate_tenant_id(tenant_id)
    validate_task_id(task_id)
    return f"{PREFIX}.{tenant_id}.{kind.value}.{task_id}"


def subject_filter(
    tenant_id: str | None = None,
    kind: EventKind | None = None,
    task_id: str | None = None,
) -> str:
    """A subscription filter; each part left out matches anything.

    ``subject_filter("acme", EventKind.FAILED)`` is ``dvp.tasks.acme.failed.>``.
    """
    tenant = "*" if tenant_id is None else validate_tenant_id(tenant_id)
    kind_token = "*" if kind is None else kind.value
    task = ">" if task_id is None else validate_task_id(task_id)
    return f"{PREFIX}.{tenant}.{kind_token}.{task}"


_PREFIX_TOKENS: Final = tuple(PREFIX.split("."))
_KINDS: Final = {kind.value: kind for kind in EventKind}
"""Kind token to kind: a dict lookup, cheaper than ``EventKind(token)`` (every message read)."""


def parse_subject(value: str) -> SubjectParts:
    """Take a concrete event subject apart; raise `InvalidIdentifierError` if it is not one."""
    parts = value.split(".", 4)
    if len(parts) != 5 or (parts[0], parts[1]) != _PREFIX_TOKENS:
        raise InvalidIdentifierError(
            f"subject {value!r} is not of the form {PREFIX}.<tenant>.<kind>.<task_id>"
        )
    _, _, tenant_id, kind_token, task_id = parts
    kind = _KINDS.get(kind_token)
    if kind is None:
        known = ", ".join(k.value for k in EventKind)
        raise InvalidIdentifierError(
            f"subject {value!r} has unknown kind {kind_token!r}; known kinds: {known}"
        )
    return SubjectParts(validate_tenant_id(tenant_id), kind, validate_task_id(task_id))
