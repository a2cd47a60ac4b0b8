"""Operator commands write the right events, and refuse unknown tasks clearly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import nats
import pytest

from contracts import (
    Event,
    Schedule,
    TaskDue,
    TaskPaused,
    TaskRegistered,
    TaskResumed,
    TaskSpec,
    TaskUnregistered,
    encode,
    event_headers,
    event_subject,
)
from dvp_scheduler.cli import main
from dvp_scheduler.natsserver import NatsServer
from natsio import stream_config
from tests.support import read_events

pytestmark = pytest.mark.integration

FIRE = datetime(2026, 11, 24, 3, tzinfo=UTC)


def registered(task_id: str = "sync.partner") -> TaskRegistered:
    return TaskRegistered(
        tenant_id="acme",
        task_id=task_id,
        occurred_at=FIRE,
        plugin="sync",
        plugin_version="1",
        spec=TaskSpec(
            name="S", schedule=Schedule(interval_seconds=60), max_retries=1, timeout_seconds=5
        ),
        definition_hash="h",
    )


def publish(url: str, *events: Event) -> None:
    async def go() -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(stream_config())
        for event in events:
            await js.publish(event_subject(event), encode(event), headers=event_headers(event))
        await nc.close()

    asyncio.run(go())


def stream_events(url: str) -> list[Event]:
    async def go() -> list[Event]:
        nc = await nats.connect(url)
        try:
            return await read_events(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(go())


def cli(url: str, *args: str) -> int:
    return main([*args, "--tenant", "acme", "--nats-url", url])


def test_trigger_publishes_a_manual_due_carrying_the_last_fire(
    nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    scheduled = TaskDue(
        tenant_id="acme",
        task_id="sync.partner",
        occurred_at=FIRE,
        execution_id="e0",
        attempt=1,
        trigger="schedule",
        scheduled_for=FIRE,
        fire_at=FIRE,
    )
    publish(nats_server.url, registered(), scheduled)
    assert cli(nats_server.url, "trigger", "sync.partner") == 0
    assert "triggered acme/sync.partner: execution" in capsys.readouterr().out
    manual = stream_events(nats_server.url)[-1]
    assert isinstance(manual, TaskDue)
    assert (manual.trigger, manual.attempt, manual.fire_at) == ("manual", 1, FIRE)
    assert manual.execution_id != "e0"


def test_pause_and_resume_record_the_note_and_refuse_repeats(
    nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(nats_server.url, registered())
    assert cli(nats_server.url, "pause", "sync.partner", "--note", "partner outage") == 0
    assert cli(nats_server.url, "pause", "sync.partner") == 0
    assert "already paused" in capsys.readouterr().out
    assert cli(nats_server.url, "resume", "sync.partner", "--note", "back") == 0
    events = stream_events(nats_server.url)
    assert [type(e) for e in events] == [TaskRegistered, TaskPaused, TaskResumed]
    paused = events[1]
    assert isinstance(paused, TaskPaused)
    assert paused.note == "partner outage"
    assert "@" in paused.actor


def test_unknown_and_unregistered_tasks_are_refused(
    nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(
        nats_server.url,
        registered("sync.gone"),
        TaskUnregistered(tenant_id="acme", task_id="sync.gone", occurred_at=FIRE, plugin="sync"),
    )
    assert cli(nats_server.url, "trigger", "sync.nothing") == 2
    assert "task 'sync.nothing' is not registered for tenant 'acme'" in capsys.readouterr().err
    assert cli(nats_server.url, "pause", "sync.gone") == 2
    assert "task 'sync.gone' was unregistered" in capsys.readouterr().err
    assert cli(nats_server.url, "trigger", "bad task") == 2
    assert "task id 'bad task' is not allowed" in capsys.readouterr().err
    assert len(stream_events(nats_server.url)) == 2
