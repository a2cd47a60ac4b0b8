"""``dvp-scheduler projector``: the read-model service."""

from __future__ import annotations

import argparse
import asyncio
from typing import Final

from dvp_scheduler.cli._common import (
    add_connection_arguments,
    add_metrics_arguments,
    connection_from_arguments,
    metrics_endpoint,
    serve,
)
from dvp_scheduler.cli._settings import add_setting, settings_from_arguments
from dvp_scheduler.metrics import projector_metrics
from projector import Projector, ProjectorSettings

_FLAGS: Final = {
    "checkpoint_file": "--checkpoint-file",
    "checkpoint_interval": "--checkpoint-interval",
    "history_limit": "--history-limit",
    "mirror": "--no-mirror",
    "grace_seconds": "--grace",
    "task_metrics_limit": "--task-metrics-limit",
}
"""The settings the command line sets, by field, with their flags."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "projector",
        help="fold the stream into task state and history; answer queries; mirror to KV",
        description="Follow the event stream from the last checkpoint, keep task state and "
        "execution history, answer 'tasks' and 'history' queries over NATS (micro service "
        "dvp-projector) and mirror each task's state into the dvp-task-state KV bucket.",
    )
    add_connection_arguments(parser)
    add_setting(
        parser,
        ProjectorSettings,
        "checkpoint_file",
        "--checkpoint-file",
        metavar="FILE",
        shown_default="the JetStream object store bucket dvp-projector, which any projector "
        "can resume",
    )
    add_setting(
        parser, ProjectorSettings, "checkpoint_interval", "--checkpoint-interval", metavar="SECONDS"
    )
    add_setting(parser, ProjectorSettings, "history_limit", "--history-limit", metavar="N")
    add_setting(parser, ProjectorSettings, "mirror", "--no-mirror")
    add_setting(parser, ProjectorSettings, "grace_seconds", "--grace", metavar="SECONDS")
    add_setting(
        parser, ProjectorSettings, "task_metrics_limit", "--task-metrics-limit", metavar="N"
    )
    add_metrics_arguments(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    settings = settings_from_arguments(
        ProjectorSettings,
        args,
        _FLAGS,
        connection=connection_from_arguments(args, name="dvp-projector"),
    )
    projector = Projector(settings)
    metrics = metrics_endpoint(args, lambda: projector_metrics(projector))
    asyncio.run(serve(projector, metrics=metrics))
    return 0
