"""A user's session: `dvp-scheduler up` with the example plugins, then the CLI against it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support import alive, free_port

pytestmark = pytest.mark.acceptance

T = TypeVar("T")
EXAMPLES = [
    "examples.cleanup:CleanupPlugin",
    "examples.hourly_sync:HourlySyncPlugin",
    "examples.fact_check:FactCheckPlugin",
]
SYNC = "hourly-sync.partner-records"
CLEANUP = "cleanup.temp-files"


def until(check: Callable[[], T | None], within: float, what: str) -> T:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {within}s")
        time.sleep(0.3)


class Scheduler:
    def __init__(
        self,
        tmp_path: Path,
        extra: Sequence[str] = (),
        environment: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.metrics_port = free_port()
        self.dashboard_port = free_port()
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.output = tmp_path / "up.out"
        plugins = [arg for plugin in EXAMPLES for arg in ("--plugin", plugin)]
        self.log = self.output.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dvp_scheduler",
                "up",
                "--port",
                str(self.port),
                "--data-dir",
                str(tmp_path / "data"),
                "--metrics-port",
                str(self.metrics_port),
                "--dashboard-port",
                str(self.dashboard_port),
                *plugins,
                *extra,
            ],
            env={**os.environ, **(environment or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def metrics(self, service: int) -> str:
        """The Prometheus text of the service on ``--metrics-port`` + ``service``."""
        url = f"http://127.0.0.1:{self.metrics_port + service}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def printed(self) -> str:
        return self.output.read_text()

    def pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"pid (\d+)", self.printed())]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dvp_scheduler", *args, "--nats-url", self.url],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def json(self, *args: str) -> Any:
        done = self.cli(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def stop(self) -> None:
        """Ctrl-C, then kill whatever it started that still runs, by pid."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for pid in self.pids():  # never leave a service behind, whatever happened
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.log.close()

    def task(self, task_id: str) -> dict[str, Any] | None:
        for row in self.json("tasks"):
            if row["task_id"] == task_id:
                return dict(row)
        return None


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[Scheduler]:
    running = Scheduler(tmp_path)
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.timeout(150)
def test_a_users_session_with_up(scheduler: Scheduler) -> None:
    until(lambda: "events follow" in scheduler.printed(), 30, "up ready")
    assert len(scheduler.pids()) == 5  # nats-server, projector, ticker, executor, dashboard
    dashboard_line = f"dashboard      pid {scheduler.pids()[-1]}  {scheduler.dashboard}/"
    assert dashboard_line in scheduler.printed()

    # Successes, a retry and a final failure show in tasks and history.
    sync = until(
        lambda: (
            (t := scheduler.task(SYNC))
            and t["succeeded"] >= 1
            and t["retried"] >= 1
            and t["failed"] >= 1
            and t
        ),
        60,
        "the sync task succeeding, retrying and failing",
    )
    assert sync["plugin"] == "hourly-sync"
    history = scheduler.json("history", SYNC)
    failed = [e for e in history if e["outcome"] == "failed"]
    retried = [e for e in history if len(e["attempts"]) > 1]
    assert failed[0]["attempts"][-1]["failure_reason"] == "aborted"
    assert (
        failed[0]["attempts"][-1]["decision"]["reason"] == "Credentials refused - renew the API key"
    )
    assert retried[0]["attempts"][0]["outcome"] == "retry_scheduled"
    assert retried[0]["attempts"][0]["decision"]["delay_seconds"] == 3

    # Each service serves its metrics on a port of its own.
    projector, ticker, executor = (scheduler.metrics(n) for n in range(3))
    assert re.search(r"^dvp_projector_tasks [1-9]", projector, re.M)
    assert re.search(r"^dvp_ticker_events_published_total\{event=\"due\"\} [1-9]", ticker, re.M)
    assert re.search(
        r'^dvp_executor_attempts_ended_total\{outcome="failed"\} [1-9]', executor, re.M
    )

    # A manual trigger runs the minutely digest now.
    done = scheduler.cli("trigger", "fact-check.digest", "--force")  # the minutely run may be open
    assert done.returncode == 0, done.stderr
    until(
        lambda: any(
            e["trigger"] == "manual" and e["outcome"] == "succeeded"
            for e in scheduler.json("history", "fact-check.digest")
        ),
        30,
        "the triggered digest succeeding",
    )

    # Pause stops the cleanup firing while other tasks go on; resume starts it again.
    assert scheduler.cli("pause", CLEANUP, "--note", "disk maintenance").returncode == 0
    paused = until(
        lambda: (t := scheduler.task(CLEANUP)) and t["status"] == "paused" and t,
        30,
        "cleanup paused",
    )
    assert paused["note"] == "disk maintenance"
    count = paused["succeeded"]
    reverify = scheduler.task("fact-check.reverify-claims")
    assert reverify is not None
    until(  # two more re-verifications (every 6 s) span a cleanup interval (5 s) and more
        lambda: (
            (t := scheduler.task("fact-check.reverify-claims"))
            and t["succeeded"] >= reverify["succeeded"] + 2
        ),
        40,
        "time passing while cleanup is paused",
    )
    assert scheduler.task(CLEANUP)["succeeded"] == count  # type: ignore[index]
    assert scheduler.cli("resume", CLEANUP).returncode == 0
    until(lambda: (t := scheduler.task(CLEANUP)) and t["succeeded"] > count, 30, "cleanup resumed")

    # Ctrl-C stops everything, and nothing is left behind.
    pids = scheduler.pids()
    scheduler.process.send_signal(signal.SIGINT)
    assert scheduler.process.wait(60) == 0
    assert "nats-server    stopped" in scheduler.printed()
    assert [pid for pid in pids if alive(pid)] == []
