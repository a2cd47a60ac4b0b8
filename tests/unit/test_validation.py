"""Every event read back is validated as input: registration rules and envelope limits."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from contracts import (
    EventDecodeError,
    RetryDecision,
    RetryScheduled,
    Schedule,
    TaskDue,
    TaskError,
    TaskFailed,
    TaskPaused,
    TaskRegistered,
    TaskSkipped,
    TaskSpec,
    TaskStarted,
    TaskSucceeded,
    encode,
    event_subject,
)
from contracts.inbound import InvalidEventError, read_event
from contracts.validation import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    MAX_ATTEMPT,
    MAX_RETRIES,
    event_problem,
    registration_problem,
    validate_spec,
)
from dvp_cms.plugins import Plugin
from dvp_cms.plugins.errors import TaskDefinitionError
from dvp_cms.plugins.hooks.scheduled_tasks import (
    ScheduledTaskDefinition,
    TaskRetryDecision,
    TaskSchedule,
)
from dvp_cms.plugins.validation import retry_decision, task_spec
from tests.poison import LONG_CRON, POISONS, Poison, registration_message

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
SPEC = TaskSpec(
    name="Sync", schedule=Schedule(interval_seconds=60), max_retries=2, timeout_seconds=30.0
)


def registered(spec: TaskSpec = SPEC) -> TaskRegistered:
    return TaskRegistered(
        tenant_id="acme",
        task_id="sync",
        occurred_at=NOW,
        plugin="p",
        plugin_version="1",
        spec=spec,
        definition_hash="0" * 32,
    )


def with_schedule(**changes: Any) -> TaskSpec:
    return msgspec.structs.replace(SPEC, schedule=msgspec.structs.replace(SPEC.schedule, **changes))


# -------------------------------------------------------------------------------------------
# registrations


@pytest.mark.parametrize("poison", POISONS, ids=lambda p: p.task_id)
def test_a_poison_registration_is_read_and_its_problem_named(poison: Poison) -> None:
    message = registration_message("acme", poison.task_id, NOW, poison.changes)
    event = read_event(*message)  # the stream holds it as written: it is an event
    assert isinstance(event, TaskRegistered)
    problem = registration_problem(event)
    assert problem is not None
    assert poison.names in problem


def test_a_valid_registration_has_no_problem() -> None:
    assert registration_problem(registered()) is None
    cron = msgspec.structs.replace(
        SPEC, schedule=Schedule(cron_expression="0 3 * * 1-5", timezone="Europe/Berlin")
    )
    assert registration_problem(registered(cron)) is None


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        (with_schedule(jitter_seconds=math.nan), "jitter_seconds must be >= 0 and at most 86400"),
        (with_schedule(catchup_window_seconds=math.inf), "catchup_window_seconds must be"),
        (with_schedule(offset_seconds=math.nan), "offset_seconds must be"),
        (with_schedule(jitter_seconds=86401.0), "got 86401.0"),
        (msgspec.structs.replace(SPEC, timeout_seconds=math.nan), "timeout_seconds"),
        (msgspec.structs.replace(SPEC, timeout_seconds=7 * 86400 + 1), "(7 days)"),
        (msgspec.structs.replace(SPEC, max_retries=MAX_RETRIES + 1), "at most 1000, got 1001"),
        (msgspec.structs.replace(SPEC, max_retries=True), "got True"),
        (
            msgspec.structs.replace(SPEC, schedule=Schedule(interval_seconds=366 * 86400 + 1)),
            "for rarer runs use a cron schedule",
        ),
        (
            msgspec.structs.replace(
                SPEC, schedule=Schedule(cron_expression="0 3 * * *", timezone="Z" * 300)
            ),
            "unknown time zone 'ZZZZ",
        ),
    ],
)
def test_non_finite_and_out_of_bound_values_are_named(spec: TaskSpec, names: str) -> None:
    problem = registration_problem(registered(spec))
    assert problem is not None
    assert names in problem


def test_a_long_cron_message_names_its_length_and_the_limit_not_all_of_it() -> None:
    spec = msgspec.structs.replace(SPEC, schedule=Schedule(cron_expression=LONG_CRON))
    problem = registration_problem(registered(spec))
    assert problem is not None
    assert "has 200 characters: at most 100 allowed" in problem
    assert LONG_CRON not in problem


def test_nan_and_infinity_cannot_come_through_json() -> None:
    subject, body, headers = registration_message("acme", "sync", NOW)
    broken = body.replace(b'"timeout_seconds": 30.0', b'"timeout_seconds": 1e999')
    assert broken != body
    with pytest.raises(EventDecodeError):
        read_event(subject, broken, headers)


def test_the_plugin_host_applies_the_same_rules() -> None:
    class P(Plugin):
        name = "p"

    def problem(definition: ScheduledTaskDefinition) -> str:
        with pytest.raises(TaskDefinitionError) as caught:
            task_spec(P(), definition, "acme")
        message = str(caught.value)
        assert message.startswith("plugin 'p', task 'p.t': ")
        return message

    assert "too long" in problem(
        ScheduledTaskDefinition("p.t", "T", TaskSchedule(interval_seconds=10**15))
    )
    assert "(7 days)" in problem(
        ScheduledTaskDefinition("p.t", "T", TaskSchedule(interval_seconds=60), timeout_seconds=1e9)
    )
    assert "at most 1000" in problem(
        ScheduledTaskDefinition("p.t", "T", TaskSchedule(interval_seconds=60), max_retries=5000)
    )
    assert "at most 100 allowed" in problem(
        ScheduledTaskDefinition("p.t", "T", TaskSchedule(cron_expression=LONG_CRON))
    )
    assert "description must be a string" in problem(
        ScheduledTaskDefinition("p.t", "T", TaskSchedule(interval_seconds=60), description=5)  # type: ignore[arg-type]
    )
    spec = task_spec(
        P(), ScheduledTaskDefinition("p.t", "T", TaskSchedule(interval_seconds=60)), "acme"
    )
    validate_spec(spec)  # what the host accepts, every reader accepts
    assert isinstance(spec.timeout_seconds, float)


def test_a_plugins_retry_delay_is_bounded_like_a_recorded_one() -> None:
    class P(Plugin):
        name = "p"

    for delay in (math.nan, math.inf, -1.0, 366 * 86400.0 + 1):
        with pytest.raises(ValueError, match="delay_seconds must be a number >= 0"):
            retry_decision(P(), TaskRetryDecision(should_retry=True, delay_seconds=delay))  # type: ignore[arg-type]
    assert (
        retry_decision(P(), TaskRetryDecision(should_retry=True, delay_seconds=3600)).delay_seconds
        == 3600
    )


# -------------------------------------------------------------------------------------------
# envelopes

ERROR = TaskError(kind="raised", message="boom")
DECISION = RetryDecision(should_retry=True, delay_seconds=10.0)


def due(**changes: Any) -> TaskDue:
    fields: dict[str, Any] = {
        "tenant_id": "acme",
        "task_id": "sync",
        "occurred_at": NOW,
        "execution_id": "e1",
        "attempt": 1,
        "trigger": "schedule",
        "scheduled_for": NOW,
        "fire_at": NOW,
    }
    return TaskDue(**(fields | changes))


def retry(**changes: Any) -> RetryScheduled:
    fields: dict[str, Any] = {
        "tenant_id": "acme",
        "task_id": "sync",
        "occurred_at": NOW,
        "execution_id": "e1",
        "attempt": 1,
        "worker": "w",
        "duration_ms": 5,
        "error": ERROR,
        "retry_at": NOW + timedelta(seconds=10),
        "delay_seconds": 10.0,
        "decision": DECISION,
    }
    return RetryScheduled(**(fields | changes))


YEAR_ONE = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))  # cannot even go to UTC
YEAR_9999 = datetime(9999, 12, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event", "names"),
    [
        (TaskPaused(tenant_id="acme", task_id="sync", occurred_at=YEAR_ONE), "occurred_at 0001"),
        (msgspec.structs.replace(registered(), occurred_at=YEAR_9999), "occurred_at 9999"),
        (due(scheduled_for=YEAR_9999), "scheduled_for 9999"),
        (due(fire_at=YEAR_ONE), "fire_at 0001"),
        (due(attempt=MAX_ATTEMPT + 1), "attempt 1002 is beyond any execution"),
        (due(attempt=2**64), "beyond any execution"),
        (due(missed_fires=-1), "missed_fires must be >= 0"),
        (
            TaskSkipped(
                tenant_id="acme",
                task_id="sync",
                occurred_at=NOW,
                scheduled_for=NOW,
                reason="missed",
                missed_fires=-3,
            ),
            "missed_fires must be >= 0, got -3",
        ),
        (
            TaskStarted(
                tenant_id="acme",
                task_id="sync",
                occurred_at=NOW,
                execution_id="e1",
                attempt=1,
                worker="w",
                deadline=YEAR_9999,
            ),
            "deadline 9999",
        ),
        (
            TaskSucceeded(
                tenant_id="acme",
                task_id="sync",
                occurred_at=NOW,
                execution_id="e1",
                attempt=1,
                worker="w",
                duration_ms=-1,
            ),
            "duration_ms must be >= 0",
        ),
        (retry(attempt=MAX_RETRIES + 1), "attempt 1001 cannot be retried"),
        (retry(retry_at=YEAR_9999), "retry_at 9999"),
        (retry(delay_seconds=-1.0), "delay_seconds must be a number >= 0"),
        (retry(delay_seconds=math.nan), "got nan"),
        (retry(delay_seconds=1e12), "at most 31622400 (366 days)"),
        (retry(decision=RetryDecision(should_retry=True, delay_seconds=math.inf)), "decision."),
        (
            TaskFailed(
                tenant_id="acme",
                task_id="sync",
                occurred_at=NOW,
                execution_id="e1",
                attempt=1,
                worker="w",
                duration_ms=-7,
                error=ERROR,
                reason="exhausted",
            ),
            "duration_ms must be >= 0, got -7",
        ),
    ],
)
def test_values_that_would_raise_later_are_bad_input(event: Any, names: str) -> None:
    problem = event_problem(event)
    assert problem is not None
    assert names in problem


def test_bad_input_is_refused_by_the_reader_and_good_input_passes() -> None:
    bad = due(attempt=MAX_ATTEMPT + 1)
    with pytest.raises(
        InvalidEventError, match=re.escape("task.due.v1 on 'dvp.tasks.acme.due.sync'")
    ):
        read_event(event_subject(bad), encode(bad))
    for good in (
        due(),
        due(attempt=MAX_ATTEMPT, scheduled_for=EARLIEST_INSTANT, fire_at=LATEST_INSTANT),
        retry(attempt=MAX_RETRIES),
        registered(msgspec.structs.replace(SPEC, max_retries=10**9)),  # the spec is not judged
    ):
        assert event_problem(good) is None
        assert read_event(event_subject(good), encode(good)) == good
