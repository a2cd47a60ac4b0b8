"""JSON logs carry the event's tenant, task, execution and attempt as fields."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from contracts import TaskError, TaskFailed
from contracts.describe import describe_event, event_log_fields
from dvp_scheduler.cli._common import configure_logging


def test_json_log_lines_have_the_event_fields(capsys: pytest.CaptureFixture[str]) -> None:
    failed = TaskFailed(
        tenant_id="acme", task_id="sync.partner", occurred_at=datetime(2026, 11, 24, tzinfo=UTC),
        execution_id="e1", attempt=2, worker="w", duration_ms=3,
        error=TaskError(kind="raised", message="boom"), reason="aborted",
    )  # fmt: skip
    configure_logging("INFO", "json")
    try:
        logging.getLogger("dvp_scheduler.test").warning(
            "%s", describe_event(failed), extra=event_log_fields(failed)
        )
    finally:
        logging.basicConfig(force=True, handlers=[logging.NullHandler()])
    line = json.loads(capsys.readouterr().err.strip())
    assert line["level"] == "WARNING"
    assert line["message"] == "FAILED      acme/sync.partner  attempt 2: boom (aborted)"
    assert (line["tenant_id"], line["task_id"], line["event"]) == ("acme", "sync.partner", "failed")
    assert (line["execution_id"], line["attempt"]) == ("e1", 2)
