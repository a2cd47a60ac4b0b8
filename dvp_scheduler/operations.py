"""The operator's actions, shared by the command line and the dashboard: ``trigger`` (now, or
once at an instant), ``pause``, ``resume``, ``rerun`` and ``cancel`` (an execution, or a one-off
run before it fires), each writing the same events whoever asks.

What the actions that start an execution share: is the task's newest execution still open, and
publishing the operator's ``TaskDue`` atomically with that check. Both are read from the stream
itself, with the last message of each of the task's execution subjects, so they hold with no
projector running and are never behind it. ``rerun`` derives the new execution's id from the
execution it re-runs and the re-run's number, so two operators re-running the same execution at
once publish the same ``Nats-Msg-Id`` and the stream keeps one ``TaskDue``; beyond the stream's
duplicate window the projector's history (or an in-process replay) answers whether the
execution was re-run already.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import APIError, NotFoundError

from contracts import (
    STREAM_NAME,
    Event,
    EventKind,
    ExecutionEvent,
    RetryScheduled,
    ScheduledRun,
    ScheduledRunsChanged,
    TaskCancelRequested,
    TaskDue,
    TaskFailed,
    TaskPaused,
    TaskResumed,
    TaskStarted,
    TaskSucceeded,
    Trigger,
    encode,
    event_headers,
    event_subject,
    new_execution_id,
    subject,
)
from contracts import headers as header_names
from contracts.errors import SchedulerError, UnknownTaskError
from contracts.queries import EXECUTION_QUERY
from contracts.schedule import LATEST_INSTANT
from contracts.subjects import parse_subject, subject_filter
from contracts.validation import MAX_SCHEDULED_RUNS
from natsio import executor_consumer_config, tracing
from natsio.errors import IN_FLIGHT_SETTLE_SECONDS, is_guard_refusal, winning_sequence
from natsio.lookup import connection_user, decode_stored, last_message, read_task_standing
from natsio.provision import ensure_consumer
from projector import (
    AmbiguousExecutionError,
    ProjectionState,
    UnknownExecutionError,
    find_executions,
    replay,
)
from projector.queries import ask_execution
from projector.views import execution_view

_PUBLISH_TRIES: Final = 5


@dataclass(frozen=True)
class OpenExecution:
    """The task's newest execution, which has not ended, and what its current attempt does."""

    tenant_id: str
    task_id: str
    execution_id: str
    attempt: int
    due_at: datetime
    """When the current attempt's ``TaskDue`` was recorded."""
    doing: str
    """E.g. ``attempt 2 waits for its retry at 2026-11-24T03:01:00Z``."""

    def describe(self) -> str:
        """One sentence naming the execution and what it does."""
        return (
            f"task {self.tenant_id}/{self.task_id} has an open execution {self.execution_id}: "
            f"{self.doing}"
        )


class ExecutionOpenError(SchedulerError):
    """An operator asked for a new execution while the task's newest one is open."""

    def __init__(self, open_execution: OpenExecution) -> None:
        super().__init__(
            f"{open_execution.describe()}; wait for it, or use --force to start a separate "
            "execution now"
        )
        self.open_execution = open_execution


@dataclass(frozen=True)
class PublishedDue:
    """A ``TaskDue`` an operator's command published."""

    due: TaskDue
    sequence: int
    """Its stream sequence; for a duplicate, that of the ``TaskDue`` the stream already held."""
    duplicate: bool
    """The stream already held a ``TaskDue`` of that message id and dropped this one."""
    beside: OpenExecution | None
    """The open execution it was forced past, if any."""

    def forced_note(self) -> str:
        """What to add to the command's answer when it was forced past an open execution."""
        if self.beside is None:
            return ""
        return (
            f", a separate execution (--force) beside the open execution "
            f"{self.beside.execution_id}: {self.beside.doing}"
        )


def instant(value: datetime) -> str:
    """``2026-11-24T03:00:00Z``: an instant in UTC to the second."""
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def require_registered(js: JetStreamContext, tenant_id: str, task_id: str) -> bool:
    """Raise `UnknownTaskError` unless the task is registered; return whether it is paused."""
    standing = await read_task_standing(js, tenant_id, task_id)
    if not standing.registered:
        state = "was unregistered" if standing.known else "is not registered"
        raise UnknownTaskError(task_id, tenant_id, state)
    return standing.paused


async def operator_actor(nc: Client) -> str:
    """Who is acting, for the audit trail: the NATS user the server authenticated (which a
    tenant cannot choose), then the local user and host (which it can)."""
    local = f"{getpass.getuser()}@{socket.gethostname()}"
    user = await connection_user(nc)
    return f"{user} ({local})" if user else local


async def publish_operator_due(
    js: JetStreamContext,
    tenant_id: str,
    task_id: str,
    *,
    execution_id: str,
    trigger: Trigger,
    rerun_of: str | None = None,
    force: bool = False,
    actor: str = "",
    scheduled_for: datetime | None = None,
) -> PublishedDue:
    """Publish attempt 1 of ``execution_id`` unless the task's newest execution is open.

    The check and the publish see the same last ``TaskDue``: the publish expects its sequence, so
    a ``TaskDue`` published in between (a ticker's fire, another operator) refuses it, and the
    check runs again. ``force`` publishes beside an open execution. The due carries the
    schedule's last fire over, as every ``TaskDue`` not of a fire does; it is meant for
    ``scheduled_for`` (default: now).
    """
    due_subject = subject(tenant_id, EventKind.DUE, task_id)
    for _ in range(_PUBLISH_TRIES):
        last = await last_message(js, due_subject)
        previous = decode_stored(last) if last is not None else None
        last_due = previous if isinstance(previous, TaskDue) else None
        last_seq = int(last.seq or 0) if last is not None else 0
        open_now = await _still_open(js, last_due, last_seq) if last_due is not None else None
        if open_now is not None and not force:
            raise ExecutionOpenError(open_now)
        now = datetime.now(UTC)
        due = TaskDue(
            tenant_id=tenant_id,
            task_id=task_id,
            occurred_at=now,
            execution_id=execution_id,
            attempt=1,
            trigger=trigger,
            scheduled_for=scheduled_for or now,
            fire_at=last_due.fire_at if last_due is not None else None,
            rerun_of=rerun_of,
            actor=actor,
        )
        headers = event_headers(due, expected_last_subject_sequence=last_seq)
        payload = encode(due)
        # With tracing on, the operator's action starts the execution's trace.
        tracer = tracing.tracer("dvp_scheduler.operations")
        span = None
        if tracer is not None:
            operation = "trigger" if trigger == "manual" else trigger
            span = tracing.due_span(tracer, operation, due, due_subject, payload, headers)
        # The tenant's executor consumer starts at new messages: it must exist first.
        await ensure_consumer(js, executor_consumer_config(tenant_id))
        try:
            ack = await js.publish(due_subject, payload, headers=headers)
        except BaseException as error:
            if span is not None:
                tracing.end_publish_span(span, error)
            if isinstance(error, APIError) and is_guard_refusal(error):
                # A TaskDue was published meanwhile: check again, once it has landed.
                if winning_sequence(error) is None:
                    await asyncio.sleep(IN_FLIGHT_SETTLE_SECONDS)
                continue
            raise
        if span is not None:
            tracing.end_publish_span(span, ack)
        return PublishedDue(
            due=due, sequence=ack.seq, duplicate=bool(ack.duplicate), beside=open_now
        )
    raise SchedulerError(
        f"could not publish the TaskDue for {tenant_id}/{task_id}: the due subject changed "
        f"{_PUBLISH_TRIES} times while we tried; try again"
    )


async def _still_open(js: JetStreamContext, due: TaskDue, due_seq: int) -> OpenExecution | None:
    """Where ``due``'s execution stands, from the events recorded after it; ``None`` if one of
    them ended it."""

    async def latest(kind: EventKind, *, same_attempt: bool = True) -> Event | None:
        return await _latest_after(
            js,
            subject(due.tenant_id, kind, due.task_id),
            due_seq,
            due.execution_id,
            due.attempt if same_attempt else None,
        )

    if await latest(EventKind.SUCCEEDED, same_attempt=False) is not None:
        return None
    if await latest(EventKind.FAILED, same_attempt=False) is not None:
        return None
    retry = await latest(EventKind.RETRY)
    started = await latest(EventKind.STARTED)
    if isinstance(retry, RetryScheduled):
        doing = f"attempt {retry.attempt + 1} waits for its retry at {instant(retry.retry_at)}"
    elif isinstance(started, TaskStarted):
        doing = (
            f"attempt {due.attempt} is running on worker {started.worker} "
            f"since {instant(started.occurred_at)}"
        )
    else:
        doing = f"attempt {due.attempt} waits for an executor since {instant(due.occurred_at)}"
    return OpenExecution(
        tenant_id=due.tenant_id,
        task_id=due.task_id,
        execution_id=due.execution_id,
        attempt=due.attempt,
        due_at=due.occurred_at,
        doing=doing,
    )


async def _latest_after(
    js: JetStreamContext, subject_name: str, after: int, execution_id: str, attempt: int | None
) -> Event | None:
    """The newest event on ``subject_name`` after stream sequence ``after`` that belongs to
    ``execution_id`` (and ``attempt``, if given).

    Usually the subject's last message answers. Only when it belongs to another execution
    running beside this one are the subject's messages since ``after`` read one by one; there
    are few, as each belongs to an attempt that was due before ``after``.
    """
    last = await last_message(js, subject_name)
    if last is None or int(last.seq or 0) <= after:
        return None
    newest = decode_stored(last)
    if _belongs(newest, execution_id, attempt):
        return newest
    found: Event | None = None
    sequence = after + 1
    last_seq = int(last.seq or 0)
    while sequence < last_seq:
        raw = await _next_on_subject(js, subject_name, sequence)
        if raw is None or int(raw.seq or 0) >= last_seq:
            break
        event = decode_stored(raw)
        if _belongs(event, execution_id, attempt):
            found = event
        sequence = int(raw.seq or 0) + 1
    return found


async def _next_on_subject(
    js: JetStreamContext, subject_name: str, sequence: int
) -> RawStreamMsg | None:
    try:
        return await js.get_msg(STREAM_NAME, seq=sequence, subject=subject_name, next=True)
    except NotFoundError:
        return None


def _belongs(event: Event | None, execution_id: str, attempt: int | None) -> bool:
    if not isinstance(event, ExecutionEvent) or event.execution_id != execution_id:
        return False
    return attempt is None or event.attempt == attempt


# ---------------------------------------------------------------------------------------------
# The actions


async def trigger(
    nc: Client, tenant_id: str, task_id: str, *, actor: str, force: bool = False
) -> str:
    """Start a new execution of a registered task now (``TaskDue`` with trigger ``manual``);
    return what was done. Raises `ExecutionOpenError` while the newest execution is open, unless
    ``force``."""
    js = nc.jetstream()
    paused = await require_registered(js, tenant_id, task_id)
    published = await publish_operator_due(
        js,
        tenant_id,
        task_id,
        execution_id=new_execution_id(),
        trigger="manual",
        force=force,
        actor=actor,
    )
    message = (
        f"triggered {tenant_id}/{task_id}: execution {published.due.execution_id}"
        + published.forced_note()
    )
    if paused:
        message += " (the task is paused; a manual trigger runs anyway)"
    return message


async def pause(nc: Client, tenant_id: str, task_id: str, *, note: str, actor: str) -> str:
    """Record ``TaskPaused`` (tickers skip the task's fires until it is resumed), unless it is
    paused already; return what was done."""
    return await _pause_or_resume(nc, tenant_id, task_id, pause=True, note=note, actor=actor)


async def resume(nc: Client, tenant_id: str, task_id: str, *, note: str, actor: str) -> str:
    """Record ``TaskResumed`` (the next fire runs; fires missed while paused do not), unless it
    is not paused; return what was done."""
    return await _pause_or_resume(nc, tenant_id, task_id, pause=False, note=note, actor=actor)


async def _pause_or_resume(
    nc: Client, tenant_id: str, task_id: str, *, pause: bool, note: str, actor: str
) -> str:
    js = nc.jetstream()
    paused = await require_registered(js, tenant_id, task_id)
    if paused == pause:
        return f"{tenant_id}/{task_id} is {'already' if pause else 'not'} paused"
    kind = TaskPaused if pause else TaskResumed
    event = kind(
        tenant_id=tenant_id, task_id=task_id, occurred_at=datetime.now(UTC), note=note, actor=actor
    )
    await js.publish(event_subject(event), encode(event), headers=event_headers(event))
    return f"{'paused' if pause else 'resumed'} {tenant_id}/{task_id}"


_RERUN_NAMESPACE: Final = uuid.UUID("86b9a221-29dc-478d-98c9-c50ab7060c76")
"""Never change it: the ids it derives are what keeps a re-run from being published twice."""


def rerun_execution_id(execution_id: str, number: int) -> str:
    """The id of re-run ``number`` (1 for the first) of ``execution_id``: a UUID, as every
    execution id is, the same for everyone who computes it."""
    return str(uuid.uuid5(_RERUN_NAMESPACE, f"{execution_id}/rerun/{number}"))


class AlreadyRerunError(SchedulerError):
    """The execution was re-run already and ``--again`` was not given (or did not suffice)."""

    def __init__(self, target: str, rerun: str, at: datetime | None, hint: str) -> None:
        when = f" at {instant(at)}" if at is not None else ""
        super().__init__(f"execution {target} was already re-run as {rerun}{when}; {hint}")
        self.target = target
        self.rerun = rerun


_AGAIN_HINT: Final = "use --again to run it once more"

Replayer = Callable[[Client], Awaitable[ProjectionState]]
"""Folds the stream in-process, for when no projector answers."""


async def replay_or_empty(nc: Client) -> ProjectionState:
    """The state replayed in-process; an empty state when there is no stream yet."""
    try:
        return await replay(nc)
    except NotFoundError:  # no stream yet: nothing was ever recorded
        return ProjectionState()


async def rerun(
    nc: Client,
    execution_id: str,
    tenant_id: str | None,
    *,
    actor: str,
    again: bool = False,
    force: bool = False,
    replayer: Replayer = replay_or_empty,
    on_replay: Callable[[str], object] | None = None,
) -> str:
    """Re-run ``execution_id`` (``TaskDue`` with trigger ``rerun`` and ``rerun_of``); return what
    was done, or raise a `SchedulerError` saying why not.

    The execution is looked up in a projector's history; when none answers, ``replayer`` folds
    the stream in-process and ``on_replay`` hears that it does.
    """
    history = _History(nc, replayer, on_replay)
    target = await history.the_execution(execution_id, tenant_id)
    task_tenant, task_id = target["tenant_id"], target["task_id"]
    reruns: list[str] = target.get("reruns") or []
    if reruns and not again:
        previous = await history.due_at(reruns[-1], task_tenant)
        raise AlreadyRerunError(execution_id, reruns[-1], previous, _AGAIN_HINT)
    js = nc.jetstream()
    paused = await require_registered(js, task_tenant, task_id)
    new_id = rerun_execution_id(execution_id, len(reruns) + 1)
    published = await _publish_rerun(
        nc, task_tenant, task_id, execution_id, new_id, again=again, force=force, actor=actor
    )
    due = published.due
    message = (
        f"re-ran {execution_id} of {due.tenant_id}/{due.task_id} as execution {due.execution_id}"
        + published.forced_note()
    )
    if paused:
        message += " (the task is paused; a re-run runs anyway)"
    return message


async def _publish_rerun(
    nc: Client,
    tenant_id: str,
    task_id: str,
    target: str,
    new_id: str,
    *,
    again: bool,
    force: bool,
    actor: str,
) -> PublishedDue:
    hint = (
        "the projector has not seen that re-run yet: wait a moment and use --again"
        if again
        else _AGAIN_HINT
    )
    js = nc.jetstream()
    try:
        published = await publish_operator_due(
            js,
            tenant_id,
            task_id,
            execution_id=new_id,
            trigger="rerun",
            rerun_of=target,
            force=force,
            actor=actor,
        )
    except ExecutionOpenError as error:
        if error.open_execution.execution_id == new_id:  # another operator was quicker
            raise AlreadyRerunError(target, new_id, error.open_execution.due_at, hint) from None
        raise
    if published.duplicate:  # within the duplicate window: the stream kept the first one
        first = decode_stored(await js.get_msg(STREAM_NAME, published.sequence))
        raise AlreadyRerunError(target, new_id, first.occurred_at if first else None, hint)
    return published


class _History:
    """Executions by id: asked of a running projector, or found in an in-process replay when
    none answers (replayed once per action)."""

    def __init__(
        self, nc: Client, replayer: Replayer, on_replay: Callable[[str], object] | None
    ) -> None:
        self._nc = nc
        self._replayer = replayer
        self._on_replay = on_replay
        self._state: ProjectionState | None = None

    async def find(self, execution_id: str, tenant_id: str | None) -> list[dict[str, Any]]:
        """The executions of that id, as ``history --json`` shows them."""
        if self._state is None:
            items = await ask_execution(self._nc, execution_id, tenant_id=tenant_id)
            if items is not None:
                return items
            if self._on_replay is not None:
                self._on_replay(
                    f"no projector answered on {EXECUTION_QUERY}; replaying the stream in-process"
                )
            self._state = await self._replayer(self._nc)
        found = find_executions(self._state, execution_id, tenant_id)
        views = [execution_view(task, execution) for task, execution in found]
        result: list[dict[str, Any]] = msgspec.to_builtins(views)
        return result

    async def the_execution(self, execution_id: str, tenant_id: str | None) -> dict[str, Any]:
        """The one execution of that id; raise if there is none, or several."""
        found = await self.find(execution_id, tenant_id)
        if not found:
            raise UnknownExecutionError(execution_id, tenant_id)
        if len(found) > 1:
            tasks = [f"{e['tenant_id']}/{e['task_id']}" for e in found]
            raise AmbiguousExecutionError(execution_id, tasks)
        return found[0]

    async def due_at(self, execution_id: str, tenant_id: str) -> datetime | None:
        """When that execution's first ``TaskDue`` was recorded, if the history has it."""
        found = await self.find(execution_id, tenant_id)
        due_at = found[0].get("due_at") if len(found) == 1 else None
        return datetime.fromisoformat(due_at) if isinstance(due_at, str) else None


# ---------------------------------------------------------------------------------------------
# Cancel

CANCEL_POLL_SECONDS: Final = 0.1
"""How often `cancel` looks whether the execution has ended, while it waits for that."""


class ExecutionEndedError(SchedulerError):
    """The execution to cancel has ended already: there is nothing to cancel."""

    def __init__(self, execution_id: str, task: str, outcome: str, at: datetime | None) -> None:
        when = f" at {instant(at)}" if at is not None else ""
        super().__init__(
            f"execution {execution_id} of {task} has ended already ({outcome}{when}); there is "
            "nothing to cancel (dvp-scheduler history shows its attempts)"
        )
        self.execution_id = execution_id


def cancel_target(view: dict[str, Any]) -> tuple[int, str]:
    """The attempt a cancel of the open execution ``view`` (as ``history --json`` shows it)
    names, and what that attempt does: the newest attempt, or the one its retry waits for."""
    attempts: list[dict[str, Any]] = view.get("attempts") or []
    if not attempts:
        return 1, "attempt 1 waits for an executor: it ends cancelled when one takes it"
    last = max(attempts, key=lambda a: int(a["attempt"]))
    number = int(last["attempt"])
    if last.get("outcome") == "retry_scheduled":
        retry_at = last.get("retry_at")
        when = f" at {retry_at}" if retry_at else ""
        return number + 1, f"attempt {number + 1} waits for its retry{when}: a ticker closes it"
    if last.get("started_at") is not None:
        worker = last.get("worker") or "a worker"
        return number, f"attempt {number} runs on {worker}: its executor cancels it"
    return number, f"attempt {number} waits for an executor: it ends cancelled when one takes it"


async def cancel(
    nc: Client,
    execution_id: str,
    tenant_id: str | None,
    *,
    actor: str,
    note: str = "",
    wait_seconds: float = 10.0,
    replayer: Replayer = replay_or_empty,
    on_replay: Callable[[str], object] | None = None,
) -> str:
    """Ask to cancel the open execution ``execution_id`` (``TaskCancelRequested``), wait up to
    ``wait_seconds`` until it has ended, and return what came of it; raise a `SchedulerError`
    saying why not (unknown, ambiguous, ended already).

    The execution is looked up as `rerun` looks it up. Whoever holds it ends it: the executor
    running its attempt, the executor that takes an attempt still due, a ticker for a retry
    waiting for its time; each records ``TaskFailed`` with error kind and reason
    ``cancelled``, and no attempt follows.
    """
    history = _History(nc, replayer, on_replay)
    js = nc.jetstream()
    try:
        target = await history.the_execution(execution_id, tenant_id)
    except UnknownExecutionError:
        waiting = await _find_scheduled_run(js, execution_id, tenant_id, None)
        if waiting is None:
            raise
        raise SchedulerError(
            f"{execution_id} is a one-off run of {waiting[0]}/{waiting[1]} that has not fired "
            f"yet: dvp-scheduler cancel --scheduled {execution_id} removes it"
        ) from None
    task_tenant, task_id = target["tenant_id"], target["task_id"]
    name = f"{task_tenant}/{task_id}"
    if target.get("outcome") is not None:
        ended_at = target.get("ended_at")
        at = datetime.fromisoformat(ended_at) if isinstance(ended_at, str) else None
        raise ExecutionEndedError(execution_id, name, str(target["outcome"]), at)
    ended = await _ended_outcome(js, task_tenant, task_id, execution_id)
    if ended is not None:  # the projector has not seen it yet
        raise ExecutionEndedError(execution_id, name, _outcome_word(ended), ended.occurred_at)
    attempt, doing = cancel_target(target)
    request = TaskCancelRequested(
        tenant_id=task_tenant,
        task_id=task_id,
        occurred_at=datetime.now(UTC),
        execution_id=execution_id,
        attempt=attempt,
        note=note,
        actor=actor,
    )
    ack = await js.publish(event_subject(request), encode(request), headers=event_headers(request))
    asked = (
        f"a cancel of execution {execution_id} of {name} was already requested"
        if ack.duplicate
        else f"requested the cancel of execution {execution_id} of {name}"
    )
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        ended = await _ended_outcome(js, task_tenant, task_id, execution_id)
        if ended is not None:
            break
        if asyncio.get_running_loop().time() >= deadline:
            return (
                f"{asked}; {doing}; it has not ended within {wait_seconds:g}s "
                f"(dvp-scheduler history {task_id} --tenant {task_tenant} shows when it does)"
            )
        await asyncio.sleep(CANCEL_POLL_SECONDS)
    if isinstance(ended, TaskFailed) and ended.reason == "cancelled":
        return (
            f"cancelled execution {execution_id} of {name}: attempt {ended.attempt} ended "
            f"at {instant(ended.occurred_at)} ({ended.error.message})"
        )
    return (
        f"{asked}, but execution {execution_id} ended before the cancel took effect: "
        f"{_outcome_word(ended)} at {instant(ended.occurred_at)}"
    )


def _outcome_word(outcome: TaskSucceeded | TaskFailed) -> str:
    if isinstance(outcome, TaskSucceeded):
        return f"attempt {outcome.attempt} succeeded"
    return f"attempt {outcome.attempt} failed, {outcome.reason}"


async def _ended_outcome(
    js: JetStreamContext, tenant_id: str, task_id: str, execution_id: str
) -> TaskSucceeded | TaskFailed | None:
    """The ``TaskSucceeded`` or ``TaskFailed`` that ended ``execution_id``, if the newest one of
    either kind is it (two direct gets)."""
    for kind in (EventKind.FAILED, EventKind.SUCCEEDED):
        raw = await last_message(js, subject(tenant_id, kind, task_id))
        event = decode_stored(raw) if raw is not None else None
        if isinstance(event, TaskSucceeded | TaskFailed) and event.execution_id == execution_id:
            return event
    return None


# ---------------------------------------------------------------------------------------------
# One-off runs


async def scheduled_runs(
    js: JetStreamContext, tenant_id: str, task_id: str
) -> tuple[tuple[ScheduledRun, ...], int]:
    """The task's one-off runs still to come, and the stream sequence of the message that says
    so (0: none ever scheduled): the last message of its ``scheduled`` subject."""
    raw = await last_message(js, subject(tenant_id, EventKind.SCHEDULED, task_id))
    event = decode_stored(raw) if raw is not None else None
    runs = event.runs if isinstance(event, ScheduledRunsChanged) else ()
    return runs, int(raw.seq or 0) if raw is not None else 0


async def schedule_run(
    nc: Client, tenant_id: str, task_id: str, *, at: datetime, actor: str, note: str = ""
) -> str:
    """Schedule a one-off run of a registered task at ``at`` (``ScheduledRunsChanged``, change
    ``scheduled``); return what was done. A ticker publishes its ``TaskDue`` (trigger ``once``)
    then, whatever ticker runs, and whether the task is paused or an execution is open."""
    now = datetime.now(UTC)
    if at <= now:
        raise SchedulerError(
            f"--at {instant(at)} is not in the future (now is {instant(now)}); leave --at out "
            "to run the task now"
        )
    if at > LATEST_INSTANT:
        raise SchedulerError(f"--at {instant(at)} is too far ahead: at most {LATEST_INSTANT:%Y}")
    js = nc.jetstream()
    paused = await require_registered(js, tenant_id, task_id)
    run = ScheduledRun(run_id=new_execution_id(), run_at=at, actor=actor, note=note)
    for _ in range(_PUBLISH_TRIES):
        runs, sequence = await scheduled_runs(js, tenant_id, task_id)
        if len(runs) >= MAX_SCHEDULED_RUNS:
            raise SchedulerError(
                f"{tenant_id}/{task_id} has {len(runs)} one-off runs waiting, the most there may "
                "be; cancel some (dvp-scheduler cancel --scheduled RUN_ID) first"
            )
        changed = ScheduledRunsChanged(
            tenant_id=tenant_id,
            task_id=task_id,
            occurred_at=datetime.now(UTC),
            runs=tuple(sorted((*runs, run), key=lambda r: r.run_at)),
            change="scheduled",
            run_id=run.run_id,
            actor=actor,
            note=note,
        )
        if await _publish_expecting(js, changed, sequence):
            message = (
                f"scheduled a one-off run of {tenant_id}/{task_id} at {instant(at)}: "
                f"execution {run.run_id} (dvp-scheduler cancel --scheduled {run.run_id} "
                "removes it before then)"
            )
            if paused:
                message += " (the task is paused; a one-off run runs anyway)"
            return message
    raise SchedulerError(
        f"could not schedule the run of {tenant_id}/{task_id}: its one-off runs changed "
        f"{_PUBLISH_TRIES} times while we tried; try again"
    )


async def cancel_scheduled_run(
    nc: Client,
    run_id: str,
    tenant_id: str | None,
    *,
    task_id: str | None = None,
    actor: str,
    note: str = "",
) -> str:
    """Remove the one-off run ``run_id`` before it fires (``ScheduledRunsChanged``, change
    ``cancelled``); return what was done, or raise a `SchedulerError` saying why not.

    The removal expects the task's newest sequence over all of its subjects, so a ticker that
    publishes the run's ``TaskDue`` at the same moment makes it look again: then the run has
    fired and is not cancelled.
    """
    js = nc.jetstream()
    found = await _find_scheduled_run(js, run_id, tenant_id, task_id)
    if found is None:
        where = f"{tenant_id or '*'}/{task_id or '*'}"
        raise SchedulerError(
            f"no one-off run {run_id} waits ({where}): it fired, was cancelled, or never was "
            "(dvp-scheduler history shows the runs that fired)"
        )
    tenant, task = found
    everything = subject_filter(tenant, None, task)
    for _ in range(_PUBLISH_TRIES * 2):
        newest = await last_message(js, everything)
        runs, _ = await scheduled_runs(js, tenant, task)
        run = next((r for r in runs if r.run_id == run_id), None)
        if run is None:
            return await _why_not_waiting(js, tenant, task, run_id)
        changed = ScheduledRunsChanged(
            tenant_id=tenant,
            task_id=task,
            occurred_at=datetime.now(UTC),
            runs=tuple(r for r in runs if r.run_id != run_id),
            change="cancelled",
            run_id=run_id,
            actor=actor,
            note=note,
        )
        sequence = int(newest.seq or 0) if newest is not None else 0
        if await _publish_expecting(js, changed, sequence, over=everything):
            return f"cancelled the one-off run {run_id} of {tenant}/{task} at {instant(run.run_at)}"
    raise SchedulerError(
        f"could not cancel the run {run_id} of {tenant}/{task}: the task's events kept coming "
        "while we tried; try again"
    )


async def _publish_expecting(
    js: JetStreamContext, event: ScheduledRunsChanged, sequence: int, *, over: str | None = None
) -> bool:
    """Publish ``event`` if the last sequence of its subject (or of ``over``) is ``sequence``;
    ``False`` when another writer came first."""
    headers = event_headers(event, expected_last_subject_sequence=sequence)
    if over is not None:
        headers[header_names.EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT] = over
    try:
        await js.publish(event_subject(event), encode(event), headers=headers)
    except APIError as error:
        if not is_guard_refusal(error):
            raise
        if winning_sequence(error) is None:
            await asyncio.sleep(IN_FLIGHT_SETTLE_SECONDS)
        return False
    return True


async def _find_scheduled_run(
    js: JetStreamContext, run_id: str, tenant_id: str | None, task_id: str | None
) -> tuple[str, str] | None:
    """The tenant and task whose one-off runs list ``run_id``."""
    if tenant_id is not None and task_id is not None:
        candidates = [(tenant_id, task_id)]
    else:
        pattern = subject_filter(tenant_id, EventKind.SCHEDULED, task_id)
        try:
            info = await js.stream_info(STREAM_NAME, subjects_filter=pattern)
        except NotFoundError:
            return None
        parts = [parse_subject(name) for name in sorted(info.state.subjects or {})]
        candidates = [(part.tenant_id, part.task_id) for part in parts]
    for tenant, task in candidates:
        runs, _ = await scheduled_runs(js, tenant, task)
        if any(run.run_id == run_id for run in runs):
            return tenant, task
    return None


async def _why_not_waiting(js: JetStreamContext, tenant_id: str, task_id: str, run_id: str) -> str:
    raw = await last_message(js, subject(tenant_id, EventKind.DUE, task_id))
    due = decode_stored(raw) if raw is not None else None
    if isinstance(due, TaskDue) and due.execution_id == run_id:
        raise SchedulerError(
            f"the one-off run {run_id} of {tenant_id}/{task_id} has fired already, at "
            f"{instant(due.occurred_at)}; dvp-scheduler cancel {run_id} ends its execution"
        )
    raise SchedulerError(f"no one-off run {run_id} of {tenant_id}/{task_id} waits any more")
