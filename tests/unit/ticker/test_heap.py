"""The heap of next fire instants."""

from __future__ import annotations

import random

from ticker import FireHeap


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
