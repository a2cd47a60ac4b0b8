"""A nats-server cluster on loopback: several `BinaryNatsServer` nodes joined by routes.

Each node keeps its client port, route port and store directory across `kill_node` and
`restart_node`, so a node comes back as the same member with the data it had, as a crashed
machine restarting would. Used by the chaos suite and by tests of replicated streams.
"""

from __future__ import annotations

import signal
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from dvp_scheduler.errors import NatsServerError
from dvp_scheduler.natsserver.binary import BinaryNatsServer

CLUSTER_NAME = "dvp"


def free_port() -> int:
    """A loopback port that was free a moment ago (for a server that must keep its port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class _Node:
    name: str
    client_port: int
    route_port: int
    store_dir: Path
    log_file: Path


class BinaryNatsCluster:
    """``size`` nats-server nodes with JetStream, clustered over loopback routes.

    `url` lists every node (clients fail over between them). Nodes are named ``n1``, ``n2``...
    and indexed from 0. Logs and stores live in a temporary directory removed on `stop`
    (``keep_dir`` keeps them for a post-mortem).
    """

    def __init__(self, size: int = 3, *, keep_dir: Path | None = None) -> None:
        if size < 1:
            raise ValueError(f"a cluster needs at least one node, not {size}")
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        self._dir = keep_dir
        self._size = size
        self._nodes: list[_Node] = []
        self._servers: list[BinaryNatsServer | None] = []

    @property
    def size(self) -> int:
        """How many nodes the cluster has (running or not)."""
        return self._size

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (as ``--nats-url`` takes them)."""
        return ",".join(self.urls)

    @property
    def urls(self) -> list[str]:
        """Every node's client URL (as ``nats.connect(servers=...)`` takes them)."""
        return [self.node_url(i) for i in range(len(self._nodes))]

    @property
    def directory(self) -> Path:
        """Where the nodes' stores and logs are."""
        if self._dir is None:
            raise NatsServerError("the cluster is not running: call start() first")
        return self._dir

    def node_url(self, index: int) -> str:
        """The client URL of node ``index`` (it keeps it across restarts)."""
        return f"nats://127.0.0.1:{self._nodes[index].client_port}"

    def node_pid(self, index: int) -> int | None:
        """The process id of node ``index`` while it runs."""
        server = self._servers[index]
        return server.pid if server is not None else None

    def running(self) -> list[int]:
        """The indexes of the nodes that run now."""
        return [i for i, server in enumerate(self._servers) if server is not None]

    def start(self) -> Self:
        """Start every node; returns once each accepts clients (JetStream's meta leader is
        elected shortly after, which clients wait for)."""
        if self._nodes:
            return self
        if self._dir is None:
            self._temp = tempfile.TemporaryDirectory(prefix="dvp-cluster-")
            self._dir = Path(self._temp.name)
        for i in range(self._size):
            name = f"n{i + 1}"
            self._nodes.append(
                _Node(
                    name=name,
                    client_port=free_port(),
                    route_port=free_port(),
                    store_dir=self._dir / name / "jetstream",
                    log_file=self._dir / f"{name}.log",
                )
            )
        self._servers = [None] * self._size
        try:
            for i in range(self._size):
                self.restart_node(i)
        except BaseException:
            self.stop()
            raise
        return self

    def kill_node(self, index: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop node ``index`` with ``sig`` (SIGKILL: as a crash) and wait for it to exit."""
        server = self._servers[index]
        if server is None:
            return
        self._servers[index] = None
        server.stop(sig)

    def restart_node(self, index: int) -> None:
        """Start node ``index`` again on its ports, with its store."""
        if self._servers[index] is not None:
            return
        node = self._nodes[index]
        node.store_dir.mkdir(parents=True, exist_ok=True)
        routes = ",".join(
            f"nats://127.0.0.1:{other.route_port}" for other in self._nodes if other is not node
        )
        server = BinaryNatsServer(
            port=node.client_port,
            store_dir=node.store_dir,
            log_file=node.log_file,
            server_name=node.name,
            extra_args=[
                "--cluster_name",
                CLUSTER_NAME,
                "--cluster",
                f"nats://127.0.0.1:{node.route_port}",
                "--routes",
                routes,
            ],
        )
        server.start()
        self._servers[index] = server

    def stop(self) -> None:
        """Stop every node (by pid) and remove the temporary directory. Safe to call twice."""
        for i in range(len(self._servers)):
            self.kill_node(i, signal.SIGTERM)
        self._nodes = []
        self._servers = []
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
