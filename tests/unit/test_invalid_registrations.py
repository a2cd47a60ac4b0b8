"""An invalid registration read from the stream is shown as invalid and never scheduled: the
ticker's policy, the projector's fold and views, and the CLI's table."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from contracts import EventKind, Schedule, TaskDue, TaskRegistered, TaskSpec, subject
from contracts.inbound import read_event
from dvp_scheduler.cli.query import _status_cell
from projector import ProjectionState, history, ingest, list_failures, list_tasks, task_view
from projector.checkpoint import Checkpoint, decode_checkpoint, encode_checkpoint
from projector.queries import status_of
from projector.views import next_fire
from tests.poison import POISONS, Poison, registration_message
from ticker import TaskState, apply_event, decide, fires_between, next_due_instant
from ticker._policy import MAX_COUNTED_FIRES

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
TENANT = "acme"
NOWS = (T0, T0 + timedelta(seconds=59), T0 + timedelta(minutes=5), T0 + timedelta(days=400))


def poison_event(poison: Poison, when: datetime = T0) -> TaskRegistered:
    event = read_event(*registration_message(TENANT, poison.task_id, when, poison.changes))
    assert isinstance(event, TaskRegistered)
    return event


def valid_event(task_id: str, when: datetime) -> TaskRegistered:
    event = read_event(*registration_message(TENANT, task_id, when))
    assert isinstance(event, TaskRegistered)
    return event


# -------------------------------------------------------------------------------------------
# the ticker


@pytest.mark.parametrize("poison", POISONS, ids=lambda p: p.task_id)
def test_the_ticker_never_schedules_a_poison_registration(poison: Poison) -> None:
    state = TaskState(TENANT, poison.task_id)
    assert apply_event(state, poison_event(poison), 1)  # its timing changed: it has none
    assert state.invalid_reason is not None
    assert poison.names in state.invalid_reason
    assert state.invalid_registrations == 1
    assert not state.registered
    assert next_due_instant(state) is None
    for now in NOWS:
        assert decide(state, now) is None


def test_a_poison_registration_after_a_valid_one_stops_the_task_until_a_valid_one_comes() -> None:
    [zero] = [p for p in POISONS if p.task_id == "poison.interval-zero"]
    state = TaskState(TENANT, zero.task_id)
    apply_event(state, valid_event(zero.task_id, T0), 1)
    first = decide(state, T0 + timedelta(seconds=60))
    assert isinstance(first, TaskDue)
    apply_event(state, poison_event(zero, T0 + timedelta(seconds=61)), 2)
    assert state.invalid_reason is not None
    for now in NOWS:
        assert decide(state, now) is None  # no run, no skip, no catch-up
    apply_event(state, poison_event(zero, T0 + timedelta(seconds=62)), 3)
    assert state.invalid_registrations == 2  # each invalid registration is counted (and logged)
    again = T0 + timedelta(hours=1)
    apply_event(state, valid_event(zero.task_id, again), 4)
    assert state.invalid_reason is None
    assert state.registered
    assert decide(state, again + timedelta(seconds=30)) is None  # nothing caught up
    fire = decide(state, again + timedelta(seconds=60))
    assert isinstance(fire, TaskDue)
    assert fire.trigger == "schedule"
    assert fire.scheduled_for == again + timedelta(seconds=60)


def test_a_cron_registration_dated_years_back_is_decided_quickly() -> None:
    spec = TaskSpec(
        name="every minute",
        schedule=Schedule(cron_expression="* * * * *"),
        max_retries=0,
        timeout_seconds=5,
    )
    state = TaskState(TENANT, "old")
    apply_event(
        state,
        TaskRegistered(
            tenant_id=TENANT,
            task_id="old",
            occurred_at=datetime(2000, 1, 1, tzinfo=UTC),
            plugin="p",
            plugin_version="1",
            spec=spec,
            definition_hash="0" * 32,
        ),
        1,
    )
    started = time.monotonic()
    fires = fires_between(spec.schedule, datetime(2000, 1, 1, tzinfo=UTC), T0)
    caught_up = decide(state, T0 + timedelta(seconds=90))
    assert time.monotonic() - started < 5  # 14 million fires are not walked one by one
    assert fires.newest == T0
    assert fires.previous == T0 - timedelta(minutes=1)
    assert fires.count > MAX_COUNTED_FIRES
    assert isinstance(caught_up, TaskDue)
    assert caught_up.scheduled_for == T0 + timedelta(minutes=1)
    exact = fires_between(spec.schedule, T0 - timedelta(minutes=10), T0)
    assert (exact.count, exact.newest) == (10, T0)


@pytest.mark.parametrize(
    ("cron", "newest"),
    [
        ("* * 1 * *", datetime(2026, 11, 1, 23, 59, tzinfo=UTC)),  # far back from now
        ("* * 1-10 * *", datetime(2026, 11, 10, 23, 59, tzinfo=UTC)),  # one span holds too many
    ],
)
def test_the_newest_of_many_cron_fires_are_found_back_from_now(cron: str, newest: datetime) -> None:
    schedule = Schedule(cron_expression=cron)
    fires = fires_between(schedule, datetime(2020, 1, 1, tzinfo=UTC), T0)
    assert fires.count > MAX_COUNTED_FIRES
    assert fires.newest == newest
    assert fires.previous == newest - timedelta(minutes=1)


# -------------------------------------------------------------------------------------------
# the projector


def fold_poisons_and_a_healthy_task() -> ProjectionState:
    state = ProjectionState()
    sequence = 0
    for poison in POISONS:
        sequence += 1
        subject_, body, _ = registration_message(TENANT, poison.task_id, T0, poison.changes)
        assert ingest(state, sequence, subject_, body) is not None
    subject_, body, _ = registration_message(TENANT, "healthy", T0)
    ingest(state, sequence + 1, subject_, body)
    return state


def test_the_projector_shows_poison_registrations_as_invalid_and_the_rest_as_usual() -> None:
    state = fold_poisons_and_a_healthy_task()
    views = {v.task_id: v for v in list_tasks(state)}
    assert views["healthy"].status == "idle"
    assert views["healthy"].invalid_reason is None
    assert views["healthy"].next_fire_at == T0 + timedelta(seconds=60)
    for poison in POISONS:
        view = views[poison.task_id]
        assert view.status == "invalid"
        assert view.invalid_reason is not None
        assert poison.names in view.invalid_reason
        assert view.next_fire_at is None
        task = state.task(TENANT, poison.task_id)
        assert task is not None
        assert next_fire(task) is None
        assert history(task) == []
        msgspec.json.encode(task_view(task))  # what the query service and the bucket write
        assert _status_cell(msgspec.to_builtins(view), T0).startswith("invalid: ")
    assert list_failures(state) == []
    assert status_of(state).invalid_tasks == len(POISONS)
    assert state.invalid_tasks == len(POISONS)


def test_checkpoints_keep_invalid_tasks() -> None:
    state = fold_poisons_and_a_healthy_task()
    checkpoint = Checkpoint(stream="s", stream_created=None, state=state)
    again = decode_checkpoint(encode_checkpoint(checkpoint)).state
    assert again == state


def test_a_valid_registration_or_an_unregistration_ends_invalid() -> None:
    state = fold_poisons_and_a_healthy_task()
    [first, second, *_] = POISONS
    subject_, body, _ = registration_message(TENANT, first.task_id, T0 + timedelta(minutes=1))
    ingest(state, 100, subject_, body)
    unregistered = (
        b'{"type":"task.unregistered.v1","tenant_id":"acme","task_id":"%s",'
        b'"occurred_at":"2026-11-24T03:02:00Z","plugin":"poison"}' % second.task_id.encode()
    )
    ingest(state, 101, subject(TENANT, EventKind.UNREGISTERED, second.task_id), unregistered)
    views = {v.task_id: v for v in list_tasks(state, include_unregistered=True)}
    assert views[first.task_id].status == "idle"
    assert views[first.task_id].invalid_reason is None
    assert views[second.task_id].status == "unregistered"
    assert state.invalid_tasks == len(POISONS) - 2


def test_the_status_cell_names_why() -> None:
    cell = _status_cell({"status": "invalid", "invalid_reason": "interval_seconds ..."}, T0)
    assert cell == "invalid: interval_seconds ..."


def test_a_schedule_equal_to_a_valid_one_but_of_the_wrong_types_is_still_refused() -> None:
    """Schedules are judged once each (a ticker reads 100,000 registrations sharing a few
    thousand): ``True == 1``, yet a bool interval is refused after an int one was accepted,
    in either order."""
    from contracts.validation import registration_problem

    def registration(interval: object) -> TaskRegistered:
        schedule = Schedule(interval_seconds=interval)
        spec = TaskSpec(name="t", schedule=schedule, max_retries=0, timeout_seconds=60)
        return TaskRegistered(
            tenant_id="acme",
            task_id="judged.once",
            occurred_at=datetime.now(UTC),
            plugin="p",
            plugin_version="1",
            spec=spec,
            definition_hash="h",
        )

    for first, second in ((7, True), (True, 7)):
        for interval in (first, second, first, second):
            problem = registration_problem(registration(interval))
            if interval is True:
                assert problem is not None
                assert "interval_seconds" in problem
            else:
                assert problem is None
