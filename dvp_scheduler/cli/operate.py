"""Operator commands that write events: ``trigger``, ``pause`` and ``resume``.

``trigger`` refuses while the task's newest execution is open (due, running, or waiting for a
retry), so that an operator does not start a second run by accident; ``--force`` starts one
beside it.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from nats.aio.client import Client

from contracts import (
    TaskPaused,
    TaskResumed,
    encode,
    event_headers,
    event_subject,
    new_execution_id,
    validate_task_id,
    validate_tenant_id,
)
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    connect_once,
    connection_from_arguments,
)
from dvp_scheduler.cli._executions import (
    operator_actor,
    publish_operator_due,
    require_registered,
)
from natsio import NatsConnection


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trigger = commands.add_parser(
        "trigger",
        help="run a task now (publishes TaskDue with trigger 'manual')",
        description="Publish a TaskDue with trigger 'manual' for a registered task; an "
        "executor runs it at once, with the task's usual timeout and retries. Refused while "
        "the task's newest execution is open (waiting for an executor, running, or waiting "
        "for a retry); --force starts a separate execution beside it.",
    )
    trigger.add_argument(
        "--force",
        action="store_true",
        help="start a separate execution even if the newest one is still open",
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
        _operate(
            connection,
            args.action,
            tenant_id,
            task_id,
            getattr(args, "note", ""),
            force=getattr(args, "force", False),
        )
    )
    print(message)
    return 0


async def _operate(
    connection: NatsConnection,
    action: str,
    tenant_id: str,
    task_id: str,
    note: str,
    *,
    force: bool = False,
) -> str:
    nc = await connect_once(connection, Client)
    try:
        js = nc.jetstream()
        paused = await require_registered(js, tenant_id, task_id)
        now = datetime.now(UTC)
        if action == "trigger":
            published = await publish_operator_due(
                js,
                tenant_id,
                task_id,
                execution_id=new_execution_id(),
                trigger="manual",
                force=force,
                actor=await operator_actor(nc),
            )
            message = (
                f"triggered {tenant_id}/{task_id}: execution {published.due.execution_id}"
                + published.forced_note()
            )
            if paused:
                message += " (the task is paused; a manual trigger runs anyway)"
            return message
        actor = await operator_actor(nc)
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
