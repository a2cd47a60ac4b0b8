"""Each way an attempt ends produces the right events, decided as the plugins say."""

from __future__ import annotations

from datetime import timedelta

import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo

from contracts import (
    STREAM_NAME,
    Event,
    RetryScheduled,
    TaskDue,
    TaskFailed,
    TaskStarted,
    TaskSucceeded,
)
from contracts.stream import executor_durable
from tests.integration.executor.conftest import StartExecutor, events_of, publish_due
from tests.plugins.feeds import FeedsPlugin
from tests.plugins.outcomes import OutcomesPlugin
from tests.support import eventually

pytestmark = pytest.mark.integration


async def outcome_of(js: JetStreamContext, due: TaskDue, within: float = 5.0) -> list[Event]:
    """The attempt's events once its outcome is recorded."""

    async def finished() -> list[Event] | None:
        events = [e for e in await events_of(js, due.execution_id) if e.attempt == due.attempt]  # type: ignore[attr-defined]
        done = any(isinstance(e, TaskSucceeded | RetryScheduled | TaskFailed) for e in events)
        return events if done else None

    return await eventually(finished, within=within, message=f"outcome of {due.task_id}")


async def no_pending(js: JetStreamContext) -> None:
    async def settled() -> bool:
        info = await js.consumer_info(STREAM_NAME, executor_durable("default"))
        return info.num_ack_pending == 0 and info.num_pending == 0

    await eventually(settled, within=5, message="every TaskDue acknowledged")


async def test_success_records_started_and_succeeded_with_data(
    js: JetStreamContext, consumer: ConsumerInfo, start_executor: StartExecutor
) -> None:
    plugin = OutcomesPlugin()
    # inline: the test reads what the plugin instance saw
    async with start_executor(
        plugins=[plugin], tenants=("default", "acme"), isolation="inline"
    ) as executor:
        due = await publish_due(js, "outcomes.count-items", tenant_id="acme")
        _, started, succeeded = await outcome_of(js, due)
        await no_pending(js)
    assert isinstance(started, TaskStarted)
    assert started.worker == executor.worker
    assert started.deadline == started.occurred_at + timedelta(seconds=5)
    assert isinstance(succeeded, TaskSucceeded)
    assert succeeded.data == {"items": 42, "tenant": "acme", "attempt": 1}
    assert succeeded.duration_ms >= 0
    context = plugin.contexts[-1]
    assert (context.tenant_id, context.execution_id, context.attempt) == (
        "acme",
        due.execution_id,
        1,
    )
    assert (context.trigger, context.scheduled_for, context.max_attempts) == (
        "schedule",
        due.scheduled_for,
        3,
    )
    assert context.deadline == started.deadline
    assert executor.stats.succeeded == 1


async def test_returned_failure_is_retried_by_the_default_policy(
    js: JetStreamContext, consumer: ConsumerInfo, start_executor: StartExecutor
) -> None:
    async with start_executor(plugins=[OutcomesPlugin()], jitter=0.5):
        due = await publish_due(js, "outcomes.return-failure")
        *_, retry = await outcome_of(js, due)
    assert isinstance(retry, RetryScheduled)
    assert retry.error.kind == "returned"
    assert retry.error.message == "inventory service answered 503"
    assert retry.decision.source == "default"
    assert retry.delay_seconds == pytest.approx(7.5)  # 10 s step, half fixed, half jittered
    assert retry.retry_at == retry.occurred_at + timedelta(seconds=7.5)


async def test_raised_exception_is_recorded_with_its_type(
    js: JetStreamContext, consumer: ConsumerInfo, start_executor: StartExecutor
) -> None:
    async with start_executor(plugins=[OutcomesPlugin()]):
        first = await publish_due(js, "outcomes.raise")
        last = await publish_due(js, "outcomes.raise", attempt=2, execution_id=first.execution_id)
        *_, retry = await outcome_of(js, first)
        *_, failed = await outcome_of(js, last)
    assert isinstance(retry, RetryScheduled)
    assert retry.error.kind == "raised"
    assert retry.error.exception_type == "tests.plugins.outcomes.InventoryCorruptError"
    assert retry.error.message == "row 17 of the inventory is corrupt"
    assert isinstance(failed, TaskFailed)
    assert failed.reason == "exhausted"  # max_retries=1: attempt 2 is the last


async def test_timeout_cancels_the_attempt(
    js: JetStreamContext, consumer: ConsumerInfo, start_executor: StartExecutor
) -> None:
    plugin = OutcomesPlugin()
    async with start_executor(plugins=[plugin], isolation="inline"):  # reads plugin.cancelled
        due = await publish_due(js, "outcomes.hang")
        *_, failed = await outcome_of(js, due)
    assert isinstance(failed, TaskFailed)
    assert failed.error.kind == "timeout"
    assert "exceeded its timeout of 0.3s" in failed.error.message
    assert 250 <= failed.duration_ms < 2000
    assert plugin.cancelled == [due.execution_id]


async def test_wrong_return_type_is_a_bad_result(
    js: JetStreamContext, consumer: ConsumerInfo, start_executor: StartExecutor
) -> None:
    async with start_executor(plugins=[OutcomesPlugin()]):
        due = await publish_due(js, "outcomes.wrong-type")
        *_, failed = await outcome_of(js, due)
    assert isinstance(failed, TaskFailed)
    assert failed.error.kind == "bad_result"
    assert "return a TaskResult" in failed.error.message


async def test_rate_limit_decision_retries_after_300_seconds(
    js: JetStreamContext, consumer: ConsumerInfo, start_executor: StartExecutor
) -> None:
    async with start_executor(plugins=[FeedsPlugin()]):
        due = await publish_due(js, "feeds.exchange-rates")
        *_, retry = await outcome_of(js, due)
    assert isinstance(retry, RetryScheduled)
    assert retry.delay_seconds == 300
    assert retry.retry_at == retry.occurred_at + timedelta(seconds=300)
    assert retry.decision.source == "plugin"
    assert (retry.decision.plugin, retry.decision.plugin_version) == ("feeds", "0.4.0")
    assert retry.decision.reason == "Rate limited - extending backoff"


async def test_auth_error_decision_fails_at_once(
    js: JetStreamContext, consumer: ConsumerInfo, start_executor: StartExecutor
) -> None:
    async with start_executor(plugins=[FeedsPlugin()]):
        due = await publish_due(js, "feeds.headlines")  # max_retries=5, yet no retry
        *_, failed = await outcome_of(js, due)
    assert isinstance(failed, TaskFailed)
    assert failed.reason == "aborted"
    assert failed.error.exception_type == "tests.plugins.feeds.AuthenticationError"
    assert failed.decision is not None
    assert failed.decision.reason == "Auth failed - manual intervention needed"


async def test_default_policy_retries_exactly_max_retries_times_with_growing_delays(
    js: JetStreamContext, consumer: ConsumerInfo, start_executor: StartExecutor
) -> None:
    plugin = OutcomesPlugin()
    outcomes: list[Event] = []
    async with start_executor(plugins=[plugin], isolation="inline"):  # reads plugin.contexts
        due = await publish_due(js, "outcomes.return-failure")  # max_retries=3
        while True:  # act as the ticker: each RetryScheduled brings the next attempt, now
            *_, outcome = await outcome_of(js, due)
            outcomes.append(outcome)
            if not isinstance(outcome, RetryScheduled):
                break
            due = await publish_due(
                js,
                due.task_id,
                attempt=due.attempt + 1,
                execution_id=due.execution_id,
                trigger="retry",
            )
    *retries, final = outcomes
    assert [type(e) for e in retries] == [RetryScheduled] * 3
    assert isinstance(final, TaskFailed)
    assert (final.attempt, final.reason) == (4, "exhausted")
    delays = [e.delay_seconds for e in retries]  # type: ignore[attr-defined]
    assert delays == sorted(delays)
    assert delays[0] < delays[-1]
    assert [c.previous_error for c in plugin.contexts] == [None] + [
        "inventory service answered 503"
    ] * 3
    assert [c.trigger for c in plugin.contexts] == ["schedule", "retry", "retry", "retry"]
