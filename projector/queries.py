"""The query protocol over NATS request-reply: request types, answering them, asking them.

A projector answers on `contracts.queries` subjects; any process asks with `ask_tasks`,
`ask_history`, `ask_failures`, `ask_execution` or `ask_status`, which return ``None`` when no
projector answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.micro.request import ERROR_CODE_HEADER, ERROR_HEADER, Request

from contracts.events import UtcDatetime
from contracts.queries import (
    EXECUTION_QUERY,
    FAILURES_QUERY,
    HISTORY_QUERY,
    STATUS_QUERY,
    TASKS_QUERY,
)
from projector.errors import AmbiguousTaskError, QueryError, UnknownTaskError
from projector.overdue import OverdueWatch
from projector.state import ProjectionState
from projector.views import (
    execution_view,
    find_executions,
    find_tasks,
    history,
    list_failures,
    task_view,
)

DEFAULT_QUERY_TIMEOUT: Final = 2.0
"""Seconds to wait for a projector's answer before replaying in-process instead."""

_REPLY_BUDGET: Final = 0.8
"""Share of the server's max payload a reply may fill (the rest is headroom for framing)."""

STATUS_OVERDUE_LIMIT: Final = 50
"""Overdue tasks a status reply names (the latest first); ``overdue_tasks`` counts them all."""


class TasksRequest(msgspec.Struct, kw_only=True):
    """Ask for task rows, a page at a time (``after`` is the previous reply's ``next``)."""

    tenant_id: str | None = None
    include_unregistered: bool = False
    after: str | None = None


class HistoryRequest(msgspec.Struct, kw_only=True):
    """Ask for one task's executions, newest first."""

    task_id: str
    tenant_id: str | None = None
    limit: int = 20


class FailuresRequest(msgspec.Struct, kw_only=True):
    """Ask for the executions that ended failed, newest first."""

    tenant_id: str | None = None
    since: UtcDatetime | None = None
    """Only executions that ended at or after this instant."""
    limit: int = 20


class ExecutionRequest(msgspec.Struct, kw_only=True):
    """Ask for the executions of one id, wherever they are in the history."""

    execution_id: str
    tenant_id: str | None = None


class OverdueTask(msgspec.Struct, kw_only=True):
    """A task whose last success is older than its schedule allows (`contracts.overdue`)."""

    tenant_id: str
    task_id: str
    overdue_at: UtcDatetime
    """When it became overdue."""
    overdue_seconds: float
    """How long past ``overdue_at`` it was when the projector answered."""
    last_succeeded_at: UtcDatetime | None
    """``None``: it never succeeded since it was registered."""


class StatusReply(msgspec.Struct, kw_only=True):
    """How far a projector has read, and which tasks are overdue."""

    sequence: int
    events_applied: int
    unknown_events: dict[str, int]
    invalid_messages: int
    tasks: int
    invalid_tasks: int = 0
    """Registered tasks whose registration is invalid (shown as ``invalid``, never scheduled)."""
    overdue_tasks: int = 0
    """Tasks overdue when the projector answered."""
    overdue: list[OverdueTask] = []
    """The latest of them, at most `STATUS_OVERDUE_LIMIT`, the latest first."""


_json: Final = msgspec.json.Encoder()


def status_of(
    state: ProjectionState, watch: OverdueWatch | None = None, now: datetime | None = None
) -> StatusReply:
    """The `StatusReply` of a state; the overdue tasks at ``now`` (the clock, unless given) by
    ``watch`` (one refreshed here, unless given)."""
    if watch is None:
        watch = OverdueWatch()
    watch.refresh(state)
    late = watch.overdue(now or datetime.now(UTC))
    overdue: list[OverdueTask] = []
    for key, seconds in late[:STATUS_OVERDUE_LIMIT]:
        task = state.tasks[key]
        overdue.append(
            OverdueTask(
                tenant_id=task.tenant_id,
                task_id=task.task_id,
                overdue_at=watch.deadlines[key],
                overdue_seconds=seconds,
                last_succeeded_at=task.last_succeeded_at,
            )
        )
    return StatusReply(
        sequence=state.sequence,
        events_applied=state.events_applied,
        unknown_events=dict(state.unknown_events),
        invalid_messages=state.invalid_messages,
        tasks=len(state.tasks),
        invalid_tasks=state.invalid_tasks,
        overdue_tasks=len(late),
        overdue=overdue,
    )


class QueryHandlers:
    """Answer queries from a live `ProjectionState` (read in the event loop, never copied);
    ``watch`` is told of every task the state's events change."""

    def __init__(
        self, state: Callable[[], ProjectionState], max_payload: int, watch: OverdueWatch
    ) -> None:
        self._state = state
        self._budget = int(max_payload * _REPLY_BUDGET)
        self._watch = watch

    async def tasks(self, request: Request) -> None:
        """Reply to a `TasksRequest`."""
        try:
            query = msgspec.json.decode(request.data or b"{}", type=TasksRequest)
        except msgspec.DecodeError as error:
            await request.respond_error("400", f"bad tasks request: {error}")
            return
        state = self._state()
        self._watch.refresh(state)
        deadlines = self._watch.deadlines
        keys = sorted(
            key
            for key, task in state.tasks.items()
            if (query.tenant_id is None or task.tenant_id == query.tenant_id)
            and (query.include_unregistered or task.registered)
            and (query.after is None or key > query.after)
        )
        parts: list[bytes] = []
        size = 0
        next_key: str | None = None
        last_key: str | None = None
        for key in keys:
            part = _json.encode(task_view(state.tasks[key], deadlines))
            if parts and size + len(part) > self._budget:
                next_key = last_key
                break
            parts.append(part)
            size += len(part) + 1
            last_key = key
        body = b'{"sequence":%d,"items":[%s],"next":%s}' % (
            state.sequence,
            b",".join(parts),
            _json.encode(next_key),
        )
        await request.respond(body)

    async def history(self, request: Request) -> None:
        """Reply to a `HistoryRequest`."""
        try:
            query = msgspec.json.decode(request.data or b"{}", type=HistoryRequest)
        except msgspec.DecodeError as error:
            await request.respond_error("400", f"bad history request: {error}")
            return
        state = self._state()
        found = find_tasks(state, query.task_id, query.tenant_id)
        if not found:
            await request.respond_error(
                "404", str(UnknownTaskError(query.task_id, query.tenant_id))
            )
            return
        if len(found) > 1:
            tenants = [t.tenant_id for t in found]
            await request.respond_error("409", str(AmbiguousTaskError(query.task_id, tenants)))
            return
        views = history(found[0], limit=max(0, query.limit))
        await request.respond(self._items_reply(state, views))

    async def failures(self, request: Request) -> None:
        """Reply to a `FailuresRequest`."""
        try:
            query = msgspec.json.decode(request.data or b"{}", type=FailuresRequest)
        except msgspec.DecodeError as error:
            await request.respond_error("400", f"bad failures request: {error}")
            return
        state = self._state()
        views = list_failures(
            state, tenant_id=query.tenant_id, since=query.since, limit=max(0, query.limit)
        )
        await request.respond(self._items_reply(state, views))

    async def execution(self, request: Request) -> None:
        """Reply to an `ExecutionRequest`."""
        try:
            query = msgspec.json.decode(request.data or b"{}", type=ExecutionRequest)
        except msgspec.DecodeError as error:
            await request.respond_error("400", f"bad execution request: {error}")
            return
        state = self._state()
        found = find_executions(state, query.execution_id, query.tenant_id)
        views = [execution_view(task, execution) for task, execution in found]
        await request.respond(self._items_reply(state, views))

    def _items_reply(self, state: ProjectionState, views: Iterable[msgspec.Struct]) -> bytes:
        """``{"sequence", "items", "truncated"}`` with as many items as fit the reply budget."""
        parts: list[bytes] = []
        size = 0
        truncated = False
        for view in views:
            part = _json.encode(view)
            if parts and size + len(part) > self._budget:
                truncated = True
                break
            parts.append(part)
            size += len(part) + 1
        return b'{"sequence":%d,"items":[%s],"truncated":%s}' % (
            state.sequence,
            b",".join(parts),
            b"true" if truncated else b"false",
        )

    async def status(self, request: Request) -> None:
        """Reply with the projector's `StatusReply`."""
        await request.respond(_json.encode(status_of(self._state(), self._watch)))


async def _ask(nc: Client, subject: str, payload: bytes, answer_within: float) -> Any | None:
    try:
        reply = await nc.request(subject, payload, timeout=answer_within)
    except (NoRespondersError, NatsTimeoutError, TimeoutError):
        return None
    headers = reply.headers or {}
    if ERROR_CODE_HEADER in headers:
        code = headers[ERROR_CODE_HEADER]
        description = headers.get(ERROR_HEADER, "")
        if code in ("404", "409"):  # the description says what to do
            raise QueryError(description)
        raise QueryError(f"the projector answered {code}: {description}")
    return msgspec.json.decode(reply.data)


async def _ask_items(
    nc: Client, subject: str, payload: bytes, answer_within: float
) -> list[dict[str, Any]] | None:
    """The ``items`` of a one-page answer, or ``None`` if no projector answers."""
    reply = await _ask(nc, subject, payload, answer_within)
    if reply is None:
        return None
    items: list[dict[str, Any]] = reply["items"]
    return items


async def ask_tasks(
    nc: Client,
    *,
    tenant_id: str | None = None,
    include_unregistered: bool = False,
    answer_within: float = DEFAULT_QUERY_TIMEOUT,
) -> list[dict[str, Any]] | None:
    """Every task row a projector knows (all pages), or ``None`` if none answers."""
    items: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        request = TasksRequest(
            tenant_id=tenant_id, include_unregistered=include_unregistered, after=after
        )
        reply = await _ask(nc, TASKS_QUERY, _json.encode(request), answer_within)
        if reply is None:
            return None
        items.extend(reply["items"])
        after = reply.get("next")
        if after is None:
            return items


async def ask_history(
    nc: Client,
    task_id: str,
    *,
    tenant_id: str | None = None,
    limit: int = 20,
    answer_within: float = DEFAULT_QUERY_TIMEOUT,
) -> list[dict[str, Any]] | None:
    """A task's executions from a projector, newest first, or ``None`` if none answers."""
    request = HistoryRequest(task_id=task_id, tenant_id=tenant_id, limit=limit)
    return await _ask_items(nc, HISTORY_QUERY, _json.encode(request), answer_within)


async def ask_failures(
    nc: Client,
    *,
    tenant_id: str | None = None,
    since: datetime | None = None,
    limit: int = 20,
    answer_within: float = DEFAULT_QUERY_TIMEOUT,
) -> list[dict[str, Any]] | None:
    """Executions that ended failed, newest first, from a projector; ``None`` if none answers."""
    request = FailuresRequest(tenant_id=tenant_id, since=since, limit=limit)
    return await _ask_items(nc, FAILURES_QUERY, _json.encode(request), answer_within)


async def ask_execution(
    nc: Client,
    execution_id: str,
    *,
    tenant_id: str | None = None,
    answer_within: float = DEFAULT_QUERY_TIMEOUT,
) -> list[dict[str, Any]] | None:
    """The executions of that id in a projector's history (usually one, none if it does not
    know it), or ``None`` if no projector answers."""
    request = ExecutionRequest(execution_id=execution_id, tenant_id=tenant_id)
    return await _ask_items(nc, EXECUTION_QUERY, _json.encode(request), answer_within)


async def ask_status(
    nc: Client, *, answer_within: float = DEFAULT_QUERY_TIMEOUT
) -> StatusReply | None:
    """How far a projector has read, or ``None`` if none answers."""
    reply = await _ask(nc, STATUS_QUERY, b"{}", answer_within)
    if reply is None:
        return None
    return msgspec.convert(reply, StatusReply)
