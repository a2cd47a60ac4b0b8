"""The dashboard's pure logic over query rows: filtering and pages of tasks, the overview's
counts and overdue tasks, the last hour's chart (inline SVG), the outcome strip of an execution
history."""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Any, Final
from urllib.parse import urlencode

from contracts.overdue import overdue_seconds
from dvp_scheduler.dashboard.access import Scope

PAGE_SIZE: Final = 50
STATUSES: Final = ("idle", "due", "running", "retrying", "paused", "unregistered", "invalid")

Row = dict[str, Any]
"""A task row as ``tasks --json`` prints it (`projector.views.TaskView`)."""


@dataclass(frozen=True)
class TaskFilter:
    """What the tasks page is asked to show."""

    tenant: str = ""
    plugin: str = ""
    status: str = ""
    text: str = ""
    page: int = 1

    def query(self, **changes: object) -> str:
        """This filter as a query string, with ``changes`` applied (e.g. ``page=2``)."""
        values = {
            "tenant": self.tenant,
            "plugin": self.plugin,
            "status": self.status,
            "q": self.text,
            "page": self.page,
        }
        values.update({("q" if k == "text" else k): v for k, v in changes.items()})
        return urlencode({k: v for k, v in values.items() if v not in ("", None, 1)})


def task_filter(params: dict[str, str]) -> TaskFilter:
    """A `TaskFilter` from a request's query parameters; a bad page number is page 1."""
    try:
        page = max(1, int(params.get("page", "1")))
    except ValueError:
        page = 1
    return TaskFilter(
        tenant=params.get("tenant", "").strip(),
        plugin=params.get("plugin", "").strip(),
        status=params.get("status", "").strip(),
        text=params.get("q", "").strip(),
        page=page,
    )


def matches(row: Row, wanted: TaskFilter) -> bool:
    """Whether a task row passes the filter: tenant, plugin and status exactly, the text as a
    case-insensitive part of the task id, name, description, plugin or note."""
    if wanted.tenant and row["tenant_id"] != wanted.tenant:
        return False
    if wanted.plugin and (row.get("plugin") or "") != wanted.plugin:
        return False
    if wanted.status and row["status"] != wanted.status:
        return False
    if wanted.text:
        needle = wanted.text.lower()
        haystack = " ".join(
            str(row.get(key) or "")
            for key in ("task_id", "name", "description", "plugin", "note", "tenant_id")
        ).lower()
        if needle not in haystack:
            return False
    return True


@dataclass(frozen=True)
class Page:
    """One page of filtered rows."""

    rows: list[Row]
    number: int
    pages: int
    total: int
    """Rows that pass the filter, on every page."""


def page_of(rows: Iterable[Row], scope: Scope, wanted: TaskFilter, size: int = PAGE_SIZE) -> Page:
    """The rows the scope sees and the filter passes, the page asked for (the last page when
    asked past it)."""
    kept = [row for row in rows if scope.sees(row["tenant_id"]) and matches(row, wanted)]
    pages = max(1, math.ceil(len(kept) / size))
    number = min(wanted.page, pages)
    start = (number - 1) * size
    return Page(rows=kept[start : start + size], number=number, pages=pages, total=len(kept))


def choices(rows: Iterable[Row], scope: Scope) -> tuple[list[str], list[str]]:
    """The tenants and plugins to offer in the filters, sorted."""
    tenants: set[str] = set()
    plugins: set[str] = set()
    for row in rows:
        if scope.sees(row["tenant_id"]):
            tenants.add(row["tenant_id"])
            if row.get("plugin"):
                plugins.add(row["plugin"])
    return sorted(tenants), sorted(plugins)


def status_counts(rows: Iterable[Row], scope: Scope) -> dict[str, int]:
    """How many tasks the scope sees are in each status (every status, 0 included)."""
    counted = Counter(row["status"] for row in rows if scope.sees(row["tenant_id"]))
    return {status: counted.get(status, 0) for status in STATUSES}


def most_failing(rows: Iterable[Row], scope: Scope, limit: int = 5) -> list[Row]:
    """The tasks with the most failed executions (ties: the most consecutive failures)."""
    failing = [r for r in rows if scope.sees(r["tenant_id"]) and r.get("failed")]
    failing.sort(key=lambda r: (-r["failed"], -r["consecutive_failures"], r["task_id"]))
    return failing[:limit]


def lateness(row: Row, now: datetime) -> float | None:
    """How many seconds past its ``overdue_at`` the task is at ``now``; ``None`` when it is not
    overdue."""
    deadline = row.get("overdue_at")
    if not deadline:
        return None
    instant = datetime.fromisoformat(deadline) if isinstance(deadline, str) else deadline
    return overdue_seconds(instant, now)


def overdue(rows: Iterable[Row], scope: Scope, now: datetime) -> list[tuple[Row, float]]:
    """The overdue tasks the scope sees, with how late (seconds), the latest first."""
    late = [
        (row, seconds)
        for row in rows
        if scope.sees(row["tenant_id"]) and (seconds := lateness(row, now)) is not None
    ]
    late.sort(key=lambda item: (-item[1], item[0]["tenant_id"], item[0]["task_id"]))
    return late


def outcome_strip(executions: Sequence[Row], size: int = 20) -> list[str]:
    """The outcomes of the newest ``size`` executions, oldest first: ``succeeded``, ``failed``
    or what an open one does (``running``, ``retrying``, ``due``)."""
    return [str(e["status"]) for e in reversed(executions[:size])]


@dataclass
class Minute:
    """What happened in one minute of the last hour."""

    fires: int = 0
    succeeded: int = 0
    failed: int = 0


@dataclass
class Durations:
    """The durations of one task's successful attempts."""

    total_ms: int = 0
    count: int = 0
    longest_ms: int = 0

    def add(self, duration_ms: int) -> None:
        """Count one attempt's duration."""
        self.total_ms += duration_ms
        self.count += 1
        self.longest_ms = max(self.longest_ms, duration_ms)

    @property
    def mean_ms(self) -> float:
        """The mean duration."""
        return self.total_ms / self.count if self.count else 0.0


@dataclass
class LastHour:
    """Fires and outcomes per minute, and the successful attempts' durations, fed from the live
    events; `forget_before` keeps it to the last hour."""

    minutes: dict[datetime, Minute] = field(default_factory=dict)
    runs: deque[tuple[datetime, str, str, int]] = field(default_factory=deque)
    """(when, tenant, task, duration in ms) of each successful attempt, oldest first."""

    def count(self, kind: str, at: datetime) -> None:
        """Count a fire (``due``) or an outcome (``succeeded``, ``failed``) at ``at``."""
        minute = self.minutes.setdefault(at.replace(second=0, microsecond=0), Minute())
        if kind == "due":
            minute.fires += 1
        elif kind == "succeeded":
            minute.succeeded += 1
        elif kind == "failed":
            minute.failed += 1

    def ran(self, at: datetime, tenant_id: str, task_id: str, duration_ms: int) -> None:
        """Record a successful attempt's duration."""
        self.runs.append((at, tenant_id, task_id, duration_ms))

    def forget_before(self, cutoff: datetime) -> None:
        """Drop what happened before ``cutoff``."""
        for key in [k for k in self.minutes if k < cutoff]:
            del self.minutes[key]
        while self.runs and self.runs[0][0] < cutoff:
            self.runs.popleft()

    def slowest(self, scope: Scope, limit: int = 5) -> list[tuple[str, str, Durations]]:
        """The tasks the scope sees with the longest mean duration: (tenant, task, durations)."""
        by_task: dict[tuple[str, str], Durations] = {}
        for _, tenant_id, task_id, duration_ms in self.runs:
            if scope.sees(tenant_id):
                by_task.setdefault((tenant_id, task_id), Durations()).add(duration_ms)
        ranked = sorted(by_task.items(), key=lambda item: (-item[1].mean_ms, item[0]))
        return [(tenant, task, durations) for (tenant, task), durations in ranked[:limit]]


def hour_chart(minutes: dict[datetime, Minute], now: datetime) -> str:
    """An inline SVG bar chart of the last 60 minutes: fires as grey bars, failures red and
    successes green on top of each other, one bar group per minute."""
    width, height, pad = 600, 120, 18
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=59)
    slots = [minutes.get(start + timedelta(minutes=i), Minute()) for i in range(60)]
    top = max([1, *(max(m.fires, m.succeeded + m.failed) for m in slots)])
    step = (width - 2) / 60
    bars: list[str] = []
    for i, m in enumerate(slots):
        x = 1 + i * step
        scale = (height - pad) / top
        for offset, count, css in (
            (0.0, m.fires, "fires"),
            (0.0, m.succeeded, "ok"),
            (m.succeeded * scale, m.failed, "bad"),
        ):
            if not count:
                continue
            bar = count * scale
            y = height - pad - offset - bar
            inset = 0.5 if css == "fires" else step * 0.25
            bars.append(
                f'<rect class="{css}" x="{x + inset:.1f}" y="{y:.1f}" '
                f'width="{max(1.0, step - 2 * inset):.1f}" height="{bar:.1f}">'
                f"<title>{escape(f'{start + timedelta(minutes=i):%H:%M}')} UTC: {m.fires} "
                f"fires, {m.succeeded} succeeded, {m.failed} failed</title></rect>"
            )
    labels = "".join(
        f'<text x="{1 + i * step:.1f}" y="{height - 4}">'
        f"{(start + timedelta(minutes=i)):%H:%M}</text>"
        for i in range(0, 60, 10)
    )
    total = sum(m.fires for m in slots), sum(m.succeeded for m in slots)
    failed = sum(m.failed for m in slots)
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="last hour: {total[0]} fires, {total[1]} succeeded, {failed} failed">'
        f'<line x1="0" x2="{width}" y1="{height - pad}" y2="{height - pad}"/>'
        f'<text class="top" x="{width - 2}" y="10">{top}/min</text>'
        f"{''.join(bars)}{labels}</svg>"
    )
