"""``dvp-scheduler init``: create or update the stream and the executors' consumer."""

from __future__ import annotations

import argparse
import asyncio

from nats.aio.client import Client

from contracts import STREAM_NAME
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    connect_once,
    connection_from_arguments,
)
from natsio import NatsConnection
from natsio.provision import prepare_stream


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "init",
        help="create or update the stream and the executors' consumer (idempotent)",
        description=f"Create the {STREAM_NAME} stream and the shared executor consumer, or "
        "update them to these settings. Services create what is missing with one replica; run "
        "this first on a cluster to get three.",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "--replicas", type=int, default=1, choices=[1, 3, 5], help="stream replicas (1)"
    )
    parser.add_argument(
        "--max-age-days",
        type=float,
        default=0,
        help="drop events older than this many days (0, the default, keeps every event)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    connection = connection_from_arguments(args, name="dvp-scheduler-init")
    for line in asyncio.run(_init(connection, args.replicas, args.max_age_days)):
        print(line)
    return 0


async def _init(connection: NatsConnection, replicas: int, max_age_days: float) -> list[str]:
    nc = await connect_once(connection, Client)
    try:
        return await prepare_stream(
            nc.jetstream(), replicas=replicas, max_age_seconds=max_age_days * 86400
        )
    finally:
        await nc.close()
