"""Which old messages the ticker reads just before a burst (pure: no broker)."""

from __future__ import annotations

from ticker._firing import sequences_to_touch


def test_a_burst_touches_one_old_sequence_per_bucket_and_none_of_the_newest() -> None:
    last = [5, 7, 999, 1_000, 1_500, 2_001, 0, 9_600, 9_990]
    # The newest 500 of 10,000 (9,501 on) are in blocks being written; 0 is no message.
    assert sequences_to_touch(last, 10_000, bucket=1_000, recent=500) == [5, 1_000, 2_001]
    assert sequences_to_touch(last, 10_000, bucket=1_000, recent=20_000) == []
    assert sequences_to_touch([], 10_000) == []
