"""The operator's actions, shared by the command line and the dashboard: ``trigger``,
``pause``, ``resume`` and ``rerun``, each writing the same events whoever asks.

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
    TaskDue,
    TaskPaused,
    TaskResumed,
    TaskStarted,
    Trigger,
    encode,
    event_headers,
    event_subject,
    new_execution_id,
    subject,
)
from contracts.errors import SchedulerError, UnknownTaskError
from contracts.queries import EXECUTION_QUERY
from natsio import executor_consumer_config
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
) -> PublishedDue:
    """Publish attempt 1 of ``execution_id`` unless the task's newest execution is open.

    The check and the publish see the same last ``TaskDue``: the publish expects its sequence, so
    a ``TaskDue`` published in between (a ticker's fire, another operator) refuses it, and the
    check runs again. ``force`` publishes beside an open execution. The due carries the
    schedule's last fire over, as every ``TaskDue`` not of a fire does.
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
            scheduled_for=now,
            fire_at=last_due.fire_at if last_due is not None else None,
            rerun_of=rerun_of,
            actor=actor,
        )
        headers = event_headers(due, expected_last_subject_sequence=last_seq)
        # The tenant's executor consumer starts at new messages: it must exist first.
        await ensure_consumer(js, executor_consumer_config(tenant_id))
        try:
            ack = await js.publish(due_subject, encode(due), headers=headers)
        except APIError as error:
            if is_guard_refusal(error):
                # A TaskDue was published meanwhile: check again, once it has landed.
                if winning_sequence(error) is None:
                    await asyncio.sleep(IN_FLIGHT_SETTLE_SECONDS)
                continue
            raise
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
