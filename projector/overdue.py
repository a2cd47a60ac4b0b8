"""Which tasks are overdue, kept current as events arrive (docs/design.md, section 5,
"Overdue").

A task's deadline (`projector.views.task_overdue_at`) depends on its events alone; only the
comparison with the clock depends on when it is asked. Computing a cron deadline walks the
schedule, so `OverdueWatch` keeps every watched task's deadline and recomputes only those of
the tasks whose events came in since its last `OverdueWatch.refresh`: the status query, the
task rows and the metrics then cost a lookup per task.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

from projector.state import ProjectionState
from projector.views import task_overdue_at


class TaskHealth(NamedTuple):
    """What the per-task metrics show of one registered task."""

    tenant_id: str
    task_id: str
    overdue_at: datetime | None
    """``None``: not watched (paused or invalid)."""
    last_succeeded_at: datetime | None
    consecutive_failures: int = 0
    failed: int = 0
    """Executions that ended failed."""


class OverdueWatch:
    """Each watched task's deadline, by task key; `changed` marks a task whose events came in,
    `refresh` recomputes the marked ones."""

    def __init__(self) -> None:
        self._deadlines: dict[str, datetime] = {}
        self._changed: set[str] = set()
        self._everything = True
        self.generation = 0
        """Counts the refreshes that recomputed something: whoever derives from the deadlines
        knows whether they moved since it last looked."""

    def changed(self, key: str) -> None:
        """Mark the task ``key`` (`projector.state.task_key`) for recomputing."""
        self._changed.add(key)

    def refresh(self, state: ProjectionState) -> bool:
        """Bring the deadlines up to date with ``state``; whether any task was recomputed."""
        if self._everything:
            keys: Iterable[str] = state.tasks
            self._deadlines.clear()
            self._everything = False
        elif self._changed:
            keys = self._changed
        else:
            return False
        for key in keys:
            task = state.tasks.get(key)
            deadline = task_overdue_at(task) if task is not None else None
            if deadline is None:
                self._deadlines.pop(key, None)
            else:
                self._deadlines[key] = deadline
        self._changed = set()
        self.generation += 1
        return True

    @property
    def deadlines(self) -> Mapping[str, datetime]:
        """Every watched task's deadline as of the last refresh, by task key."""
        return self._deadlines

    def overdue(self, now: datetime) -> list[tuple[str, float]]:
        """The overdue tasks at ``now`` as (task key, seconds late), the latest first."""
        late = [
            (key, (now - deadline).total_seconds())
            for key, deadline in self._deadlines.items()
            if deadline < now
        ]
        late.sort(key=lambda item: (-item[1], item[0]))
        return late

    def health(self, state: ProjectionState) -> tuple[TaskHealth, ...]:
        """Every registered task's `TaskHealth` as of the last refresh."""
        return tuple(
            TaskHealth(
                tenant_id=task.tenant_id,
                task_id=task.task_id,
                overdue_at=self._deadlines.get(key),
                last_succeeded_at=task.last_succeeded_at,
                consecutive_failures=task.consecutive_failures,
                failed=task.failed,
            )
            for key, task in state.tasks.items()
            if task.registered
        )


class TaskSeries(NamedTuple):
    """The per-task metrics series to serve, at most a limit of them."""

    rows: list[tuple[TaskHealth, bool]]
    """(task, overdue now), the overdue ones first, each part by (tenant, task)."""
    overdue: int
    """Overdue tasks, all of them (also those beyond the limit)."""
    omitted: int
    """Registered tasks left out by the limit."""


def task_series(health: Iterable[TaskHealth], now: datetime, limit: int) -> TaskSeries:
    """The tasks whose series are served at ``now``: at most ``limit``, the overdue ones first
    (they are what an alert needs), then the others, each part by (tenant, task) so that the
    same tasks keep their series from one scrape to the next."""
    late: list[TaskHealth] = []
    rest: list[TaskHealth] = []
    for row in health:
        (late if row.overdue_at is not None and row.overdue_at < now else rest).append(row)
    limit = max(0, limit)
    # nsmallest, not a sort: of 100,000 tasks only the first `limit` are wanted, every scrape.
    rows = [(row, True) for row in heapq.nsmallest(limit, late, key=_by_task)]
    rows += [(row, False) for row in heapq.nsmallest(limit - len(rows), rest, key=_by_task)]
    return TaskSeries(rows=rows, overdue=len(late), omitted=len(late) + len(rest) - len(rows))


def _by_task(row: TaskHealth) -> tuple[str, str]:
    return row.tenant_id, row.task_id
