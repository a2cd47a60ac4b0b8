"""Errors shared by every dvp-scheduler package."""

from __future__ import annotations


def preview(value: object, limit: int = 40) -> str:
    """``value``'s repr for an error message, cut to ``limit`` characters: the value may be
    anything an untrusted caller sent, and long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


class SchedulerError(Exception):
    """Root of every error dvp-scheduler raises on purpose."""


class InvalidIdentifierError(SchedulerError, ValueError):
    """A tenant id or task id cannot be used as a NATS subject token."""


class ScheduleError(SchedulerError, ValueError):
    """A schedule is malformed: bad cron, unknown time zone, bad interval."""


class EventDecodeError(SchedulerError, ValueError):
    """A message body is not a known dvp-scheduler event."""


class UnknownTaskError(SchedulerError, LookupError):
    """No registered task has that id (in that tenant, or in any tenant)."""

    def __init__(self, task_id: str, tenant_id: str | None, state: str = "") -> None:
        where = f"tenant {tenant_id!r}" if tenant_id else "any tenant"
        problem = (
            f"task {task_id!r} {state} for {where}" if state else f"no task {task_id!r} in {where}"
        )
        super().__init__(f"{problem}: list the known ones with 'dvp-scheduler tasks'")
        self.task_id = task_id
        self.tenant_id = tenant_id
