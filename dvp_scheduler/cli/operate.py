"""Operator commands that write events: ``trigger``, ``pause`` and ``resume``.

``trigger`` refuses while the task's newest execution is open (due, running, or waiting for a
retry), so that an operator does not start a second run by accident; ``--force`` starts one
beside it. ``trigger --at`` schedules a one-off run for later instead.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

from nats.aio.client import Client

from contracts import validate_task_id, validate_tenant_id
from dvp_scheduler import operations
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    connect_once,
    connection_from_arguments,
    instant_argument,
)
from natsio import NatsConnection


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trigger = commands.add_parser(
        "trigger",
        help="run a task now (publishes TaskDue with trigger 'manual')",
        description="Publish a TaskDue with trigger 'manual' for a registered task; an "
        "executor runs it at once, with the task's usual timeout and retries. Refused while "
        "the task's newest execution is open (waiting for an executor, running, or waiting "
        "for a retry); --force starts a separate execution beside it. With --at, schedule a "
        "one-off run at that instant instead: a ticker publishes its TaskDue (trigger 'once') "
        "then, beside any open execution and even if the task is paused; 'next' lists it and "
        "'cancel --scheduled RUN_ID' removes it before then.",
    )
    trigger.add_argument(
        "--force",
        action="store_true",
        help="start a separate execution even if the newest one is still open",
    )
    trigger.add_argument(
        "--at",
        type=instant_argument,
        metavar="INSTANT",
        help="run once at this instant (RFC 3339, in the future) instead of now",
    )
    trigger.add_argument("--note", default="", help="with --at: why, for the audit trail")
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
            at=getattr(args, "at", None),
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
    at: datetime | None = None,
) -> str:
    nc = await connect_once(connection, Client)
    try:
        actor = await operations.operator_actor(nc)
        if action == "trigger" and at is not None:
            return await operations.schedule_run(
                nc, tenant_id, task_id, at=at, actor=actor, note=note
            )
        if action == "trigger":
            return await operations.trigger(nc, tenant_id, task_id, actor=actor, force=force)
        if action == "pause":
            return await operations.pause(nc, tenant_id, task_id, note=note, actor=actor)
        return await operations.resume(nc, tenant_id, task_id, note=note, actor=actor)
    finally:
        await nc.close()
