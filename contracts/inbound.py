"""Reading one message of the stream as untrusted input: the subject is the authority.

Broker permissions are granted by subject (``dvp.tasks.<tenant>.<kind>.<task_id>``), so the
subject is what a publisher was allowed to write. A body that names another tenant, another
task or another kind than its subject is forged or broken, and so is one whose type header
disagrees with it: `read_event` refuses both, and anything `event_problem` finds, with an
`EventDecodeError` that every reader logs, counts and skips.
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts.errors import EventDecodeError, InvalidIdentifierError
from contracts.events import Event, decode, event_kind, event_type
from contracts.headers import EVENT_TYPE
from contracts.subjects import SubjectParts, parse_subject
from contracts.validation import event_problem


class SubjectMismatchError(EventDecodeError):
    """The body of a message names another tenant, kind or task than its subject."""


class InvalidEventError(EventDecodeError):
    """A well-formed event whose values no step could act on (see `event_problem`)."""


def read_event(
    subject: str | bytes,
    data: bytes | bytearray | memoryview | str,
    headers: Mapping[str, str] | None = None,
    *,
    parts: SubjectParts | None = None,
) -> Event:
    """The event a stream message holds, checked against its subject (and its type header,
    when given); raise `EventDecodeError` (or a subclass) for anything else. ``parts``: the
    subject as `parse_subject` took it apart, for a caller that did so already."""
    subject_text = subject.decode(errors="replace") if isinstance(subject, bytes) else subject
    if parts is None:
        try:
            parts = parse_subject(subject_text)
        except InvalidIdentifierError as error:
            raise SubjectMismatchError(f"not an event subject: {error}") from None
    event = decode(data)
    kind = event_kind(event)
    if (event.tenant_id, kind, event.task_id) != parts:
        raise SubjectMismatchError(
            f"the body ({event_type(event)} of tenant {event.tenant_id!r}, task "
            f"{event.task_id!r}) does not match its subject {subject_text!r} (tenant "
            f"{parts.tenant_id!r}, kind {parts.kind.value!r}, task {parts.task_id!r}); only the "
            "subject's tenant may publish there, so the message is ignored"
        )
    declared = (headers or {}).get(EVENT_TYPE)
    if declared is not None and declared != event_type(event):
        raise SubjectMismatchError(
            f"header {EVENT_TYPE} says {declared!r} but the body is {event_type(event)!r}"
        )
    problem = event_problem(event)
    if problem is not None:
        raise InvalidEventError(f"{event_type(event)} on {subject_text!r}: {problem}")
    return event
