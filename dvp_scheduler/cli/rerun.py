"""``dvp-scheduler rerun``: run a past execution's task again, as a new execution.

The new execution's id is derived from the execution it re-runs and the re-run's number, so two
operators re-running the same execution at once publish the same ``Nats-Msg-Id`` and the stream
keeps one ``TaskDue``. Beyond the stream's duplicate window the projector's history answers
whether the execution was re-run already.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import datetime
from typing import Any, Final

import msgspec
from nats.aio.client import Client

from contracts import STREAM_NAME, SchedulerError, validate_tenant_id
from contracts.queries import EXECUTION_QUERY
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    connect_once,
    connection_from_arguments,
)
from dvp_scheduler.cli._executions import (
    ExecutionOpenError,
    PublishedDue,
    instant,
    operator_actor,
    publish_operator_due,
    require_registered,
)
from dvp_scheduler.cli.query import replay_state, say
from natsio import NatsConnection, reader_client_class
from natsio.lookup import decode_stored
from projector import (
    AmbiguousExecutionError,
    ProjectionState,
    UnknownExecutionError,
    find_executions,
)
from projector.queries import ask_execution
from projector.views import execution_view

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


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "rerun",
        help="run a past execution's task again (publishes TaskDue with trigger 'rerun')",
        description="Start a new execution of the task of EXECUTION_ID (typically a failed "
        "one): a TaskDue with trigger 'rerun' and rerun_of EXECUTION_ID. Refused when that "
        "execution was re-run already (--again runs it once more) and, like trigger, while the "
        "task's newest execution is open (--force).",
    )
    parser.add_argument("execution_id", metavar="EXECUTION_ID")
    parser.add_argument("--tenant", metavar="T", help="the execution's tenant (if ambiguous)")
    parser.add_argument(
        "--again", action="store_true", help="re-run it once more, although it was re-run"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="start it even if the task's newest execution is still open",
    )
    add_connection_arguments(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    tenant_id = validate_tenant_id(args.tenant) if args.tenant is not None else None
    connection = connection_from_arguments(args, name="dvp-scheduler-rerun")
    print(
        asyncio.run(
            rerun(connection, args.execution_id, tenant_id, again=args.again, force=args.force)
        )
    )
    return 0


async def rerun(
    connection: NatsConnection,
    execution_id: str,
    tenant_id: str | None,
    *,
    again: bool = False,
    force: bool = False,
) -> str:
    """Re-run ``execution_id``; return what was done, or raise a `SchedulerError` saying why
    not."""
    nc = await connect_once(connection, reader_client_class())
    try:
        history = _History(nc)
        target = await history.the_execution(execution_id, tenant_id)
        task_tenant, task_id = target["tenant_id"], target["task_id"]
        reruns: list[str] = target.get("reruns") or []
        if reruns and not again:
            previous = await history.due_at(reruns[-1], task_tenant)
            raise AlreadyRerunError(execution_id, reruns[-1], previous, _AGAIN_HINT)
        js = nc.jetstream()
        paused = await require_registered(js, task_tenant, task_id)
        new_id = rerun_execution_id(execution_id, len(reruns) + 1)
        published = await _publish(nc, task_tenant, task_id, execution_id, new_id, again, force)
    finally:
        await nc.close()
    return _done(published, execution_id, paused)


async def _publish(
    nc: Client,
    tenant_id: str,
    task_id: str,
    target: str,
    new_id: str,
    again: bool,
    force: bool,
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
            actor=await operator_actor(nc),
        )
    except ExecutionOpenError as error:
        if error.open_execution.execution_id == new_id:  # another operator was quicker
            raise AlreadyRerunError(target, new_id, error.open_execution.due_at, hint) from None
        raise
    if published.duplicate:  # within the duplicate window: the stream kept the first one
        first = decode_stored(await js.get_msg(STREAM_NAME, published.sequence))
        raise AlreadyRerunError(target, new_id, first.occurred_at if first else None, hint)
    return published


def _done(published: PublishedDue, target: str, paused: bool) -> str:
    due = published.due
    message = (
        f"re-ran {target} of {due.tenant_id}/{due.task_id} as execution {due.execution_id}"
        + published.forced_note()
    )
    if paused:
        message += " (the task is paused; a re-run runs anyway)"
    return message


class _History:
    """Executions by id: asked of a running projector, or found in an in-process replay when
    none answers (replayed once per command)."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._state: ProjectionState | None = None

    async def find(self, execution_id: str, tenant_id: str | None) -> list[dict[str, Any]]:
        """The executions of that id, as ``history --json`` shows them."""
        if self._state is None:
            items = await ask_execution(self._nc, execution_id, tenant_id=tenant_id)
            if items is not None:
                return items
            say(f"no projector answered on {EXECUTION_QUERY}; replaying the stream in-process")
            self._state = await replay_state(self._nc)
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
