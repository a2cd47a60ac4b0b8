"""The state is a function of the events alone, however the fold is chunked (docs/design.md,
guarantee 9)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from contracts import Event, encode
from projector import ProjectionState, apply, ingest
from projector.checkpoint import Checkpoint, decode_checkpoint, encode_checkpoint
from tests.unit.projector import events as ev

TASKS = st.sampled_from(["a", "b.c"])
FIRES = st.integers(min_value=1, max_value=4).map(lambda n: ev.at(300 * n))
WHEN = st.integers(min_value=0, max_value=3000).map(ev.at)
ATTEMPTS = st.integers(min_value=1, max_value=3)


@st.composite
def an_event(draw: st.DrawFn) -> Event:
    task = draw(TASKS)
    fire = draw(FIRES)
    when = draw(WHEN)
    attempt = draw(ATTEMPTS)
    kind = draw(st.integers(min_value=0, max_value=9))
    if kind == 0:
        return ev.registered(when, task=task)
    if kind == 1:
        return ev.unregistered(when, task=task)
    if kind == 2:
        return ev.paused(when, draw(st.text(max_size=5)), task=task)
    if kind == 3:
        return ev.resumed(when, task=task)
    if kind == 4:
        trigger = draw(st.sampled_from(["schedule", "catchup", "retry", "manual"]))
        return ev.due(fire, attempt=attempt, when=when, trigger=trigger, task=task)
    if kind == 5:
        return ev.skipped(fire, draw(st.sampled_from(["overlap", "missed", "paused"])), task=task)
    if kind == 6:
        return ev.started(fire, when, attempt=attempt, task=task)
    if kind == 7:
        data = draw(st.none() | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
        return ev.succeeded(fire, when, attempt=attempt, task=task, data=data)
    if kind == 8:
        return ev.retry(fire, when, attempt=attempt, delay=draw(st.floats(0, 60)), task=task)
    return ev.failed(fire, when + timedelta(seconds=1), attempt=attempt, task=task)


EVENT_LISTS = st.lists(an_event(), max_size=40)


def fold(events: list[Event], limit: int) -> ProjectionState:
    state = ProjectionState(history_limit=limit)
    for event in events:
        apply(state, event)
    return state


@given(EVENT_LISTS, st.integers(min_value=1, max_value=5))
def test_folding_twice_gives_the_same_state(events: list[Event], limit: int) -> None:
    assert fold(events, limit) == fold(events, limit)


@given(EVENT_LISTS, st.data())
def test_two_chunks_with_a_checkpoint_between_equal_one_pass(
    events: list[Event], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(events)))
    whole = ProjectionState(history_limit=3)
    for sequence, event in enumerate(events, start=1):
        ingest(whole, sequence, encode(event))

    first = ProjectionState(history_limit=3)
    for sequence, event in enumerate(events[:cut], start=1):
        ingest(first, sequence, encode(event))
    saved = encode_checkpoint(Checkpoint(stream="DVP_TASKS", stream_created=None, state=first))
    resumed = decode_checkpoint(saved).state
    for sequence, event in enumerate(events[cut:], start=cut + 1):
        ingest(resumed, sequence, encode(event))

    assert resumed == whole
    assert encode_checkpoint(
        Checkpoint(stream="DVP_TASKS", stream_created=None, state=resumed)
    ) == encode_checkpoint(Checkpoint(stream="DVP_TASKS", stream_created=None, state=whole))
