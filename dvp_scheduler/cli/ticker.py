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


GC_YOUNG_THRESHOLD = 100_000
"""Allocations between two collections of the youngest generation (Python's default: 700)."""


def _tune_garbage_collection() -> None:
    """Start-up built state for every task: freezing it keeps the collector from rescanning
    100,000 long-lived objects in the middle of a burst. Each fire allocates a few dozen
    short-lived objects; at Python's default threshold a burst of 10,000 fires a second spent
    a sixth of the ticker's time collecting (bench/burst.py, docs/design.md 7.14)."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)


def _run(args: argparse.Namespace) -> int:
    connection = connection_from_arguments(args, name="dvp-scheduler-ticker")
    ticker = Ticker(
        settings_from_arguments(
            TickerSettings, args, {"grace_seconds": "--grace"}, connection=connection
        )
    )
    metrics = metrics_endpoint(args, lambda: ticker_metrics(ticker))
    asyncio.run(serve(ticker, on_ready=_tune_garbage_collection, metrics=metrics))
    return 0
