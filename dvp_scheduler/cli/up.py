"""``dvp-scheduler up``: everything in one command, with an embedded nats-server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

import nats

from contracts import STREAM_NAME, NatsConnection, stream_config
from dvp_scheduler.cli._common import add_connection_arguments, connection_from_arguments
from dvp_scheduler.natsserver import BinaryNatsServer

log = logging.getLogger("dvp_scheduler.up")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "up",
        help="run the whole scheduler (embedded nats-server unless --nats-url is given)",
        description="Start an embedded nats-server (unless --nats-url is given), create the "
        "stream, and run a ticker, an executor and a projector until Ctrl-C.",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".dvp"),
        help="where the embedded broker keeps its store (default .dvp/)",
    )
    parser.add_argument("--port", type=int, default=4222, help="embedded broker port (4222)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    server: BinaryNatsServer | None = None
    if args.nats_url is None:
        store = args.data_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        server = BinaryNatsServer(port=args.port, store_dir=store.resolve())
        server.start()
        args.nats_url = server.url
        print(f"embedded nats-server: {server.url} (store {store})", flush=True)
    try:
        connection = connection_from_arguments(args, name="dvp-scheduler-up")
        asyncio.run(_up(connection))
    finally:
        if server is not None:
            server.stop()
            print("embedded nats-server stopped", flush=True)
    return 0


async def _up(connection: NatsConnection) -> None:
    nc = await nats.connect(**connection.connect_kwargs())
    try:
        await nc.jetstream().add_stream(stream_config())
        print(f"stream {STREAM_NAME} ready on {connection.url}", flush=True)
        print("services are not built yet; press Ctrl-C to stop", flush=True)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopped.set)
        await stopped.wait()
    finally:
        await nc.close()
