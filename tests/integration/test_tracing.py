"""Tracing across processes: a ticker and an executor (its plugin in a worker process), each
exporting over OTLP/HTTP to a collector stub run by the test, put one execution that fails once
and then succeeds into one trace: fire → attempt 1 (error) → retry → attempt 2 (ok), each
attempt with its plugin call's span and the plugin's own span inside, and the span the plugin
makes in ``dvp_task_failed`` inside the failed attempt's. Without the ``OTEL_*``
variables nothing carries a trace header. An operator's trigger starts a trace too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamInfo
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts import STREAM_NAME, RetryScheduled, TaskDue, TaskSucceeded, new_execution_id
from contracts import headers as header_names
from dvp_scheduler.natsserver import NatsServer
from dvp_scheduler.operations import publish_operator_due
from natsio import tracing
from tests.integration.executor.conftest import ExecutorProcess
from tests.plugins.traced import DECIDE_SPAN, OWN_SPAN, TASK_ID
from tests.support import ROOT, eventually, read_events

pytestmark = pytest.mark.integration

PLUGIN = "tests.plugins.traced:TracedPlugin"


@dataclass(frozen=True)
class CollectedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    error: bool
    attributes: dict[str, Any]


class Collector:
    """An OTLP/HTTP receiver of traces (protobuf) on a free loopback port, keeping every span."""

    def __init__(self) -> None:
        self.spans: list[CollectedSpan] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.take(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def take(self, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            CollectedSpan(
                                service=str(resource.get("service.name", "")),
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_id=span.parent_span_id.hex(),
                                kind=span.kind,
                                error=span.status.code == 2,  # STATUS_CODE_ERROR
                                attributes=_attributes(span.attributes),
                            )
                        )

    def snapshot(self) -> list[CollectedSpan]:
        with self._lock:
            return list(self.spans)

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _attributes(values: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in values:
        which = item.value.WhichOneof("value")
        result[item.key] = getattr(item.value, which) if which else None
    return result


@contextmanager
def executor_process(
    url: str, env: dict[str, str], isolation: str = "process"
) -> Iterator[ExecutorProcess]:
    """``dvp-scheduler executor`` with the test plugin, run in worker processes or inline."""
    process = ExecutorProcess(url, [PLUGIN], "--isolation", isolation, env=env)
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def ticker_process(url: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``dvp-scheduler ticker`` as a process; stopped (SIGTERM, then SIGKILL) on the way out."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dvp_scheduler", "ticker", "--nats-url", url],
        cwd=ROOT,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def tracing_env(collector: Collector) -> dict[str, str]:
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


def no_tracing_env() -> dict[str, str]:
    return {"OTEL_TRACES_EXPORTER": "none"}


async def first_execution_done(js: JetStreamContext) -> tuple[TaskDue, RetryScheduled] | None:
    """The first scheduled execution of the task, once it succeeded on attempt 2."""
    events = await read_events(js, f"dvp.tasks.default.*.{TASK_ID}")
    dues = [e for e in events if isinstance(e, TaskDue) and e.trigger == "schedule"]
    if not dues:
        return None
    first = dues[0]
    retries = [
        e for e in events if isinstance(e, RetryScheduled) and e.execution_id == first.execution_id
    ]
    done = any(
        isinstance(e, TaskSucceeded) and e.execution_id == first.execution_id and e.attempt == 2
        for e in events
    )
    return (first, retries[0]) if done and retries else None


@pytest.mark.parametrize("isolation", ["process", "inline"])
async def test_one_trace_spans_a_fire_a_failed_attempt_its_retry_and_the_success(
    nats_server: NatsServer,
    js: JetStreamContext,
    stream: StreamInfo,
    isolation: str,
) -> None:
    with Collector() as collector:
        env = tracing_env(collector)
        with (
            executor_process(nats_server.url, env, isolation),
            ticker_process(nats_server.url, env),
        ):
            due, retry = await eventually(
                lambda: first_execution_done(js), within=30, message="attempt 2 succeeded"
            )
            execution = due.execution_id

            def trace_complete() -> list[CollectedSpan] | None:
                spans = collector.snapshot()
                fires = [
                    s
                    for s in spans
                    if s.name == f"fire {TASK_ID}" and s.attributes["dvp.execution_id"] == execution
                ]
                if not fires:
                    return None
                trace = [s for s in spans if s.trace_id == fires[0].trace_id]
                return trace if len(trace) >= 9 else None

            trace = await eventually(trace_complete, within=15, message="the whole trace")

    by_name: dict[str, list[CollectedSpan]] = {}
    for span in trace:
        by_name.setdefault(span.name, []).append(span)
    assert sorted(by_name) == sorted(
        [
            f"fire {TASK_ID}",
            f"attempt {TASK_ID}",
            f"retry {TASK_ID}",
            "dvp_execute_scheduled_task",
            OWN_SPAN,
            DECIDE_SPAN,
        ]
    ), by_name
    [fire] = by_name[f"fire {TASK_ID}"]
    [retry_span] = by_name[f"retry {TASK_ID}"]
    first, second = sorted(by_name[f"attempt {TASK_ID}"], key=lambda s: s.attributes["dvp.attempt"])
    calls = {s.parent_id: s for s in by_name["dvp_execute_scheduled_task"]}
    own = {s.parent_id: s for s in by_name[OWN_SPAN]}

    # fire → attempt 1 (error) → retry → attempt 2 (ok)
    assert fire.parent_id == ""  # the fire starts the trace
    assert first.parent_id == fire.span_id
    assert retry_span.parent_id == first.span_id
    assert second.parent_id == retry_span.span_id
    # each attempt: its plugin call, and the plugin's own span inside that
    for attempt in (first, second):
        call = calls[attempt.span_id]
        assert own[call.span_id].attributes["traced.attempt"] == attempt.attributes["dvp.attempt"]
        assert call.error is (attempt is first)
        assert call.attributes["dvp.plugin.name"] == "traced"
    assert calls[first.span_id].attributes["error.type"] == "ConnectionError"
    [decided] = by_name[DECIDE_SPAN]  # dvp_task_failed runs in the failed attempt's span
    assert decided.parent_id == first.span_id

    assert (fire.service, retry_span.service) == ("dvp-scheduler-ticker",) * 2
    assert {first.service, second.service} == {"dvp-scheduler-executor"}
    assert {s.service for s in calls.values()} | {s.service for s in own.values()} == {
        "dvp-scheduler-executor"
    }
    assert (fire.kind, retry_span.kind, first.kind) == (4, 4, 5)  # producer, producer, consumer
    assert first.error
    assert not second.error
    assert (first.attributes["dvp.outcome"], second.attributes["dvp.outcome"]) == (
        "retry_scheduled",
        "succeeded",
    )
    for span in (fire, first, retry_span, second):
        assert span.attributes["dvp.execution_id"] == due.execution_id
        assert span.attributes["dvp.tenant_id"] == "default"
        assert span.attributes["dvp.task_id"] == TASK_ID
        assert span.attributes["messaging.system"] == "nats"
    assert fire.attributes["messaging.destination.name"] == f"dvp.tasks.default.due.{TASK_ID}"
    assert fire.attributes["messaging.message.id"] == f"due:{execution}:1"
    assert (first.attributes["dvp.attempt"], second.attributes["dvp.attempt"]) == (1, 2)
    assert retry.attempt == 1


async def test_without_otel_variables_no_event_carries_a_trace_header(
    nats_server: NatsServer,
    js: JetStreamContext,
    stream: StreamInfo,
) -> None:
    env = no_tracing_env()
    with executor_process(nats_server.url, env), ticker_process(nats_server.url, env):
        await eventually(lambda: first_execution_done(js), within=30, message="attempt 2 succeeded")
    info = await js.stream_info(STREAM_NAME)
    assert info.state.last_seq > 0
    for seq in range(1, info.state.last_seq + 1):
        msg = await js.get_msg(STREAM_NAME, seq)
        assert header_names.TRACEPARENT not in (msg.headers or {}), msg.subject


async def test_an_operators_trigger_starts_the_trace_its_task_due_carries(
    js: JetStreamContext, stream: StreamInfo
) -> None:
    spans = InMemorySpanExporter()
    tracing.enable(spans, service_name="dvp-scheduler")
    try:
        published = await publish_operator_due(
            js, "default", TASK_ID, execution_id=new_execution_id(), trigger="manual", actor="ops"
        )
    finally:
        tracing.shutdown()
    [span] = spans.get_finished_spans()
    context = span.context
    assert context is not None
    assert span.name == f"trigger {TASK_ID}"
    assert span.parent is None
    assert span.attributes is not None
    assert span.attributes["dvp.execution_id"] == published.due.execution_id
    assert span.attributes["dvp.outcome"] == "published"
    stored = await js.get_msg(STREAM_NAME, published.sequence)
    assert (stored.headers or {})[header_names.TRACEPARENT] == (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    )
