"""The retry policy as pure functions.

``max_retries`` is the number of attempts after the first. When attempt N fails, the first
non-``None`` decision of a plugin's ``dvp_task_failed`` wins; without one, the default policy
retries while attempts remain, with exponential backoff and jitter. No decision can exceed
``max_retries``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Literal

import msgspec

DEFAULT_BACKOFF_BASE_SECONDS: Final = 10.0
"""Delay before the second attempt under the default policy (before jitter)."""

DEFAULT_BACKOFF_CAP_SECONDS: Final = 3600.0
"""The default policy never waits longer than this between attempts."""

DecisionSource = Literal["plugin", "default"]
FailureReason = Literal["exhausted", "declined", "aborted", "cancelled"]
"""Why no attempt follows: retries used up, a decision said no, a decision aborted, or an
operator cancelled the execution."""


class RetryDecision(msgspec.Struct, frozen=True, kw_only=True):
    """A retry decision as recorded in events: a plugin's answer, or the default policy's."""

    should_retry: bool
    delay_seconds: float = 0.0
    abort_remaining: bool = False
    reason: str = ""
    source: DecisionSource = "default"
    plugin: str | None = None
    plugin_version: str | None = None


class Retry(msgspec.Struct, frozen=True, kw_only=True):
    """The next attempt runs at ``retry_at``."""

    next_attempt: int
    retry_at: datetime
    delay_seconds: float
    decision: RetryDecision


class GiveUp(msgspec.Struct, frozen=True, kw_only=True):
    """No attempt follows."""

    reason: FailureReason
    decision: RetryDecision


def default_backoff_seconds(
    attempt: int,
    jitter: float,
    *,
    base: float = DEFAULT_BACKOFF_BASE_SECONDS,
    cap: float = DEFAULT_BACKOFF_CAP_SECONDS,
) -> float:
    """Delay after failed attempt ``attempt`` (1-based) under the default policy.

    Exponential with "equal jitter": half the exponential step is fixed and half is scaled by
    ``jitter`` (a number in [0, 1)), so delays spread out yet never shrink from one attempt to
    the next.
    """
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    step = min(cap, base * 2.0 ** min(attempt - 1, 62))
    return step / 2 + step / 2 * jitter


def default_decision(attempt: int, max_retries: int, jitter: float) -> RetryDecision:
    """What the default policy decides after failed attempt ``attempt``."""
    if attempt > max_retries:
        return RetryDecision(
            should_retry=False,
            reason=f"no retries left ({max_retries} allowed)",
            source="default",
        )
    delay = default_backoff_seconds(attempt, jitter)
    return RetryDecision(
        should_retry=True,
        delay_seconds=delay,
        reason=f"default policy: retry {attempt} of {max_retries} after {delay:.1f}s",
        source="default",
    )


def resolve_retry(
    *,
    attempt: int,
    max_retries: int,
    failed_at: datetime,
    decision: RetryDecision | None,
    jitter: float,
) -> Retry | GiveUp:
    """Turn a failed attempt and a plugin's decision (or ``None``) into what happens next."""
    if decision is None:
        decision = default_decision(attempt, max_retries, jitter)
    if decision.abort_remaining:
        return GiveUp(reason="aborted", decision=decision)
    if not decision.should_retry:
        exhausted = decision.source == "default"
        return GiveUp(reason="exhausted" if exhausted else "declined", decision=decision)
    if attempt > max_retries:
        return GiveUp(reason="exhausted", decision=decision)
    delay = max(0.0, float(decision.delay_seconds))
    return Retry(
        next_attempt=attempt + 1,
        retry_at=failed_at + timedelta(seconds=delay),
        delay_seconds=delay,
        decision=decision,
    )
