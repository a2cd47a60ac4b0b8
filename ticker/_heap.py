"""A heap of next fire instants: O(log n) to add, move or take a task, whatever n is."""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class FireHeap(Generic[K]):
    """At most one pending instant per key; moving a key leaves its old entry to be skipped."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._live: dict[K, int] = {}
        self._counter = 0

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def push(self, key: K, when: float) -> bool:
        """Set ``key``'s instant (epoch seconds); return whether it is now the earliest."""
        self._counter += 1
        self._live[key] = self._counter
        heapq.heappush(self._heap, (when, self._counter, key))
        if len(self._heap) > 2 * len(self._live) + 1024:
            self._compact()
        self.next_at()  # drops stale entries from the top
        return self._heap[0][1] == self._counter

    def discard(self, key: K) -> None:
        """Forget ``key``'s instant, if any."""
        self._live.pop(key, None)

    def next_at(self) -> float | None:
        """The earliest pending instant, or ``None`` when nothing is pending."""
        heap = self._heap
        while heap and self._live.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[tuple[float, K]]:
        """Take every key whose instant is at or before ``now``: (instant, key), earliest first."""
        heap, live = self._heap, self._live
        due: list[tuple[float, K]] = []
        while heap and heap[0][0] <= now:
            when, counter, key = heapq.heappop(heap)
            if live.get(key) == counter:
                del live[key]
                due.append((when, key))
        return due

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if self._live.get(entry[2]) == entry[1]]
        heapq.heapify(self._heap)
