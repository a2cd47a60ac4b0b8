"""Tracing's pure parts: when the ``OTEL_*`` variables turn it on, the W3C headers, the spans of
a publish, and spans that end in a worker process crossing to the executor intact."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from nats.js.errors import APIError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from contracts import TaskDue, encode, event_headers, event_subject
from contracts import headers as header_names
from executor import _tracing
from natsio import tracing
from natsio.errors import TracingSetupError
from natsio.publish import PublishAck

DUE = TaskDue(
    tenant_id="acme",
    task_id="cleanup.temp-files",
    occurred_at=datetime(2026, 11, 30, 3, 0, tzinfo=UTC),
    execution_id="6f1c2d3e-0000-4000-8000-000000000001",
    attempt=1,
    trigger="schedule",
    scheduled_for=datetime(2026, 11, 30, 3, 0, tzinfo=UTC),
)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, spans kept in memory; off again after the test."""
    spans = InMemorySpanExporter()
    tracing.enable(spans, service_name="dvp-test")
    try:
        yield spans
    finally:
        tracing.shutdown()


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": ""}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": " OTLP , console"}, ["otlp", "console"]),
    ],
)
def test_only_an_exporter_named_in_the_environment_turns_tracing_on(
    environ: dict[str, str], names: list[str]
) -> None:
    assert tracing.exporter_names(environ) == names


def test_tracing_is_off_by_default() -> None:
    assert tracing.configure("dvp-test", {}) is False
    assert not tracing.enabled()
    assert tracing.tracer("anything") is None
    assert _tracing.current_headers() is None


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "'zipkin'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "'http/json'",
        ),
    ],
)
def test_an_exporter_or_protocol_it_cannot_do_is_refused_by_name(
    environ: dict[str, str], complaint: str
) -> None:
    with pytest.raises(TracingSetupError, match=complaint):
        tracing.configure("dvp-test", environ)
    assert not tracing.enabled()


def test_the_otlp_exporter_is_set_up_from_the_environment() -> None:
    environ = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces",
    }
    assert tracing.configure("dvp-scheduler-ticker", environ) is True
    try:
        assert tracing.enabled()
        assert tracing.resource().attributes["service.name"] == "dvp-scheduler-ticker"
    finally:
        tracing.shutdown(timeout_seconds=0.1)
    assert not tracing.enabled()


def test_a_due_span_puts_its_w3c_context_in_the_headers_and_ends_with_the_answer(
    exporter: InMemorySpanExporter,
) -> None:
    tracer = tracing.tracer("test")
    assert tracer is not None
    headers = event_headers(DUE)
    payload = encode(DUE)
    span = tracing.due_span(tracer, "fire", DUE, event_subject(DUE), payload, headers)
    tracing.end_publish_span(span, PublishAck(stream="DVP_TASKS", seq=7))
    [done] = exporter.get_finished_spans()
    context = done.context
    assert context is not None
    assert headers[header_names.TRACEPARENT] == (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    )
    assert done.name == "fire cleanup.temp-files"
    assert done.kind is SpanKind.PRODUCER
    assert done.parent is None
    assert done.attributes is not None
    assert dict(done.attributes) == {
        "messaging.system": "nats",
        "messaging.operation.name": "fire",
        "messaging.operation.type": "send",
        "messaging.destination.name": "dvp.tasks.acme.due.cleanup.temp-files",
        "messaging.destination.template": "dvp.tasks.{tenant}.due.{task}",
        "messaging.message.id": f"due:{DUE.execution_id}:1",
        "messaging.message.body.size": len(payload),
        "dvp.tenant_id": "acme",
        "dvp.task_id": "cleanup.temp-files",
        "dvp.execution_id": DUE.execution_id,
        "dvp.attempt": 1,
        "dvp.trigger": "schedule",
        "dvp.outcome": "published",
    }

    # What the header carries is the parent of what continues it.
    parent = tracing.extract(headers)
    child = tracer.start_span("next", context=parent)
    child.end()
    assert child.parent is not None
    assert (child.parent.trace_id, child.parent.span_id) == (context.trace_id, context.span_id)


def test_a_publish_refused_for_a_lost_race_is_no_error_but_a_failure_is(
    exporter: InMemorySpanExporter,
) -> None:
    tracer = tracing.tracer("test")
    assert tracer is not None
    refused = APIError(code=400, err_code=10071, description="wrong last sequence: 5")
    for answer in (refused, TimeoutError("no answer")):
        span = tracing.due_span(tracer, "fire", DUE, "s", b"", {})
        tracing.end_publish_span(span, answer)
    lost, failed = exporter.get_finished_spans()
    assert lost.attributes is not None
    assert failed.attributes is not None
    assert (lost.attributes["dvp.outcome"], lost.status.status_code) == (
        "refused",
        StatusCode.UNSET,
    )
    assert (failed.attributes["dvp.outcome"], failed.status.status_code) == (
        "failed",
        StatusCode.ERROR,
    )
    assert failed.attributes["error.type"] == "TimeoutError"


def test_headers_without_a_traceparent_continue_no_trace() -> None:
    assert tracing.extract(None) is None
    assert tracing.extract({header_names.MSG_ID: "due:x:1"}) is None


def test_a_span_ended_in_a_worker_crosses_to_the_executor_intact(
    exporter: InMemorySpanExporter,
) -> None:
    tracer = tracing.tracer("test")
    assert tracer is not None
    with (
        tracer.start_as_current_span("attempt") as attempt,
        tracer.start_as_current_span("call", kind=SpanKind.INTERNAL) as call,
    ):
        call.set_attribute("dvp.attempt", 2)
        call.add_event("retrying", {"why": "a test"})
        call.record_exception(ConnectionError("the feed did not answer"))
        call.set_status(StatusCode.ERROR, "the feed did not answer")
    original = exporter.get_finished_spans()[0]
    assert original.name == "call"
    exporter.clear()

    sent = pickle.loads(pickle.dumps(_tracing.EndedSpans((_tracing.ended(original),))))
    _tracing.export_from_worker(sent)
    [again] = exporter.get_finished_spans()
    assert (again.name, again.kind, again.attributes) == (
        "call",
        SpanKind.INTERNAL,
        {"dvp.attempt": 2},
    )
    assert again.context == original.context
    assert again.parent is not None
    assert again.parent.span_id == attempt.get_span_context().span_id
    assert (again.start_time, again.end_time) == (original.start_time, original.end_time)
    assert [event.name for event in again.events] == ["retrying", "exception"]
    assert again.status.status_code is StatusCode.ERROR
    assert again.resource.attributes["service.name"] == "dvp-test"
