"""The ``dvp-scheduler`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from contracts import SchedulerError
from dvp_scheduler import __version__
from dvp_scheduler.cli import (
    backfill,
    cancel,
    dashboard,
    executor,
    init,
    operate,
    permissions,
    projector,
    query,
    rerun,
    schema,
    status,
    ticker,
    up,
)
from dvp_scheduler.cli._common import REFUSALS, add_logging_arguments, configure_logging
from natsio import tracing

# Each module adds its subcommands with register(); one line here per module.
_COMMAND_MODULES = [
    up,
    init,
    ticker,
    executor,
    projector,
    query,
    status,
    operate,
    rerun,
    cancel,
    backfill,
    permissions,
    schema,
    dashboard,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="dvp-scheduler",
        description="The scheduled-task engine of DVP CMS, over NATS JetStream.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_logging_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMAND_MODULES:
        module.register(commands)
    return parser


_TRACED_SERVICES = frozenset({"ticker", "executor"})
"""Commands whose process is named after them in traces (``dvp-scheduler-ticker``); the others
are ``dvp-scheduler``."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    REFUSALS.clear()
    traced = False
    try:
        # Decided once, before any service is built: tracing is on only when OTEL_* asks.
        service = f"dvp-scheduler-{args.command}" if args.command in _TRACED_SERVICES else ""
        traced = tracing.configure(service or "dvp-scheduler")
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except SchedulerError as error:
        print(f"dvp-scheduler: error: {error}", file=sys.stderr)
        return 2
    except TimeoutError:
        if not REFUSALS:
            raise
        role = "admin" if args.command == "init" else "operator"
        print(f"dvp-scheduler: error: {REFUSALS[-1].explain(role)}", file=sys.stderr)
        return 2
    finally:
        if traced:
            tracing.shutdown()  # the last spans are exported before the process ends
