"""A cancelled execution whose retry waits: the ticker closes it at once and never publishes the
retry (docs/design.md, guarantee 7 and decision 7.13)."""

from __future__ import annotations

from datetime import datetime

from contracts import TaskCancelRequested, TaskDue, TaskFailed, TaskSucceeded, message_id
from tests.unit.ticker.test_policy import at, due_for, every, retry_scheduled, state_for
from ticker import TaskState, apply_event, decide, next_due_instant, retry_due
from ticker._policy import cancelled_retry


def cancel_of(due: TaskDue, when: datetime, *, attempt: int | None = None) -> TaskCancelRequested:
    return TaskCancelRequested(
        tenant_id=due.tenant_id,
        task_id=due.task_id,
        occurred_at=when,
        execution_id=due.execution_id,
        attempt=due.attempt if attempt is None else attempt,
        note="wrong input file",
        actor="ops@host",
    )


def waiting_retry() -> tuple[TaskState, TaskDue]:
    """A task whose fire at 60 s failed; its attempt 2 is due at 600 s."""
    state = state_for(every(3600), at(0))
    due = due_for(at(60))
    apply_event(state, due, 2)
    apply_event(state, retry_scheduled(due, retry_at=at(600)), 3)
    return state, due


def test_a_cancelled_retry_is_closed_at_once_as_the_attempt_that_waited() -> None:
    state, due = waiting_retry()
    assert decide(state, at(100)) is None
    request = cancel_of(due, at(100), attempt=2)
    assert apply_event(state, request, 4), "a cancel of a waiting retry is a timing change"
    assert next_due_instant(state) == at(100)
    closed = decide(state, at(100.01))
    assert isinstance(closed, TaskFailed)
    assert (closed.execution_id, closed.attempt, closed.worker) == (due.execution_id, 2, "")
    assert (closed.error.kind, closed.reason, closed.decision) == ("cancelled", "cancelled", None)
    assert closed.error.message.startswith("cancelled by ops@host: wrong input file")
    # The outcome id of the attempt that waited: an executor's outcome of it cannot be kept too.
    assert message_id(closed) == f"outcome:{due.execution_id}:2"
    apply_event(state, closed, 5)
    assert state.running == {}
    assert state.retried == {}
    assert state.cancels == {}
    assert next_due_instant(state) == at(3600), "back to the schedule"
    assert retry_due(state, retry_scheduled(due, retry_at=at(600)), at(600)) is None


def test_a_cancel_of_an_earlier_attempt_covers_the_retry_that_follows_it() -> None:
    state = state_for(every(3600), at(0))
    due = due_for(at(60))
    apply_event(state, due, 2)
    # Asked while attempt 1 ran; its executor recorded a retry before it heard of it.
    assert not apply_event(state, cancel_of(due, at(61)), 3), "nothing waits yet"
    assert apply_event(state, retry_scheduled(due, retry_at=at(600)), 4)
    closed = decide(state, at(62))
    assert isinstance(closed, TaskFailed)
    assert closed.attempt == 2


def test_the_retry_relay_closes_what_it_learnt_of_by_looking_up_and_skips_what_ended() -> None:
    state, due = waiting_retry()
    retry = retry_scheduled(due, retry_at=at(600))
    # The state does not know the request (a restart read only the newest cancel message).
    request = cancel_of(due, at(100), attempt=2)
    closed = retry_due(state, retry, at(600), cancel=request)
    assert closed == cancelled_retry(state, due.execution_id, 1, request, at(600))
    assert retry_due(state, retry, at(600), cancel=request, ended=True) is None
    # A request for another execution, or one from a later attempt on, does not apply.
    other = cancel_of(due_for(at(3660)), at(100))
    assert isinstance(retry_due(state, retry, at(600), cancel=other), TaskDue)
    later = cancel_of(due, at(100), attempt=3)
    assert isinstance(retry_due(state, retry, at(600), cancel=later), TaskDue)


def test_a_published_retry_is_not_closed_and_an_ended_execution_is_not_retried() -> None:
    state, due = waiting_retry()
    retry = retry_scheduled(due, retry_at=at(600))
    following = retry_due(state, retry, at(600))
    assert isinstance(following, TaskDue)
    apply_event(state, following, 4)
    # Once attempt 2 is due, the executor that takes it ends it; the ticker has nothing to do.
    apply_event(state, cancel_of(due, at(601), attempt=2), 5)
    assert decide(state, at(601)) is None
    assert next_due_instant(state) == at(3600)
    succeeded = TaskSucceeded(
        tenant_id=due.tenant_id,
        task_id=due.task_id,
        occurred_at=at(602),
        execution_id=due.execution_id,
        attempt=2,
        worker="w",
        duration_ms=1,
    )
    apply_event(state, succeeded, 6)
    assert retry_due(state, retry, at(603)) is None


def test_a_cancel_of_an_execution_the_ticker_does_not_know_changes_nothing() -> None:
    state, _ = waiting_retry()
    stranger = due_for(at(7200))
    assert not apply_event(state, cancel_of(stranger, at(100)), 4)
    assert state.cancels == {}
    assert decide(state, at(100)) is None
