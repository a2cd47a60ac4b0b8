"""The projector's numbers in one shape, read from its state without a broker."""

from __future__ import annotations

from typing import cast

import msgspec

from contracts import encode, event_subject
from natsio.reader import reader_client_class
from projector import Projector, ProjectorSettings, ProjectorStats
from projector.fold import ingest
from tests.unit.projector.events import DUE_SUBJECT, TASK, TENANT, at, due, registered


def test_stats_are_a_fresh_snapshot_of_the_state() -> None:
    projector = Projector(ProjectorSettings())
    assert projector.stats == ProjectorStats()
    state = projector.state
    ingest(state, 1, event_subject(registered()), encode(registered()))
    ingest(state, 2, event_subject(registered(task="other")), encode(registered(task="other")))
    unknown = {"type": "task.due.v9", "tenant_id": TENANT, "task_id": TASK}
    ingest(state, 3, DUE_SUBJECT, msgspec.json.encode(unknown))
    ingest(state, 4, DUE_SUBJECT, msgspec.json.encode({**unknown, "type": "task.gone.v1"}))
    ingest(state, 5, DUE_SUBJECT, b"\x00not json")
    before = projector.stats
    ingest(state, 6, event_subject(due(at(300))), encode(due(at(300))))
    projector.failed_messages = 1
    assert before == ProjectorStats(
        sequence=5, tasks=2, events_applied=2, unknown_events=2, invalid_messages=1
    )
    assert projector.stats == ProjectorStats(
        sequence=6,
        tasks=2,
        events_applied=3,
        unknown_events=2,
        invalid_messages=1,
        failed_messages=1,
    )
    assert projector.sequence == 6


def test_the_projector_connects_with_the_readers_client() -> None:
    projector = Projector(ProjectorSettings())
    assert cast(object, projector._client_class()) is reader_client_class()
