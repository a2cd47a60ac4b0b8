"""``failures`` lists failed executions; ``rerun`` starts a linked new execution, once per
re-run number however many operators ask at the same time."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from msgspec.structs import replace
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from contracts import (
    STREAM_NAME,
    Event,
    EventKind,
    TaskDue,
    TaskError,
    TaskStarted,
    subject,
)
from dvp_scheduler.cli import main
from dvp_scheduler.cli.rerun import rerun_execution_id
from dvp_scheduler.natsserver import NatsServer
from dvp_scheduler.operations import publish_operator_due
from natsio import stream_config
from tests.integration.projector.test_projector import caught_up, publish, running
from tests.support import read_events
from tests.unit.projector import events as ev

pytestmark = pytest.mark.integration

OTHER = "report.daily"


async def cli(*args: str) -> int:
    """Run the command line off the event loop (it runs its own)."""
    return await asyncio.to_thread(main, list(args))


def failures_scenario() -> list[Event]:
    """Failures of three tasks in two tenants, ended at 03:05:13, 03:11:40 and 03:15:00, one
    of them ``lost``; a success in between."""
    lost = TaskError(kind="lost", message="no outcome before the deadline")
    return [
        ev.registered(),
        ev.registered(task=OTHER),
        ev.registered(task="sync", tenant="beta"),
        ev.due(ev.at(300)),
        ev.started(ev.at(300), ev.at(301)),
        ev.retry(ev.at(300), ev.at(302)),
        ev.due(ev.at(300), attempt=2, when=ev.at(312), trigger="retry"),
        ev.started(ev.at(300), ev.at(312), attempt=2),
        ev.failed(ev.at(300), ev.at(313), attempt=2),
        ev.due(ev.at(600)),
        ev.succeeded(ev.at(600), ev.at(601)),
        ev.due(ev.at(600), task="sync", tenant="beta"),
        ev.failed(ev.at(600), ev.at(700), task="sync", tenant="beta"),
        ev.due(ev.at(900), task=OTHER),
        replace(ev.failed(ev.at(900), ev.at(900), task=OTHER), error=lost),
    ]


async def failures_json(
    server: NatsServer, capsys: pytest.CaptureFixture[str], *args: str
) -> list[dict[str, object]]:
    assert await cli("failures", "--json", *args, "--nats-url", server.url) == 0
    items: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return items


async def test_failures_lists_failed_executions_newest_first(
    nats_server: NatsServer,
    nc: Client,
    js: JetStreamContext,
    stream: StreamInfo,
    capsys: pytest.CaptureFixture[str],
) -> None:
    last = await publish(js, failures_scenario())
    without_projector = await failures_json(nats_server, capsys)
    async with running(nats_server):
        await caught_up(nc, last)
        everything = await failures_json(nats_server, capsys)
        assert everything == without_projector
        assert [(f["tenant_id"], f["task_id"]) for f in everything] == [
            (ev.TENANT, OTHER),
            ("beta", "sync"),
            (ev.TENANT, ev.TASK),
        ]
        newest, _, oldest = everything
        assert newest["error"] == {
            "kind": "lost",
            "message": "no outcome before the deadline",
            "exception_type": None,
        }
        assert oldest["execution_id"] == ev.execution(ev.at(300))
        assert (oldest["ended_at"], oldest["attempts"], oldest["failure_reason"]) == (
            "2026-11-24T03:05:13Z",
            2,
            "exhausted",
        )
        assert oldest["decision"]["reason"] == "no retries left (2 allowed)"  # type: ignore[index]

        acme = await failures_json(nats_server, capsys, "--tenant", ev.TENANT)
        assert [f["task_id"] for f in acme] == [OTHER, ev.TASK]
        recent = await failures_json(nats_server, capsys, "--since", "2026-11-24T03:11:40Z")
        assert [f["task_id"] for f in recent] == [OTHER, "sync"]
        assert [f["task_id"] for f in await failures_json(nats_server, capsys, "--limit", "1")] == [
            OTHER
        ]

        assert await cli("failures", "--nats-url", nats_server.url) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].split()[:4] == ["ENDED", "TENANT", "TASK", "EXECUTION"]
        assert table[0].split()[-4:] == ["ATTEMPTS", "REASON", "DECISION", "ERROR"]
        assert "lost: no outcome before the deadline" in table[1]
        assert "raised: disk full" in table[3]


def failed_execution(task: str = ev.TASK) -> list[Event]:
    fire = ev.at(300)
    return [
        ev.registered(task=task),
        ev.due(fire, task=task),
        ev.started(fire, ev.at(301), task=task),
        ev.failed(fire, ev.at(302), task=task),
    ]


async def due_events(js: JetStreamContext, task: str = ev.TASK) -> list[TaskDue]:
    events = await read_events(js, subject(ev.TENANT, EventKind.DUE, task))
    return [e for e in events if isinstance(e, TaskDue)]


def the_end_of(execution_id: str, when: datetime) -> list[Event]:
    """A start and a failure for attempt 1 of a re-run."""
    started = TaskStarted(
        tenant_id=ev.TENANT,
        task_id=ev.TASK,
        occurred_at=when,
        execution_id=execution_id,
        attempt=1,
        worker="host:9",
        deadline=when + timedelta(seconds=30),
    )
    failed = replace(ev.failed(ev.at(300), when), execution_id=execution_id)
    return [started, failed]


async def test_rerun_links_both_ways_is_refused_a_second_time_and_runs_again_with_again(
    nats_server: NatsServer,
    nc: Client,
    js: JetStreamContext,
    stream: StreamInfo,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = nats_server.url
    target = ev.execution(ev.at(300))
    first, second = rerun_execution_id(target, 1), rerun_execution_id(target, 2)
    last = await publish(js, failed_execution())
    async with running(nats_server):
        await caught_up(nc, last)
        assert await cli("rerun", target, "--nats-url", url) == 0
        assert f"re-ran {target} of acme/{ev.TASK} as execution {first}" in capsys.readouterr().out
        rerun = (await due_events(js))[-1]
        assert (rerun.execution_id, rerun.trigger, rerun.rerun_of, rerun.attempt) == (
            first,
            "rerun",
            target,
            1,
        )
        assert rerun.fire_at == ev.at(300)  # the schedule's last fire, carried over

        info = await js.stream_info(STREAM_NAME)
        await caught_up(nc, info.state.last_seq)
        assert await cli("history", ev.TASK, "--json", "--nats-url", url) == 0
        executions = {e["execution_id"]: e for e in json.loads(capsys.readouterr().out)}
        assert (executions[first]["rerun_of"], executions[first]["reruns"]) == (target, [])
        assert (executions[target]["rerun_of"], executions[target]["reruns"]) == (None, [first])
        assert await cli("history", ev.TASK, "--nats-url", url) == 0
        text = capsys.readouterr().out
        assert f"re-run of {target}" in text
        assert f"re-run as {first}" in text
        assert await cli("tasks", "--nats-url", url) == 0
        assert "due (waiting for an executor for" in capsys.readouterr().out

        assert await cli("rerun", target, "--nats-url", url) == 2
        err = capsys.readouterr().err
        assert f"execution {target} was already re-run as {first} at " in err
        assert "use --again to run it once more" in err
        assert await cli("rerun", target, "--again", "--nats-url", url) == 2  # the re-run is open
        assert f"has an open execution {first}: attempt 1 waits for an executor" in (
            capsys.readouterr().err
        )

        await publish(js, the_end_of(first, datetime.now(UTC)))
        assert await cli("rerun", target, "--again", "--nats-url", url) == 0
        assert f"as execution {second}" in capsys.readouterr().out
        info = await js.stream_info(STREAM_NAME)
        await caught_up(nc, info.state.last_seq)
        assert await cli("history", ev.TASK, "--json", "--nats-url", url) == 0
        executions = {e["execution_id"]: e for e in json.loads(capsys.readouterr().out)}
        assert executions[target]["reruns"] == [first, second]
        assert executions[second]["rerun_of"] == target
    assert [d.execution_id for d in await due_events(js)] == [target, first, second]


async def test_two_operators_rerunning_at_once_publish_one_due(
    nats_server: NatsServer,
    nc: Client,
    js: JetStreamContext,
    stream: StreamInfo,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = ev.execution(ev.at(300), task=OTHER)
    last = await publish(js, failed_execution(OTHER))
    async with running(nats_server):
        await caught_up(nc, last)
        codes = await asyncio.gather(
            cli("rerun", target, "--nats-url", nats_server.url),
            cli("rerun", target, "--nats-url", nats_server.url),
        )
    assert sorted(codes) == [0, 2]
    assert f"was already re-run as {rerun_execution_id(target, 1)}" in capsys.readouterr().err
    assert [d.trigger for d in await due_events(js, OTHER)] == ["schedule", "rerun"]

    # The same two publishes, neither of which looks at the other (--force): the stream's
    # duplicate detection keeps one.
    again = rerun_execution_id(target, 2)
    published = await asyncio.gather(
        *(
            publish_operator_due(
                js,
                ev.TENANT,
                OTHER,
                execution_id=again,
                trigger="rerun",
                rerun_of=target,
                force=True,
            )
            for _ in range(2)
        )
    )
    assert sorted(p.duplicate for p in published) == [False, True]
    assert len({p.sequence for p in published}) == 1
    assert [d.execution_id for d in await due_events(js, OTHER)][-1:] == [again]
    assert len(await due_events(js, OTHER)) == 3


@pytest.fixture
async def short_window_stream(js: JetStreamContext) -> StreamInfo:
    """The stream with a duplicate window of one second, so that a test can outlive it."""
    return await js.add_stream(dataclasses.replace(stream_config(), duplicate_window=1.0))


async def test_beyond_the_duplicate_window_the_history_refuses_a_second_rerun(
    nats_server: NatsServer,
    js: JetStreamContext,
    short_window_stream: StreamInfo,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = ev.execution(ev.at(300))
    await publish(js, failed_execution())
    assert await cli("rerun", target, "--nats-url", nats_server.url) == 0
    await asyncio.sleep(1.5)
    # No projector runs: the command replays the stream and finds the first re-run there.
    assert await cli("rerun", target, "--nats-url", nats_server.url) == 2
    err = capsys.readouterr().err
    assert "replaying the stream in-process" in err
    assert f"was already re-run as {rerun_execution_id(target, 1)}" in err
    assert len(await due_events(js)) == 2
