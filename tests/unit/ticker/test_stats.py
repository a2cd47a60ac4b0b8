"""The ticker's lateness histogram: Prometheus's bucket rule (at or under the bound)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from ticker import Histogram


def test_a_value_on_a_bound_counts_in_that_bucket() -> None:
    histogram = Histogram(bounds=(0.01, 0.1, 1.0))
    for value in (0.0, 0.01, 0.05, 0.1, 0.5, 3.0):
        histogram.observe(value)
    assert histogram.cumulative() == [(0.01, 2), (0.1, 4), (1.0, 5), (math.inf, 6)]
    assert histogram.count == 6
    assert math.isclose(histogram.total, 3.66)


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=50))
def test_cumulative_counts_match_a_direct_count(values: list[float]) -> None:
    histogram = Histogram()
    for value in values:
        histogram.observe(value)
    for bound, count in histogram.cumulative():
        assert count == sum(1 for value in values if value <= bound)
