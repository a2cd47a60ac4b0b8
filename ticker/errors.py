"""Errors the ticker raises.

A ticker whose loop failed stops, and leaving its ``async with`` block raises
`natsio.errors.ServiceFailedError` with that loop's error as the cause, as every service does.
"""

from __future__ import annotations

from contracts.errors import SchedulerError
from natsio.errors import ServiceStartupError


class TickerError(SchedulerError):
    """Root of every error the ticker raises on purpose."""


class TickerStartupError(TickerError, ServiceStartupError, TimeoutError):
    """The ticker could not read the stream's state in time to start firing."""
