"""Errors of the projector and of the read-side commands."""

from __future__ import annotations

from contracts.errors import SchedulerError, UnknownTaskError

__all__ = [
    "AmbiguousExecutionError",
    "AmbiguousTaskError",
    "CheckpointError",
    "ProjectorError",
    "QueryError",
    "UnknownExecutionError",
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


class UnknownExecutionError(ProjectorError, LookupError):
    """No task's history holds an execution of that id (in that tenant, or in any)."""

    def __init__(self, execution_id: str, tenant_id: str | None) -> None:
        where = f"tenant {tenant_id!r}" if tenant_id else "any tenant"
        super().__init__(
            f"no execution {execution_id!r} in the history of {where}: find it with "
            "'dvp-scheduler failures' or 'dvp-scheduler history TASK_ID'"
        )
        self.execution_id = execution_id
        self.tenant_id = tenant_id


class AmbiguousExecutionError(ProjectorError, LookupError):
    """An execution id names executions of several tasks and no tenant narrowed it to one."""

    def __init__(self, execution_id: str, tasks: list[str]) -> None:
        super().__init__(
            f"execution {execution_id!r} exists in {', '.join(tasks)}: pass --tenant to choose one"
        )
        self.execution_id = execution_id
        self.tasks = tasks


class CheckpointError(ProjectorError):
    """A checkpoint cannot be read or does not belong to this stream; the projector replays."""


class QueryError(ProjectorError):
    """A projector answered a query with an error."""
