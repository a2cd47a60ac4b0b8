"""The subject is the authority: a body must name its subject's tenant, kind and task."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts import (
    EventDecodeError,
    TaskDue,
    TaskPaused,
    encode,
    event_headers,
    event_subject,
)
from contracts.inbound import SubjectMismatchError, read_event

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
PAUSED = TaskPaused(tenant_id="globex", task_id="sync", occurred_at=NOW, note="forged by acme")


def test_an_event_on_its_own_subject_is_read() -> None:
    body = encode(PAUSED)
    assert read_event(event_subject(PAUSED), body, event_headers(PAUSED)) == PAUSED
    assert read_event(event_subject(PAUSED).encode(), body) == PAUSED


@pytest.mark.parametrize(
    ("subject", "names"),
    [
        ("dvp.tasks.acme.paused.sync", "tenant 'acme'"),  # another tenant's body
        ("dvp.tasks.globex.resumed.sync", "kind 'resumed'"),  # another kind
        ("dvp.tasks.globex.paused.other", "task 'other'"),  # another task
    ],
)
def test_a_body_that_names_another_tenant_kind_or_task_is_refused(subject: str, names: str) -> None:
    with pytest.raises(SubjectMismatchError, match="does not match its subject") as caught:
        read_event(subject, encode(PAUSED))
    assert names in str(caught.value)
    assert "globex" in str(caught.value)


def test_a_forged_due_for_another_tenant_is_refused() -> None:
    due = TaskDue(
        tenant_id="default",
        task_id="t7",
        occurred_at=NOW,
        execution_id="e1",
        attempt=1,
        trigger="manual",
        scheduled_for=NOW,
    )
    with pytest.raises(SubjectMismatchError):
        read_event("dvp.tasks.acme.due.good.t7", encode(due))


def test_a_type_header_that_disagrees_and_a_foreign_subject_are_refused() -> None:
    with pytest.raises(SubjectMismatchError, match="header Dvp-Event-Type"):
        read_event(event_subject(PAUSED), encode(PAUSED), {"Dvp-Event-Type": "task.due.v1"})
    with pytest.raises(SubjectMismatchError, match="not an event subject"):
        read_event("orders.created", encode(PAUSED))
    with pytest.raises(EventDecodeError):
        read_event(event_subject(PAUSED), b"{}")
