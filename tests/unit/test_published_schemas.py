"""The checked-in event schemas are what the code generates, and they describe the wire."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from contracts import EVENT_TYPES, TaskDue, encode
from contracts.schema import asyncapi_document, event_json_schemas
from dvp_scheduler.cli import main
from dvp_scheduler.cli.schema import schema_files

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events"


def test_checked_in_schemas_match_the_code() -> None:
    expected = schema_files()
    present = {p.name: p.read_text() for p in DOCS.glob("*.json")}
    stale = sorted(name for name in expected if present.get(name) != expected[name])
    extra = sorted(set(present) - set(expected))
    hint = "run: dvp-scheduler schema --output docs/events"
    assert not stale, f"docs/events is out of date for {stale}; {hint}"
    assert not extra, f"docs/events has files no longer generated: {extra}; {hint}"


def test_the_cli_writes_the_same_files(tmp_path: Path) -> None:
    assert main(["schema", "--output", str(tmp_path)]) == 0
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == schema_files()


def test_one_schema_per_event_type_with_its_tag_required() -> None:
    schemas = event_json_schemas()
    assert sorted(schemas) == sorted(EVENT_TYPES)
    for tag, schema in schemas.items():
        name = schema["$ref"].rsplit("/", 1)[-1]
        body = schema["$defs"][name]
        assert body["properties"]["type"] == {"enum": [tag]}
        assert {"type", "tenant_id", "task_id", "occurred_at"} <= set(body["required"])
        assert body["properties"]["occurred_at"] == {"type": "string", "format": "date-time"}


def test_an_encoded_event_has_exactly_the_schemas_properties() -> None:
    now = datetime(2026, 11, 24, 3, tzinfo=UTC)
    body = json.loads(
        encode(
            TaskDue(
                tenant_id="acme",
                task_id="a.b",
                occurred_at=now,
                execution_id="e",
                attempt=1,
                trigger="schedule",
                scheduled_for=now,
                fire_at=now,
            )
        )
    )
    schema = event_json_schemas()["task.due.v1"]["$defs"]["TaskDue"]
    assert set(body) == set(schema["properties"])
    assert set(schema["required"]) <= set(body)


def test_asyncapi_names_every_kind_and_the_stream() -> None:
    document = asyncapi_document()
    assert document["asyncapi"].startswith("3.")
    assert document["channels"]["due"]["address"] == "dvp.tasks.{tenant_id}.due.{task_id}"
    assert len(document["channels"]) == len(EVENT_TYPES)
    assert document["x-jetstream-stream"]["name"] == "DVP_TASKS"
    for message in document["components"]["messages"].values():
        ref = message["payload"]["$ref"].rsplit("/", 1)[-1]
        assert ref in document["components"]["schemas"]


def test_schemas_do_not_depend_on_how_msgspec_lays_out_docstrings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Older msgspec releases kept a docstring's indentation in descriptions, newer ones do
    not: the published files must be the same either way."""

    def indented(node: object) -> object:
        if isinstance(node, dict):
            return {
                key: value.replace("\n", "\n    ")
                if key == "description" and isinstance(value, str)
                else indented(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [indented(item) for item in node]
        return node

    real_schema = msgspec.json.schema
    real_components = msgspec.json.schema_components
    monkeypatch.setattr(msgspec.json, "schema", lambda *a, **k: indented(real_schema(*a, **k)))
    monkeypatch.setattr(
        msgspec.json,
        "schema_components",
        lambda *a, **k: tuple(indented(part) for part in real_components(*a, **k)),
    )
    assert "\\n    " in json.dumps(msgspec.json.schema(TaskDue)), "the stand-in must indent"
    assert schema_files() == {p.name: p.read_text() for p in DOCS.glob("*.json")}
