"""Executor settings are validated once, at the boundary."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.stream import EXECUTOR_ACK_WAIT_SECONDS
from executor import ExecutorSettings


def test_defaults() -> None:
    settings = ExecutorSettings()
    assert settings.tenants == ("default",)
    assert settings.ack_wait_seconds == EXECUTOR_ACK_WAIT_SECONDS
    assert settings.concurrency >= 1
    assert ":" in settings.worker


def test_tenants_are_checked_and_deduplicated() -> None:
    assert ExecutorSettings(tenants=("acme", "acme", "b")).tenants == ("acme", "b")
    with pytest.raises(ValidationError, match="tenant"):
        ExecutorSettings(tenants=("not a tenant",))


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        ExecutorSettings(concurrency=0)
