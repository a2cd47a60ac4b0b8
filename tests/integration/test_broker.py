"""The JetStream behaviour the design relies on, checked against the real server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamInfo
from nats.js.errors import APIError

from contracts import (
    STREAM_NAME,
    TaskDue,
    decode,
    encode,
    event_headers,
    event_subject,
    execution_id_for_fire,
)
from tests.support import last_sequence, read_events

pytestmark = pytest.mark.integration

FIRE = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def due(attempt: int = 1, fire: datetime = FIRE) -> TaskDue:
    return TaskDue(
        tenant_id="acme",
        task_id="cleanup.temp-files",
        occurred_at=fire,
        execution_id=execution_id_for_fire("acme", "cleanup.temp-files", fire),
        attempt=attempt,
        trigger="schedule",
        scheduled_for=fire,
    )


async def test_stream_settings_are_as_designed(stream: StreamInfo) -> None:
    assert stream.config.name == STREAM_NAME
    assert stream.config.subjects == ["dvp.tasks.>"]
    assert stream.config.allow_direct is True
    assert stream.config.duplicate_window == 900


async def test_event_round_trips_through_the_stream(
    js: JetStreamContext, stream: StreamInfo
) -> None:
    event = due()
    ack = await js.publish(event_subject(event), encode(event), headers=event_headers(event))
    assert ack.stream == STREAM_NAME
    msg = await js.get_last_msg(STREAM_NAME, "dvp.tasks.acme.due.cleanup.temp-files")
    assert decode(msg.data) == event
    assert msg.headers is not None
    assert msg.headers["Dvp-Event-Type"] == "task.due.v1"


async def test_duplicate_message_id_is_dropped(js: JetStreamContext, stream: StreamInfo) -> None:
    event = due()
    first = await js.publish(event_subject(event), encode(event), headers=event_headers(event))
    second = await js.publish(event_subject(event), encode(event), headers=event_headers(event))
    assert not first.duplicate
    assert second.duplicate
    assert second.seq == first.seq
    assert await read_events(js) == [event]


async def test_expected_last_subject_sequence_refuses_a_second_writer(
    js: JetStreamContext, stream: StreamInfo
) -> None:
    subject = event_subject(due())
    before = await last_sequence(js, subject)
    winner = due(fire=FIRE)
    loser = due(fire=datetime(2026, 11, 24, 3, 0, 1, tzinfo=UTC))  # another id: not a duplicate
    await js.publish(
        subject,
        encode(winner),
        headers=event_headers(winner, expected_last_subject_sequence=before),
    )
    with pytest.raises(APIError) as refused:
        await js.publish(
            subject,
            encode(loser),
            headers=event_headers(loser, expected_last_subject_sequence=before),
        )
    assert refused.value.err_code == 10071
    assert await read_events(js) == [winner]
