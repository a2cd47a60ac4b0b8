"""JetStream's error codes that the services act on, and the errors of the NATS layer."""

from __future__ import annotations

from typing import Final

from nats.js.errors import APIError

from contracts.errors import SchedulerError

WRONG_LAST_SEQUENCE: Final = 10071
"""``Nats-Expected-Last-Subject-Sequence`` did not match: another writer got there first."""


def is_guard_refusal(error: BaseException) -> bool:
    """Whether ``error`` is the stream refusing a guarded publish because another writer won
    the race (an ordinary outcome with several writers, not a failure)."""
    return isinstance(error, APIError) and error.err_code == WRONG_LAST_SEQUENCE


class ProvisioningError(SchedulerError):
    """The stream or a consumer could not be created or read."""


class ServiceError(SchedulerError):
    """Root of the errors of a service's lifecycle (`natsio.service.NatsService`)."""


class ServiceStartupError(ServiceError):
    """A service cannot start: NATS is unreachable, or the stream cannot be read or made."""


class ServiceNotRunningError(ServiceError, RuntimeError):
    """A service was used outside its ``async with`` block."""


class ServiceFailedError(ServiceError):
    """A service's background loop failed, which stopped the service; the loop's error is the
    ``__cause__``."""
