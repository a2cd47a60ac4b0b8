"""Tracing of attempts (only with tracing on; `natsio.tracing`).

An attempt's span (``attempt <task>``, a consumer span) is a child of the trace context its
``TaskDue`` carries, or the root of a trace of its own when that carries none. The events the
executor records for the attempt (``TaskStarted``, the outcome) carry the attempt's context, so
a ``RetryScheduled`` continues the trace at the tickers. The plugin call has a span of its own
(``dvp_execute_scheduled_task``), the current span while the hook runs, so that spans the
plugin makes are its children. It is made where the plugin runs: in the executor's loop
(inline) or in a worker process, which gets the attempt's context with its order and sends
the spans that end there back to the executor (`EndedSpans`), which exports them with its own.
``dvp_task_failed`` runs in the attempt's span in both places.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from contracts import RetryScheduled, TaskDue, TaskFailed, TaskSucceeded
from contracts import headers as header_names
from contracts.stream import executor_durable
from dvp_cms.plugins.attempts import AttemptResult, Failure, run_attempt
from dvp_cms.plugins.hooks.scheduled_tasks import TaskExecutionContext
from dvp_cms.plugins.manager import PluginManager, RegisteredTask
from natsio import tracing

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import Span, Tracer

TRACER_NAME: Final = "dvp_scheduler.executor"

WORKER_MODULES: Final = ["opentelemetry.sdk.trace", "opentelemetry.trace.propagation.tracecontext"]
"""What a worker process imports to trace (with tracing on, its forkserver imports them)."""

_Outcome = TaskSucceeded | RetryScheduled | TaskFailed

_OUTCOMES: Final[dict[type, str]] = {
    TaskSucceeded: "succeeded",
    RetryScheduled: "retry_scheduled",
    TaskFailed: "failed",
}


_NO_SPAN: Final[contextlib.nullcontext[None]] = contextlib.nullcontext()


def attempt_span(
    tracer: Tracer | None, msg: Msg, due: TaskDue
) -> contextlib.AbstractContextManager[Span | None]:
    """The attempt's span, current inside the block and ended on leaving it; ``None`` (and
    nothing done) with ``tracer`` ``None``."""
    return _NO_SPAN if tracer is None else _attempt_span(tracer, msg, due)


@contextlib.contextmanager
def _attempt_span(tracer: Tracer, msg: Msg, due: TaskDue) -> Iterator[Span]:
    from opentelemetry.trace import SpanKind, use_span

    headers = msg.headers or {}
    span = tracer.start_span(
        f"attempt {due.task_id}",
        context=tracing.extract(headers),
        kind=SpanKind.CONSUMER,
        attributes={
            tracing.MESSAGING_SYSTEM: "nats",
            tracing.OPERATION_NAME: "attempt",
            tracing.OPERATION_TYPE: "process",
            tracing.DESTINATION: msg.subject,
            tracing.DESTINATION_TEMPLATE: tracing.DUE_TEMPLATE,
            tracing.CONSUMER_GROUP: executor_durable(due.tenant_id),
            tracing.MESSAGE_ID: headers.get(header_names.MSG_ID, ""),
            tracing.BODY_SIZE: len(msg.data),
            tracing.TENANT: due.tenant_id,
            tracing.TASK: due.task_id,
            tracing.EXECUTION: due.execution_id,
            tracing.ATTEMPT: due.attempt,
            tracing.TRIGGER: due.trigger,
        },
    )
    with use_span(span, end_on_exit=True, record_exception=False):
        yield span


def record_outcome(span: Span | None, outcome: _Outcome) -> None:
    """Say on the attempt's span how it ended."""
    if span is None:
        return
    from opentelemetry.trace import StatusCode

    span.set_attribute(tracing.OUTCOME, _OUTCOMES[type(outcome)])
    if isinstance(outcome, TaskSucceeded):
        return
    span.set_attribute(tracing.ERROR_KIND, outcome.error.kind)
    span.set_attribute(tracing.ERROR_TYPE, outcome.error.exception_type or outcome.error.kind)
    if isinstance(outcome, RetryScheduled):
        span.set_attribute("dvp.retry_at", outcome.retry_at.isoformat())
    span.set_status(StatusCode.ERROR, outcome.error.message)


def headers_of(span: Span | None) -> dict[str, str] | None:
    """The trace headers of the attempt's events; ``None`` without a span."""
    return None if span is None else tracing.trace_headers(span)


def attached(parent: Mapping[str, str] | None) -> contextlib.AbstractContextManager[object]:
    """The trace context of ``parent`` (trace headers) current inside the block; nothing done
    without it."""
    return _NO_SPAN if parent is None else _attached(parent)


@contextlib.contextmanager
def _attached(parent: Mapping[str, str]) -> Iterator[None]:
    from opentelemetry import context

    extracted = tracing.extract(parent)
    token = None if extracted is None else context.attach(extracted)
    try:
        yield
    finally:
        if token is not None:
            context.detach(token)


def current_headers() -> dict[str, str] | None:
    """The current span's trace headers (an attempt's order to its worker); ``None`` while
    tracing is off."""
    if not tracing.enabled():
        return None
    from opentelemetry.trace import get_current_span

    return tracing.trace_headers(get_current_span())


async def run_traced(
    manager: PluginManager,
    task: RegisteredTask,
    context: TaskExecutionContext,
    parent: Mapping[str, str] | None = None,
) -> AttemptResult:
    """`run_attempt` inside the plugin call's span: a child of ``parent`` (trace headers) or
    else of the current span. Without tracing, `run_attempt` alone."""
    tracer = tracing.tracer(TRACER_NAME) if tracing.enabled() else None
    if tracer is None:
        return await run_attempt(manager, task, context)
    from opentelemetry.trace import SpanKind, StatusCode

    plugin = task.plugin
    with tracer.start_as_current_span(
        "dvp_execute_scheduled_task",
        context=tracing.extract(parent),
        kind=SpanKind.INTERNAL,
        attributes={
            tracing.PLUGIN: plugin.name,
            tracing.PLUGIN_VERSION: str(getattr(plugin, "version", "")),
            tracing.TENANT: context.tenant_id or "",
            tracing.TASK: context.task_id,
            tracing.EXECUTION: context.execution_id or "",
            tracing.ATTEMPT: context.attempt,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            result = await run_attempt(manager, task, context)
        except asyncio.CancelledError:
            span.set_attribute(tracing.OUTCOME, "cancelled")
            raise
        if isinstance(result, Failure):
            span.set_attribute(tracing.OUTCOME, "failed")
            span.set_attribute(tracing.ERROR_KIND, result.error.kind)
            span.set_attribute(tracing.ERROR_TYPE, result.error.exception_type or result.error.kind)
            if result.error.kind == "raised":
                span.record_exception(result.exception)
            span.set_status(StatusCode.ERROR, result.error.message)
        else:
            span.set_attribute(tracing.OUTCOME, "succeeded")
        return result


# -- spans that end in a worker process ---------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    trace_id: int
    span_id: int
    is_remote: bool
    flags: int
    state: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Ended:
    """One span that ended in a worker, in plain (picklable) values."""

    name: str
    context: _Context
    parent: _Context | None
    kind: int
    attributes: dict[str, Any]
    events: tuple[tuple[str, int, dict[str, Any]], ...]
    links: tuple[tuple[_Context, dict[str, Any]], ...]
    status: tuple[int, str | None]
    start_time: int | None
    end_time: int | None
    scope: tuple[str, str | None, str | None] | None


@dataclass(frozen=True)
class EndedSpans:
    """Spans that ended in a worker process, for the executor to export."""

    spans: tuple[_Ended, ...]


def _plain_context(context: Any) -> _Context:
    return _Context(
        context.trace_id,
        context.span_id,
        context.is_remote,
        int(context.trace_flags),
        tuple(context.trace_state.items()),
    )


def _span_context(plain: _Context) -> Any:
    from opentelemetry.trace import SpanContext, TraceFlags, TraceState

    return SpanContext(
        plain.trace_id,
        plain.span_id,
        plain.is_remote,
        TraceFlags(plain.flags),
        TraceState(list(plain.state)),
    )


def ended(span: ReadableSpan) -> _Ended:
    """``span`` in plain values."""
    scope = span.instrumentation_scope
    return _Ended(
        name=span.name,
        context=_plain_context(span.context),
        parent=None if span.parent is None else _plain_context(span.parent),
        kind=span.kind.value,
        attributes=dict(span.attributes or {}),
        events=tuple(
            (event.name, event.timestamp, dict(event.attributes or {})) for event in span.events
        ),
        links=tuple(
            (_plain_context(link.context), dict(link.attributes or {})) for link in span.links
        ),
        status=(span.status.status_code.value, span.status.description),
        start_time=span.start_time,
        end_time=span.end_time,
        scope=None if scope is None else (scope.name, scope.version, scope.schema_url),
    )


def readable(plain: _Ended, resource: Any) -> ReadableSpan:
    """The span ``plain`` describes, as this process's spans are exported."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    return ReadableSpan(
        name=plain.name,
        context=_span_context(plain.context),
        parent=None if plain.parent is None else _span_context(plain.parent),
        resource=resource,
        attributes=plain.attributes,
        events=[Event(name, attributes, timestamp) for name, timestamp, attributes in plain.events],
        links=[Link(_span_context(context), attributes) for context, attributes in plain.links],
        kind=SpanKind(plain.kind),
        status=Status(StatusCode(plain.status[0]), plain.status[1]),
        start_time=plain.start_time,
        end_time=plain.end_time,
        instrumentation_scope=None if plain.scope is None else InstrumentationScope(*plain.scope),
    )


def export_from_worker(message: EndedSpans) -> None:
    """Export the spans a worker sent, with this process's resource."""
    resource = tracing.resource()
    if resource is not None:
        tracing.export_ended(readable(plain, resource) for plain in message.spans)


def forward_from_worker(send: Callable[[object], None]) -> None:
    """Turn tracing on in a worker process: each span that ends is sent (``send``) to the
    executor, which exports it."""
    from opentelemetry.sdk.trace import SpanProcessor

    class Forward(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            send(EndedSpans((ended(span),)))

    tracing.enable_forwarding(Forward())
