"""The data classes of scheduled tasks, as the plugin reference page defines them.

Field names, order and defaults follow the page, so plugin code written from it runs unchanged.
`TaskSchedule` adds optional fields beyond the page (time zone, jitter, catch-up window,
overlap policy, when the task counts as overdue, an active window) whose defaults keep the
page's examples valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, cast

from contracts.identifiers import new_execution_id

DEFAULT_TIMEOUT_SECONDS: Final = 300
"""A task's ``timeout_seconds`` unless its definition says otherwise."""


@dataclass
class TaskSchedule:
    """When a task runs: exactly one of ``cron_expression`` and ``interval_seconds``.

    Attributes:
        cron_expression: five fields (``minute hour day month weekday``) or a macro such as
            ``@hourly``, evaluated in ``timezone``.
        interval_seconds: run every this many seconds.
        offset_seconds: where in each interval the task fires: this many seconds after each
            multiple of the interval since the epoch (0 aligns with the clock: every 300 s runs
            at :00, :05, ...). ``None`` (the default) spreads tasks over the interval by a
            stable hash of tenant and task id, so that many tasks do not fire at once.
        timezone: IANA time zone of the cron expression (``UTC`` by default).
        jitter_seconds: delay each fire by a random 0..jitter seconds, to spread load.
        catchup_window_seconds: after downtime, the newest missed fire runs once if it is at
            most this old; older missed fires are recorded as skipped. 0 disables catch-up.
        overlap: ``"skip"`` a fire while the previous execution still runs, or ``"allow"`` it.
        alert_after_seconds: the task is overdue when its last success is older than this.
            ``None`` (the default) judges by the schedule: overdue once two fires have passed
            since the last success, each given the task's timeout.
        start_at: the active window's start (a datetime with a time zone): the task fires
            from this instant on, and fires before it are not caught up. ``None``: at once.
        end_at: the active window's end: the task fires only before this instant.
            ``None``: for as long as it is registered.
    """

    cron_expression: str | None = None
    interval_seconds: int | None = None
    offset_seconds: float | None = None
    timezone: str = "UTC"
    jitter_seconds: float = 0.0
    catchup_window_seconds: float = 3600.0
    overlap: Literal["skip", "allow"] = "skip"
    alert_after_seconds: float | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None


@dataclass
class ScheduledTaskDefinition:
    """A task a plugin provides. ``max_retries`` counts the attempts after the first."""

    task_id: str
    name: str
    schedule: TaskSchedule
    description: str = ""
    max_retries: int = 3
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS


@dataclass
class TaskResult:
    """What a task run returns."""

    success: bool
    data: dict[str, Any] | None = None
    error_message: str | None = None
    duration_ms: int | None = None


@dataclass
class TaskRetryDecision:
    """A plugin's answer to a failed attempt (``dvp_task_failed``)."""

    should_retry: bool
    delay_seconds: int = 0
    abort_remaining: bool = False
    reason: str = ""


@dataclass(frozen=True)
class TaskExecutionContext:
    """What a task run knows about itself.

    The engine fills in every field. Everything but ``task_id`` has a default, so that a test
    can build one with just what it cares about: ``TaskExecutionContext("my-plugin.sync",
    attempt=2)``.

    Attributes:
        task_id: the task's id.
        tenant_id: the tenant it runs for (``default`` unless given).
        execution_id: the same for every attempt of one execution (a fresh id unless given).
        attempt: 1 for the first run, 2 for the first retry, and so on.
        scheduled_for: when this attempt was meant to run (the fire instant or the retry time;
            now, in UTC, unless given).
        trigger: why it runs: ``schedule``, ``catchup``, ``retry`` or ``manual`` (the default).
        deadline: when the attempt is cancelled for exceeding ``timeout_seconds``; unless given,
            ``scheduled_for`` plus the default timeout of 300 s.
        max_attempts: ``1 + max_retries``.
        previous_error: the error of the attempt before this one, if any.
    """

    task_id: str
    tenant_id: str = "default"
    execution_id: str = field(default_factory=new_execution_id)
    attempt: int = 1
    scheduled_for: datetime = field(default_factory=lambda: datetime.now(UTC))
    trigger: str = "manual"
    # None is only a marker: __post_init__ always sets a datetime, so readers may rely on one.
    deadline: datetime = field(default=cast(datetime, None))
    max_attempts: int = 1
    previous_error: str | None = field(default=None)

    def __post_init__(self) -> None:
        if self.deadline is None:
            deadline = self.scheduled_for + timedelta(seconds=DEFAULT_TIMEOUT_SECONDS)
            object.__setattr__(self, "deadline", deadline)
