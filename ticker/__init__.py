"""The ticker: turns task definitions into ``TaskDue`` at each fire instant, and
``RetryScheduled`` into the next attempt's ``TaskDue`` at ``retry_at``.

`Ticker` is the service; the decisions it takes are pure functions (`decide`,
`next_due_instant`, `retry_due`) of a `TaskState` folded from the stream by `apply_event`.
"""

from ticker._heap import FireHeap
from ticker._policy import (
    ON_TIME_GRACE_SECONDS,
    DueFires,
    TaskState,
    apply_event,
    decide,
    fires_between,
    jitter_offset,
    next_due_instant,
    retry_due,
)
from ticker._service import Ticker
from ticker._stats import Histogram, TickerStats
from ticker.errors import TickerError, TickerStartupError
from ticker.settings import TickerSettings

__all__ = [
    "ON_TIME_GRACE_SECONDS",
    "DueFires",
    "FireHeap",
    "Histogram",
    "TaskState",
    "Ticker",
    "TickerError",
    "TickerSettings",
    "TickerStartupError",
    "TickerStats",
    "apply_event",
    "decide",
    "fires_between",
    "jitter_offset",
    "next_due_instant",
    "retry_due",
]
