"""Operator commands that write events: ``trigger``, ``pause`` and ``resume``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import socket
from datetime import UTC, datetime

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import APIError

from contracts import (
    EventKind,
    TaskDue,
    TaskPaused,
    TaskResumed,
    encode,
    event_headers,
    event_subject,
    new_execution_id,
    subject,
    validate_task_id,
    validate_tenant_id,
)
from contracts.errors import SchedulerError, UnknownTaskError
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    connect_once,
    connection_from_arguments,
)
from natsio import NatsConnection
from natsio.errors import is_guard_refusal
from natsio.lookup import decode_stored, last_message, read_task_standing

_PUBLISH_TRIES = 5


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trigger = commands.add_parser(
        "trigger",
        help="run a task now (publishes TaskDue with trigger 'manual')",
        description="Publish a TaskDue with trigger 'manual' for a registered task; an "
        "executor runs it at once, with the task's usual timeout and retries.",
    )
    pause = commands.add_parser(
        "pause",
        help="stop a task from firing until resumed",
        description="Record TaskPaused: tickers skip the task's fires until it is resumed.",
    )
    pause.add_argument("--note", default="", help="why, for the audit trail")
    resume = commands.add_parser(
        "resume",
        help="let a paused task fire again",
        description="Record TaskResumed: the next fire runs; fires missed while paused do not.",
    )
    resume.add_argument("--note", default="", help="why, for the audit trail")
    for parser, action in ((trigger, "trigger"), (pause, "pause"), (resume, "resume")):
        parser.add_argument("task_id", metavar="TASK_ID")
        parser.add_argument("--tenant", default="default", help="tenant id (default 'default')")
        add_connection_arguments(parser)
        parser.set_defaults(handler=_run, action=action)


def _run(args: argparse.Namespace) -> int:
    connection = connection_from_arguments(args, name=f"dvp-scheduler-{args.action}")
    tenant_id = validate_tenant_id(args.tenant)
    task_id = validate_task_id(args.task_id)
    message = asyncio.run(
        _operate(connection, args.action, tenant_id, task_id, getattr(args, "note", ""))
    )
    print(message)
    return 0


async def _operate(
    connection: NatsConnection, action: str, tenant_id: str, task_id: str, note: str
) -> str:
    nc = await connect_once(connection, Client)
    try:
        js = nc.jetstream()
        paused = await _require_registered(js, tenant_id, task_id)
        now = datetime.now(UTC)
        if action == "trigger":
            due = await _publish_manual_due(js, tenant_id, task_id)
            note_paused = " (the task is paused; a manual trigger runs anyway)" if paused else ""
            return f"triggered {tenant_id}/{task_id}: execution {due.execution_id}{note_paused}"
        actor = f"{getpass.getuser()}@{socket.gethostname()}"
        event: TaskPaused | TaskResumed
        if action == "pause":
            if paused:
                return f"{tenant_id}/{task_id} is already paused"
            event = TaskPaused(
                tenant_id=tenant_id, task_id=task_id, occurred_at=now, note=note, actor=actor
            )
        else:
            if not paused:
                return f"{tenant_id}/{task_id} is not paused"
            event = TaskResumed(
                tenant_id=tenant_id, task_id=task_id, occurred_at=now, note=note, actor=actor
            )
        await js.publish(event_subject(event), encode(event), headers=event_headers(event))
        return f"{action}d {tenant_id}/{task_id}"
    finally:
        await nc.close()


async def _require_registered(js: JetStreamContext, tenant_id: str, task_id: str) -> bool:
    """Raise `UnknownTaskError` unless the task is registered; return whether it is paused."""
    standing = await read_task_standing(js, tenant_id, task_id)
    if not standing.registered:
        state = "was unregistered" if standing.known else "is not registered"
        raise UnknownTaskError(task_id, tenant_id, state)
    return standing.paused


async def _publish_manual_due(js: JetStreamContext, tenant_id: str, task_id: str) -> TaskDue:
    """Publish a manual TaskDue that carries the schedule's last fire over (see TaskDue)."""
    due_subject = subject(tenant_id, EventKind.DUE, task_id)
    execution_id = new_execution_id()
    for _ in range(_PUBLISH_TRIES):
        last = await last_message(js, due_subject)
        if last is None:
            last_seq, fire_at = 0, None
        else:
            last_seq = int(last.seq or 0)
            previous = decode_stored(last)
            fire_at = previous.fire_at if isinstance(previous, TaskDue) else None
        now = datetime.now(UTC)
        due = TaskDue(
            tenant_id=tenant_id,
            task_id=task_id,
            occurred_at=now,
            execution_id=execution_id,
            attempt=1,
            trigger="manual",
            scheduled_for=now,
            fire_at=fire_at,
        )
        try:
            await js.publish(
                due_subject,
                encode(due),
                headers=event_headers(due, expected_last_subject_sequence=last_seq),
            )
        except APIError as error:
            if is_guard_refusal(error):
                continue  # a ticker published meanwhile: read again, carry its fire over
            raise
        return due
    raise SchedulerError(f"could not publish the trigger for {task_id!r}: the due subject is busy")
