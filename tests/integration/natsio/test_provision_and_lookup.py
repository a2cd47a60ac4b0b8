"""The NATS layer against a real server: race-safe provisioning, reads by subject, and the
guard refusal every writer treats as a lost race."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamInfo
from nats.js.errors import APIError

from contracts import (
    STREAM_NAME,
    Event,
    Schedule,
    TaskPaused,
    TaskRegistered,
    TaskResumed,
    TaskSpec,
    TaskUnregistered,
    encode,
    event_headers,
    event_subject,
)
from contracts.stream import executor_durable
from dvp_scheduler.natsserver import NatsServer
from natsio import executor_consumer_config
from natsio.errors import is_guard_refusal
from natsio.lookup import last_message, read_task_standing
from natsio.provision import ensure_consumer, ensure_stream

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 24, 3, tzinfo=UTC)


def registered(task_id: str) -> TaskRegistered:
    return TaskRegistered(
        tenant_id="acme",
        task_id=task_id,
        occurred_at=AT,
        plugin="sync",
        plugin_version="1",
        spec=TaskSpec(
            name="S", schedule=Schedule(interval_seconds=60), max_retries=1, timeout_seconds=5
        ),
        definition_hash="h1",
    )


def control(kind: type[TaskPaused | TaskResumed], task_id: str) -> Event:
    return kind(tenant_id="acme", task_id=task_id, occurred_at=AT, note="", actor="test")


async def publish(js: JetStreamContext, *events: Event) -> None:
    for event in events:
        await js.publish(event_subject(event), encode(event), headers=event_headers(event))


async def test_services_starting_together_create_one_stream_and_one_consumer(
    nats_server: NatsServer,
) -> None:
    clients: list[Client] = [await nats.connect(nats_server.url) for _ in range(6)]
    try:
        streams = await asyncio.gather(*(ensure_stream(c.jetstream()) for c in clients))
        assert {info.config.name for info in streams} == {STREAM_NAME}
        consumers = await asyncio.gather(
            *(ensure_consumer(c.jetstream(), executor_consumer_config("default")) for c in clients)
        )
        assert {info.name for info in consumers} == {executor_durable("default")}
        listed = await clients[0].jetstream().consumers_info(STREAM_NAME)
        assert [info.name for info in listed] == [executor_durable("default")]
    finally:
        for client in clients:
            await client.close()


async def test_an_existing_consumer_is_used_as_it_is(
    js: JetStreamContext, stream: StreamInfo
) -> None:
    first = await ensure_consumer(
        js, dataclasses.replace(executor_consumer_config("default"), ack_wait=12.0)
    )
    again = await ensure_consumer(
        js, dataclasses.replace(executor_consumer_config("default"), ack_wait=99.0)
    )
    assert first.config.ack_wait == again.config.ack_wait == 12.0


async def test_standing_follows_registration_pause_and_unregistration(
    js: JetStreamContext, stream: StreamInfo
) -> None:
    never = await read_task_standing(js, "acme", "sync.none")
    assert (never.known, never.registered, never.paused) == (False, False, False)

    await publish(js, registered("sync.a"), control(TaskPaused, "sync.a"))
    paused = await read_task_standing(js, "acme", "sync.a")
    assert (paused.known, paused.registered, paused.paused) == (True, True, True)
    assert paused.registration is not None
    assert paused.registration.definition_hash == "h1"

    await publish(js, control(TaskResumed, "sync.a"))
    assert not (await read_task_standing(js, "acme", "sync.a")).paused
    without_pause = await read_task_standing(js, "acme", "sync.a", with_pause=False)
    assert (without_pause.paused_sequence, without_pause.resumed_sequence) == (0, 0)

    gone = TaskUnregistered(
        tenant_id="acme", task_id="sync.a", occurred_at=AT, plugin="sync", reason="gone"
    )
    await publish(js, gone)
    unregistered = await read_task_standing(js, "acme", "sync.a", direct=True)
    assert (unregistered.known, unregistered.registered) == (True, False)
    assert unregistered.unregistration == gone
    assert await last_message(js, "dvp.tasks.acme.registered.sync.none") is None


async def test_a_lost_guard_race_is_recognised_and_other_refusals_are_not(
    js: JetStreamContext, stream: StreamInfo
) -> None:
    event = registered("sync.b")
    await publish(js, event)
    with pytest.raises(APIError) as lost:
        await js.publish(
            event_subject(event),
            encode(event),
            headers={"Nats-Expected-Last-Subject-Sequence": "0"},
        )
    assert is_guard_refusal(lost.value)
    with pytest.raises(APIError) as other:
        await js.publish(
            event_subject(event), encode(event), headers={"Nats-Expected-Stream": "ELSEWHERE"}
        )
    assert not is_guard_refusal(other.value)
    assert not is_guard_refusal(TimeoutError())
