"""Errors of the projector and of the read-side commands."""

from __future__ import annotations

from contracts.errors import SchedulerError, UnknownTaskError

__all__ = [
    "AmbiguousTaskError",
    "CheckpointError",
    "ProjectorError",
    "QueryError",
    "UnknownTaskError",
]


class ProjectorError(SchedulerError):
    """Root of every error the projector raises on purpose."""


class AmbiguousTaskError(ProjectorError, LookupError):
    """A task id names tasks in several tenants and no tenant was given."""

    def __init__(self, task_id: str, tenants: list[str]) -> None:
        super().__init__(
            f"task {task_id!r} exists in tenants {', '.join(tenants)}: pass --tenant to choose one"
        )
        self.task_id = task_id
        self.tenants = tenants


class CheckpointError(ProjectorError):
    """A checkpoint cannot be read or does not belong to this stream; the projector replays."""


class QueryError(ProjectorError):
    """A projector answered a query with an error."""
