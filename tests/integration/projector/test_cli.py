"""The read-side commands as a user runs them: ``python -m dvp_scheduler ...`` processes."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from datetime import datetime
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from dvp_scheduler.natsserver import NatsServer
from natsio import stream_config
from projector import Projector, history, list_tasks, replay
from tests.integration.projector.test_projector import caught_up, publish, scenario, settings
from tests.support import cli
from tests.unit.projector import events as ev

pytestmark = pytest.mark.integration

REPLAYING = "replaying the stream in-process"


def as_json(value: Any) -> Any:
    return json.loads(msgspec.json.encode(value))


def without_lateness(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Task rows less what ``tasks`` adds as of its own clock (how late an overdue task is)."""
    for row in rows:
        late = row.pop("overdue_seconds")
        assert row.pop("overdue") is (late is not None)
        assert late is None or row["overdue_at"] is not None
    return rows


async def test_without_a_projector_the_commands_replay_in_process(
    reader: Client, nats_server: NatsServer, js: JetStreamContext, stream: StreamInfo
) -> None:
    await publish(js, scenario())
    state = await replay(reader)
    task = state.task(ev.TENANT, ev.TASK)
    assert task is not None
    (
        (tasks_code, tasks_out, tasks_err),
        (hist_code, hist_out, hist_err),
        (table_code, table_out, _),
        (until_code, until_out, until_err),
        (events_code, events_out, _),
        (next_code, next_out, _),
        (unknown_code, _, unknown_err),
    ) = await asyncio.gather(
        cli(nats_server, "tasks", "--json"),
        cli(nats_server, "history", ev.TASK, "--json"),
        cli(nats_server, "tasks"),
        cli(nats_server, "replay", "--until", "2026-11-24T03:07:30Z", "--json"),
        cli(nats_server, "events", "--task", "sync", "--tenant", "beta", "--json"),
        cli(nats_server, "next", ev.TASK, "-n", "3", "--json"),
        cli(nats_server, "history", "no.such-task"),
    )
    assert tasks_code == 0, tasks_err
    assert REPLAYING in tasks_err
    assert without_lateness(json.loads(tasks_out)) == as_json(list_tasks(state))

    assert hist_code == 0, hist_err
    assert REPLAYING in hist_err
    assert json.loads(hist_out) == as_json(history(task, limit=20))

    assert table_code == 0
    assert "cleanup.temp-files" in table_out
    assert "TENANT" in table_out

    assert until_code == 0, until_err
    [then] = [t for t in json.loads(until_out) if t["task_id"] == ev.TASK]
    assert then["last_outcome"] == "failed"  # the success came at 03:10
    assert then["succeeded"] == 0
    assert "as of 2026-11-24T03:07:30" in until_err

    assert events_code == 0
    lines = [json.loads(line) for line in events_out.splitlines()]
    assert [line["type"] for line in lines] == [
        "task.registered.v1",
        "task.due.v1",
        "task.started.v1",
        "task.succeeded.v1",
    ]

    assert next_code == 0
    fires = [datetime.fromisoformat(f) for f in json.loads(next_out)]
    assert len(fires) == 3
    assert all((b - a).total_seconds() == 300 for a, b in itertools.pairwise(fires))

    assert unknown_code == 2
    assert "no task 'no.such-task'" in unknown_err


async def test_with_a_projector_the_commands_ask_it(
    reader: Client,
    nats_server: NatsServer,
    nc: Client,
    js: JetStreamContext,
    stream: StreamInfo,
) -> None:
    last = await publish(js, scenario())
    async with Projector(settings(nats_server)):
        await caught_up(nc, last)
        state = await replay(reader)
        task = state.task("beta", "sync")
        assert task is not None
        (tasks_code, tasks_out, tasks_err), (hist_code, hist_out, hist_err) = await asyncio.gather(
            cli(nats_server, "tasks", "--json", "--all"),
            cli(nats_server, "history", "sync", "--tenant", "beta", "--json", "--limit", "5"),
        )
    assert tasks_code == 0, tasks_err
    assert REPLAYING not in tasks_err
    assert without_lateness(json.loads(tasks_out)) == as_json(
        list_tasks(state, include_unregistered=True)
    )
    assert hist_code == 0, hist_err
    assert REPLAYING not in hist_err
    assert json.loads(hist_out) == as_json(history(task, limit=5))
    assert json.loads(hist_out)[0]["attempts"][0]["data"] == {"rows": 3}


async def test_events_follow_waits_for_the_stream_then_shows_each_event(
    nats_server: NatsServer, js: JetStreamContext
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dvp_scheduler",
        "events",
        "--follow",
        "--json",
        "--nats-url",
        nats_server.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        assert process.stdout is not None
        async with asyncio.timeout(20):
            waiting = await process.stderr.readline()
            assert b"no stream DVP_TASKS yet: waiting" in waiting
            await js.add_stream(stream_config())
            await publish(js, [ev.registered(), ev.due(ev.at(300))])
            lines = [json.loads(await process.stdout.readline()) for _ in range(2)]
        assert [line["type"] for line in lines] == ["task.registered.v1", "task.due.v1"]
    finally:
        process.terminate()
        await process.wait()
