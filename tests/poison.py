"""Poison registrations: ``TaskRegistered`` bodies, as raw JSON, that no registration could pass.

Each decodes as an event (the stream holds them as written), so readers must judge the spec
themselves (`contracts.validation.registration_problem`). Shared by the unit and integration tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts import EventKind, subject
from contracts.headers import EVENT_TYPE

LONG_CRON = "0 3 * * " + "1," * 95 + "12"
"""A 200-character cron expression (the limit is 100)."""


@dataclass(frozen=True)
class Poison:
    """One bad registration: its task id, what it changes of a valid spec, what the problem
    message names."""

    task_id: str
    changes: dict[str, Any]
    """Keys of the spec (``schedule.<key>`` for the schedule's); ``None`` removes a key."""
    names: str


POISONS: tuple[Poison, ...] = (
    Poison("poison.interval-zero", {"schedule.interval_seconds": 0}, "positive whole number"),
    Poison("poison.interval-huge", {"schedule.interval_seconds": 10**15}, "too long"),
    Poison("poison.interval-negative", {"schedule.interval_seconds": -60}, "positive whole"),
    Poison(
        "poison.both",
        {"schedule.interval_seconds": 60, "schedule.cron_expression": "* * * * *"},
        "both of cron_expression and interval_seconds",
    ),
    Poison("poison.neither", {"schedule.interval_seconds": None}, "neither of cron_expression"),
    Poison(
        "poison.zone",
        {
            "schedule.interval_seconds": None,
            "schedule.cron_expression": "0 3 * * *",
            "schedule.timezone": "Mars/Olympus",
        },
        "unknown time zone 'Mars/Olympus'",
    ),
    Poison(
        "poison.long-cron",
        {"schedule.interval_seconds": None, "schedule.cron_expression": LONG_CRON},
        f"has {len(LONG_CRON)} characters: at most 100",
    ),
    Poison("poison.jitter", {"schedule.jitter_seconds": 1e300}, "jitter_seconds must be"),
    Poison("poison.catchup", {"schedule.catchup_window_seconds": -1}, "catchup_window_seconds"),
    Poison("poison.offset", {"schedule.offset_seconds": 60.0}, "offset_seconds must be"),
    Poison("poison.timeout", {"timeout_seconds": 1e12}, "timeout_seconds must be a number > 0"),
    Poison("poison.retries", {"max_retries": 10**6}, "max_retries must be a whole number >= 0"),
    Poison("poison.name", {"name": "  "}, "name must be a non-empty string"),
)


def registration_body(
    tenant: str, task_id: str, occurred_at: datetime, changes: dict[str, Any] | None = None
) -> bytes:
    """A ``TaskRegistered`` body of a valid every-minute task, with ``changes`` applied."""
    schedule: dict[str, Any] = {"interval_seconds": 60}
    spec: dict[str, Any] = {
        "name": f"Task {task_id}",
        "schedule": schedule,
        "max_retries": 1,
        "timeout_seconds": 30.0,
    }
    for key, value in (changes or {}).items():
        target, name = (schedule, key.removeprefix("schedule.")) if "." in key else (spec, key)
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    body = {
        "type": "task.registered.v1",
        "tenant_id": tenant,
        "task_id": task_id,
        "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
        "plugin": "poison",
        "plugin_version": "1.0",
        "spec": spec,
        "definition_hash": "0" * 32,
    }
    return json.dumps(body).encode()


def registration_message(
    tenant: str, task_id: str, occurred_at: datetime, changes: dict[str, Any] | None = None
) -> tuple[str, bytes, dict[str, str]]:
    """(subject, body, headers) of a raw ``TaskRegistered``, as a publisher would send it."""
    return (
        subject(tenant, EventKind.REGISTERED, task_id),
        registration_body(tenant, task_id, occurred_at, changes),
        {EVENT_TYPE: "task.registered.v1"},
    )
