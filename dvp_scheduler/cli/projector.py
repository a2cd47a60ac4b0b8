"""``dvp-scheduler projector``: the read-model service."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from dvp_scheduler.cli._common import (
    add_connection_arguments,
    add_metrics_arguments,
    connection_from_arguments,
    metrics_endpoint,
    serve,
)
from dvp_scheduler.metrics import projector_metrics
from projector import DEFAULT_HISTORY_LIMIT, Projector, ProjectorSettings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "projector",
        help="fold the stream into task state and history; answer queries; mirror to KV",
        description="Follow the event stream from the last checkpoint, keep task state and "
        "execution history, answer 'tasks' and 'history' queries over NATS (micro service "
        "dvp-projector) and mirror each task's state into the dvp-task-state KV bucket.",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "--checkpoint-file",
        type=Path,
        metavar="FILE",
        help="keep the checkpoint in this file (default: the JetStream object store "
        "bucket dvp-projector, so any projector can resume it)",
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between checkpoints (default 10)",
    )
    parser.add_argument(
        "--history-limit",
        type=int,
        default=DEFAULT_HISTORY_LIMIT,
        metavar="N",
        help=f"executions kept per task (default {DEFAULT_HISTORY_LIMIT})",
    )
    parser.add_argument(
        "--no-mirror", action="store_true", help="do not write task state to the KV bucket"
    )
    add_metrics_arguments(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    settings = ProjectorSettings(
        connection=connection_from_arguments(args, name="dvp-projector"),
        checkpoint_file=args.checkpoint_file,
        checkpoint_interval=args.checkpoint_interval,
        history_limit=args.history_limit,
        mirror=not args.no_mirror,
    )
    projector = Projector(settings)
    metrics = metrics_endpoint(args, lambda: projector_metrics(projector))
    asyncio.run(serve(projector, metrics=metrics))
    return 0
