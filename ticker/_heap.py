"""A heap of next fire instants: O(log n) to add, move or take a task, whatever n is."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class FireHeap(Generic[K]):
    """At most one pending instant per key; moving a key leaves its old entry to be skipped.

    It also counts the keys pending at each instant (`count_at`): how large a burst is, which
    tells how early it must be got ready; and it keeps the instants where ``burst_from`` keys
    or more are pending (`next_burst`), so that a burst behind a steady stream of single fires
    is seen before it is at the head.
    """

    def __init__(self, burst_from: int = 50) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._live: dict[K, tuple[int, float]] = {}
        self._at: dict[float, int] = {}
        self._counter = 0
        self._burst_from = burst_from
        self._bursts: list[float] = []
        """Instants that reached ``burst_from`` keys (a heap; one that fell below is skipped)."""

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def count_at(self, when: float) -> int:
        """How many keys are pending at exactly ``when``."""
        return self._at.get(when, 0)

    def push(self, key: K, when: float) -> bool:
        """Set ``key``'s instant (epoch seconds); return whether it is now the earliest."""
        self._counter += 1
        self._forget(key)
        self._live[key] = (self._counter, when)
        count = self._at[when] = self._at.get(when, 0) + 1
        if count == self._burst_from:
            heapq.heappush(self._bursts, when)
        heapq.heappush(self._heap, (when, self._counter, key))
        if len(self._heap) > 2 * len(self._live) + 1024:
            self._compact()
        self.next_at()  # drops stale entries from the top
        return self._heap[0][1] == self._counter

    def discard(self, key: K) -> None:
        """Forget ``key``'s instant, if any."""
        self._forget(key)

    def next_at(self) -> float | None:
        """The earliest pending instant, or ``None`` when nothing is pending."""
        heap = self._heap
        while heap and not self._is_live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[tuple[float, K]]:
        """Take every key whose instant is at or before ``now``: (instant, key), earliest first."""
        heap = self._heap
        due: list[tuple[float, K]] = []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._is_live(entry):
                when, _, key = entry
                self._forget(key)
                due.append((when, key))
        return due

    def next_burst(self) -> float | None:
        """The earliest instant with at least ``burst_from`` keys pending, or ``None``."""
        bursts = self._bursts
        while bursts and self._at.get(bursts[0], 0) < self._burst_from:
            heapq.heappop(bursts)
        return bursts[0] if bursts else None

    def take_at(self, when: float) -> list[K]:
        """Take every key pending at exactly ``when``, wherever it is in the heap.

        A pass over all pending keys: for the few instants a burst falls on, not per fire.
        """
        keys = [key for key, (_, at) in self._live.items() if at == when]
        for key in keys:
            self._forget(key)
        return keys

    def _is_live(self, entry: tuple[float, int, K]) -> bool:
        live = self._live.get(entry[2])
        return live is not None and live[0] == entry[1]

    def _forget(self, key: K) -> None:
        old = self._live.pop(key, None)
        if old is not None:
            remaining = self._at[old[1]] - 1
            if remaining:
                self._at[old[1]] = remaining
            else:
                del self._at[old[1]]

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if self._is_live(entry)]
        heapq.heapify(self._heap)


def take_ready_batches(
    heap: FireHeap[K], now: float, ahead: Callable[[int], float]
) -> list[tuple[float, list[K]]]:
    """Take off ``heap`` the batches to get ready by ``now``: (instant, keys) for each instant
    whose ``instant - ahead(count)`` has come, the head's and any burst's behind it."""
    batches: list[tuple[float, list[K]]] = []
    head = heap.next_at()
    while head is not None and head - ahead(heap.count_at(head)) <= now:
        batches.append((head, [key for _, key in heap.pop_due(head)]))
        head = heap.next_at()
    burst = heap.next_burst()
    while burst is not None and burst - ahead(heap.count_at(burst)) <= now:
        batches.append((burst, heap.take_at(burst)))
        burst = heap.next_burst()
    return batches


def next_ready_time(heap: FireHeap[K], ahead: Callable[[int], float]) -> float | None:
    """When the next batch must be got ready (see `take_ready_batches`), or ``None``."""
    times = [
        instant - ahead(heap.count_at(instant))
        for instant in (heap.next_at(), heap.next_burst())
        if instant is not None
    ]
    return min(times) if times else None
