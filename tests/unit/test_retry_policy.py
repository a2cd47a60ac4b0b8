"""The retry policy: default backoff, plugin decisions, and the max_retries ceiling."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import GiveUp, Retry, RetryDecision, default_backoff_seconds, resolve_retry

FAILED_AT = datetime(2026, 11, 24, 3, tzinfo=UTC)
jitters = st.floats(0, 1, exclude_max=True)


def plugin(**fields: object) -> RetryDecision:
    return RetryDecision(source="plugin", plugin="p", plugin_version="1", **fields)  # type: ignore[arg-type]


@given(max_retries=st.integers(0, 12), jitter=jitters)
def test_default_policy_retries_exactly_max_retries_times_with_growing_delays(
    max_retries: int, jitter: float
) -> None:
    delays = []
    attempt = 1
    while True:
        outcome = resolve_retry(
            attempt=attempt,
            max_retries=max_retries,
            failed_at=FAILED_AT,
            decision=None,
            jitter=jitter,
        )
        if isinstance(outcome, GiveUp):
            assert outcome.reason == "exhausted"
            assert outcome.decision.source == "default"
            break
        assert outcome.next_attempt == attempt + 1
        assert outcome.retry_at == FAILED_AT + timedelta(seconds=outcome.delay_seconds)
        delays.append(outcome.delay_seconds)
        attempt += 1
    assert len(delays) == max_retries
    assert all(a <= b for a, b in itertools.pairwise(delays))


@given(attempt=st.integers(1, 100), jitter=jitters)
def test_backoff_is_bounded_and_jittered_within_half_a_step(attempt: int, jitter: float) -> None:
    delay = default_backoff_seconds(attempt, jitter)
    step = min(3600.0, 10.0 * 2 ** (attempt - 1))
    assert step / 2 <= delay <= step


def test_backoff_doubles() -> None:
    assert [default_backoff_seconds(n, 0.0) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_are_one_based(attempt: int) -> None:
    with pytest.raises(ValueError, match="1-based"):
        default_backoff_seconds(attempt, 0.5)


def test_a_plugin_delay_is_used_as_given() -> None:
    outcome = resolve_retry(
        attempt=1,
        max_retries=3,
        failed_at=FAILED_AT,
        decision=plugin(should_retry=True, delay_seconds=300, reason="rate limited"),
        jitter=0.9,
    )
    assert isinstance(outcome, Retry)
    assert outcome.retry_at == FAILED_AT + timedelta(seconds=300)
    assert outcome.decision.reason == "rate limited"


def test_abort_ends_at_once_even_with_retries_left() -> None:
    outcome = resolve_retry(
        attempt=1,
        max_retries=5,
        failed_at=FAILED_AT,
        decision=plugin(should_retry=False, abort_remaining=True, reason="auth"),
        jitter=0.0,
    )
    assert outcome == GiveUp(
        reason="aborted", decision=plugin(should_retry=False, abort_remaining=True, reason="auth")
    )


def test_a_plugin_saying_no_declines() -> None:
    outcome = resolve_retry(
        attempt=1,
        max_retries=5,
        failed_at=FAILED_AT,
        decision=plugin(should_retry=False),
        jitter=0.0,
    )
    assert isinstance(outcome, GiveUp)
    assert outcome.reason == "declined"


def test_no_decision_can_exceed_max_retries() -> None:
    outcome = resolve_retry(
        attempt=3,
        max_retries=2,
        failed_at=FAILED_AT,
        decision=plugin(should_retry=True, delay_seconds=1),
        jitter=0.0,
    )
    assert isinstance(outcome, GiveUp)
    assert outcome.reason == "exhausted"
