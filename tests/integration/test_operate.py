"""Operator commands write the right events, and refuse unknown tasks clearly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from contracts import (
    STREAM_NAME,
    Event,
    RetryDecision,
    RetryScheduled,
    Schedule,
    TaskDue,
    TaskError,
    TaskPaused,
    TaskRegistered,
    TaskResumed,
    TaskSpec,
    TaskStarted,
    TaskSucceeded,
    TaskUnregistered,
    encode,
    event_headers,
    event_subject,
)
from dvp_scheduler.cli import main
from dvp_scheduler.natsserver import NatsServer
from natsio import stream_config
from projector import Projector, list_tasks, replay
from projector.queries import ask_history, ask_tasks
from tests.integration.projector.test_projector import caught_up, running
from tests.integration.projector.test_projector import publish as publish_async
from tests.support import read_events

E = TypeVar("E", TaskDue, TaskStarted, RetryScheduled, TaskSucceeded)

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


def ended(execution_id: str, attempt: int = 1) -> TaskSucceeded:
    return TaskSucceeded(
        tenant_id="acme",
        task_id="sync.partner",
        occurred_at=FIRE,
        execution_id=execution_id,
        attempt=attempt,
        worker="host:1",
        duration_ms=5,
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
    publish(nats_server.url, registered(), scheduled, ended("e0"))
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


# ---------------------------------------------------------------------------------------------
# trigger while an execution is open


OLDER = "0b6c2f5e-1d3a-4e7f-8a9b-5c4d3e2f1a00"
RETRY_AT = FIRE + timedelta(hours=1)
REFUSED = "wait for it, or use --force to start a separate execution now"


def execution_event(kind: type[E], execution_id: str, attempt: int = 1, **fields: Any) -> E:
    """An event of execution ``execution_id`` of acme/sync.partner."""
    return kind(
        tenant_id="acme",
        task_id="sync.partner",
        occurred_at=fields.pop("occurred_at", FIRE),
        execution_id=execution_id,
        attempt=attempt,
        **fields,
    )


def older_waiting_for_its_retry() -> list[Event]:
    """Attempt 1 of OLDER failed; attempt 2 is due at RETRY_AT."""
    return [
        registered(),
        execution_event(TaskDue, OLDER, trigger="schedule", scheduled_for=FIRE, fire_at=FIRE),
        execution_event(TaskStarted, OLDER, worker="host:1", deadline=FIRE),
        execution_event(
            RetryScheduled,
            OLDER,
            worker="host:1",
            duration_ms=5,
            error=TaskError(kind="raised", message="partner down"),
            retry_at=RETRY_AT,
            delay_seconds=3600,
            decision=RetryDecision(should_retry=True, delay_seconds=3600),
        ),
    ]


async def in_thread(url: str, *args: str) -> int:
    """Run the command line off the event loop (it runs its own), with ``--tenant acme``."""
    return await asyncio.to_thread(cli, url, *args)


async def shown_everywhere(nc: Client, reader: Client, projector: Projector) -> dict[str, Any]:
    """The task's row as the projector serves it, after checking it equals the fold's."""
    info = await nc.jetstream().stream_info(STREAM_NAME)
    await caught_up(nc, info.state.last_seq)
    [row] = await ask_tasks(nc) or []
    state = await replay(reader)
    assert projector.state == state
    assert row == msgspec.to_builtins(list_tasks(state)[0])
    return row


async def test_trigger_is_refused_while_a_retry_is_pending_and_force_runs_beside_it(
    nats_server: NatsServer,
    nc: Client,
    reader: Client,
    js: JetStreamContext,
    stream: StreamInfo,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = nats_server.url
    await publish_async(js, older_waiting_for_its_retry())
    async with running(nats_server) as projector:
        row = await shown_everywhere(nc, reader, projector)
        assert (row["status"], row["retry_at"], row["running_execution_id"]) == (
            "retrying",
            "2026-11-24T04:00:00Z",
            OLDER,
        )
        assert await in_thread(url, "trigger", "sync.partner") == 2
        err = capsys.readouterr().err
        assert (
            f"dvp-scheduler: error: task acme/sync.partner has an open execution {OLDER}: "
            f"attempt 2 waits for its retry at 2026-11-24T04:00:00Z; {REFUSED}"
        ) in err
        assert len(await read_events(js)) == 4

        assert await in_thread(url, "trigger", "sync.partner", "--force") == 0
        out = capsys.readouterr().out
        assert f"a separate execution (--force) beside the open execution {OLDER}" in out
        forced = (await read_events(js))[-1]
        assert isinstance(forced, TaskDue)
        assert (forced.trigger, forced.fire_at) == ("manual", FIRE)
        row = await shown_everywhere(nc, reader, projector)
        assert (row["status"], row["retry_at"], row["running_execution_id"]) == (
            "retrying",  # nothing runs: the forced attempt waits for an executor
            "2026-11-24T04:00:00Z",
            forced.execution_id,
        )
        assert row["waiting_since"] is not None

        assert await in_thread(url, "tasks") == 0
        assert "retrying (another attempt waits for an executor for" in capsys.readouterr().out
        assert await in_thread(url, "trigger", "sync.partner") == 2
        assert f"execution {forced.execution_id}: attempt 1 waits for an executor since" in (
            capsys.readouterr().err
        )

        await publish_async(
            js,
            [execution_event(TaskStarted, forced.execution_id, worker="host:123", deadline=FIRE)],
        )
        row = await shown_everywhere(nc, reader, projector)
        assert (row["status"], row["retry_at"], row["running_execution_id"]) == (
            "running",
            "2026-11-24T04:00:00Z",
            forced.execution_id,
        )
        assert row["waiting_since"] is None
        assert await in_thread(url, "trigger", "sync.partner") == 2
        assert "attempt 1 is running on worker host:123 since 2026-11-24T03:00:00Z" in (
            capsys.readouterr().err
        )

        await publish_async(js, [ended(forced.execution_id)])
        row = await shown_everywhere(nc, reader, projector)
        assert (row["status"], row["retry_at"], row["running_execution_id"]) == (
            "retrying",
            "2026-11-24T04:00:00Z",
            OLDER,
        )
        assert row["last_outcome"] == "succeeded"
        executions = await ask_history(nc, "sync.partner") or []
        statuses = [(e["execution_id"], e["status"]) for e in executions]
        assert statuses == [(forced.execution_id, "succeeded"), (OLDER, "retrying")]


async def test_an_outcome_behind_another_executions_is_found(
    nats_server: NatsServer, js: JetStreamContext, stream: StreamInfo
) -> None:
    """The newest execution ended, and then an older one: the last message on the succeeded
    subject is the older one's, and the newer one's end is still seen."""
    newer = "7e1d2c3b-4a59-4687-9a0b-1c2d3e4f5a6b"
    await publish_async(
        js,
        [
            registered(),
            execution_event(TaskDue, OLDER, trigger="schedule", scheduled_for=FIRE, fire_at=FIRE),
            execution_event(TaskStarted, OLDER, worker="host:1", deadline=FIRE),
            execution_event(TaskDue, newer, trigger="manual", scheduled_for=FIRE, fire_at=FIRE),
            execution_event(TaskStarted, newer, worker="host:2", deadline=FIRE),
            ended(newer),
            ended(OLDER),
        ],
    )
    assert await in_thread(nats_server.url, "trigger", "sync.partner") == 0
    assert await in_thread(nats_server.url, "trigger", "sync.partner") == 2  # the new one is open
