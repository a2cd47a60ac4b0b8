"""Filtering, pages, counts, the outcome strip and the hour chart (dashboard.tables)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dvp_scheduler.dashboard.access import OPERATOR, READ_ONLY, tenant_scope
from dvp_scheduler.dashboard.tables import (
    LastHour,
    TaskFilter,
    choices,
    hour_chart,
    lateness,
    matches,
    most_failing,
    outcome_strip,
    overdue,
    page_of,
    status_counts,
    task_filter,
)

NOW = datetime(2026, 11, 24, 3, 30, 15, tzinfo=UTC)


def row(tenant: str, task: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tenant_id": tenant,
        "task_id": task,
        "name": f"Task {task}",
        "description": "",
        "plugin": task.split(".")[0],
        "status": "idle",
        "note": "",
        "failed": 0,
        "consecutive_failures": 0,
    }
    base.update(fields)
    return base


ROWS = [
    row("acme", "sync.partner", status="running"),
    row("acme", "cleanup.tmp", status="paused", note="disk maintenance"),
    row("globex", "sync.partner", failed=3, consecutive_failures=1),
    row("globex", "report.daily", failed=3, consecutive_failures=2),
]


def test_the_filter_matches_tenant_plugin_status_and_text() -> None:
    assert [matches(r, TaskFilter(tenant="acme")) for r in ROWS] == [True, True, False, False]
    assert [matches(r, TaskFilter(plugin="sync")) for r in ROWS] == [True, False, True, False]
    assert [matches(r, TaskFilter(status="paused")) for r in ROWS] == [False, True, False, False]
    assert [matches(r, TaskFilter(text="DISK")) for r in ROWS] == [False, True, False, False]
    assert [matches(r, TaskFilter(text="partner", tenant="globex")) for r in ROWS] == [
        False,
        False,
        True,
        False,
    ]


def test_a_filter_is_read_from_query_parameters_and_written_back() -> None:
    wanted = task_filter({"tenant": " acme ", "q": "sync", "page": "x"})
    assert wanted == TaskFilter(tenant="acme", text="sync", page=1)
    assert wanted.query(page=3) == "tenant=acme&q=sync&page=3"
    assert task_filter({"page": "-4"}).page == 1


def test_pages_of_ten_thousand_rows() -> None:
    rows = [row("acme", f"t.task-{n:05d}") for n in range(10_000)]
    first = page_of(rows, OPERATOR, TaskFilter())
    assert (first.number, first.pages, first.total, len(first.rows)) == (1, 200, 10_000, 50)
    last = page_of(rows, OPERATOR, TaskFilter(page=999))  # past the end: the last page
    assert last.number == 200
    assert last.rows[-1]["task_id"] == "t.task-09999"
    found = page_of(rows, OPERATOR, TaskFilter(text="task-0004"))
    assert found.total == 10
    empty = page_of(rows, OPERATOR, TaskFilter(text="nothing"))
    assert (empty.number, empty.pages, empty.rows) == (1, 1, [])


def test_a_tenant_scope_sees_its_tenant_only() -> None:
    acme = tenant_scope("acme")
    assert {r["tenant_id"] for r in page_of(ROWS, acme, TaskFilter()).rows} == {"acme"}
    assert page_of(ROWS, acme, TaskFilter(tenant="globex")).total == 0
    assert choices(ROWS, acme) == (["acme"], ["cleanup", "sync"])
    assert choices(ROWS, READ_ONLY) == (["acme", "globex"], ["cleanup", "report", "sync"])
    assert status_counts(ROWS, acme)["running"] == 1
    assert status_counts(ROWS, acme)["idle"] == 0
    assert most_failing(ROWS, acme) == []


def test_most_failing_orders_by_failures_then_failures_in_a_row() -> None:
    assert [r["task_id"] for r in most_failing(ROWS, OPERATOR)] == [
        "report.daily",
        "sync.partner",
    ]


def test_the_outcome_strip_is_the_newest_twenty_oldest_first() -> None:
    history = [{"status": "running"}] + [{"status": "failed"}] + [{"status": "succeeded"}] * 30
    strip = outcome_strip(history)
    assert len(strip) == 20
    assert strip[-2:] == ["failed", "running"]
    assert outcome_strip([]) == []


def test_the_hour_chart_counts_per_minute_within_the_hour() -> None:
    hour = LastHour()
    hour.count("due", NOW - timedelta(minutes=2))
    hour.count("due", NOW - timedelta(minutes=2, seconds=5))
    hour.count("succeeded", NOW - timedelta(minutes=2))
    hour.count("failed", NOW)
    hour.count("due", NOW - timedelta(hours=2))
    hour.forget_before(NOW - timedelta(hours=1))
    svg = hour_chart(hour.minutes, NOW)
    assert svg.startswith("<svg")
    assert 'aria-label="last hour: 2 fires, 1 succeeded, 1 failed"' in svg
    assert "03:28 UTC: 2 fires, 1 succeeded, 0 failed" in svg
    assert svg.count('class="bad"') == 1


def test_the_slowest_tasks_of_the_last_hour_by_mean_duration() -> None:
    hour = LastHour()
    hour.ran(NOW - timedelta(hours=2), "acme", "old.task", 99_000)  # out of the hour
    hour.ran(NOW - timedelta(minutes=5), "acme", "sync.partner", 1_000)
    hour.ran(NOW - timedelta(minutes=4), "acme", "sync.partner", 3_000)
    hour.ran(NOW - timedelta(minutes=3), "globex", "report.daily", 2_500)
    hour.ran(NOW - timedelta(minutes=2), "acme", "cleanup.tmp", 10)
    hour.forget_before(NOW - timedelta(hours=1))
    ranked = [(tenant, task, d.mean_ms, d.longest_ms) for tenant, task, d in hour.slowest(OPERATOR)]
    assert ranked == [
        ("globex", "report.daily", 2_500, 2_500),
        ("acme", "sync.partner", 2_000, 3_000),
        ("acme", "cleanup.tmp", 10, 10),
    ]
    assert [task for _, task, _ in hour.slowest(tenant_scope("acme"), limit=1)] == ["sync.partner"]


def test_overdue_tasks_the_scope_sees_latest_first() -> None:
    rows = [
        row("acme", "a.late", overdue_at=(NOW - timedelta(minutes=5)).isoformat()),
        row("acme", "b.later", overdue_at=(NOW - timedelta(hours=2)).isoformat()),
        row("acme", "c.fine", overdue_at=(NOW + timedelta(minutes=5)).isoformat()),
        row("acme", "d.paused", overdue_at=None),
        row("globex", "e.late", overdue_at=(NOW - timedelta(hours=1)).isoformat()),
        row("acme", "f.old-projector"),  # a row without the field: never overdue
    ]
    assert [(r["task_id"], late) for r, late in overdue(rows, OPERATOR, NOW)] == [
        ("b.later", 7200.0),
        ("e.late", 3600.0),
        ("a.late", 300.0),
    ]
    assert [r["task_id"] for r, _ in overdue(rows, tenant_scope("acme"), NOW)] == [
        "b.later",
        "a.late",
    ]
    assert lateness(rows[2], NOW) is None
