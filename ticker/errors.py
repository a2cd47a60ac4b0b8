"""Errors the ticker raises."""

from __future__ import annotations

from contracts.errors import SchedulerError


class TickerError(SchedulerError):
    """Root of every error the ticker raises on purpose."""


class TickerStartupError(TickerError, TimeoutError):
    """The ticker could not read the stream's state in time to start firing."""
