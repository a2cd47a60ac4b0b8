"""Subjects keep dotted task ids whole; ids are safe subject tokens; execution ids are stable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import (
    EventKind,
    InvalidIdentifierError,
    execution_id_for_fire,
    parse_subject,
    subject,
    subject_filter,
    validate_task_id,
    validate_tenant_id,
)

tokens = st.from_regex(r"\A[A-Za-z0-9_-]{1,20}\Z")


def test_dotted_task_ids_stay_whole_at_the_end() -> None:
    name = subject("acme", EventKind.DUE, "cleanup.temp-files")
    assert name == "dvp.tasks.acme.due.cleanup.temp-files"
    assert parse_subject(name) == ("acme", EventKind.DUE, "cleanup.temp-files")


def test_filters() -> None:
    assert subject_filter(kind=EventKind.DUE) == "dvp.tasks.*.due.>"
    assert subject_filter("acme", task_id="cleanup.temp-files") == (
        "dvp.tasks.acme.*.cleanup.temp-files"
    )
    assert subject_filter("acme", EventKind.FAILED) == "dvp.tasks.acme.failed.>"
    assert subject_filter() == "dvp.tasks.*.*.>"


@given(
    tenant=tokens, parts=st.lists(tokens, min_size=1, max_size=4), kind=st.sampled_from(EventKind)
)
def test_subjects_round_trip(tenant: str, parts: list[str], kind: EventKind) -> None:
    task_id = ".".join(parts)
    assert parse_subject(subject(tenant, kind, task_id)) == (tenant, kind, task_id)


@pytest.mark.parametrize(
    "task_id", ["", "a b", "a.*", "a.>", ".a", "a.", "a..b", "ä", "a\nb", "x" * 129, 5]
)
def test_unsafe_task_ids_are_refused(task_id: object) -> None:
    with pytest.raises(InvalidIdentifierError, match="task id"):
        validate_task_id(task_id)  # type: ignore[arg-type]


@pytest.mark.parametrize("tenant_id", ["", "ac.me", "*", ">", "a b"])
def test_unsafe_tenant_ids_are_refused(tenant_id: str) -> None:
    with pytest.raises(InvalidIdentifierError, match="tenant id"):
        validate_tenant_id(tenant_id)


@pytest.mark.parametrize(
    "value", ["dvp.tasks.acme", "other.tasks.a.due.b", "dvp.tasks.acme.exploded.b"]
)
def test_foreign_subjects_are_refused(value: str) -> None:
    with pytest.raises(InvalidIdentifierError, match="subject"):
        parse_subject(value)


def test_execution_id_depends_on_tenant_task_and_fire_instant_only() -> None:
    fire = datetime(2026, 11, 24, 3, tzinfo=UTC)
    same_instant_elsewhere = fire.astimezone(ZoneInfo("Europe/Berlin"))
    first = execution_id_for_fire("acme", "a.b", fire)
    assert first == execution_id_for_fire("acme", "a.b", same_instant_elsewhere)
    assert first != execution_id_for_fire("acme", "a.b", fire + timedelta(seconds=1))
    assert first != execution_id_for_fire("other", "a.b", fire)
    assert first != execution_id_for_fire("acme", "a.c", fire)


@given(
    tenant=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    task=st.from_regex(r"[a-z][a-z0-9._-]{0,40}", fullmatch=True),
    millis=st.integers(min_value=0, max_value=2**42),
)
def test_execution_id_is_the_uuid5_of_tenant_task_and_fire_millisecond(
    tenant: str, task: str, millis: int
) -> None:
    # Pins the hand-written uuid5 to the uuid module's (and so to every id stored before it).
    fire = datetime.fromtimestamp(millis / 1000, UTC)
    expected = uuid.uuid5(
        uuid.UUID("5f0b7a4e-2f7c-4d3e-9a59-3d4f1c2b8e61"), f"{tenant}/{task}/{millis}"
    )
    assert execution_id_for_fire(tenant, task, fire) == str(expected)
