"""The chaos harness: a three-node nats-server cluster, the scheduler's services as processes,
faults at random, a drain, and everything read back for `tests.chaos.checks`.

A run (`ChaosRun.run`) goes:

1. start `BinaryNatsCluster(3)`, run ``dvp-scheduler init --replicas 3`` until the cluster has
   a JetStream leader and it succeeds;
2. start two tickers, three executors (``tests.plugins.chaos:ChaosPlugin``, workers e1 to e3)
   and a projector, each a process group of its own logging to its own file, and wait until
   every task is registered;
3. for ``fault_seconds``, follow a plan drawn from ``random.Random(seed)``: every few seconds a
   service gets SIGKILL and comes back a moment later; now and then a node gets SIGKILL and
   comes back a few seconds later (never two nodes down at once);
4. drain: wait until every execution begun before the faults stopped has ended, stop the
   tickers (SIGTERM), wait until every ``TaskDue`` has its outcome, stop the executors;
5. read the stream, ask the projector for its state and compare it with an in-process replay,
   stop the projector.

A service that exits without the harness killing it is recorded (with its log tail) and started
again. `ChaosRun.kill_everything` is the last resort of the test's fixture: whatever still
runs is killed by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from contracts import ALL_EVENTS, STREAM_NAME, EventDecodeError, TaskDue, TaskRegistered
from contracts.events import RetryScheduled, TaskFailed, TaskSucceeded
from contracts.inbound import read_event
from dvp_scheduler.natsserver import BinaryNatsCluster
from natsio import connect_for_reading
from projector.queries import ask_history, ask_status, ask_tasks
from projector.replay import replay
from projector.state import DEFAULT_HISTORY_LIMIT
from projector.views import history, list_tasks
from tests.chaos.checks import Record, Run, Verdict
from tests.plugins.chaos import task_ids

ROOT: Final = Path(__file__).resolve().parents[2]
PLUGIN: Final = "tests.plugins.chaos:ChaosPlugin"
WORKERS: Final = ("e1", "e2", "e3")

_LOG_LEVEL_LINE: Final = re.compile(r"^\d\d:\d\d:\d\d (WARNING|ERROR|CRITICAL)\b")
_TAIL_LINES: Final = 40


@dataclass(frozen=True)
class ChaosSettings:
    """One run's shape. Times in seconds."""

    seed: int
    fault_seconds: float
    tasks: int
    node_kills: int
    service_kill_every: tuple[float, float] = (4.0, 8.0)
    service_down: tuple[float, float] = (0.5, 2.5)
    node_down: tuple[float, float] = (3.0, 6.0)
    start_timeout: float = 60.0
    drain_timeout: float = 80.0
    """Executions begun under faults may wait for the executors' ack wait (30 s) to be
    redelivered, and then retry."""
    settle_timeout: float = 45.0


@dataclass(frozen=True)
class Fault:
    """One planned fault: at ``at`` seconds into the fault phase, kill ``target`` (a service
    name, or ``node<i>``) for ``down`` seconds."""

    at: float
    target: str
    down: float


def plan_faults(settings: ChaosSettings, services: list[str], nodes: int) -> list[Fault]:
    """The faults of a run, drawn from ``random.Random(seed)``: service kills every
    ``service_kill_every`` seconds, and ``node_kills`` node kills spread over the phase, each
    node back before the next goes down."""
    rng = random.Random(settings.seed)
    faults: list[Fault] = []
    at = rng.uniform(*settings.service_kill_every) / 2
    while at < settings.fault_seconds - settings.service_down[1] - 1:
        faults.append(Fault(at, rng.choice(services), rng.uniform(*settings.service_down)))
        at += rng.uniform(*settings.service_kill_every)
    if settings.node_kills:
        window = settings.fault_seconds / settings.node_kills
        for i in range(settings.node_kills):
            down = rng.uniform(*settings.node_down)
            start = i * window + rng.uniform(0.15, 0.45) * window
            start = min(start, (i + 1) * window - down - 1.0)
            faults.append(Fault(max(1.0, start), f"node{rng.randrange(nodes)}", down))
    faults.sort(key=lambda f: f.at)
    return faults


@dataclass(frozen=True)
class ServiceExit:
    """A service that ended without the harness asking it to, or badly when asked."""

    service: str
    what: str
    log_tail: str

    def __str__(self) -> str:
        return f"{self.service} {self.what}\n{self.log_tail}"


class ServiceProcess:
    """One service as a child process in a process group of its own, its output appended to
    one log file across restarts."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, why: str) -> None:
        """Start it (again); ``why`` goes into the log before its output."""
        self.starts += 1
        with self.log_path.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
            log.write(f"=== chaos harness: start #{self.starts} at {stamp} ({why}) ===\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def exited(self) -> int | None:
        """Its exit code if it ended (it is then forgotten), else ``None``."""
        if self.process is None:
            return None
        code = self.process.poll()
        if code is not None:
            self.process = None
        return code

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL its process group and reap it."""
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def ask_to_stop(self) -> None:
        """SIGTERM its process group (once: a second one may find the handler gone)."""
        if self.process is not None:
            self._signal(signal.SIGTERM)

    def wait_stopped(self, within: float) -> tuple[int | None, bool]:
        """Wait for it to exit; if it has not ``within`` seconds, SIGABRT it (its threads'
        tracebacks go to its log: the services run with ``PYTHONFAULTHANDLER``), then SIGKILL.
        Returns (exit code, in time)."""
        if self.process is None:
            return None, True
        try:
            code = self.process.wait(within)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(3)
            self.kill()
            return None, False
        self.process = None
        return code, True

    def tail(self, lines: int = _TAIL_LINES) -> str:
        """The last lines of its log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(f"    | {line}" for line in text.splitlines()[-lines:])

    def warnings_and_errors(self) -> Counter[str]:
        """How many WARNING and ERROR (or CRITICAL) lines its log has."""
        counts: Counter[str] = Counter()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return counts
        for line in text.splitlines():
            found = _LOG_LEVEL_LINE.match(line)
            if found:
                counts["WARNING" if found.group(1) == "WARNING" else "ERROR"] += 1
        return counts


class StreamLog:
    """Every message of the stream, read in order and kept; `refresh` reads what is new."""

    def __init__(self, js: JetStreamContext | None) -> None:
        self._js = js
        self._dump: list[dict[str, Any]] = []
        self.records: list[Record] = []
        self.unreadable: list[str] = []
        self.last_sequence = 0

    async def refresh(self) -> None:
        """Read from the last sequence read up to the stream's end as of now."""
        js = self._js
        assert js is not None, "a loaded log cannot read on"
        info = await js.stream_info(STREAM_NAME)
        end = info.state.last_seq
        if end <= self.last_sequence:
            return
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.last_sequence + 1
        )
        sub = await js.subscribe(
            ALL_EVENTS, stream=STREAM_NAME, ordered_consumer=True, config=config
        )
        try:
            while self.last_sequence < end:
                self._take(await sub.next_msg(timeout=10))
        finally:
            await sub.unsubscribe()

    def _take(self, msg: Msg) -> None:
        metadata = msg.metadata
        self.last_sequence = max(self.last_sequence, metadata.sequence.stream)
        self._dump.append(
            {
                "sequence": metadata.sequence.stream,
                "stored_at": metadata.timestamp.isoformat(),
                "subject": msg.subject,
                "headers": msg.headers or {},
                "data": msg.data.decode(errors="replace"),
            }
        )
        self._add(metadata.sequence.stream, metadata.timestamp, msg.subject, msg.data, msg.headers)

    def _add(
        self,
        sequence: int,
        stored_at: datetime,
        subject: str,
        data: bytes,
        headers: dict[str, str] | None,
    ) -> None:
        try:
            event = read_event(subject, data, headers)
        except EventDecodeError as error:
            self.unreadable.append(f"sequence {sequence} on {subject}: {error}")
            return
        guard = (headers or {}).get("Nats-Expected-Last-Subject-Sequence")
        guarded_after = int(guard) if guard is not None and guard.isdigit() else None
        self.records.append(Record(sequence, stored_at, event, guarded_after))

    def save(self, path: Path) -> None:
        """Write every message read, one JSON object a line, for a post-mortem (`load`)."""
        with path.open("w") as out:
            for item in self._dump:
                out.write(json.dumps(item) + "\n")

    @classmethod
    def load(cls, path: Path) -> StreamLog:
        """The messages `save` wrote, read again (no connection)."""
        log = cls(None)
        for line in path.read_text().splitlines():
            item = json.loads(line)
            log._dump.append(item)
            log.last_sequence = max(log.last_sequence, item["sequence"])
            log._add(
                item["sequence"],
                datetime.fromisoformat(item["stored_at"]),
                item["subject"],
                item["data"].encode(),
                item["headers"],
            )
        return log


async def _quiet(error: Exception) -> None:
    """The harness's client sees its node killed on purpose: nothing to log."""


def read_journal(path: Path) -> list[Run]:
    """The plugin's runs, as its journal lines say (`tests.plugins.chaos`)."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        runs.append(
            Run(
                task_id=item["task_id"],
                execution_id=item["execution_id"],
                attempt=int(item["attempt"]),
                worker=item["worker"],
                started_at=datetime.fromtimestamp(item["started_at"], UTC),
            )
        )
    return runs


@dataclass
class ProjectorComparison:
    """The projector's served state against an in-process replay of the same stream."""

    equal: bool = False
    sequence: int = 0
    differences: list[str] = field(default_factory=list)


def _differences(kind: str, served: Any, replayed: Any) -> list[str]:
    """Where two lists of views (dicts with ``task_id``) differ, field by field."""
    if served == replayed:
        return []
    if not isinstance(served, list) or not isinstance(replayed, list):
        return [f"{kind}: served {served!r}, replayed {replayed!r}"]
    if len(served) != len(replayed):
        return [f"{kind}: served {len(served)} items, replayed {len(replayed)}"]
    found = []
    for a, b in zip(served, replayed, strict=True):
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            fields = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            name = a.get("task_id") or a.get("execution_id")
            for key in fields[:6]:
                found.append(f"{kind} {name}: {key} served {a.get(key)!r}, replayed {b.get(key)!r}")
        else:
            found.append(f"{kind}: served {a!r}, replayed {b!r}")
    return found


@dataclass
class FaultLog:
    """What the harness did, with when."""

    started: float = field(default_factory=time.monotonic)
    lines: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def note(self, what: str, count: str | None = None) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        self.lines.append(f"{time.monotonic() - self.started:7.2f}s {stamp} {what}")
        if count is not None:
            self.counts[count] += 1


class ChaosRun:
    """One chaos run's processes and what it found (see the module docstring)."""

    def __init__(self, settings: ChaosSettings, directory: Path) -> None:
        self.settings = settings
        self.directory = directory
        self.cluster = BinaryNatsCluster(3, keep_dir=directory / "cluster")
        self.services: dict[str, ServiceProcess] = {}
        self.faults = FaultLog()
        self.service_failures: list[ServiceExit] = []
        self.journal = directory / "runs.jsonl"
        self.stream: StreamLog | None = None
        self.comparison = ProjectorComparison()
        self.tickers_stopped_at: datetime | None = None
        self.faults_stopped_at: datetime | None = None
        self.drained = False
        self.settled = False
        self.seconds = 0.0
        self._killed: set[str] = set()

    # -- processes ------------------------------------------------------------------------------

    def _make_services(self) -> None:
        url = self.cluster.url
        base = [sys.executable, "-m", "dvp_scheduler", "--log-level", "INFO"]
        env = {
            **os.environ,
            "DVP_CHAOS_TASKS": str(self.settings.tasks),
            "DVP_CHAOS_JOURNAL": str(self.journal),
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",
        }
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "ticker-1": ([*base, "ticker", "--nats-url", url], env),
            "ticker-2": ([*base, "ticker", "--nats-url", url], env),
        }
        for worker in WORKERS:
            argv = [*base, "executor", "--nats-url", url, "--plugin", PLUGIN]
            argv += ["--worker", worker, "--no-entry-points", "--grace", "10"]
            commands[f"executor-{worker}"] = (argv, {**env, "DVP_CHAOS_WORKER": worker})
        commands["projector"] = (
            [*base, "projector", "--nats-url", url, "--checkpoint-interval", "5"],
            env,
        )
        for name, (argv, service_env) in commands.items():
            self.services[name] = ServiceProcess(
                name, argv, self.directory / f"{name}.log", service_env
            )

    def kill_everything(self) -> None:
        """Kill every service still running, then stop the cluster (safe to call twice)."""
        for service in self.services.values():
            with contextlib.suppress(Exception):
                service.kill()
        with contextlib.suppress(Exception):
            self.cluster.stop()

    def _watch(self) -> None:
        """Record every service that exited on its own, and start it again."""
        for name, service in self.services.items():
            if name in self._killed:
                continue
            code = service.exited()
            if code is None:
                continue
            what = f"exited on its own with code {code}"
            self.faults.note(f"{name} {what}; starting it again", "restarted after exiting")
            self.service_failures.append(ServiceExit(name, what, service.tail()))
            service.start(f"it {what}")

    async def _sleep_watching(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self._watch()
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(0.25, left))

    async def _until(
        self, condition: Callable[[], Awaitable[bool]], within: float, interval: float = 1.0
    ) -> bool:
        """Poll ``condition`` (watching the services) until it holds or ``within`` passes."""
        end = time.monotonic() + within
        while True:
            with contextlib.suppress(Exception):
                if await condition():
                    return True
            if time.monotonic() >= end:
                return False
            await self._sleep_watching(interval)

    # -- phases ---------------------------------------------------------------------------------

    async def _init_stream(self) -> None:
        """``init --replicas 3``, again and again until the cluster's meta leader is there."""
        argv = [sys.executable, "-m", "dvp_scheduler", "init", "--replicas", "3"]
        argv += ["--nats-url", self.cluster.url]
        end = time.monotonic() + self.settings.start_timeout
        tries = 0
        while True:
            tries += 1
            done = await asyncio.to_thread(
                subprocess.run, argv, cwd=ROOT, capture_output=True, text=True, timeout=60
            )
            if done.returncode == 0:
                self.faults.note(f"init --replicas 3 succeeded (try {tries})")
                return
            if time.monotonic() >= end:
                raise AssertionError(
                    f"dvp-scheduler init --replicas 3 failed {tries} times; last:\n"
                    f"{done.stdout}{done.stderr}"
                )
            await asyncio.sleep(1.0)

    async def _started(self, nc: Client, stream: StreamLog) -> None:
        wanted = set(task_ids(self.settings.tasks))

        async def ready() -> bool:
            await stream.refresh()
            registered = {
                r.event.task_id for r in stream.records if isinstance(r.event, TaskRegistered)
            }
            return wanted <= registered and await ask_status(nc) is not None

        if not await self._until(ready, self.settings.start_timeout):
            raise AssertionError(
                f"the services did not register the {len(wanted)} tasks and answer within "
                f"{self.settings.start_timeout:g}s"
            )

    async def _inject_faults(self) -> None:
        names = sorted(self.services)
        plan = plan_faults(self.settings, names, self.cluster.size)
        started = time.monotonic()
        actions: list[tuple[float, int, Literal["kill", "revive"], str]] = []
        for n, fault in enumerate(plan):
            actions.append((fault.at, n, "kill", fault.target))
            actions.append((fault.at + fault.down, n, "revive", fault.target))
        actions.sort()
        for at, _, action, target in actions:
            await self._sleep_watching(started + at - time.monotonic())
            if target.startswith("node"):
                await self._node_fault(int(target.removeprefix("node")), action)
            else:
                self._service_fault(target, action)
        await self._sleep_watching(started + self.settings.fault_seconds - time.monotonic())

    def _service_fault(self, name: str, action: Literal["kill", "revive"]) -> None:
        service = self.services[name]
        if action == "kill":
            if name in self._killed:
                return
            self._watch()
            pid = service.pid
            self._killed.add(name)
            service.kill()
            self.faults.note(f"SIGKILL {name} (pid {pid})", "service kills")
        elif name in self._killed:
            self._killed.discard(name)
            service.start("restarted after the harness killed it")
            self.faults.note(f"restart {name} (pid {service.pid})", "services restarted")

    async def _node_fault(self, index: int, action: Literal["kill", "revive"]) -> None:
        if action == "kill":
            if len(self.cluster.running()) < self.cluster.size:
                self.faults.note(f"not killing node n{index + 1}: another node is down")
                return
            pid = self.cluster.node_pid(index)
            await asyncio.to_thread(self.cluster.kill_node, index)
            self.faults.note(f"SIGKILL nats node n{index + 1} (pid {pid})", "node kills")
        elif index not in self.cluster.running():
            await asyncio.to_thread(self.cluster.restart_node, index)
            pid = self.cluster.node_pid(index)
            self.faults.note(f"restart nats node n{index + 1} (pid {pid})", "nodes restarted")

    async def _drain(self, stream: StreamLog) -> None:
        """Every execution begun before the faults stopped ends; then the tickers stop and
        every ``TaskDue`` gets its outcome."""
        assert self.faults_stopped_at is not None
        cut = self.faults_stopped_at

        async def executions_ended() -> bool:
            await stream.refresh()
            begun: set[str] = set()
            ended: set[str] = set()
            for record in stream.records:
                event = record.event
                if isinstance(event, TaskDue) and record.stored_at <= cut:
                    begun.add(event.execution_id)
                elif isinstance(event, TaskSucceeded | TaskFailed):
                    ended.add(event.execution_id)
            return begun <= ended

        self.drained = await self._until(executions_ended, self.settings.drain_timeout, 2.0)
        self.faults.note(
            "every execution begun under faults ended"
            if self.drained
            else f"executions begun under faults still open after {self.settings.drain_timeout:g}s"
        )
        self.tickers_stopped_at = datetime.now(UTC)
        self._stop(["ticker-1", "ticker-2"], within=20.0)

        async def outcomes_recorded() -> bool:
            await stream.refresh()
            dues = {
                (r.event.execution_id, r.event.attempt)
                for r in stream.records
                if isinstance(r.event, TaskDue)
            }
            done = {
                (r.event.execution_id, r.event.attempt)
                for r in stream.records
                if isinstance(r.event, TaskSucceeded | RetryScheduled | TaskFailed)
            }
            return dues <= done

        self.settled = await self._until(outcomes_recorded, self.settings.settle_timeout)
        self.faults.note(
            "every TaskDue has its outcome"
            if self.settled
            else f"TaskDue without outcome after {self.settings.settle_timeout:g}s"
        )
        self._stop([f"executor-{w}" for w in WORKERS], within=30.0)

    def _stop(self, names: list[str], within: float) -> None:
        """SIGTERM each of them; one that does not exit in time, or exits badly, is a
        failure. Any that ended before is recorded by `_watch` first."""
        self._watch()
        for name in names:
            self._killed.add(name)  # from now on its exit is asked for
            self.services[name].ask_to_stop()
        for name in names:
            service = self.services[name]
            code, in_time = service.wait_stopped(within)
            if not in_time:
                what = f"did not exit within {within:g}s of SIGTERM (SIGABRT, then SIGKILL)"
            elif code not in (0, None):
                what = f"exited with code {code} on SIGTERM"
            else:
                self.faults.note(f"{name} stopped (SIGTERM)")
                continue
            self.faults.note(f"{name} {what}")
            self.service_failures.append(ServiceExit(name, what, service.tail()))

    async def _compare_projector(self, nc: Client, stream: StreamLog) -> None:
        comparison = self.comparison
        end = stream.last_sequence

        async def caught_up() -> bool:
            status = await ask_status(nc)
            return status is not None and status.sequence >= end

        if not await self._until(caught_up, 30.0):
            status = await ask_status(nc)
            comparison.differences.append(
                f"the projector did not reach sequence {end} within 30s (status {status})"
            )
            return
        status = await ask_status(nc)
        assert status is not None
        comparison.sequence = status.sequence
        served = await ask_tasks(nc, include_unregistered=True, answer_within=10.0)
        reader = await connect_for_reading(servers=self.cluster.urls)
        try:
            state = await replay(reader)
        finally:
            await reader.close()
        diffs = comparison.differences
        if state.sequence != status.sequence:
            diffs.append(f"sequence: served {status.sequence}, replayed {state.sequence}")
        diffs += _differences(
            "task",
            served,
            msgspec.to_builtins(list_tasks(state, include_unregistered=True)),
        )
        for task in sorted(state.tasks.values(), key=lambda t: (t.tenant_id, t.task_id)):
            served_history = await ask_history(
                nc,
                task.task_id,
                tenant_id=task.tenant_id,
                limit=DEFAULT_HISTORY_LIMIT,
                answer_within=10.0,
            )
            diffs += _differences(
                "history",
                served_history,
                msgspec.to_builtins(history(task, limit=DEFAULT_HISTORY_LIMIT)),
            )
        comparison.equal = not diffs

    async def run(self) -> None:
        """The whole run; raises only when it cannot get going (the cluster, ``init``, the
        services' start). Everything it finds is kept on the object for the checks."""
        begun = time.monotonic()
        try:
            await asyncio.to_thread(self.cluster.start)
            self.faults.note(f"cluster up: {self.cluster.url}")
            await self._init_stream()
            self._make_services()
            for service in self.services.values():
                service.start("first start")
            nc = await nats.connect(
                servers=self.cluster.urls, max_reconnect_attempts=-1, error_cb=_quiet
            )
            try:
                stream = self.stream = StreamLog(nc.jetstream())
                await self._started(nc, stream)
                self.faults.note("every task registered; faults begin")
                await self._inject_faults()
                self.faults_stopped_at = datetime.now(UTC)
                self.faults.note("faults end; draining")
                await self._drain(stream)
                await stream.refresh()
                await self._compare_projector(nc, stream)
                self._stop(["projector"], within=20.0)
                await stream.refresh()
            finally:
                await nc.close()
        finally:
            self.seconds = time.monotonic() - begun
            for name, service in self.services.items():
                if service.process is not None:
                    self._killed.add(name)
                    service.kill()
            (self.directory / "faults.log").write_text("\n".join(self.faults.lines) + "\n")
            if self.stream is not None:
                self.stream.save(self.directory / "stream.jsonl")
            self.cluster.stop()

    def journal_runs(self) -> list[Run]:
        """The plugin's journal of runs."""
        return read_journal(self.journal)

    def log_levels(self) -> dict[str, Counter[str]]:
        """WARNING and ERROR lines per service log."""
        return {name: s.warnings_and_errors() for name, s in sorted(self.services.items())}


def _counts(counter: Counter[str], order: tuple[str, ...] = ()) -> str:
    keys = [k for k in order if k in counter] + sorted(k for k in counter if k not in order)
    return ", ".join(f"{k} {counter[k]}" for k in keys) or "none"


def summary(run: ChaosRun, verdict: Verdict) -> str:
    """The figures of a run, as a table for the terminal."""
    figures = verdict.figures
    settings = run.settings
    faults = run.faults.counts
    comparison = run.comparison
    rows: list[tuple[str, str]] = [
        ("seed", str(settings.seed)),
        ("duration", f"{run.seconds:.0f}s all in, {settings.fault_seconds:g}s of faults"),
        ("tasks", str(figures.tasks)),
        ("fires due", f"{figures.fire_instants} ({figures.fire_records} fire records)"),
        ("TaskDue by trigger", _counts(figures.due_by_trigger, ("schedule", "catchup", "retry"))),
        (
            "catch-ups",
            f"{figures.due_by_trigger['catchup']} standing for {figures.catchup_fires} fires",
        ),
        (
            "attempts",
            f"{figures.attempts} in {figures.executions} executions "
            f"({figures.executions_open} open at the end)",
        ),
        (
            "started",
            f"{figures.started} TaskStarted; {figures.attempts_started_again} attempts "
            "started more than once",
        ),
        (
            "plugin runs",
            f"{figures.runs}; {figures.attempts_run_again} attempts run more than once",
        ),
        ("outcomes", _counts(figures.outcomes, ("succeeded", "retry", "failed"))),
        ("failed by reason", _counts(figures.failed_by_reason)),
        ("error kinds", _counts(figures.error_kinds)),
        ("skips by reason", _counts(figures.skips_by_reason)),
        ("skips racing an outcome", str(figures.skips_racing_an_outcome)),
        ("retries cut off at the end", str(figures.retries_cut_off)),
        ("latest schedule fire", f"{figures.max_schedule_lateness:.2f}s after its instant"),
        ("service kills", str(faults["service kills"])),
        ("node kills", str(faults["node kills"])),
        (
            "services restarted",
            f"{faults['services restarted']} after a kill, "
            f"{faults['restarted after exiting']} after exiting on their own",
        ),
        ("duplicates found", str(verdict.count("duplicate"))),
        ("missing found", str(verdict.count("missing"))),
        ("unexplained found", str(verdict.count("unexplained"))),
        ("problems by check", _counts(verdict.checks())),
        (
            "projector == replay",
            ("yes" if comparison.equal else "no") + f" (sequence {comparison.sequence})",
        ),
        (
            "drained",
            f"executions {'yes' if run.drained else 'NO'}, "
            f"outcomes {'yes' if run.settled else 'NO'}",
        ),
        ("service failures", str(len(run.service_failures))),
    ]
    for name, levels in run.log_levels().items():
        rows.append((f"log {name}", f"WARNING {levels['WARNING']}, ERROR {levels['ERROR']}"))
    width = max(len(name) for name, _ in rows)
    lines = [f"chaos run, seed {settings.seed}: logs in {run.directory}"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    lines.append("  what the harness did:")
    lines += [f"    {line}" for line in run.faults.lines]
    return "\n".join(lines)
