"""A small kit for services that subscribe to task events (no dependency on any service)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from contracts.errors import EventDecodeError
from contracts.events import Event, decode, event_type
from contracts.headers import EVENT_TYPE
from contracts.subjects import EventKind, subject_filter


def decode_message(data: bytes, headers: Mapping[str, str] | None = None) -> Event:
    """Decode a message body into its event; check the type header agrees when present.

    Raises `EventDecodeError` (or its subclass `UnknownEventTypeError`) for anything that is
    not a known event: log it and terminate the message rather than retrying it.
    """
    event = decode(data)
    declared = (headers or {}).get(EVENT_TYPE)
    if declared is not None and declared != event_type(event):
        raise EventDecodeError(
            f"header {EVENT_TYPE} says {declared!r} but the body is {event_type(event)!r}"
        )
    return event


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
