"""``dvp-scheduler up``: everything in one command, with an embedded nats-server.

The ticker, the executor and the projector run as separate processes that talk only through
NATS, as they do in production; this command starts them, shows the events as they happen, and
stops everything in order on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nats.aio.client import Client
from nats.aio.msg import Msg

from contracts import ALL_EVENTS, EventDecodeError, TaskStarted
from contracts.describe import describe_event
from contracts.inbound import read_event
from dvp_scheduler.cli._common import (
    add_connection_arguments,
    add_plugin_arguments,
    connect_once,
    connection_from_arguments,
    port_number,
)
from dvp_scheduler.cli._settings import add_setting
from dvp_scheduler.dashboard.settings import DEFAULT_DASHBOARD_PORT
from dvp_scheduler.errors import NatsServerError
from dvp_scheduler.natsserver import BinaryNatsServer
from executor import ExecutorSettings
from natsio import NatsConnection
from natsio.provision import prepare_stream

_STOP_ORDER: Final = ("dashboard", "ticker", "executor", "projector")
_SERVICE_STOP_SECONDS: Final = 40.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "up",
        help="run the whole scheduler (embedded nats-server unless --nats-url is given)",
        description="Start an embedded nats-server (unless --nats-url is given), create the "
        "stream, run a ticker, an executor and a projector as separate processes, and print "
        "the task events as they happen. Ctrl-C stops everything.",
    )
    add_connection_arguments(parser)
    add_plugin_arguments(parser)
    add_setting(parser, ExecutorSettings, "isolation", "--isolation", metavar="{process,inline}")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".dvp"),
        help="where the embedded broker and the projector keep their files (default .dvp/)",
    )
    parser.add_argument(
        "--port", type=port_number, default=4222, help="embedded broker port (4222)"
    )
    parser.add_argument(
        "--service-log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level of the services (WARNING; the events are shown anyway)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the events")
    parser.add_argument(
        "--dashboard-port",
        type=port_number,
        metavar="PORT",
        default=os.environ.get("DVP_DASHBOARD_PORT") or DEFAULT_DASHBOARD_PORT,
        help="the dashboard's port on 127.0.0.1 (DVP_DASHBOARD_PORT; default "
        f"{DEFAULT_DASHBOARD_PORT}); its token comes from DVP_DASHBOARD_TOKEN",
    )
    parser.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    parser.add_argument(
        "--metrics-port",
        type=port_number,
        metavar="PORT",
        default=os.environ.get("DVP_METRICS_PORT") or None,
        help="serve Prometheus metrics: the projector's on PORT, the ticker's on PORT+1, the "
        "executor's on PORT+2 (DVP_METRICS_PORT; default: none)",
    )
    parser.set_defaults(handler=_run)


@dataclass
class _Service:
    name: str
    process: asyncio.subprocess.Process


def _run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    server: BinaryNatsServer | None = None
    if args.nats_url is None:
        store = data_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        # Its own session: Ctrl-C stops the services first, then the broker (see _stop).
        server = BinaryNatsServer(
            port=args.port,
            store_dir=store,
            log_file=data_dir / "nats-server.log",
            own_session=True,
        )
        try:
            server.start()
        except NatsServerError as error:
            raise NatsServerError(
                f"{error}\nIs another server on port {args.port}? Use --port N, or --nats-url "
                "URL to use a running NATS server."
            ) from None
        args.nats_url = server.url
        print(f"nats-server    {server.url}  (JetStream store {store}, pid {server.pid})")
    try:
        connection = connection_from_arguments(args, name="dvp-scheduler-up")
        return asyncio.run(_up(args, connection, data_dir))
    finally:
        if server is not None:
            server.stop()
            print("nats-server    stopped")


async def _up(args: argparse.Namespace, connection: NatsConnection, data_dir: Path) -> int:
    nc = await connect_once(connection, Client)
    services: list[_Service] = []
    try:
        for line in await prepare_stream(nc.jetstream(), tenants=args.tenants or ("default",)):
            print(f"stream         {line}")
        environment = _service_environment(connection)
        common = [sys.executable, "-m", "dvp_scheduler", "--log-level", args.service_log_level]
        executor = [*common, "executor"]
        for plugin in args.plugins or ():
            executor += ["--plugin", plugin]
        if args.use_entry_points is False:
            executor.append("--no-entry-points")
        for tenant in args.tenants or ():
            executor += ["--tenant", tenant]
        executor += ["--isolation", args.isolation]
        projector = [*common, "projector", "--checkpoint-file", str(data_dir / "projector.ckpt")]
        for number, (name, command) in enumerate(
            (("projector", projector), ("ticker", [*common, "ticker"]), ("executor", executor))
        ):
            if args.metrics_port is not None:
                command = [*command, "--metrics-port", str(args.metrics_port + number)]
            # A session of its own: Ctrl-C reaches this process only, which stops them in order.
            process = await asyncio.create_subprocess_exec(
                *command, env=environment, start_new_session=True
            )
            services.append(_Service(name, process))
            metrics = (
                f"  metrics on port {args.metrics_port + number}"
                if args.metrics_port is not None
                else ""
            )
            print(f"{name:<14} pid {process.pid}{metrics}")
        if not args.no_dashboard:
            dashboard = [*common, "dashboard", "--port", str(args.dashboard_port)]
            process = await asyncio.create_subprocess_exec(
                *dashboard, env=environment, start_new_session=True
            )
            services.append(_Service("dashboard", process))
            print(f"{'dashboard':<14} pid {process.pid}  http://127.0.0.1:{args.dashboard_port}/")
        browse = (
            ""
            if args.no_dashboard
            else f"open the dashboard at http://127.0.0.1:{args.dashboard_port}/ or "
        )
        print(
            f"\nevents follow; {browse}in another terminal try: dvp-scheduler tasks | "
            "dvp-scheduler history TASK_ID | dvp-scheduler trigger TASK_ID | "
            "dvp-scheduler status\n"
            "press Ctrl-C to stop\n",
            flush=True,
        )
        if not args.quiet:
            await nc.subscribe(ALL_EVENTS, cb=_print_event)
        return await _wait(services)
    finally:
        await _stop(services)
        await nc.close()


def _service_environment(connection: NatsConnection) -> dict[str, str]:
    """The services get the connection the same way any deployment gives it: DVP_NATS_*."""
    environment = dict(os.environ)
    environment.pop("DVP_METRICS_PORT", None)  # one port each: up passes --metrics-port itself
    for field, value in connection.model_dump(exclude={"name"}).items():
        if value is None:
            continue
        secret = getattr(value, "get_secret_value", None)
        environment[f"DVP_NATS_{field.upper()}"] = str(secret() if secret else value)
    return environment


async def _wait(services: list[_Service]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        while not stop.is_set():
            for service in services:
                code = service.process.returncode
                if code is not None:
                    print(f"\n{service.name} exited with code {code}; stopping", file=sys.stderr)
                    return 1
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        print("\nstopping...", flush=True)
        return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _stop(services: list[_Service]) -> None:
    """Stop the ticker first (no new work), then the executor (finishes in flight), then the
    projector; kill whatever outlives its grace period."""
    by_name = {s.name: s for s in services}
    for name in _STOP_ORDER:
        service = by_name.get(name)
        if service is None or service.process.returncode is not None:
            continue
        service.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(service.process.wait(), _SERVICE_STOP_SECONDS)
        except TimeoutError:
            service.process.kill()
            await service.process.wait()
        print(f"{name:<14} stopped (code {service.process.returncode})", flush=True)


async def _print_event(msg: Msg) -> None:
    try:
        event = read_event(msg.subject, msg.data, msg.headers)
    except EventDecodeError:
        return
    if not isinstance(event, TaskStarted):  # the outcome follows at once: one line is enough
        when = event.occurred_at.strftime("%H:%M:%S")
        print(f"{when}  {describe_event(event)}", flush=True)
