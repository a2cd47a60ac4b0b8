"""The projector against a real nats-server: service == in-process replay, replay as of an
instant, restart from the checkpoint, garbage in the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamInfo
from nats.js.errors import KeyNotFoundError, NotFoundError

from contracts import STREAM_NAME, Event, encode, event_headers, event_subject
from contracts.queries import TASK_STATE_BUCKET, task_state_key
from dvp_scheduler.natsserver import NatsServer
from natsio import NatsConnection
from projector import Projector, ProjectorSettings, history, list_tasks, replay
from projector.queries import ask_history, ask_status, ask_tasks
from tests.support import eventually
from tests.unit.projector import events as ev

pytestmark = pytest.mark.integration


def scenario() -> list[Event]:
    """Two tenants, retries, a failure, a skip, a pause and an unregistered task."""
    f1, f2, f3 = ev.at(300), ev.at(600), ev.at(900)
    return [
        ev.registered(),
        ev.registered(task="report.daily"),
        ev.registered(task="sync", tenant="beta"),
        ev.due(f1),
        ev.started(f1, ev.at(301)),
        ev.retry(f1, ev.at(302)),
        ev.due(f1, attempt=2, when=ev.at(312), trigger="retry"),
        ev.started(f1, ev.at(312), attempt=2),
        ev.failed(f1, ev.at(313), attempt=2),
        ev.due(f2),
        ev.started(f2, ev.at(601)),
        ev.succeeded(f2, ev.at(602)),
        ev.skipped(f3, "overlap", task="report.daily"),
        ev.paused(ev.at(700), task="report.daily"),
        ev.due(f1, task="sync", tenant="beta"),
        ev.started(f1, ev.at(301), task="sync", tenant="beta"),
        ev.succeeded(f1, ev.at(303), task="sync", tenant="beta", data={"rows": 3}),
        ev.registered(task="old.task"),
        ev.unregistered(ev.at(800), task="old.task"),
    ]


async def publish(js: JetStreamContext, events: Iterable[Event]) -> int:
    seq = 0
    for event in events:
        ack = await js.publish(event_subject(event), encode(event), headers=event_headers(event))
        seq = ack.seq
    return seq


def settings(server: NatsServer, **overrides: Any) -> ProjectorSettings:
    values: dict[str, Any] = {
        "connection": NatsConnection(url=server.url),
        "checkpoint_interval": 0.2,
        "mirror_interval": 0.05,
    }
    values.update(overrides)
    return ProjectorSettings(**values)


@asynccontextmanager
async def running(server: NatsServer, **overrides: Any) -> AsyncIterator[Projector]:
    async with Projector(settings(server, **overrides)) as projector:
        yield projector


async def caught_up(nc: Client, sequence: int) -> None:
    async def check() -> bool:
        status = await ask_status(nc, answer_within=1.0)
        return status is not None and status.sequence >= sequence

    await eventually(check, within=10, message=f"projector at sequence {sequence}")


def builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


async def test_served_state_and_history_equal_an_in_process_replay(
    reader: Client,
    nats_server: NatsServer,
    nc: Client,
    js: JetStreamContext,
    stream: StreamInfo,
) -> None:
    last = await publish(js, scenario())
    async with running(nats_server) as projector:
        await caught_up(nc, last)
        replayed = await replay(reader)
        assert projector.state == replayed

        served = await ask_tasks(nc, include_unregistered=True)
        assert served == builtins(list_tasks(replayed, include_unregistered=True))
        assert [t["task_id"] for t in await ask_tasks(nc) or []] == [
            "cleanup.temp-files",
            "report.daily",
            "sync",
        ]
        for task in replayed.tasks.values():
            served_history = await ask_history(nc, task.task_id, tenant_id=task.tenant_id)
            assert served_history == builtins(history(task, limit=20))

        kv = await js.key_value(TASK_STATE_BUCKET)

        async def mirrored() -> bool:
            try:
                entry = await kv.get(task_state_key("beta", "sync"))
            except KeyNotFoundError:
                return False
            return entry.value is not None

        await eventually(mirrored, message="task state in the KV bucket")
        entry = await kv.get(task_state_key(ev.TENANT, ev.TASK))
        assert entry.value is not None
        mirrored_view = msgspec.json.decode(entry.value)
        assert mirrored_view == builtins(list_tasks(replayed, tenant_id=ev.TENANT))[0]
        assert mirrored_view["last_outcome"] == "succeeded"
        assert mirrored_view["failed"] == 1

        # Live follow: a new event shows up in the served state.
        more = await publish(js, [ev.resumed(ev.at(1000), task="report.daily")])
        await caught_up(nc, more)
        [row] = [t for t in await ask_tasks(nc) or [] if t["task_id"] == "report.daily"]
        assert row["status"] == "idle"


async def test_replay_until_gives_the_state_that_held_then(
    reader: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    f1, f2 = ev.at(300), ev.at(600)
    await publish(
        js,
        [
            ev.registered(),
            ev.due(f1),
            ev.started(f1, ev.at(301)),
            ev.failed(f1, ev.at(302)),
            ev.due(f2),
            ev.started(f2, ev.at(601)),
            ev.succeeded(f2, ev.at(602)),
        ],
    )
    then = await replay(reader, until=ev.at(450))
    task = then.task(ev.TENANT, ev.TASK)
    assert task is not None
    assert task.last_outcome == "failed"
    assert task.consecutive_failures == 1
    assert task.succeeded == 0
    assert [e.status for e in history(task)] == ["failed"]

    now = await replay(reader)
    task = now.task(ev.TENANT, ev.TASK)
    assert task is not None
    assert task.last_outcome == "succeeded"
    assert (task.succeeded, task.failed, task.consecutive_failures) == (1, 1, 0)
    assert await replay(reader, until=ev.at(450)) == then  # deterministic


async def test_restart_from_the_checkpoint_equals_a_full_replay(
    reader: Client,
    nats_server: NatsServer,
    nc: Client,
    js: JetStreamContext,
    stream: StreamInfo,
) -> None:
    events = scenario()
    first = await publish(js, events[:10])
    async with running(nats_server) as projector:
        await caught_up(nc, first)
    # The exit wrote a checkpoint at `first`; more events arrive while no projector runs.
    last = await publish(js, events[10:])
    async with running(nats_server) as projector:
        assert projector.resumed_from == first
        await caught_up(nc, last)
        assert projector.state == await replay(reader)


async def test_checkpoint_in_a_file(
    reader: Client,
    nats_server: NatsServer,
    nc: Client,
    js: JetStreamContext,
    stream: StreamInfo,
    tmp_path: Any,
) -> None:
    path = tmp_path / "projector.checkpoint"
    first = await publish(js, scenario()[:5])
    async with running(nats_server, checkpoint_file=path, mirror=False):
        await caught_up(nc, first)
    assert path.stat().st_size > 0
    async with running(nats_server, checkpoint_file=path, mirror=False) as projector:
        assert projector.resumed_from == first
        assert projector.state == await replay(reader)


async def test_garbage_and_unknown_versions_do_not_stop_it(
    reader: Client,
    nats_server: NatsServer,
    nc: Client,
    js: JetStreamContext,
    stream: StreamInfo,
) -> None:
    fire = ev.at(300)
    async with running(nats_server) as projector:
        await publish(js, [ev.registered()])
        await js.publish("dvp.tasks.acme.due.cleanup.temp-files", b"\xffnot json at all")
        future = {"type": "task.due.v9", "tenant_id": "acme", "task_id": "cleanup.temp-files"}
        await js.publish("dvp.tasks.acme.due.cleanup.temp-files", msgspec.json.encode(future))
        last = await publish(js, [ev.due(fire), ev.started(fire, ev.at(301))])
        await caught_up(nc, last)
        status = await ask_status(nc)
        assert status is not None
        assert status.invalid_messages == 1
        assert status.unknown_events == {"task.due.v9": 1}
        assert status.events_applied == 3
        [row] = await ask_tasks(nc) or []
        assert row["status"] == "running"
        assert projector.state == await replay(reader)


async def test_replay_of_an_empty_or_missing_stream(reader: Client, js: JetStreamContext) -> None:
    with pytest.raises(NotFoundError):
        await replay(reader)
    await js.add_stream(name=STREAM_NAME, subjects=["dvp.tasks.>"])
    state = await replay(reader)
    assert state.tasks == {}
    assert state.sequence == 0
