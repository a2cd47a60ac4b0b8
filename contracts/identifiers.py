"""Tenant ids, task ids and execution ids.

Task ids and tenant ids travel inside NATS subjects (``dvp.tasks.<tenant>.<kind>.<task_id>``),
so they are restricted to characters that are safe there. A task id may be dotted
(``cleanup.temp-files``); a tenant id is a single token.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime
from typing import Final

from contracts.errors import InvalidIdentifierError

MAX_ID_LENGTH: Final = 128
"""Longest tenant or task id accepted."""

_TOKEN: Final = r"[A-Za-z0-9_-]+"
_TENANT_RE: Final = re.compile(rf"^{_TOKEN}$")
_TASK_RE: Final = re.compile(rf"^{_TOKEN}(\.{_TOKEN})*$")

_EXECUTION_NAMESPACE: Final = uuid.UUID("5f0b7a4e-2f7c-4d3e-9a59-3d4f1c2b8e61")
_NAMESPACE_BYTES: Final = _EXECUTION_NAMESPACE.bytes


def validate_tenant_id(tenant_id: str) -> str:
    """Return ``tenant_id`` if it is one safe subject token, else raise."""
    _check(tenant_id, _TENANT_RE, "tenant id", "letters, digits, '-' and '_' (no dots)")
    return tenant_id


def validate_task_id(task_id: str) -> str:
    """Return ``task_id`` if it is safe at the end of a subject, else raise."""
    _check(
        task_id,
        _TASK_RE,
        "task id",
        "dot-separated parts of letters, digits, '-' and '_', e.g. 'my-plugin.hourly-sync'",
    )
    return task_id


def _check(value: object, pattern: re.Pattern[str], what: str, allowed: str) -> None:
    if not isinstance(value, str):
        raise InvalidIdentifierError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdentifierError(
            f"{what} {value[:40]!r}... has {len(value)} characters; at most {MAX_ID_LENGTH} allowed"
        )
    if not pattern.match(value):
        raise InvalidIdentifierError(f"{what} {value!r} is not allowed: use {allowed}")


def execution_id_for_fire(tenant_id: str, task_id: str, fire_at: datetime) -> str:
    """The execution id of a scheduled fire: the same for every ticker that computes it.

    Derived from (tenant, task, fire instant to the millisecond), so two tickers firing the same
    schedule at the same instant publish the same id and JetStream keeps one of them.
    """
    millis = round(fire_at.timestamp() * 1000)
    # uuid.uuid5, written out: the same id at a third of the cost (a ticker computes one per
    # fire, 10,000 at once in a burst). tests/unit/test_subjects_and_ids.py pins the equality.
    name = f"{tenant_id}/{task_id}/{millis}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_execution_id() -> str:
    """A fresh, random execution id (manual triggers)."""
    return str(uuid.uuid4())
