"""How the scheduler stands: the stream, the work queued for the executors, the retries waiting,
how far behind the projector is and which tasks are overdue. Read by the ``status`` command and
the dashboard."""

from __future__ import annotations

import msgspec
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from contracts import STREAM_NAME
from dvp_scheduler.errors import StreamMissingError
from natsio.backlog import TenantQueue, read_backlog
from projector.queries import DEFAULT_QUERY_TIMEOUT, OverdueTask, ask_status

__all__ = ["SchedulerStatus", "TenantQueue", "scheduler_status"]


class SchedulerStatus(msgspec.Struct, kw_only=True):
    """What ``status --json`` prints (field names are stable; ``null``: not known)."""

    stream: str
    messages: int
    bytes: int
    first_sequence: int
    last_sequence: int
    replicas: int
    due_queued: int | None
    """``TaskDue`` no executor has taken yet."""
    attempts_running: int | None
    """``TaskDue`` taken by an executor and not acknowledged yet."""
    redelivered: int | None
    """Attempts handed out again (an executor died, or gave them back) and not yet settled."""
    executors_waiting: int | None
    """Pull requests waiting for work: roughly, idle executor capacity."""
    retries_waiting: int | None
    """``RetryScheduled`` whose next attempt the tickers have not published yet."""
    projector_sequence: int | None
    projector_lag: int | None
    """Stream messages the projector has not folded in yet."""
    tasks: int | None
    queues: list[TenantQueue] = []
    """Per tenant; the totals above add these up."""
    overdue_tasks: int | None = None
    """Tasks whose last success is older than their schedule allows, by the projector."""
    overdue: list[OverdueTask] = []
    """The latest of them (at most 50), the latest first, with how late they are."""


async def scheduler_status(
    nc: Client, *, where: str = "the server", answer_within: float = DEFAULT_QUERY_TIMEOUT
) -> SchedulerStatus:
    """How things stand, asked over a connected client (the ``status`` command and the
    dashboard); `StreamMissingError` when there is no stream yet."""
    try:
        backlog = await read_backlog(nc.jetstream())
    except NotFoundError:
        raise StreamMissingError(
            f"there is no stream {STREAM_NAME} on {where} yet: run "
            "'dvp-scheduler init', or start a service"
        ) from None
    projector = await ask_status(nc, answer_within=answer_within)
    queues = backlog.queues
    return SchedulerStatus(
        stream=STREAM_NAME,
        messages=backlog.messages,
        bytes=backlog.bytes,
        first_sequence=backlog.first_sequence,
        last_sequence=backlog.last_sequence,
        replicas=backlog.replicas,
        due_queued=sum(q.due_queued for q in queues) if queues else None,
        attempts_running=sum(q.attempts_running for q in queues) if queues else None,
        redelivered=sum(q.redelivered for q in queues) if queues else None,
        executors_waiting=sum(q.executors_waiting for q in queues) if queues else None,
        retries_waiting=backlog.retries_waiting,
        projector_sequence=projector.sequence if projector else None,
        projector_lag=max(0, backlog.last_sequence - projector.sequence) if projector else None,
        tasks=projector.tasks if projector else None,
        queues=queues,
        overdue_tasks=projector.overdue_tasks if projector else None,
        overdue=projector.overdue if projector else [],
    )
