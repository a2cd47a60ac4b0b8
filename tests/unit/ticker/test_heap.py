"""The heap of next fire instants."""

from __future__ import annotations

import random

import pytest

from ticker import FireHeap
from ticker._heap import next_ready_time, take_ready_batches


def test_pops_due_keys_earliest_first() -> None:
    heap: FireHeap[str] = FireHeap()
    heap.push("b", 2.0)
    heap.push("a", 1.0)
    heap.push("c", 3.0)
    assert heap.next_at() == 1.0
    assert heap.pop_due(2.5) == [(1.0, "a"), (2.0, "b")]
    assert heap.next_at() == 3.0
    assert len(heap) == 1


def test_moving_a_key_leaves_one_entry() -> None:
    heap: FireHeap[str] = FireHeap()
    heap.push("a", 1.0)
    assert heap.push("a", 5.0) is True  # still the earliest (the only live one)
    assert heap.pop_due(2.0) == []
    assert heap.next_at() == 5.0
    assert heap.pop_due(5.0) == [(5.0, "a")]
    assert heap.next_at() is None


def test_push_reports_a_new_head() -> None:
    heap: FireHeap[str] = FireHeap()
    assert heap.push("a", 5.0)
    assert not heap.push("b", 6.0)
    assert heap.push("c", 4.0)


def test_discarded_keys_never_pop() -> None:
    heap: FireHeap[str] = FireHeap()
    heap.push("a", 1.0)
    heap.push("b", 2.0)
    heap.discard("a")
    assert "a" not in heap
    assert heap.pop_due(10.0) == [(2.0, "b")]


def test_many_moves_stay_compact_and_correct() -> None:
    rng = random.Random(7)
    heap: FireHeap[int] = FireHeap()
    latest: dict[int, float] = {}
    for _ in range(50_000):
        key, when = rng.randrange(500), rng.uniform(0, 1000)
        heap.push(key, when)
        latest[key] = when
    assert len(heap._heap) <= 2 * len(latest) + 1025
    popped = heap.pop_due(1000.0)
    assert sorted(key for _, key in popped) == sorted(latest)
    assert [when for when, _ in popped] == sorted(latest.values())
    assert all(latest[key] == when for when, key in popped)


def test_counts_the_keys_pending_at_each_instant() -> None:
    rng = random.Random(11)
    heap: FireHeap[int] = FireHeap()
    latest: dict[int, float] = {}
    for _ in range(5_000):
        key, when = rng.randrange(300), float(rng.randrange(20))
        if rng.random() < 0.1:
            heap.discard(key)
            latest.pop(key, None)
        else:
            heap.push(key, when)
            latest[key] = when
    for when in range(20):
        expected = sum(1 for w in latest.values() if w == when)
        assert heap.count_at(float(when)) == expected
    popped = heap.pop_due(9.0)
    assert heap.count_at(9.0) == 0
    assert heap.count_at(10.0) == sum(1 for w in latest.values() if w == 10.0)
    assert len(popped) == sum(1 for w in latest.values() if w <= 9.0)


def test_a_burst_behind_single_fires_is_taken_its_lead_ahead_not_when_it_is_at_the_head() -> None:
    """Single fires every 10 ms ahead of a burst of 100 at t=100: at t=98 (the burst's lead of
    2 s) the burst is taken, the single fires stay until their own 0.1 s lead."""
    heap: FireHeap[str] = FireHeap(burst_from=50)
    for n in range(300):
        heap.push(f"single{n}", 97.0 + n * 0.01)  # 97.00 .. 99.99: always ahead of the burst
    for n in range(100):
        heap.push(f"burst{n}", 100.0)

    def ahead(count: int) -> float:
        return 2.0 if count >= 50 else 0.1

    assert next_ready_time(heap, ahead) == pytest.approx(96.9)
    taken = take_ready_batches(heap, 98.0, ahead)
    assert [at for at, _ in taken][-1] == 100.0
    assert sorted(taken[-1][1]) == sorted(f"burst{n}" for n in range(100))
    singles = [key for at, keys in taken[:-1] for key in keys]
    assert singles == [f"single{n}" for n in range(111)]  # 97.00 .. 98.10, by their 0.1 s lead
    assert heap.count_at(100.0) == 0
    assert heap.next_burst() is None
    assert len(heap) == 300 - 111


def test_a_burst_that_shrank_below_the_threshold_is_no_burst_any_more() -> None:
    heap: FireHeap[str] = FireHeap(burst_from=3)
    for key in "abc":
        heap.push(key, 10.0)
    assert heap.next_burst() == 10.0
    heap.push("a", 20.0)  # moved away: two left at 10
    assert heap.next_burst() is None
    assert heap.take_at(10.0) == ["b", "c"]
    assert heap.take_at(10.0) == []
