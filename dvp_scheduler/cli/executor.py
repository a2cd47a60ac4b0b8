"""``dvp-scheduler executor``: run plugins' tasks as one member of the executor fleet."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Final

from dvp_scheduler.cli._common import (
    add_connection_arguments,
    add_metrics_arguments,
    add_plugin_arguments,
    connection_from_arguments,
    importable_from_current_directory,
    metrics_endpoint,
    serve,
)
from dvp_scheduler.cli._settings import add_setting, settings_from_arguments
from dvp_scheduler.metrics import executor_metrics
from executor import Executor, ExecutorSettings

_FLAGS: Final = {
    "concurrency": "--concurrency",
    "ack_wait_seconds": "--ack-wait",
    "grace_seconds": "--grace",
    "worker": "--worker",
    "plugins": "--plugin",
    "use_entry_points": "--no-entry-points",
    "tenants": "--tenant",
    "isolation": "--isolation",
}
"""The settings the command line sets, by field, with their flags."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "executor",
        help="run scheduled tasks of the loaded plugins (any number of executors share the work)",
        description="Load plugins (installed entry points and --plugin), publish their task "
        "definitions, and run TaskDue attempts from the shared consumer, each in a worker "
        "process that is killed when it overruns its timeout (--isolation process) or in the "
        "executor's own event loop (--isolation inline). SIGHUP loads the plugins again; "
        "SIGTERM/SIGINT stop after in-flight attempts finish (within --grace).",
    )
    add_connection_arguments(parser)
    add_plugin_arguments(parser)
    add_setting(parser, ExecutorSettings, "concurrency", "--concurrency", metavar="N")
    add_setting(parser, ExecutorSettings, "ack_wait_seconds", "--ack-wait", metavar="SECONDS")
    add_setting(parser, ExecutorSettings, "grace_seconds", "--grace", metavar="SECONDS")
    add_setting(parser, ExecutorSettings, "isolation", "--isolation", metavar="{process,inline}")
    add_setting(
        parser, ExecutorSettings, "worker", "--worker", metavar="NAME", shown_default="host:pid"
    )
    add_metrics_arguments(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    importable_from_current_directory()
    if args.plugins is not None:
        args.plugins = tuple(args.plugins)
    if args.tenants is not None:
        args.tenants = tuple(args.tenants)
    settings = settings_from_arguments(
        ExecutorSettings,
        args,
        _FLAGS,
        connection=connection_from_arguments(args, name="dvp-executor"),
    )
    asyncio.run(_serve(settings, args))
    return 0


async def _serve(settings: ExecutorSettings, args: argparse.Namespace) -> None:
    executor = Executor(settings)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, executor.request_reload)
    try:
        await serve(executor, metrics=metrics_endpoint(args, lambda: executor_metrics(executor)))
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
