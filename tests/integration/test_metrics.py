"""The metrics endpoints of a running ticker, executor and projector, scraped as Prometheus does."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager

import pytest
from nats.js.api import StreamInfo
from prometheus_client.parser import text_string_to_metric_families

from dvp_scheduler.metrics import (
    MetricsEndpoint,
    MetricsReader,
    executor_metrics,
    projector_metrics,
    ticker_metrics,
)
from dvp_scheduler.natsserver import NatsServer
from executor import Executor, ExecutorSettings
from natsio import NatsConnection
from projector import Projector, ProjectorSettings
from tests.support import eventually, free_port
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample at ``/metrics``, by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@contextmanager
def serving(read: MetricsReader) -> Iterator[MetricsEndpoint]:
    endpoint = MetricsEndpoint(read, port=0)
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


async def test_ticker_executor_and_projector_count_what_they_do(
    nats_server: NatsServer, stream: StreamInfo
) -> None:
    connection = NatsConnection(url=nats_server.url)
    async with AsyncExitStack() as stack:
        executor = await stack.enter_async_context(
            Executor(
                ExecutorSettings(
                    connection=connection,
                    plugins=("tests.plugins.pulse:PulsePlugin",),
                    use_entry_points=False,
                )
            )
        )
        ticker = await stack.enter_async_context(Ticker(TickerSettings(connection=connection)))
        projector = await stack.enter_async_context(
            Projector(ProjectorSettings(connection=connection, mirror=False))
        )
        endpoints = [
            stack.enter_context(serving(lambda: ticker_metrics(ticker))),
            stack.enter_context(serving(lambda: executor_metrics(executor))),
            stack.enter_context(serving(lambda: projector_metrics(projector))),
        ]
        # Pulse's third execution is refused for good: by then every outcome has happened.
        await eventually(lambda: executor.stats.failed >= 1, within=15, message="a failure")
        await eventually(lambda: projector.state.events_applied >= 10, message="projected")
        ticker_samples, executor_samples, projector_samples = await asyncio.gather(
            *(asyncio.to_thread(scrape, endpoint.port) for endpoint in endpoints)
        )

    due = ticker_samples[("dvp_ticker_events_published_total", (("event", "due"),))]
    assert 3 <= due <= ticker.stats.due_published  # (the ticker went on after the scrape)
    assert ticker_samples[("dvp_ticker_tasks", ())] == 1
    # Every on-time fire is in the lateness histogram; on an idle test server, well under 1 s.
    assert ticker_samples[("dvp_ticker_fire_lateness_seconds_count", ())] >= 3
    within_a_second = ticker_samples[("dvp_ticker_fire_lateness_seconds_bucket", (("le", "1.0"),))]
    assert within_a_second == ticker_samples[("dvp_ticker_fire_lateness_seconds_count", ())]
    assert ("process_resident_memory_bytes", ()) in ticker_samples

    ended = {
        outcome: executor_samples[("dvp_executor_attempts_ended_total", (("outcome", outcome),))]
        for outcome in ("succeeded", "retry_scheduled", "failed")
    }
    assert ended["succeeded"] >= 2
    assert ended["retry_scheduled"] >= 1
    assert ended["failed"] >= 1
    assert executor_samples[("dvp_executor_attempts_started_total", ())] >= sum(ended.values())
    registered = ("dvp_executor_registrations_total", (("change", "registered"),))
    assert executor_samples[registered] == 1

    assert projector_samples[("dvp_projector_tasks", ())] == 1
    assert projector_samples[("dvp_projector_events_applied_total", ())] >= 10
    assert projector_samples[("dvp_projector_sequence", ())] >= 10
    skipped = ("dvp_projector_messages_skipped_total", (("reason", "not_an_event"),))
    assert projector_samples[skipped] == 0


def test_the_command_serves_metrics_until_it_stops(nats_server: NatsServer) -> None:
    port = free_port()
    command = [sys.executable, "-m", "dvp_scheduler", "projector", "--nats-url", nats_server.url]
    process = subprocess.Popen(
        [*command, "--metrics-port", str(port), "--no-mirror"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        samples = _scrape_when_up(port)
        assert ("dvp_projector_sequence", ()) in samples
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = subprocess.run(
            [*command, "--metrics-port", str(busy)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{busy}" in result.stderr


def _scrape_when_up(port: int) -> Samples:
    deadline = time.monotonic() + 15
    while True:
        try:
            return scrape(port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
