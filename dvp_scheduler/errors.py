"""Errors of the command line and its embedded broker."""

from __future__ import annotations

from contracts.errors import SchedulerError


class NatsServerError(SchedulerError, RuntimeError):
    """The embedded nats-server could not be found, started or reached."""


class NatsUnreachableError(SchedulerError, ConnectionError):
    """A command could not connect to NATS (down, wrong address, or refused credentials)."""


class MetricsError(SchedulerError, OSError):
    """The metrics endpoint could not listen on its address."""


class StreamMissingError(SchedulerError, LookupError):
    """The stream does not exist (yet) where a command looked for it."""


class SettingsError(SchedulerError, ValueError):
    """A flag or environment variable has a value the service's settings refuse."""
