"""What every subcommand shares: connection options, logging, running a service until a signal."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import nats
from nats.aio.client import Client
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from dvp_scheduler.cli._settings import add_setting, environment_variable
from dvp_scheduler.errors import NatsUnreachableError
from dvp_scheduler.metrics import MetricsEndpoint, MetricsReader, MetricsSettings
from natsio import DEFAULT_NATS_URL, NatsConnection
from natsio.errors import PermissionRefusal, permission_refusal

_CONNECT_SECONDS = 10.0


class ConnectionEnvironment(BaseSettings):
    """Connection defaults from ``DVP_NATS_*`` environment variables; flags override them."""

    model_config = SettingsConfigDict(env_prefix="DVP_NATS_", extra="ignore")

    url: str = DEFAULT_NATS_URL
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    creds_file: Path | None = None
    inbox_prefix: str | None = None
    nkeys_seed_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--nats-url`` and the NATS security options (defaults from ``DVP_NATS_*``)."""
    group = parser.add_argument_group("NATS connection (environment: DVP_NATS_<OPTION>)")
    group.add_argument(
        "--nats-url",
        metavar="URL",
        help=f"server URL(s), comma-separated (DVP_NATS_URL; default {DEFAULT_NATS_URL})",
    )
    group.add_argument("--nats-user", metavar="USER")
    group.add_argument("--nats-password", metavar="PASSWORD")
    group.add_argument("--nats-token", metavar="TOKEN")
    group.add_argument("--nats-creds-file", metavar="FILE", type=Path, help="JWT/nkey credentials")
    group.add_argument("--nats-nkeys-seed-file", metavar="FILE", type=Path)
    group.add_argument("--nats-tls-ca-file", metavar="FILE", type=Path)
    group.add_argument("--nats-tls-cert-file", metavar="FILE", type=Path)
    group.add_argument("--nats-tls-key-file", metavar="FILE", type=Path)
    group.add_argument(
        "--nats-inbox-prefix",
        metavar="PREFIX",
        help="where replies to this client go (default _INBOX); the permissions of a tenant's "
        "role name one ('dvp-scheduler permissions')",
    )


METRICS_ENVIRONMENT = tuple(
    environment_variable(MetricsSettings, field) for field in MetricsSettings.model_fields
)
"""Environment variables giving the defaults of ``--metrics-port`` and ``--metrics-host``."""


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {port}")
    return port


def instant_argument(text: str) -> datetime:
    """An RFC 3339 instant from the command line, in UTC (one without an offset is UTC)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an instant: use RFC 3339, e.g. 2026-11-24T03:00:00Z"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--metrics-port`` and ``--metrics-host``, derived from `MetricsSettings`."""
    group = parser.add_argument_group("metrics")
    add_setting(
        group,
        MetricsSettings,
        "port",
        "--metrics-port",
        metavar="PORT",
        convert=port_number,
        shown_default="none: not served",
        dest="metrics_port",
    )
    add_setting(
        group, MetricsSettings, "host", "--metrics-host", metavar="HOST", dest="metrics_host"
    )


def metrics_endpoint(args: argparse.Namespace, read: MetricsReader) -> MetricsEndpoint | None:
    """The endpoint ``--metrics-port`` asks for, not started yet; ``None`` when none is."""
    if args.metrics_port is None:
        return None
    return MetricsEndpoint(read, port=args.metrics_port, host=args.metrics_host)


def add_plugin_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--plugin``, ``--no-entry-points`` and ``--tenant`` (the executor's settings
    ``plugins``, ``use_entry_points`` and ``tenants``; unset, they come from the environment)."""
    parser.add_argument(
        "--plugin",
        dest="plugins",
        action="append",
        default=None,
        metavar="MODULE:ATTR",
        help="a plugin class or instance to load (repeatable); MODULE is imported from the "
        "current directory or the installed packages",
    )
    parser.add_argument(
        "--no-entry-points",
        dest="use_entry_points",
        action="store_false",
        default=None,
        help="load only --plugin plugins, not the installed 'dvp_cms.plugins' entry points "
        "(DVP_EXECUTOR_USE_ENTRY_POINTS=false)",
    )
    parser.add_argument(
        "--tenant",
        dest="tenants",
        action="append",
        default=None,
        metavar="ID",
        help="a tenant to run tasks for (repeatable; default: default; "
        'DVP_EXECUTOR_TENANTS=\'["a","b"]\')',
    )


def importable_from_current_directory() -> None:
    """Let ``--plugin module:attr`` find modules in the current directory, as ``python -m``
    does (the console script alone would not)."""
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)


def connection_from_arguments(args: argparse.Namespace, *, name: str) -> NatsConnection:
    """The connection settings: flags first, then ``DVP_NATS_*``, then defaults."""
    env = ConnectionEnvironment()
    fields: dict[str, Any] = env.model_dump()
    for field in fields:
        value = getattr(args, f"nats_{field}", None)
        if value is not None:
            fields[field] = value
    return NatsConnection(name=name, **fields)


C = TypeVar("C", bound=Client)

REFUSALS: list[PermissionRefusal] = []
"""What the server refused this command's connections (a refused request only times out, so
`main` says why with these)."""


async def connect_once(connection: NatsConnection, client_class: type[C]) -> C:
    """Connect for a command: one try, a few seconds, and an error that says what to do."""

    async def quiet(error: Exception) -> None:
        refusal = permission_refusal(error)
        if refusal is not None:
            REFUSALS.append(refusal)

    client = client_class()
    try:
        async with asyncio.timeout(_CONNECT_SECONDS):
            await client.connect(
                **connection.connect_kwargs(),
                allow_reconnect=False,
                # nats-py treats 0 as "no limit" on the first connect: one retry, then give up.
                max_reconnect_attempts=1,
                reconnect_time_wait=1,
                connect_timeout=3,
                error_cb=quiet,
            )
    except (nats.errors.Error, OSError, TimeoutError) as error:
        await client.close()
        raise NatsUnreachableError(
            f"cannot connect to NATS at {connection.url} ({error or type(error).__name__}): "
            "start it with 'dvp-scheduler up', or check --nats-url and the credentials"
        ) from None
    return client


@asynccontextmanager
async def connected(connection: NatsConnection, client_class: type[C]) -> AsyncIterator[C]:
    """A client connected for a command by `connect_once`, closed on the way out."""
    client = await connect_once(connection, client_class)
    try:
        yield client
    finally:
        await client.close()


class Service(AbstractAsyncContextManager["Service"], Protocol):
    """A long-running service: started by ``async with``, stopped by `stop`."""

    async def __aenter__(self) -> Self: ...

    def stop(self) -> None:
        """Ask the service to stop; the context exit waits for it."""

    async def wait_stopped(self) -> None:
        """Return once the service has stopped (on `stop`, or on a fatal error)."""


async def serve(
    service: Service,
    *,
    on_ready: Callable[[], object] | None = None,
    metrics: MetricsEndpoint | None = None,
) -> None:
    """Run ``service`` until SIGINT or SIGTERM, then stop it gracefully.

    ``on_ready`` runs once the service has started (e.g. a process-wide tuning step); the
    ``metrics`` endpoint, if any, listens from then until the service stops.
    """
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, service.stop)
    try:
        async with service:
            if metrics is not None:
                metrics.start()
                logging.getLogger("dvp_scheduler").info(
                    "metrics at http://%s:%d/metrics", metrics.host, metrics.port
                )
            try:
                if on_ready is not None:
                    on_ready()
                await service.wait_stopped()
            finally:
                if metrics is not None:
                    metrics.stop()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-level`` and ``--log-format``."""
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="least severe level logged (default INFO)",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text for people, json (one object per line) for log collectors",
    )


class _JsonFormatter(logging.Formatter):
    _STANDARD = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        body.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def configure_logging(level: str, fmt: str) -> None:
    """Send logs to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    logging.basicConfig(level=level, handlers=[handler], force=True)
