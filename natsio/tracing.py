"""Tracing: OpenTelemetry spans for fires and attempts, their context in the events' headers.

Off unless a process turns it on at its start: `configure` reads the standard ``OTEL_*``
variables (the CLI calls it once, before any service is built), `enable` takes an exporter
(tests, programs that embed a service). While it is off, `tracer` answers ``None``; the
services ask once, when they are built, and then add no header and make no span, so the hot
paths pay one ``is None`` test and nothing of OpenTelemetry is imported.

Only the W3C Trace Context headers (``traceparent``, ``tracestate``) travel in the events,
whatever ``OTEL_PROPAGATORS`` says: the executor and the ticker continue the trace of the
message they handle, nothing else.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from contracts import headers as header_names
from contracts.events import TaskDue
from natsio.errors import TracingSetupError, is_guard_refusal
from natsio.publish import Answer

if TYPE_CHECKING:
    from nats.js.api import PubAck
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, SynchronousMultiSpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("dvp_scheduler.tracing")

EXPORTERS: Final = ("otlp", "console")
"""The values of ``OTEL_TRACES_EXPORTER`` (comma-separated) that turn tracing on."""

# Span attributes: the messaging conventions where they fit, and ours under ``dvp.``.
MESSAGING_SYSTEM: Final = "messaging.system"
OPERATION_NAME: Final = "messaging.operation.name"
OPERATION_TYPE: Final = "messaging.operation.type"
DESTINATION: Final = "messaging.destination.name"
DESTINATION_TEMPLATE: Final = "messaging.destination.template"
MESSAGE_ID: Final = "messaging.message.id"
BODY_SIZE: Final = "messaging.message.body.size"
CONSUMER_GROUP: Final = "messaging.consumer.group.name"
ERROR_TYPE: Final = "error.type"
TENANT: Final = "dvp.tenant_id"
TASK: Final = "dvp.task_id"
EXECUTION: Final = "dvp.execution_id"
ATTEMPT: Final = "dvp.attempt"
TRIGGER: Final = "dvp.trigger"
OUTCOME: Final = "dvp.outcome"
"""``succeeded``, ``retry_scheduled`` or ``failed`` (an attempt); ``published``,
``duplicate`` or ``refused`` (a publish)."""
ERROR_KIND: Final = "dvp.error.kind"
PLUGIN: Final = "dvp.plugin.name"
PLUGIN_VERSION: Final = "dvp.plugin.version"

DUE_TEMPLATE: Final = "dvp.tasks.{tenant}.due.{task}"
"""The due subjects, as ``messaging.destination.template``."""


class _State:
    """The process's tracing: off (no provider), or its provider and span processors."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.provider: Any = None
        self.processors: SynchronousMultiSpanProcessor | None = None


_state: Final = _State()


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The exporters ``environ`` asks for; none (tracing off) when ``OTEL_TRACES_EXPORTER`` is
    unset, empty or ``none``, or ``OTEL_SDK_DISABLED`` is ``true``."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
        if name.strip()
    ]
    return [] if names in ([], ["none"]) else names


def configure(service_name: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on as the ``OTEL_*`` variables say; whether it is on.

    ``OTEL_TRACES_EXPORTER`` names the exporters (`EXPORTERS`); ``otlp`` sends to
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_ENDPOINT``) over
    HTTP/protobuf, or gRPC when ``OTEL_EXPORTER_OTLP_PROTOCOL`` says ``grpc`` and its package
    is installed. The exporter, the sampler (``OTEL_TRACES_SAMPLER``), the batching
    (``OTEL_BSP_*``) and the resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``;
    ``service_name`` when neither names the service) are the SDK's, and read the rest of the
    variables from ``os.environ`` themselves; ``environ`` is where the choices made here read
    them (tests pass their own).

    Raises:
        TracingSetupError: an exporter or protocol that is not known or not installed.
    """
    names = exporter_names(environ)
    if not names:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning(
            "OTEL_TRACES_EXPORTER=%s, but the OpenTelemetry SDK is not installed "
            "(pip install 'dvp-scheduler[tracing]'): tracing stays off",
            ",".join(names),
        )
        return False
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "otlp":
            exporters.append(_otlp_exporter(environ))
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        else:
            raise TracingSetupError(
                f"OTEL_TRACES_EXPORTER names {name!r}; dvp-scheduler exports traces with "
                f"{', '.join(EXPORTERS)} (or none)"
            )
    named = "OTEL_SERVICE_NAME" in environ or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    resource = Resource.create({} if named else {"service.name": service_name})
    _install(resource, [BatchSpanProcessor(exporter) for exporter in exporters])
    log.info("tracing on: exporting spans with %s", ", ".join(names))
    return True


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError:
            raise TracingSetupError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the package "
                "opentelemetry-exporter-otlp-proto-grpc; install it, or use http/protobuf"
            ) from None
        exporter: SpanExporter = GrpcSpanExporter()
        return exporter
    raise TracingSetupError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: dvp-scheduler exports over http/protobuf "
        "or grpc"
    )


def enable(exporter: SpanExporter, *, service_name: str = "dvp-scheduler") -> None:
    """Turn tracing on with ``exporter``, each span exported as it ends (tests, embedding)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    _install(Resource.create({"service.name": service_name}), [SimpleSpanProcessor(exporter)])


def enable_forwarding(forward: Any) -> None:
    """Turn tracing on with ``forward`` as the one span processor (a process whose spans
    another one exports: an executor's worker)."""
    from opentelemetry.sdk.resources import Resource

    _install(Resource.get_empty(), [forward])


def _install(resource: Any, processors: Iterable[Any]) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor, TracerProvider

    active = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
    for processor in processors:
        active.add_span_processor(processor)
    provider = TracerProvider(resource=resource, active_span_processor=active)
    with _state.lock:
        if _state.provider is not None:
            raise TracingSetupError("tracing is on already in this process")
        _state.provider, _state.processors = provider, active
    # Plugins' own spans (`opentelemetry.trace.get_tracer`) go to the same provider.
    trace.set_tracer_provider(provider)


def enabled() -> bool:
    """Whether tracing is on in this process."""
    return _state.provider is not None


def tracer(name: str) -> Tracer | None:
    """The tracer of a component; ``None`` while tracing is off."""
    provider = _state.provider
    if provider is None:
        return None
    result: Tracer = provider.get_tracer(name)
    return result


def shutdown(timeout_seconds: float = 5.0) -> None:
    """Export what is pending (within about ``timeout_seconds``) and turn tracing off."""
    with _state.lock:
        provider, _state.provider, _state.processors = _state.provider, None, None
    if provider is None:
        return
    try:
        provider.force_flush(int(timeout_seconds * 1000))
        provider.shutdown()
    except Exception:
        log.warning("exporting the last spans failed", exc_info=True)


def export_ended(spans: Iterable[ReadableSpan]) -> None:
    """Export spans that ended in another process (an executor's worker), as if here."""
    processors = _state.processors
    if processors is None:
        return
    for span in spans:
        processors.on_end(span)


def resource() -> Any:
    """The resource (service name and the rest) of this process's spans; ``None`` when off."""
    provider = _state.provider
    return None if provider is None else provider.resource


def inject(headers: MutableMapping[str, str], span: Span) -> None:
    """Add ``span``'s W3C trace context to ``headers``."""
    from opentelemetry.trace import format_span_id, format_trace_id

    context = span.get_span_context()
    if not context.is_valid:
        return
    headers[header_names.TRACEPARENT] = (
        f"00-{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}-"
        f"{context.trace_flags:02x}"
    )
    state = context.trace_state.to_header()
    if state:
        headers[header_names.TRACESTATE] = state


def trace_headers(span: Span) -> dict[str, str]:
    """``span``'s W3C trace context as headers."""
    result: dict[str, str] = {}
    inject(result, span)
    return result


def extract(headers: Mapping[str, str] | None) -> Context | None:
    """The trace context a message's ``headers`` carry; ``None`` when they carry none."""
    if not headers or header_names.TRACEPARENT not in headers:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {
        name: headers[name]
        for name in (header_names.TRACEPARENT, header_names.TRACESTATE)
        if name in headers
    }
    return TraceContextTextMapPropagator().extract(carrier)


def due_span(
    tracer: Tracer,
    operation: str,
    due: TaskDue,
    subject: str,
    payload: bytes,
    headers: MutableMapping[str, str],
    *,
    parent: Context | None = None,
    start_time: int | None = None,
) -> Span:
    """The span of publishing ``due`` (``operation``: ``fire``, ``retry``, ``trigger``, ...),
    a producer span named ``<operation> <task>``, a child of ``parent`` or the root of a new
    trace; its context is added to ``headers``. End it with `end_publish_span`."""
    from opentelemetry.trace import SpanKind

    span = tracer.start_span(
        f"{operation} {due.task_id}",
        context=parent,
        kind=SpanKind.PRODUCER,
        start_time=start_time,
        attributes={
            MESSAGING_SYSTEM: "nats",
            OPERATION_NAME: operation,
            OPERATION_TYPE: "send",
            DESTINATION: subject,
            DESTINATION_TEMPLATE: DUE_TEMPLATE,
            MESSAGE_ID: headers.get(header_names.MSG_ID, ""),
            BODY_SIZE: len(payload),
            TENANT: due.tenant_id,
            TASK: due.task_id,
            EXECUTION: due.execution_id,
            ATTEMPT: due.attempt,
            TRIGGER: due.trigger,
        },
    )
    inject(headers, span)
    return span


def end_publish_span(span: Span, answer: Answer | PubAck) -> None:
    """End a publish's span with the stream's answer, or the error that stands for none."""
    from opentelemetry.trace import StatusCode

    if not isinstance(answer, BaseException):
        span.set_attribute(OUTCOME, "duplicate" if answer.duplicate else "published")
    elif is_guard_refusal(answer):
        span.set_attribute(OUTCOME, "refused")  # another writer won the race: not an error
    else:
        span.set_attribute(OUTCOME, "failed")
        span.set_attribute(ERROR_TYPE, type(answer).__name__)
        span.set_status(StatusCode.ERROR, str(answer))
    span.end()
