"""The rules an event read back from the stream must meet before anything acts on it.

The stream is shared: other services and other tenants publish into it, so what comes back is
input, not trusted state. `event_problem` finds the values that would make a later step raise
(an instant no arithmetic can move, a negative count, an attempt beyond any limit);
`registration_problem` applies the rules a plugin's definition met when it was registered, so
a registration that could never have passed them is shown as invalid and never scheduled.
"""

from __future__ import annotations

from contracts.errors import ScheduleError
from contracts.events import Event, TaskRegistered
from contracts.schedule import validate_schedule


def event_problem(event: Event) -> str | None:
    """What makes ``event`` unusable (it is then skipped as bad input), or ``None``.

    The task spec of a ``TaskRegistered`` is not judged here: see `registration_problem`.
    """
    return None


def registration_problem(event: TaskRegistered) -> str | None:
    """Why ``event``'s task definition breaks the registration rules, or ``None``."""
    try:
        validate_schedule(event.spec.schedule)
    except ScheduleError as error:
        return str(error)
    return None
