"""The pure logic of an attempt: classification of what the plugin did, and the outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts import RetryDecision, RetryScheduled, TaskDue, TaskFailed, TaskSucceeded
from dvp_cms.plugins import (
    BadTaskResultError,
    TaskResultFailure,
    TaskTimeoutError,
    UnserializableResultError,
)
from dvp_cms.plugins.attempts import (
    MAX_ERROR_MESSAGE_CHARS,
    Failure,
    Success,
    result_of_exception,
    result_of_return,
)
from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult
from executor import execution_context, is_outcome_of, outcome_event, started_event

NOW = datetime(2026, 11, 24, 3, 0, 5, tzinfo=UTC)


def due(attempt: int = 1) -> TaskDue:
    return TaskDue(
        tenant_id="acme",
        task_id="cleanup.temp-files",
        occurred_at=NOW,
        execution_id="e-1",
        attempt=attempt,
        trigger="schedule" if attempt == 1 else "retry",
        scheduled_for=NOW - timedelta(seconds=5),
    )


def failure() -> Failure:
    return result_of_exception(RuntimeError("disk full"), 12)


def outcome(attempt: int = 1, result: Success | Failure | None = None, **kwargs: object) -> object:
    options: dict[str, object] = {"max_retries": 3, "decision": None, "jitter": 0.0}
    options.update(kwargs)
    return outcome_event(
        due(attempt),
        result or failure(),
        worker="w1",
        now=NOW,
        **options,  # type: ignore[arg-type]
    )


def test_success_keeps_the_data_and_fills_duration() -> None:
    result = TaskResult(success=True, data={"deleted": 3})
    attempt = result_of_return("cleanup", "cleanup.temp-files", result, 40)
    assert attempt == Success(data={"deleted": 3}, duration_ms=40)
    assert result.duration_ms == 40
    event = outcome(result=attempt)
    assert isinstance(event, TaskSucceeded)
    assert (event.data, event.duration_ms, event.worker) == ({"deleted": 3}, 40, "w1")


def test_plugin_duration_is_kept() -> None:
    result = TaskResult(success=True, duration_ms=7)
    result_of_return("p", "p.t", result, 40)
    assert result.duration_ms == 7


def test_returned_failure_gives_the_hook_its_message() -> None:
    attempt = result_of_return("p", "p.t", TaskResult(success=False, error_message="503"), 5)
    assert isinstance(attempt, Failure)
    assert (attempt.error.kind, attempt.error.message, attempt.error.exception_type) == (
        "returned",
        "503",
        None,
    )
    assert isinstance(attempt.exception, TaskResultFailure)
    assert str(attempt.exception) == "503"


@pytest.mark.parametrize("value", [None, {"success": True}, "ok", TaskResult])
def test_anything_but_a_task_result_is_a_bad_result(value: object) -> None:
    attempt = result_of_return("p", "p.t", value, 5)
    assert isinstance(attempt, Failure)
    assert attempt.error.kind == "bad_result"
    assert isinstance(attempt.exception, BadTaskResultError)


@pytest.mark.parametrize("data", [["a"], {1: "a"}, {"when": object()}, {"s": {1j}}])
def test_data_that_is_not_a_json_object_is_a_bad_result(data: object) -> None:
    attempt = result_of_return("p", "p.t", TaskResult(success=True, data=data), 5)  # type: ignore[arg-type]
    assert isinstance(attempt, Failure)
    assert attempt.error.kind == "bad_result"
    assert isinstance(attempt.exception, UnserializableResultError)
    assert "TaskResult.data must be a dict" in attempt.error.message


def test_data_becomes_plain_json() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    attempt = result_of_return("p", "p.t", TaskResult(success=True, data={"at": when}), 5)
    assert attempt == Success(data={"at": "2026-01-01T00:00:00Z"}, duration_ms=5)


def test_exceptions_are_classified() -> None:
    raised = result_of_exception(KeyError("row"), 1)
    assert (raised.error.kind, raised.error.exception_type) == ("raised", "KeyError")
    timeout = result_of_exception(TaskTimeoutError("p.t", 0.5), 500)
    assert timeout.error.kind == "timeout"
    assert "exceeded its timeout of 0.5s" in timeout.error.message
    bad = result_of_exception(BadTaskResultError("p", "p.t", 3), 1)
    assert bad.error.kind == "bad_result"
    silent = result_of_exception(ValueError(), 1)
    assert silent.error.message == "ValueError"


def test_long_messages_are_cut() -> None:
    attempt = result_of_exception(RuntimeError("x" * 10_000), 1)
    assert len(attempt.error.message) == MAX_ERROR_MESSAGE_CHARS
    assert attempt.error.message.endswith("(truncated)")


def test_default_policy_retries_with_growing_delays_then_gives_up() -> None:
    delays = []
    for attempt in (1, 2, 3):
        event = outcome(attempt, jitter=0.5)
        assert isinstance(event, RetryScheduled)
        assert event.retry_at == NOW + timedelta(seconds=event.delay_seconds)
        assert event.decision.source == "default"
        delays.append(event.delay_seconds)
    assert delays == [7.5, 15.0, 30.0]
    final = outcome(4)
    assert isinstance(final, TaskFailed)
    assert final.reason == "exhausted"


def test_plugin_decisions_are_followed_within_max_retries() -> None:
    later = RetryDecision(should_retry=True, delay_seconds=300, source="plugin", plugin="feeds")
    event = outcome(1, decision=later)
    assert isinstance(event, RetryScheduled)
    assert (event.delay_seconds, event.retry_at) == (300, NOW + timedelta(seconds=300))
    over = outcome(4, decision=later)
    assert isinstance(over, TaskFailed)
    assert over.reason == "exhausted"
    no = RetryDecision(should_retry=False, reason="permanent", source="plugin", plugin="feeds")
    declined = outcome(1, decision=no)
    assert isinstance(declined, TaskFailed)
    assert (declined.reason, declined.decision) == ("declined", no)
    abort = RetryDecision(should_retry=True, abort_remaining=True, source="plugin")
    aborted = outcome(1, decision=abort)
    assert isinstance(aborted, TaskFailed)
    assert aborted.reason == "aborted"


def test_no_retries_allowed_means_the_first_failure_is_final() -> None:
    event = outcome(1, max_retries=0)
    assert isinstance(event, TaskFailed)
    assert event.reason == "exhausted"


def test_started_event_and_execution_context() -> None:
    started = started_event(due(2), worker="w1", now=NOW, timeout_seconds=90)
    assert started.deadline == NOW + timedelta(seconds=90)
    assert (started.execution_id, started.attempt, started.worker) == ("e-1", 2, "w1")
    context = execution_context(
        due(2), max_retries=3, deadline=started.deadline, previous_error="boom"
    )
    assert context.attempt == 2
    assert context.max_attempts == 4
    assert context.trigger == "retry"
    assert context.scheduled_for == NOW - timedelta(seconds=5)
    assert context.previous_error == "boom"
    assert context.deadline == started.deadline


def test_is_outcome_of_matches_execution_and_attempt() -> None:
    event = outcome(1)
    assert is_outcome_of(event, due(1))
    assert not is_outcome_of(event, due(2))
    assert not is_outcome_of(due(1), due(1))
