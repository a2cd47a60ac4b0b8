"""The event codec: round trips, the wire format, and garbage never crashing the decoder."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import (
    EVENT_TYPES,
    Event,
    EventDecodeError,
    EventKind,
    RetryDecision,
    RetryScheduled,
    Schedule,
    ScheduledRun,
    ScheduledRunsChanged,
    TaskCancelRequested,
    TaskDue,
    TaskError,
    TaskFailed,
    TaskPaused,
    TaskRegistered,
    TaskResumed,
    TaskSkipped,
    TaskSpec,
    TaskStarted,
    TaskSucceeded,
    TaskUnregistered,
    UnknownEventTypeError,
    decode,
    decode_message,
    encode,
    event_filters,
    event_headers,
    event_subject,
    event_type,
    message_id,
    parse_subject,
)

ids = st.from_regex(r"\A[a-z0-9_-]{1,12}\Z")
task_ids = st.lists(ids, min_size=1, max_size=3).map(".".join)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
text = st.text(max_size=40)
attempts = st.integers(1, 50)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
schedules = st.one_of(
    st.builds(
        Schedule,
        cron_expression=st.sampled_from(["0 3 * * *", "@hourly"]),
        timezone=st.sampled_from(["UTC", "Europe/Berlin"]),
    ),
    st.builds(Schedule, interval_seconds=st.integers(1, 86400), jitter_seconds=st.floats(0, 60)),
)
decisions = st.builds(
    RetryDecision,
    should_retry=st.booleans(),
    delay_seconds=st.floats(0, 1e6),
    abort_remaining=st.booleans(),
    reason=text,
    source=st.sampled_from(["plugin", "default"]),
    plugin=st.none() | ids,
    plugin_version=st.none() | st.just("1.0.0"),
)
errors = st.builds(
    TaskError,
    kind=st.sampled_from(["returned", "raised", "timeout", "bad_result", "lost"]),
    message=text,
    exception_type=st.none() | st.just("ValueError"),
)
common = {"tenant_id": ids, "task_id": task_ids, "occurred_at": instants}
execution = {**common, "execution_id": st.uuids().map(str), "attempt": attempts}
events: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        TaskRegistered,
        **common,
        plugin=ids,
        plugin_version=st.just("1.2.3"),
        spec=st.builds(
            TaskSpec,
            name=text,
            description=text,
            schedule=schedules,
            max_retries=st.integers(0, 10),
            timeout_seconds=st.floats(0.1, 1e4),
        ),
        definition_hash=st.text("0123456789abcdef", min_size=32, max_size=32),
    ),
    st.builds(TaskUnregistered, **common, plugin=ids, reason=text),
    st.builds(TaskPaused, **common, note=text, actor=text),
    st.builds(TaskResumed, **common, note=text, actor=text),
    st.builds(
        TaskDue,
        **execution,
        trigger=st.sampled_from(["schedule", "catchup", "retry", "manual"]),
        scheduled_for=instants,
        fire_at=st.none() | instants,
        missed_fires=st.integers(0, 1000),
    ),
    st.builds(
        TaskSkipped,
        **common,
        scheduled_for=instants,
        reason=st.sampled_from(["overlap", "missed", "paused"]),
        detail=text,
        missed_fires=st.integers(1, 1000),
        running_execution_id=st.none() | st.uuids().map(str),
    ),
    st.builds(TaskStarted, **execution, worker=ids, deadline=instants),
    st.builds(TaskCancelRequested, **execution, note=text, actor=text),
    st.builds(
        ScheduledRunsChanged,
        **common,
        runs=st.lists(
            st.builds(ScheduledRun, run_id=st.uuids().map(str), run_at=instants, note=text),
            max_size=3,
        ).map(tuple),
        change=st.sampled_from(["scheduled", "cancelled", "fired"]),
        run_id=st.uuids().map(str),
    ),
    st.builds(
        TaskSucceeded,
        **execution,
        worker=ids,
        duration_ms=st.integers(0, 10**9),
        data=st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    ),
    st.builds(
        RetryScheduled,
        **execution,
        worker=ids,
        duration_ms=st.integers(0, 10**9),
        error=errors,
        retry_at=instants,
        delay_seconds=st.floats(0, 1e6),
        decision=decisions,
    ),
    st.builds(
        TaskFailed,
        **execution,
        worker=ids,
        duration_ms=st.integers(0, 10**9),
        error=errors,
        reason=st.sampled_from(["exhausted", "declined", "aborted"]),
        decision=st.none() | decisions,
    ),
)


@given(events)
def test_every_event_round_trips(event: Event) -> None:
    assert decode(encode(event)) == event


@given(events)
def test_wire_format_is_plain_json_with_a_versioned_type(event: Event) -> None:
    body = json.loads(encode(event))
    assert body["type"] == event_type(event)
    assert body["type"].endswith(".v1")
    assert body["tenant_id"] == event.tenant_id
    assert body["task_id"] == event.task_id
    assert body["occurred_at"].endswith("Z")
    assert datetime.fromisoformat(body["occurred_at"]) == event.occurred_at
    assert event_headers(event)["Dvp-Event-Type"] == body["type"]


@given(events)
def test_subject_carries_tenant_kind_and_whole_task_id(event: Event) -> None:
    parts = parse_subject(event_subject(event))
    assert (parts.tenant_id, parts.task_id) == (event.tenant_id, event.task_id)


@given(st.binary(max_size=200))
def test_random_bytes_raise_the_decoders_error_only(data: bytes) -> None:
    with pytest.raises(EventDecodeError, match="event"):
        decode(data)


@given(
    st.dictionaries(
        st.sampled_from(["type", "tenant_id", "task_id", "attempt", "occurred_at"]), json_values
    )
)
def test_random_json_objects_raise_the_decoders_error_only(body: dict[str, object]) -> None:
    with pytest.raises(EventDecodeError, match="event"):
        decode(json.dumps(body).encode())


def test_unknown_fields_are_ignored_and_unknown_versions_are_named() -> None:
    due = {
        "type": "task.due.v1",
        "tenant_id": "acme",
        "task_id": "a.b",
        "occurred_at": "2026-11-24T03:00:00Z",
        "execution_id": "e",
        "attempt": 1,
        "trigger": "schedule",
        "scheduled_for": "2026-11-24T03:00:00Z",
        "added_in_a_later_release": {"x": 1},
    }
    event = decode(json.dumps(due).encode())
    assert isinstance(event, TaskDue)
    with pytest.raises(UnknownEventTypeError) as error:
        decode(json.dumps({**due, "type": "task.due.v2"}).encode())
    assert error.value.event_type == "task.due.v2"


def test_naive_instants_and_zero_attempts_are_rejected() -> None:
    with pytest.raises(EventDecodeError, match="timezone"):
        decode(
            b'{"type":"task.paused.v1","tenant_id":"a","task_id":"b","occurred_at":"2026-11-24T03:00:00"}'
        )
    body = (
        b'{"type":"task.started.v1","tenant_id":"a","task_id":"b",'
        b'"occurred_at":"2026-11-24T03:00:00Z","execution_id":"e","attempt":0,'
        b'"worker":"w","deadline":"2026-11-24T03:00:00Z"}'
    )
    with pytest.raises(EventDecodeError, match="attempt"):
        decode(body)


def test_tags_are_explicit_and_stable() -> None:
    assert sorted(EVENT_TYPES) == [
        "task.cancel_requested.v1",
        "task.due.v1",
        "task.failed.v1",
        "task.paused.v1",
        "task.registered.v1",
        "task.resumed.v1",
        "task.retry_scheduled.v1",
        "task.scheduled_runs.v1",
        "task.skipped.v1",
        "task.started.v1",
        "task.succeeded.v1",
        "task.unregistered.v1",
    ]
    # The class name is not on the wire: the tag is.
    assert (
        msgspec.json.decode(
            encode(TaskPaused(tenant_id="a", task_id="b", occurred_at=datetime.now(UTC)))
        )["type"]
        == "task.paused.v1"
    )


def test_all_outcomes_of_an_attempt_share_one_message_id() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    base = {
        "tenant_id": "a",
        "task_id": "b",
        "occurred_at": now,
        "execution_id": "e",
        "attempt": 2,
        "worker": "w",
        "duration_ms": 1,
    }
    err = TaskError(kind="raised", message="x")
    outcomes = [
        TaskSucceeded(**base),  # type: ignore[arg-type]
        RetryScheduled(
            **base,
            error=err,
            retry_at=now,
            delay_seconds=1,
            decision=RetryDecision(should_retry=True),
        ),  # type: ignore[arg-type]
        TaskFailed(**base, error=err, reason="exhausted"),  # type: ignore[arg-type]
    ]
    assert {message_id(o) for o in outcomes} == {"outcome:e:2"}
    assert message_id(TaskPaused(tenant_id="a", task_id="b", occurred_at=now)) is None


def test_subscriber_kit_checks_the_type_header_and_builds_filters() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    event = TaskPaused(tenant_id="acme", task_id="a.b", occurred_at=now, note="n")
    body = encode(event)
    assert decode_message(event_subject(event), body, event_headers(event)) == event
    assert decode_message(event_subject(event), body, None) == event
    with pytest.raises(EventDecodeError, match=r"header Dvp-Event-Type says 'task\.due\.v1'"):
        decode_message(event_subject(event), body, {"Dvp-Event-Type": "task.due.v1"})
    with pytest.raises(EventDecodeError, match=r"does not match its subject"):
        decode_message("dvp.tasks.globex.paused.a.b", body)
    assert event_filters("acme", [EventKind.FAILED, EventKind.SKIPPED]) == [
        "dvp.tasks.acme.failed.>",
        "dvp.tasks.acme.skipped.>",
    ]
    assert event_filters(task_id="a.b") == ["dvp.tasks.*.*.a.b"]


def test_events_in_words_and_log_fields() -> None:
    from contracts.describe import describe_event, event_log_fields

    now = datetime(2026, 11, 24, 3, tzinfo=UTC)
    retry = RetryScheduled(
        tenant_id="acme",
        task_id="sync.partner",
        occurred_at=now,
        execution_id="e1",
        attempt=1,
        worker="w",
        duration_ms=5,
        error=TaskError(kind="returned", message="429 Too Many Requests"),
        retry_at=now,
        delay_seconds=300,
        decision=RetryDecision(should_retry=True, delay_seconds=300, reason="rate limited"),
    )
    assert describe_event(retry) == (
        "retry       acme/sync.partner  attempt 1 failed: 429 Too Many Requests; "
        "next in 300s (rate limited)"
    )
    assert event_log_fields(retry) == {
        "tenant_id": "acme",
        "task_id": "sync.partner",
        "event": "retry",
        "execution_id": "e1",
        "attempt": 1,
    }
    paused = TaskPaused(tenant_id="acme", task_id="sync.partner", occurred_at=now, note="n")
    assert describe_event(paused) == "paused      acme/sync.partner  n"
    assert "execution_id" not in event_log_fields(paused)


def test_a_started_attempt_started_again_by_a_worker_of_the_same_name_is_a_new_message() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    first = TaskStarted(
        tenant_id="a",
        task_id="b",
        occurred_at=now,
        execution_id="e",
        attempt=1,
        worker="w",
        deadline=now + timedelta(seconds=30),
    )
    again = msgspec.structs.replace(first, occurred_at=now + timedelta(seconds=12))
    assert message_id(first) == message_id(msgspec.structs.replace(first))  # a resend
    assert message_id(again) != message_id(first)
