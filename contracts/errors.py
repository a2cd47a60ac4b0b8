"""Errors shared by every dvp-scheduler package."""

from __future__ import annotations


class SchedulerError(Exception):
    """Root of every error dvp-scheduler raises on purpose."""


class InvalidIdentifierError(SchedulerError, ValueError):
    """A tenant id or task id cannot be used as a NATS subject token."""


class ScheduleError(SchedulerError, ValueError):
    """A schedule is malformed: bad cron, unknown time zone, bad interval."""


class EventDecodeError(SchedulerError, ValueError):
    """A message body is not a known dvp-scheduler event."""
