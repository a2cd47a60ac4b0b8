"""Overdue detection end to end (status, tasks, metrics, the dashboard), and the operations
files against the real services' metrics.

A ticker, an executor and a projector run on the test's nats-server, each serving its metrics
as ``--metrics-port`` does; the one task fires every second and succeeds or fails as the test
switches it. The dashboard's test publishes its events by hand, dated an hour ago.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from nats.aio.client import Client
from nats.js.api import StreamInfo
from prometheus_client.parser import text_string_to_metric_families

from dvp_scheduler.metrics import (
    MetricsEndpoint,
    executor_metrics,
    projector_metrics,
    ticker_metrics,
)
from dvp_scheduler.natsserver import NatsServer
from dvp_scheduler.status import scheduler_status
from executor import Executor, ExecutorSettings
from natsio import NatsConnection
from projector import Projector, ProjectorSettings
from projector.queries import OverdueTask
from tests.integration.projector.test_projector import caught_up, publish
from tests.integration.test_dashboard import fetch
from tests.integration.test_dashboard import serving as dashboard_serving
from tests.integration.test_metrics import Samples, scrape, serving
from tests.plugins.switch import TASK_ID, SwitchPlugin
from tests.support import cli, eventually
from tests.unit.projector import events as ev
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TENANT = "default"
LABELS = (("task", TASK_ID), ("tenant", TENANT))


@dataclass
class Services:
    plugin: SwitchPlugin
    projector: Projector
    endpoints: dict[str, MetricsEndpoint]
    """By service: ticker, executor, projector."""


@asynccontextmanager
async def running(nats_server: NatsServer) -> AsyncIterator[Services]:
    connection = NatsConnection(url=nats_server.url)
    plugin = SwitchPlugin()
    async with AsyncExitStack() as stack:
        executor = await stack.enter_async_context(
            Executor(
                ExecutorSettings(connection=connection, use_entry_points=False, isolation="inline"),
                plugins=[plugin],
            )
        )
        ticker = await stack.enter_async_context(Ticker(TickerSettings(connection=connection)))
        projector = await stack.enter_async_context(
            Projector(ProjectorSettings(connection=connection, mirror=False))
        )
        endpoints = {
            "ticker": stack.enter_context(serving(lambda: ticker_metrics(ticker))),
            "executor": stack.enter_context(serving(lambda: executor_metrics(executor))),
            "projector": stack.enter_context(serving(lambda: projector_metrics(projector))),
        }
        yield Services(plugin, projector, endpoints)


async def scraped(services: Services, service: str) -> Samples:
    return await asyncio.to_thread(scrape, services.endpoints[service].port)


async def task_samples(services: Services) -> dict[str, float]:
    """The projector's per-task samples of the task, by name."""
    samples = await scraped(services, "projector")
    return {name: value for (name, labels), value in samples.items() if labels == LABELS}


@pytest.mark.timeout(120)
async def test_a_task_that_stops_succeeding_turns_overdue_and_recovers(
    nats_server: NatsServer, nc: Client, stream: StreamInfo
) -> None:
    async with running(nats_server) as services:
        # Succeeding every second: watched, not overdue, its last success exported.
        samples = await eventually(
            lambda: _with(task_samples(services), "dvp_task_last_success_timestamp_seconds"),
            within=20,
            message="the task's last success in the metrics",
        )
        assert samples["dvp_task_overdue"] == 0
        status = await scheduler_status(nc)
        assert status.overdue_tasks == 0

        # Failing from now on: two fires and the one-second timeout later, it is overdue.
        services.plugin.failing = True
        entry = await eventually(
            lambda: _overdue(nc), within=30, message="the task overdue in the status"
        )
        assert entry.overdue_seconds > 0
        assert entry.last_succeeded_at is not None
        await eventually(
            lambda: _with(task_samples(services), "dvp_task_overdue", lambda v: v == 1),
            within=15,
            message="the task overdue in the metrics",
        )
        await eventually(
            lambda: _with(
                task_samples(services), "dvp_task_consecutive_failures", lambda v: v >= 3
            ),
            within=15,
            message="its failures in the metrics",
        )
        projector_samples = await scraped(services, "projector")
        assert projector_samples[("dvp_projector_overdue_tasks", ())] == 1

        code, out, err = await cli(nats_server, "status", "--json")
        assert code == 0, err
        printed = json.loads(out)
        assert printed["overdue_tasks"] == 1
        [listed] = printed["overdue"]
        assert (listed["tenant_id"], listed["task_id"]) == (TENANT, TASK_ID)
        assert listed["overdue_seconds"] > 0
        assert listed["last_succeeded_at"] is not None
        code, out, err = await cli(nats_server, "status")
        assert code == 0, err
        assert f"overdue    1 task(s), the latest first:\n           {TENANT}/{TASK_ID}: " in out
        code, out, err = await cli(nats_server, "tasks", "--json")
        assert code == 0, err
        [row] = json.loads(out)
        assert row["overdue"] is True
        assert row["overdue_seconds"] > 0
        code, out, err = await cli(nats_server, "tasks")
        assert code == 0, err
        assert re.search(rf"{re.escape(TASK_ID)} .* overdue by \d+s", out), out

        # Succeeding again: the next success ends it.
        services.plugin.failing = False
        await eventually(lambda: _not_overdue(nc), within=20, message="the task no longer overdue")
        await eventually(
            lambda: _with(task_samples(services), "dvp_task_overdue", lambda v: v == 0),
            within=15,
            message="the metric back to 0",
        )
        code, out, err = await cli(nats_server, "status", "--json")
        assert code == 0, err
        assert json.loads(out)["overdue"] == []


async def _with(
    samples: Awaitable[dict[str, float]],
    name: str,
    wanted: Callable[[float], bool] = lambda value: True,
) -> dict[str, float] | None:
    """The samples, if they have ``name`` with a value that is ``wanted``."""
    found = await samples
    if name not in found or not wanted(found[name]):
        return None
    return found


async def _overdue(nc: Client) -> OverdueTask | None:
    status = await scheduler_status(nc)
    return next((t for t in status.overdue if (t.tenant_id, t.task_id) == (TENANT, TASK_ID)), None)


async def _not_overdue(nc: Client) -> bool:
    status = await scheduler_status(nc)
    return status.overdue_tasks == 0


# ---------------------------------------------------------------------------------------------
# the operations files name only metrics the services export

_PROMQL_WORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "offset", "bool", "inf", "nan"}
)


def metric_names(query: str) -> set[str]:
    """The metric names a PromQL query reads: its identifiers, less functions (followed by a
    parenthesis), keywords, label matchers, grouping labels, strings, numbers and durations."""
    query = re.sub(r'"(?:[^"\\]|\\.)*"', "", query)
    query = re.sub(r"\{[^}]*\}", "", query)
    query = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", query)
    query = re.sub(r"\[[^\]]*\]", "", query)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", query):
        name, call = match.groups()
        if call is None and name.lower() not in _PROMQL_WORDS:
            names.add(name)
    return names


def queries_of_the_operations_files() -> list[str]:
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    queries = [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboard.json").read_text())
    queries += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return [query.replace("$__rate_interval", "5m") for query in queries]


def test_metric_names_are_read_from_queries() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(x_bucket{le="1.0"}[5m]))) > 0.5'
    ) == {"x_bucket"}
    assert metric_names(
        "time() - max by (tenant, task) (a) and on (tenant, task) max without (x) (b) == 1"
    ) == {"a", "b"}


@pytest.mark.timeout(90)
async def test_the_alerts_and_the_dashboard_read_only_metrics_the_services_export(
    nats_server: NatsServer, stream: StreamInfo
) -> None:
    async with running(nats_server) as services:
        # Once the task has run and the projector has read the stream's backlog, every family
        # has its samples.
        await eventually(
            lambda: _with(task_samples(services), "dvp_task_last_success_timestamp_seconds"),
            within=20,
            message="the task's last success in the metrics",
        )
        await eventually(lambda: services.projector.backlog is not None, message="the backlog read")
        scrapes = await asyncio.gather(*(scraped(services, name) for name in services.endpoints))
        texts = await asyncio.gather(
            *(asyncio.to_thread(_text, e.port) for e in services.endpoints.values())
        )
    exported = {name for samples in scrapes for name, _ in samples}
    for text in texts:  # families without samples still name their metric
        exported |= {family.name for family in text_string_to_metric_families(text)}
    used = set().union(*(metric_names(query) for query in queries_of_the_operations_files()))
    assert used, "no metric found in the operations files"
    assert not used - exported, f"not exported by any service: {sorted(used - exported)}"


def _text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
    return text


# ---------------------------------------------------------------------------------------------
# the dashboard


async def test_the_dashboard_shows_overdue_tasks_and_how_late(
    nats_server: NatsServer, nc: Client, stream: StreamInfo
) -> None:
    now = datetime.now(UTC)
    an_hour_ago = now - timedelta(hours=1)
    last = await publish(
        nc.jetstream(),
        [
            # Every 300 s with a 30 s timeout, never succeeded: overdue since the second fire
            # after its registration plus 30 s, so 49m30s to 54m30s late.
            ev.registered(an_hour_ago, task="late.report"),
            # Succeeded 10 s ago: not due to succeed again before two more fires.
            ev.registered(an_hour_ago, task="fine.sync"),
            ev.succeeded(
                now - timedelta(seconds=15), now - timedelta(seconds=10), task="fine.sync"
            ),
        ],
    )
    projector_settings = ProjectorSettings(
        connection=NatsConnection(url=nats_server.url), mirror=False
    )
    async with Projector(projector_settings), dashboard_serving(nats_server.url) as base:
        await caught_up(nc, last)
        tasks = await eventually(
            lambda: _page_with(base + "/tasks", "overdue by"), within=15, message="tasks page"
        )
        late_row = _row_of(tasks, "late.report")
        assert 49 <= _minutes(r"overdue by (\d+)m\d\ds", late_row) <= 55, late_row
        assert "overdue by" not in _row_of(tasks, "fine.sync")

        overview = await eventually(
            lambda: _page_with(base + "/", 'id="overdue"'), within=15, message="overview"
        )
        card = overview[overview.index('id="overdue"') : overview.index("Projector</h2>")]
        assert '<p class="big error">1</p>' in card
        assert f'href="/tasks/{ev.TENANT}/late.report"' in card
        assert "fine.sync" not in card

        task_page = await _page_with(base + f"/tasks/{ev.TENANT}/late.report", "task-overdue")
        assert task_page is not None
        late = _minutes(r'id="task-overdue"><span class="error">by (\d+)m\d\ds<', task_page)
        assert 49 <= late <= 55


async def _page_with(url: str, text: str) -> str | None:
    status, body, _ = await fetch(url)
    return body if status == 200 and text in body else None


def _minutes(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found is not None, text
    return int(found.group(1))


def _row_of(page: str, task_id: str) -> str:
    """The HTML of the tasks table's row of ``task_id``."""
    start = page.index(f'<tr data-task="{ev.TENANT}/{task_id}">')
    return page[start : page.index("</tr>", start)]
