"""``dvp-scheduler ticker``: publish ``TaskDue`` at every fire instant."""

from __future__ import annotations

import argparse
import asyncio
import gc

from dvp_scheduler.cli._common import (
    add_connection_arguments,
    add_metrics_arguments,
    connection_from_arguments,
    metrics_endpoint,
    serve,
)
from dvp_scheduler.cli._settings import add_setting, settings_from_arguments
from dvp_scheduler.metrics import ticker_metrics
from ticker import Ticker, TickerSettings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "ticker",
        help="run a ticker (any number may run at once)",
        description="Follow task definitions in the stream and publish TaskDue at each fire "
        "instant, and each retry's next attempt at its retry_at, until SIGINT or SIGTERM. "
        "Tickers run active-active: start as many as you like.",
    )
    add_connection_arguments(parser)
    add_setting(parser, TickerSettings, "grace_seconds", "--grace", metavar="SECONDS")
    add_metrics_arguments(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    connection = connection_from_arguments(args, name="dvp-scheduler-ticker")
    # Start-up builds state for every task; freezing it keeps the garbage collector from
    # rescanning 100,000 long-lived objects in the middle of a burst of fires.
    ticker = Ticker(
        settings_from_arguments(
            TickerSettings, args, {"grace_seconds": "--grace"}, connection=connection
        )
    )
    metrics = metrics_endpoint(args, lambda: ticker_metrics(ticker))
    asyncio.run(serve(ticker, on_ready=gc.freeze, metrics=metrics))
    return 0
