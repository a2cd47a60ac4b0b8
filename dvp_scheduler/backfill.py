"""Backfill: run a task's past fires in a range, each as the execution that fire would have been.

Each fire ``f`` of the task's schedule with ``start <= f < end`` (in its zone, by the same cron
rules, inside its active window: `contracts.schedule.fires_in_range`, what ``next`` lists) gets
a ``TaskDue`` with trigger ``backfill``, ``scheduled_for`` the fire and the execution id the
fire would have had (`contracts.execution_id_for_fire`). So a fire that ran (a ``TaskDue`` of
that execution is on the task's due subject) is left out, and a backfill run twice publishes
nothing more: within the stream's duplicate window its message id is dropped, beyond it the
read of the due subject finds it.

How the executions follow each other (``overlap``): ``buffer`` (the default for a task whose
overlap policy is ``skip``) publishes each fire once the task has no open execution, so they
run one after another; ``allow`` (the default for ``allow``) publishes them at the rate given;
``skip`` leaves out a fire whose turn comes while an execution is open. The check and the
publish are those of ``trigger`` (`dvp_scheduler.operations.publish_operator_due`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from contracts import EventDecodeError, EventKind, Schedule, TaskDue, subject
from contracts.errors import SchedulerError, UnknownTaskError
from contracts.identifiers import execution_id_for_fire
from contracts.inbound import read_event
from contracts.schedule import fires_in_range
from contracts.validation import registration_problem
from dvp_scheduler.operations import ExecutionOpenError, instant, publish_operator_due
from natsio import read_to_end
from natsio.lookup import read_task_standing

BackfillOverlap = Literal["buffer", "allow", "skip"]
"""How a backfill's executions follow each other; see the module docstring."""

CONFIRM_ABOVE: Final = 10_000
"""A range with more fires than this is backfilled only when confirmed (``--yes``)."""

MOST_FIRES: Final = 1_000_000
"""The most fires one backfill runs: a longer range is split."""

WAIT_SECONDS: Final = 0.5
"""How often a ``buffer`` backfill looks whether the open execution has ended."""


class BackfillError(SchedulerError):
    """A backfill that cannot be done as asked; the message says what to change."""


def check_range(start: datetime, end: datetime, now: datetime) -> None:
    """Raise `BackfillError` unless ``[start, end)`` is a non-empty range in the past."""
    if not start < end:
        raise BackfillError(
            f"--from {instant(start)} is not before --to {instant(end)}: the range is "
            "[--from, --to), give a --to after --from"
        )
    if end > now:
        raise BackfillError(
            f"--to {instant(end)} is in the future (now is {instant(now)}): the ticker runs "
            "the fires to come; give a --to at most now"
        )


@dataclass(frozen=True)
class BackfillPlan:
    """The fires of a range and which of them ran already."""

    tenant_id: str
    task_id: str
    schedule: Schedule
    start: datetime
    end: datetime
    fires: list[datetime]
    ran: frozenset[str] = field(default_factory=frozenset)
    """The execution ids with a ``TaskDue`` on the task's due subject since ``start``."""

    def execution_id(self, fire: datetime) -> str:
        """The execution id ``fire`` has (had, or will have)."""
        return execution_id_for_fire(self.tenant_id, self.task_id, fire)

    def has_run(self, fire: datetime) -> bool:
        """Whether ``fire`` ran already (or was backfilled before)."""
        return self.execution_id(fire) in self.ran

    @property
    def to_run(self) -> list[datetime]:
        """The fires still to run, oldest first."""
        return [fire for fire in self.fires if not self.has_run(fire)]


async def plan_backfill(
    nc: Client,
    tenant_id: str,
    task_id: str,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    confirmed: bool = False,
) -> BackfillPlan:
    """The fires of ``[start, end)`` for the registered task, and which ran; raise a
    `SchedulerError` saying why not (unknown or invalid task, bad range, too many fires)."""
    check_range(start, end, now)
    js = nc.jetstream()
    standing = await read_task_standing(js, tenant_id, task_id)
    registration = standing.registration
    if registration is None or not standing.registered:
        state = "was unregistered" if standing.known else "is not registered"
        raise UnknownTaskError(task_id, tenant_id, state)
    problem = registration_problem(registration)
    if problem is not None:
        raise BackfillError(f"task {tenant_id}/{task_id} is invalid and has no fires: {problem}")
    schedule = registration.spec.schedule
    limit = MOST_FIRES if confirmed else CONFIRM_ABOVE
    fires = fires_in_range(schedule, start, end, limit=limit)
    if len(fires) > limit:
        raise BackfillError(
            f"[{instant(start)}, {instant(end)}) holds more than {limit:,} fires of "
            f"{tenant_id}/{task_id}; "
            + (
                "backfill it in parts"
                if confirmed
                else "add --yes to backfill them all (--dry-run lists them), or narrow the range"
            )
        )
    return BackfillPlan(
        tenant_id=tenant_id,
        task_id=task_id,
        schedule=schedule,
        start=start,
        end=end,
        fires=fires,
        ran=await _executions_due_since(nc, tenant_id, task_id, start),
    )


async def _executions_due_since(
    nc: Client, tenant_id: str, task_id: str, start: datetime
) -> frozenset[str]:
    """The execution ids of the task's ``TaskDue`` recorded since ``start``: a fire's own, and
    a backfill's of it, are recorded after the fire, so none of the range's is older."""
    found: set[str] = set()

    def note(sequence: int, subject_name: bytes, body: bytes) -> None:
        try:
            event = read_event(subject_name, body)
        except EventDecodeError:
            return  # every reader skips it
        if isinstance(event, TaskDue):
            found.add(event.execution_id)

    due_subject = subject(tenant_id, EventKind.DUE, task_id)
    with suppress(NotFoundError):  # no stream yet: nothing ran
        await read_to_end(nc, note, subject=due_subject, start_time=start)
    return frozenset(found)


@dataclass
class BackfillReport:
    """What a backfill did."""

    published: list[datetime] = field(default_factory=list)
    """The fires whose ``TaskDue`` it published."""
    already: list[datetime] = field(default_factory=list)
    """Fires that ran, or were backfilled, before (left out, or dropped as duplicates)."""
    skipped: list[datetime] = field(default_factory=list)
    """Fires left out because an execution was open (``overlap="skip"``)."""


Progress = Callable[[int, int, str], object]
"""Hears (fires handled, fires to handle, what happens now)."""


async def run_backfill(
    nc: Client,
    plan: BackfillPlan,
    *,
    overlap: BackfillOverlap,
    rate: float | None,
    actor: str,
    progress: Progress | None = None,
) -> BackfillReport:
    """Publish a ``TaskDue`` (trigger ``backfill``) for each fire of ``plan`` still to run,
    oldest first, at most ``rate`` a second, the executions following each other as
    ``overlap`` says."""
    js = nc.jetstream()
    loop = asyncio.get_running_loop()
    report = BackfillReport(already=[f for f in plan.fires if plan.has_run(f)])
    todo = plan.to_run
    pause = 1.0 / rate if rate else 0.0
    next_at = loop.time()

    def tell(done: int, what: str) -> None:
        if progress is not None:
            progress(done, len(todo), what)

    for done, fire in enumerate(todo):
        execution_id = plan.execution_id(fire)
        wait = next_at - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        while True:
            try:
                published = await publish_operator_due(
                    js,
                    plan.tenant_id,
                    plan.task_id,
                    execution_id=execution_id,
                    trigger="backfill",
                    force=overlap == "allow",
                    actor=actor,
                    scheduled_for=fire,
                )
            except ExecutionOpenError as error:
                if overlap == "skip":
                    report.skipped.append(fire)
                    tell(done + 1, f"{instant(fire)} left out: {error.open_execution.doing}")
                    break
                tell(
                    done,
                    f"{instant(fire)} waits: execution {error.open_execution.execution_id} is open",
                )
                await asyncio.sleep(WAIT_SECONDS)
                continue
            if published.duplicate:
                report.already.append(fire)
            else:
                report.published.append(fire)
            tell(done + 1, f"{instant(fire)} published as execution {execution_id}")
            break
        next_at = loop.time() + pause
    report.already.sort()
    return report
