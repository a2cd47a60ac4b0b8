"""``dvp-scheduler executor``: run plugins' tasks as one member of the executor fleet."""

from __future__ import annotations

import argparse
import asyncio
import signal

from contracts.stream import EXECUTOR_ACK_WAIT_SECONDS
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    add_metrics_arguments,
    add_plugin_arguments,
    connection_from_arguments,
    importable_from_current_directory,
    metrics_endpoint,
    serve,
)
from dvp_scheduler.metrics import executor_metrics
from executor import Executor, ExecutorSettings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "executor",
        help="run scheduled tasks of the loaded plugins (any number of executors share the work)",
        description="Load plugins (installed entry points and --plugin), publish their task "
        "definitions, and run TaskDue attempts from the shared consumer. SIGHUP loads the "
        "plugins again; SIGTERM/SIGINT stop after in-flight attempts finish (within --grace).",
    )
    add_connection_arguments(parser)
    add_plugin_arguments(parser)
    parser.add_argument(
        "--concurrency", type=int, default=32, metavar="N", help="attempts in flight (32)"
    )
    parser.add_argument(
        "--ack-wait",
        type=float,
        default=EXECUTOR_ACK_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"ack wait of the shared consumer if this executor creates it "
        f"({EXECUTOR_ACK_WAIT_SECONDS:g})",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on shutdown, how long in-flight attempts may finish (30)",
    )
    parser.add_argument("--worker", metavar="NAME", help="worker name in events (host:pid)")
    add_metrics_arguments(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    importable_from_current_directory()
    options: dict[str, object] = {
        "connection": connection_from_arguments(args, name="dvp-executor"),
        "plugins": tuple(args.plugins),
        "use_entry_points": not args.no_entry_points,
        "concurrency": args.concurrency,
        "ack_wait_seconds": args.ack_wait,
        "grace_seconds": args.grace,
    }
    if args.tenants:
        options["tenants"] = tuple(args.tenants)
    if args.worker:
        options["worker"] = args.worker
    settings = ExecutorSettings.model_validate(options)
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
