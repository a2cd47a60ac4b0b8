"""A small kit for services that subscribe to task events (no dependency on any service)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from contracts.events import Event
from contracts.inbound import read_event
from contracts.subjects import EventKind, subject_filter


def decode_message(subject: str, data: bytes, headers: Mapping[str, str] | None = None) -> Event:
    """The event a message on ``subject`` holds, checked as untrusted input.

    The body must name the tenant, kind and task of its subject (the subject is what the
    publisher was allowed to write), the type header must agree when present, and the values
    must be usable. Raises `EventDecodeError` (or a subclass such as `UnknownEventTypeError`)
    for anything else: log it and terminate the message rather than retrying it.
    """
    return read_event(subject, data, headers)


def event_filters(
    tenant_id: str | None = None,
    kinds: Iterable[EventKind] = (),
    task_id: str | None = None,
) -> list[str]:
    """Subject filters for a consumer (``filter_subjects``): one per kind, or one for all.

    ``event_filters("acme", [EventKind.FAILED, EventKind.SKIPPED])`` is
    ``["dvp.tasks.acme.failed.>", "dvp.tasks.acme.skipped.>"]``.
    """
    chosen = list(dict.fromkeys(kinds))
    if not chosen:
        return [subject_filter(tenant_id, None, task_id)]
    return [subject_filter(tenant_id, kind, task_id) for kind in chosen]
