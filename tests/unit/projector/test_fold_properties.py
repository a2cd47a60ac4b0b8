"""The state is a function of the events alone, however the fold is chunked (docs/design.md,
guarantee 9)."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from contracts import (
    Event,
    RetryScheduled,
    TaskDue,
    TaskFailed,
    TaskStarted,
    TaskSucceeded,
    encode,
    event_subject,
)
from projector import ProjectionState, apply, ingest, task_view
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
        trigger = draw(st.sampled_from(["schedule", "catchup", "retry", "manual", "rerun"]))
        due = ev.due(fire, attempt=attempt, when=when, trigger=trigger, task=task)
        if trigger == "rerun":
            return replace(due, rerun_of=ev.execution(draw(FIRES), task=task))
        return due
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
        ingest(whole, sequence, event_subject(event), encode(event))

    first = ProjectionState(history_limit=3)
    for sequence, event in enumerate(events[:cut], start=1):
        ingest(first, sequence, event_subject(event), encode(event))
    saved = encode_checkpoint(Checkpoint(stream="DVP_TASKS", stream_created=None, state=first))
    resumed = decode_checkpoint(saved).state
    for sequence, event in enumerate(events[cut:], start=cut + 1):
        ingest(resumed, sequence, event_subject(event), encode(event))

    assert resumed == whole
    assert encode_checkpoint(
        Checkpoint(stream="DVP_TASKS", stream_created=None, state=resumed)
    ) == encode_checkpoint(Checkpoint(stream="DVP_TASKS", stream_created=None, state=whole))


LARGE = 100
"""A history limit no generated list reaches: nothing is dropped."""


@given(EVENT_LISTS)
def test_the_open_executions_are_those_without_an_outcome(events: list[Event]) -> None:
    state = fold(events, LARGE)
    for task in state.tasks.values():
        mine = [e for e in events if (e.tenant_id, e.task_id) == (task.tenant_id, task.task_id)]
        first_opened: dict[str, int] = {}
        ended: set[str] = set()
        for index, event in enumerate(mine):
            if isinstance(event, TaskDue | TaskStarted | RetryScheduled):
                first_opened.setdefault(event.execution_id, index)
            elif isinstance(event, TaskSucceeded | TaskFailed):
                ended.add(event.execution_id)
        still_open = {e: i for e, i in first_opened.items() if e not in ended}
        assert set(task.open_executions) == set(still_open)
        newest = max(still_open, key=still_open.__getitem__, default=None)
        assert task.running_execution_id == newest
        view = task_view(task)
        if task.registered and not task.paused:
            assert (view.status == "idle") == (newest is None)
            assert (view.status == "retrying") <= (view.retry_at is not None)


@given(EVENT_LISTS, WHEN)
def test_a_separate_execution_leaves_the_others_as_they_were(
    events: list[Event], when: datetime
) -> None:
    state = fold([ev.registered(), *events], LARGE)
    task = state.task(ev.TENANT, ev.TASK)
    assert task is not None
    before = task_view(task)
    others = {key: replace(entry) for key, entry in task.open_executions.items()}  # copies

    due, start, success = _forced_run(when)
    apply(state, due)
    apply(state, start)
    during = task_view(task)
    assert (during.retry_at, during.running_execution_id) == (before.retry_at, due.execution_id)
    assert during.status in ("running", "paused", "unregistered")
    assert {k: v for k, v in task.open_executions.items() if k != due.execution_id} == others

    apply(state, success)
    after = task_view(task)
    assert task.open_executions == others
    assert (after.status, after.retry_at, after.running_execution_id, after.waiting_since) == (
        before.status,
        before.retry_at,
        before.running_execution_id,
        before.waiting_since,
    )


def _forced_run(when: datetime) -> tuple[TaskDue, TaskStarted, TaskSucceeded]:
    """A manual execution that no generated event shares: due, started, succeeded."""
    due = TaskDue(
        tenant_id=ev.TENANT,
        task_id=ev.TASK,
        occurred_at=when,
        execution_id="forced-0",
        attempt=1,
        trigger="manual",
        scheduled_for=when,
    )
    start = TaskStarted(
        tenant_id=ev.TENANT,
        task_id=ev.TASK,
        occurred_at=when,
        execution_id=due.execution_id,
        attempt=1,
        worker="w",
        deadline=when,
    )
    success = TaskSucceeded(
        tenant_id=ev.TENANT,
        task_id=ev.TASK,
        occurred_at=when,
        execution_id=due.execution_id,
        attempt=1,
        worker="w",
        duration_ms=1,
    )
    return due, start, success
