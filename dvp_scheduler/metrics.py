"""The metrics endpoint: a service's counters in the Prometheus text format, over HTTP.

The services only count: each has a ``stats`` of one shape (a dataclass of plain numbers:
`ticker.TickerStats`, `executor.ExecutorStats`, `projector.ProjectorStats`); this module reads
those when Prometheus scrapes, so serving metrics costs the services
nothing between scrapes. The endpoint also carries the usual process metrics (memory, CPU, open
files, garbage collections).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from threading import Thread
from typing import TYPE_CHECKING, Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dvp_scheduler.errors import MetricsError

if TYPE_CHECKING:  # each command imports only the service it runs
    from executor import Executor
    from projector import Projector
    from ticker import Ticker

DEFAULT_METRICS_HOST: Final = "127.0.0.1"


class MetricsSettings(BaseSettings):
    """Where a service serves its metrics (``DVP_METRICS_*``; the flags derive from it)."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_prefix="DVP_METRICS_")

    port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="serve Prometheus metrics at http://HOST:PORT/metrics",
    )
    host: str = Field(
        default=DEFAULT_METRICS_HOST,
        description="address the metrics endpoint listens on (0.0.0.0 in a container)",
    )


MetricsReader = Callable[[], Iterable[Metric]]
"""Reads a service's metrics at the moment of a scrape."""


class MetricsEndpoint:
    """``http://HOST:PORT/metrics`` for one service, served from a thread of its own."""

    def __init__(self, read: MetricsReader, *, port: int, host: str = DEFAULT_METRICS_HOST) -> None:
        self._read = read
        self._host = host
        self._port = port
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None

    @property
    def host(self) -> str:
        """The address it listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port it listens on (the one picked when 0 was asked for)."""
        return self._server.server_port if self._server is not None else self._port

    def start(self) -> None:
        """Listen; raises `MetricsError` when the address cannot be had."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Reading(self._read))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        try:
            self._server, self._thread = start_http_server(
                self._port, addr=self._host, registry=registry
            )
        except OSError as error:
            raise MetricsError(
                f"cannot serve metrics on {self._host}:{self._port} ({error.strerror or error}): "
                "choose another --metrics-port, or leave it out to serve none"
            ) from error

    def stop(self) -> None:
        """Stop listening."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class _Reading(Collector):
    def __init__(self, read: MetricsReader) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        return list(self._read())


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counters(
    name: str, documentation: str, label: str, values: dict[str, float]
) -> CounterMetricFamily:
    """One counter family with a sample per value of ``label``."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for label_value, value in values.items():
        family.add_metric([label_value], value)
    return family


def ticker_metrics(ticker: Ticker) -> Iterator[Metric]:
    """The ticker's metrics (prefix ``dvp_ticker_``)."""
    stats = ticker.stats
    yield _gauge("dvp_ticker_tasks", "Tasks this ticker knows of.", stats.tasks)
    yield _counters(
        "dvp_ticker_events_published",
        "Events this ticker wrote to the stream, by type.",
        "event",
        {"due": stats.due_published, "skipped": stats.skipped_published},
    )
    yield _counter(
        "dvp_ticker_lost_closed",
        "Attempts this ticker closed as lost: started, and no outcome long past their deadline.",
        stats.lost_closed,
    )
    yield _counter(
        "dvp_ticker_cancels_closed",
        "Executions waiting for a retry that this ticker ended because an operator cancelled them.",
        stats.cancels_closed,
    )
    yield _counter(
        "dvp_ticker_runs_taken_off",
        "One-off runs (trigger --at) this ticker took off their task's list once fired.",
        stats.runs_taken_off,
    )
    yield _counter(
        "dvp_ticker_duplicates",
        "Publishes the stream already held (another ticker, or a retried publish, was first).",
        stats.duplicates,
    )
    yield _counter(
        "dvp_ticker_conflicts",
        "Publishes refused because the task moved on in the stream (another ticker was first).",
        stats.conflicts,
    )
    yield _counter("dvp_ticker_publish_errors", "Publishes that failed.", stats.publish_errors)
    yield _counter(
        "dvp_ticker_held_disconnected",
        "Fires and retries not sent while the connection was down (decided again after it).",
        stats.held_disconnected,
    )
    yield _counter(
        "dvp_ticker_bad_messages", "Messages that were not events, skipped.", stats.bad_messages
    )
    yield _gauge(
        "dvp_ticker_invalid_tasks",
        "Tasks whose newest registration breaks the registration rules: not scheduled.",
        stats.invalid_tasks,
    )
    yield _counter(
        "dvp_ticker_invalid_registrations",
        "Registrations read from the stream that break the registration rules.",
        stats.invalid_registrations,
    )
    yield _counter(
        "dvp_ticker_retries_held",
        "Retry messages put back until their retry_at.",
        stats.retries_held,
    )
    yield _counter(
        "dvp_ticker_blocks_touched",
        "Old messages read just before a burst, so that its guards found their blocks in memory.",
        stats.blocks_touched,
    )
    if stats.startup_seconds is not None:
        yield _gauge(
            "dvp_ticker_startup_seconds",
            "Seconds the ticker took to read the stream's state at start.",
            stats.startup_seconds,
        )
    lateness = stats.fire_lateness
    yield HistogramMetricFamily(
        "dvp_ticker_fire_lateness_seconds",
        "From each on-time fire's instant (after its jitter) to the stream's acknowledgement "
        "of its TaskDue.",
        buckets=[
            ("+Inf" if bound == float("inf") else repr(bound), count)
            for bound, count in lateness.cumulative()
        ],
        sum_value=lateness.total,
    )


def executor_metrics(executor: Executor) -> Iterator[Metric]:
    """The executor's metrics (prefix ``dvp_executor_``)."""
    stats = executor.stats
    yield _gauge("dvp_executor_attempts_running", "Attempts running now.", stats.running)
    yield _counter("dvp_executor_attempts_started", "Attempts started.", stats.started)
    yield _counters(
        "dvp_executor_attempts_ended",
        "Attempts ended, by outcome.",
        "outcome",
        {
            "succeeded": stats.succeeded,
            "retry_scheduled": stats.retries_scheduled,
            "failed": stats.failed,
        },
    )
    yield _counter(
        "dvp_executor_bad_input",
        "Messages on a due subject that are not a readable TaskDue: terminated.",
        stats.bad_input,
    )
    yield _counter(
        "dvp_executor_unowned",
        "TaskDue deliveries no loaded plugin owns: given back for an executor that does.",
        stats.unowned,
    )
    yield _counter(
        "dvp_executor_already_recorded",
        "Redelivered attempts whose outcome the stream already held: acknowledged, not rerun.",
        stats.already_recorded,
    )
    yield _counter(
        "dvp_executor_returned",
        "Attempts cancelled at shutdown and given back for redelivery.",
        stats.returned,
    )
    yield _counters(
        "dvp_executor_registrations",
        "Task definitions this executor published, by change.",
        "change",
        {"registered": stats.registered, "unregistered": stats.unregistered},
    )
    yield _counter(
        "dvp_executor_plugin_errors",
        "Plugins that failed to load, and rejected task definitions, over every (re)load.",
        stats.plugin_errors,
    )
    yield _gauge(
        "dvp_executor_workers",
        "Worker processes alive now (isolation=process), starting ones included.",
        stats.workers,
    )
    yield _counters(
        "dvp_executor_workers_ended",
        "Worker processes ended in an attempt: killed past its deadline, or died on their own.",
        "how",
        {"killed": stats.workers_killed, "died": stats.workers_died},
    )
    yield _counter(
        "dvp_executor_workers_started", "Worker processes started.", stats.workers_started
    )


def projector_metrics(projector: Projector) -> Iterator[Metric]:
    """The projector's metrics (prefix ``dvp_projector_``)."""
    stats = projector.stats
    yield _gauge(
        "dvp_projector_sequence", "The last stream sequence folded into the state.", stats.sequence
    )
    yield _gauge("dvp_projector_tasks", "Tasks in the read model.", stats.tasks)
    yield _gauge(
        "dvp_projector_invalid_tasks",
        "Registered tasks whose registration breaks the registration rules (status invalid).",
        stats.invalid_tasks,
    )
    yield _counter(
        "dvp_projector_events_applied", "Events folded into the state.", stats.events_applied
    )
    yield _counters(
        "dvp_projector_messages_skipped",
        "Messages left out of the state, by reason.",
        "reason",
        {
            "unknown_event_type": stats.unknown_events,
            "not_an_event": stats.invalid_messages,
            "fold_error": stats.failed_messages,
        },
    )
    yield from backlog_metrics(projector)
    yield from task_metrics(projector)


def backlog_metrics(projector: Projector) -> Iterator[Metric]:
    """The stream and what waits in it, as the projector last read them (prefix
    ``dvp_stream_``), and the projector's lag behind the stream; nothing while it cannot read
    them."""
    backlog = projector.backlog
    if backlog is None:
        return
    yield _gauge("dvp_stream_last_sequence", "The stream's last sequence.", backlog.last_sequence)
    yield _gauge("dvp_stream_messages", "Messages in the stream.", backlog.messages)
    yield _gauge(
        "dvp_projector_lag",
        "Stream messages this projector has not folded in yet.",
        max(0, backlog.last_sequence - projector.stats.sequence),
    )
    per_tenant = {
        "dvp_stream_due_queued": "TaskDue no executor has taken yet, by tenant.",
        "dvp_stream_attempts_running": "TaskDue taken by an executor, not yet acknowledged.",
        "dvp_stream_executors_waiting": "Pull requests of executors waiting for work, by tenant.",
    }
    families = {
        name: GaugeMetricFamily(name, documentation, labels=["tenant"])
        for name, documentation in per_tenant.items()
    }
    for queue in backlog.queues:
        labels = [queue.tenant_id]
        families["dvp_stream_due_queued"].add_metric(labels, queue.due_queued)
        families["dvp_stream_attempts_running"].add_metric(labels, queue.attempts_running)
        families["dvp_stream_executors_waiting"].add_metric(labels, queue.executors_waiting)
    yield from families.values()
    if backlog.retries_waiting is not None:
        yield _gauge(
            "dvp_stream_retries_waiting",
            "RetryScheduled whose next attempt the tickers have not published yet.",
            backlog.retries_waiting,
        )


def task_metrics(projector: Projector) -> Iterator[Metric]:
    """Per-task series (prefix ``dvp_task_``, labels ``tenant`` and ``task``) for at most the
    projector's ``task_metrics_limit`` tasks, the overdue ones first; and how many tasks are
    overdue and how many were left out, whatever the limit."""
    series = projector.task_series(datetime.now(UTC))
    overdue = GaugeMetricFamily(
        "dvp_task_overdue",
        "1 while the task's last success is older than its schedule allows, else 0 (paused: 0).",
        labels=["tenant", "task"],
    )
    last_success = GaugeMetricFamily(
        "dvp_task_last_success_timestamp_seconds",
        "When the task last succeeded, in Unix seconds (no sample before its first success).",
        labels=["tenant", "task"],
    )
    in_a_row = GaugeMetricFamily(
        "dvp_task_consecutive_failures",
        "Executions of the task that ended failed since its last success.",
        labels=["tenant", "task"],
    )
    failures = CounterMetricFamily(
        "dvp_task_failures",
        "Executions of the task that ended failed.",
        labels=["tenant", "task"],
    )
    for row, late in series.rows:
        labels = [row.tenant_id, row.task_id]
        overdue.add_metric(labels, 1.0 if late else 0.0)
        if row.last_succeeded_at is not None:
            last_success.add_metric(labels, row.last_succeeded_at.timestamp())
        in_a_row.add_metric(labels, row.consecutive_failures)
        failures.add_metric(labels, row.failed)
    yield from (overdue, last_success, in_a_row, failures)
    yield _gauge(
        "dvp_projector_overdue_tasks",
        "Tasks whose last success is older than their schedule allows (all of them).",
        series.overdue,
    )
    yield _gauge(
        "dvp_projector_task_series_omitted",
        "Registered tasks without per-task series, beyond the projector's task_metrics_limit.",
        series.omitted,
    )
