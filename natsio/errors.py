"""JetStream's error codes that the services act on, and the errors of the NATS layer."""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from nats.js.errors import APIError

from contracts.errors import SchedulerError

STREAM_NOT_FOUND: Final = 10059
"""The stream does not exist."""

WRONG_LAST_SEQUENCE: Final = 10071
"""``Nats-Expected-Last-Subject-Sequence`` did not match: another writer got there first."""

LAST_SEQUENCE_IN_FLIGHT: Final = 10164
"""On a replicated stream: another write on the guarded subjects is still being agreed on, so
the guard cannot be checked; that write is the winner's (the server says only "wrong last
sequence", without the number)."""

DUPLICATE_IN_FLIGHT: Final = 10158
"""On a replicated stream: a message with the same ``Nats-Msg-Id`` (the same decision, by
another writer) is still being agreed on."""

IN_FLIGHT_SETTLE_SECONDS: Final = 0.2
"""How long a writer that lost an in-flight race (`winning_sequence` is ``None``) waits before
it looks again, so that the winner's write has landed."""

_LOST_RACE: Final = frozenset({WRONG_LAST_SEQUENCE, LAST_SEQUENCE_IN_FLIGHT, DUPLICATE_IN_FLIGHT})


def is_guard_refusal(error: BaseException) -> bool:
    """Whether ``error`` is the stream refusing a guarded publish because another writer won
    the race (an ordinary outcome with several writers, not a failure): 10071 on any stream,
    and on a replicated one also 10164 and 10158, which the leader answers while the winner's
    write is still in flight."""
    return isinstance(error, APIError) and error.err_code in _LOST_RACE


_ACTUAL_SEQUENCE: Final = re.compile(r"wrong last sequence: (\d+)")


def winning_sequence(error: APIError) -> int | None:
    """The sequence the stream holds instead of the expected one, when the refusal names it
    (10071 does; the in-flight refusals do not)."""
    if error.err_code != WRONG_LAST_SEQUENCE:
        return None
    found = _ACTUAL_SEQUENCE.search(error.description or "")
    return int(found.group(1)) if found else None


class PermissionRefusal(NamedTuple):
    """The server refused this client a publish or a subscription its user has no grant for."""

    operation: str
    """``publish`` or ``subscribe``."""
    subject: str
    """As nats-py reports it: lower-cased (``$js.api.stream.info.dvp_tasks``)."""

    def explain(self, role: str) -> str:
        """What was refused and how to grant it, for a client acting as ``role``."""
        return (
            f"NATS refused to let this user {self.operation} {self.subject!r}: its permissions "
            f"lack that grant; give it the permissions of the {role} role, printed by "
            f"'dvp-scheduler permissions --role {role}'"
        )


_VIOLATION: Final = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"')


def permission_refusal(error: BaseException) -> PermissionRefusal | None:
    """The refusal ``error`` reports (the server's ``-ERR 'Permissions Violation ...'`` as
    nats-py passes it to the error callback), or ``None`` for any other error."""
    found = _VIOLATION.search(str(error).lower())
    if found is None:
        return None
    operation = "publish" if found.group(1) == "publish" else "subscribe"
    return PermissionRefusal(operation, found.group(2))


class PermissionRefusedError(SchedulerError):
    """A step timed out because the server refused the user a grant it needs."""


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


class TracingSetupError(SchedulerError, ValueError):
    """The ``OTEL_*`` variables ask for tracing this process cannot do (`natsio.tracing`)."""
