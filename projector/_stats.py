"""What a projector counts, in one shape: for its logs, for tests and for the metrics endpoint."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ProjectorStats:
    """A snapshot of one projector's numbers (``Projector.stats`` makes a fresh one)."""

    sequence: int = 0
    """The last stream sequence folded in."""
    tasks: int = 0
    """Tasks the read model holds (registered or not)."""
    events_applied: int = 0
    """Events folded in."""
    unknown_events: int = 0
    """Events of a type or version this code does not know, skipped (all types together)."""
    invalid_messages: int = 0
    """Messages that are not events at all, skipped."""
    failed_messages: int = 0
    """Messages whose folding raised (a bug), logged and skipped."""
    invalid_tasks: int = 0
    """Registered tasks whose newest registration breaks the registration rules: shown as
    ``invalid``, never scheduled."""
