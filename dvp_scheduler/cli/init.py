"""``dvp-scheduler init``: create or update the stream and the executors' consumer."""

from __future__ import annotations

import argparse
import asyncio

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import STREAM_NAME
from contracts.stream import EXECUTOR_DURABLE
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    connect_once,
    connection_from_arguments,
)
from natsio import NatsConnection, executor_consumer_config, stream_config


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


async def prepare_stream(
    js: JetStreamContext, *, replicas: int = 1, max_age_seconds: float = 0.0
) -> list[str]:
    """Create or update the stream and the executor consumer; say what was done."""
    config = stream_config(replicas=replicas, max_age_seconds=max_age_seconds)
    done: list[str] = []
    try:
        current = await js.stream_info(STREAM_NAME)
    except NotFoundError:
        await js.add_stream(config)
        done.append(f"created stream {STREAM_NAME} ({replicas} replica(s))")
    else:
        if (current.config.num_replicas, current.config.max_age) != (replicas, max_age_seconds):
            await js.update_stream(config)
            done.append(f"updated stream {STREAM_NAME} ({replicas} replica(s))")
        else:
            done.append(f"stream {STREAM_NAME} is up to date")
    try:
        await js.consumer_info(STREAM_NAME, EXECUTOR_DURABLE)
        done.append(f"consumer {EXECUTOR_DURABLE} exists")
    except NotFoundError:
        await js.add_consumer(STREAM_NAME, executor_consumer_config())
        done.append(f"created consumer {EXECUTOR_DURABLE}")
    return done
