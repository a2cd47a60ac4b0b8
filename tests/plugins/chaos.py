"""The chaos suite's plugin: tens of short-interval tasks whose behaviour is a pure function of
(task id, execution id, attempt), so that the suite's checks know what each attempt must end in.

``DVP_CHAOS_TASKS`` says how many tasks it declares (default 30), in a fixed mix of kinds
(`KIND_PATTERN`); ``DVP_CHAOS_JOURNAL``, when set, names a file each run of an attempt appends
one JSON line to (``task_id``, ``execution_id``, ``attempt``, ``worker``, ``pid``,
``started_at`` in Unix seconds), so that the suite can tell an attempt run again after its
outcome was recorded even when the stream cannot show it. ``DVP_CHAOS_WORKER`` names the
executor in those lines.

The kinds (`planned_outcome` says how each attempt ends):

* ``quick``: every 1 to 3 s, succeeds at once.
* ``flaky``: every 2 s, fails its first 0 to 2 attempts (returned or raised, by a hash of the
  execution), retried after 1 s, then succeeds.
* ``doomed``: every 3 s, always raises; retried after 1 s until its 2 retries are used up, then
  fails for good (``exhausted``).
* ``declined``: every 3 s, returns a failure that ``dvp_task_failed`` declines to retry.
* ``slow``: every 3 s, takes 2 to 4 s (so some fires overlap it and are skipped), succeeds.
* ``timeout``: every 3 s; attempt 1 sleeps past its 2 s timeout and is cancelled, the retry
  after 1 s succeeds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from typing import TYPE_CHECKING, Final, Literal

from dvp_cms.plugins.base import Plugin
from dvp_cms.plugins.hookspec import ScheduledTaskHooks

if TYPE_CHECKING:
    from dvp_cms.plugins.context import HookContext
    from dvp_cms.plugins.hooks.scheduled_tasks import (
        ScheduledTaskDefinition,
        TaskExecutionContext,
        TaskResult,
        TaskRetryDecision,
    )

Kind = Literal["quick", "flaky", "doomed", "declined", "slow", "timeout"]
PlannedOutcome = Literal["succeeded", "retry", "failed"]

KIND_PATTERN: Final[tuple[Kind, ...]] = (
    "quick",
    "flaky",
    "quick",
    "doomed",
    "slow",
    "flaky",
    "quick",
    "timeout",
    "declined",
    "flaky",
)
"""Task ``i`` is of kind ``KIND_PATTERN[i % 10]``."""

DEFAULT_TASKS: Final = 30
RETRY_DELAY_SECONDS: Final = 1
TIMEOUT_TASK_SLEEP_SECONDS: Final = 5.0
"""How long attempt 1 of a ``timeout`` task sleeps, well past its timeout."""


def task_ids(count: int) -> list[str]:
    """The ids of the first ``count`` tasks: ``chaos.<kind>-<index>``."""
    return [f"chaos.{KIND_PATTERN[i % len(KIND_PATTERN)]}-{i:03d}" for i in range(count)]


def kind_of(task_id: str) -> Kind:
    """The kind a task id names (``chaos.flaky-004`` -> ``flaky``)."""
    kind = task_id.removeprefix("chaos.").rsplit("-", 1)[0]
    for known in KIND_PATTERN:
        if known == kind:
            return known
    raise ValueError(f"{task_id!r} is not a chaos task id (chaos.<kind>-<index>)")


def _index(task_id: str) -> int:
    return int(task_id.rsplit("-", 1)[1])


def _hash(*parts: object) -> int:
    text = "/".join(str(part) for part in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _failures_before_success(execution_id: str) -> int:
    """How many attempts of a ``flaky`` execution fail before one succeeds (0 to 2)."""
    return _hash("flaky", execution_id) % 3


def slow_seconds(execution_id: str) -> float:
    """How long a ``slow`` task's attempt takes (2 to 4 s)."""
    return 2.0 + (_hash("slow", execution_id) % 5) / 2


def planned_outcome(
    task_id: str, execution_id: str, attempt: int, max_retries: int
) -> PlannedOutcome:
    """How attempt ``attempt`` of an execution of ``task_id`` ends when it runs to its end."""
    kind = kind_of(task_id)
    fails = {
        "quick": False,
        "slow": False,
        "flaky": attempt <= _failures_before_success(execution_id),
        "doomed": True,
        "declined": True,
        "timeout": attempt == 1,
    }[kind]
    if not fails:
        return "succeeded"
    if kind == "declined" or attempt > max_retries:
        return "failed"
    return "retry"


def _spec(task_id: str) -> tuple[int, int, float]:
    """(interval seconds, max retries, timeout seconds) of a task."""
    kind = kind_of(task_id)
    if kind == "quick":
        return 1 + _index(task_id) % 3, 0, 10.0
    if kind == "flaky":
        return 2, 3, 10.0
    if kind == "doomed":
        return 3, 2, 10.0
    if kind == "declined":
        return 3, 3, 10.0
    if kind == "slow":
        return 3, 1, 10.0
    return 3, 2, 2.0  # timeout


def _journal(execution_ctx: TaskExecutionContext) -> None:
    path = os.environ.get("DVP_CHAOS_JOURNAL")
    if not path:
        return
    line = json.dumps(
        {
            "task_id": execution_ctx.task_id,
            "execution_id": execution_ctx.execution_id,
            "attempt": execution_ctx.attempt,
            "worker": os.environ.get("DVP_CHAOS_WORKER", ""),
            "pid": os.getpid(),
            "started_at": time.time(),
        }
    )
    # One write of one line on an O_APPEND descriptor: lines of several executors never mix,
    # and a SIGKILL cannot cut one in half.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


class ChaosFailure(Exception):
    """The failure a chaos task raises on purpose."""


class ChaosPlugin(Plugin, ScheduledTaskHooks):
    """Declares ``DVP_CHAOS_TASKS`` tasks of the kinds above."""

    name = "chaos"
    version = "1.0.0"

    def __init__(self, count: int | None = None) -> None:
        self.count = count if count is not None else int(os.environ.get("DVP_CHAOS_TASKS", "0"))
        if self.count <= 0:
            self.count = DEFAULT_TASKS

    def dvp_register_scheduled_tasks(self, ctx: "HookContext") -> list["ScheduledTaskDefinition"]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        definitions = []
        for task_id in task_ids(self.count):
            interval, max_retries, timeout = _spec(task_id)
            definitions.append(
                ScheduledTaskDefinition(
                    task_id=task_id,
                    name=f"Chaos {kind_of(task_id)} task",
                    schedule=TaskSchedule(interval_seconds=interval),
                    max_retries=max_retries,
                    timeout_seconds=timeout,
                )
            )
        return definitions

    async def dvp_execute_scheduled_task(
        self,
        task: "ScheduledTaskDefinition",
        ctx: "HookContext",
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskResult":
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        _journal(execution_ctx)
        kind = kind_of(task.task_id)
        execution_id, attempt = execution_ctx.execution_id, execution_ctx.attempt
        if kind == "slow":
            await asyncio.sleep(slow_seconds(execution_id))
        elif kind == "timeout" and attempt == 1:
            await asyncio.sleep(TIMEOUT_TASK_SLEEP_SECONDS)
        else:
            await asyncio.sleep(0.02)
        planned = planned_outcome(task.task_id, execution_id, attempt, task.max_retries)
        if planned == "succeeded":
            return TaskResult(success=True, data={"attempt": attempt})
        if kind == "doomed" or (kind == "flaky" and _hash("raise", execution_id, attempt) % 2):
            raise ChaosFailure(f"{kind} attempt {attempt} of {execution_id} fails on purpose")
        return TaskResult(success=False, error_message=f"{kind} attempt {attempt} failed")

    def dvp_task_failed(
        self,
        ctx: "HookContext",
        task: "ScheduledTaskDefinition",
        error: Exception,
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskRetryDecision | None":
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskRetryDecision

        if kind_of(task.task_id) == "declined":
            return TaskRetryDecision(should_retry=False, reason="the chaos plugin declines")
        return TaskRetryDecision(should_retry=True, delay_seconds=RETRY_DELAY_SECONDS)
