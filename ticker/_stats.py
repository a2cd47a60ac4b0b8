"""What a ticker counts: for its logs, for tests, and for the metrics endpoint."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Final

LATENESS_BOUNDS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the fire-lateness histogram's buckets."""


@dataclass(slots=True)
class Histogram:
    """How many observations fell at or under each bound (and above the last), and their sum."""

    bounds: tuple[float, ...] = LATENESS_BOUNDS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        """How many observations there were."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(bound, observations at or under it) for each bound, then (infinity, all of them)."""
        running = 0
        result: list[tuple[float, int]] = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            result.append((bound, running))
        return result


@dataclass(slots=True)
class TickerStats:
    """Counters of one ticker's life: plain numbers and one histogram, all a metrics reader
    needs (``Ticker.stats``)."""

    tasks: int = 0
    """Tasks this ticker knows of (registered or not)."""
    due_published: int = 0
    skipped_published: int = 0
    lost_closed: int = 0
    """Attempts this ticker closed as lost (no outcome long past their deadline)."""
    cancels_closed: int = 0
    """Executions waiting for a retry that this ticker ended because an operator cancelled
    them."""
    runs_taken_off: int = 0
    """One-off runs (``trigger --at``) this ticker took off their task's list once fired."""
    duplicates: int = 0
    conflicts: int = 0
    publish_errors: int = 0
    held_disconnected: int = 0
    """Fires not sent because the connection was down (decided again after it came back)."""
    bad_messages: int = 0
    invalid_registrations: int = 0
    """Registrations read that break the registration rules (each logged once)."""
    invalid_tasks: int = 0
    """Tasks whose newest registration is invalid: never scheduled until a valid one comes."""
    retries_held: int = 0
    blocks_touched: int = 0
    """Messages asked for ahead of a burst so that the server had their blocks in memory for
    the burst's guards (`natsio.publish.AckedPublisher.touch`)."""
    startup_seconds: float | None = None
    fire_lateness: Histogram = field(default_factory=Histogram)
    """Seconds from each on-time fire's instant (after its jitter) to the stream's
    acknowledgement of its ``TaskDue``."""
