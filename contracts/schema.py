"""Published schemas of the events: a JSON Schema per event, an AsyncAPI document of subjects.

Both are generated from the msgspec types, never written by hand; ``docs/events/`` holds the
generated files so that every contract change shows up in review.
"""

from __future__ import annotations

import inspect
from typing import Any, Final

import msgspec

from contracts import headers
from contracts.events import EVENT_TYPES, event_kind_of
from contracts.stream import DUPLICATE_WINDOW_SECONDS, STREAM_NAME
from contracts.subjects import ALL_EVENTS, PREFIX, EventKind

ASYNCAPI_VERSION: Final = "3.0.0"

_PUBLISHERS: Final[dict[EventKind, str]] = {
    EventKind.REGISTERED: "executor, when a plugin declares a new or changed task",
    EventKind.UNREGISTERED: "executor, when no plugin declares the task any more",
    EventKind.PAUSED: "operators (dvp-scheduler pause)",
    EventKind.RESUMED: "operators (dvp-scheduler resume)",
    EventKind.DUE: "ticker (schedule, catch-up, retry, one-off run) and operators "
    "(dvp-scheduler trigger, rerun, backfill)",
    EventKind.SKIPPED: "ticker, when a fire is not run (overlap, missed, paused)",
    EventKind.STARTED: "executor, when a worker takes an attempt",
    EventKind.SUCCEEDED: "executor: the attempt succeeded",
    EventKind.RETRY: "executor: the attempt failed and another follows at retry_at",
    EventKind.FAILED: "executor: the attempt failed and no attempt follows (also a ticker, "
    "for a lost attempt or a cancelled retry)",
    EventKind.CANCEL: "operators (dvp-scheduler cancel), asking to cancel an execution",
    EventKind.SCHEDULED: "operators (dvp-scheduler trigger --at, cancel --scheduled) and "
    "tickers (a one-off run fired): the task's one-off runs still to come",
}


def _normalised(node: Any) -> Any:
    """``node`` with every description laid out by `inspect.cleandoc`.

    msgspec copies docstrings into descriptions, and its releases differ in how they keep the
    docstring's indentation; the published files must change only when the contract does.
    """
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else _normalised(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_normalised(item) for item in node]
    return node


def event_json_schemas() -> dict[str, dict[str, Any]]:
    """A standalone JSON Schema (draft 2020-12) per event tag."""
    schemas: dict[str, dict[str, Any]] = {}
    for tag, cls in sorted(EVENT_TYPES.items()):
        schema = _normalised(msgspec.json.schema(cls))
        schemas[tag] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:dvp-scheduler:event:{tag}",
            **schema,
        }
    return schemas


def asyncapi_document() -> dict[str, Any]:
    """An AsyncAPI 3 document: one channel per event kind, its messages, and the stream."""
    classes = [EVENT_TYPES[tag] for tag in sorted(EVENT_TYPES)]
    _, components = msgspec.json.schema_components(
        classes, ref_template="#/components/schemas/{name}"
    )
    components = _normalised(components)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for tag in sorted(EVENT_TYPES):
        cls = EVENT_TYPES[tag]
        kind = event_kind_of(cls)
        messages[tag] = {
            "name": tag,
            "title": cls.__name__,
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "properties": {
                    headers.EVENT_TYPE: {"const": tag, "description": "the event's versioned tag"},
                    headers.MSG_ID: {
                        "type": "string",
                        "description": "JetStream de-duplication id, where the event has one",
                    },
                },
                "required": [headers.EVENT_TYPE],
            },
            "payload": {"$ref": f"#/components/schemas/{cls.__name__}"},
        }
        channels[kind.value] = {
            "address": f"{PREFIX}.{{tenant_id}}.{kind.value}.{{task_id}}",
            "description": f"Published by the {_PUBLISHERS[kind]}.",
            "parameters": {
                "tenant_id": {"description": "tenant id: one token of letters, digits, - and _"},
                "task_id": {
                    "description": "task id: dot-separated tokens, e.g. cleanup.temp-files; "
                    "it is always last, so '>' matches it whole"
                },
            },
            "messages": {tag: {"$ref": f"#/components/messages/{tag}"}},
        }
        operations[f"receive.{kind.value}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{kind.value}"},
            "summary": f"Subscribe to {tag} events",
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "dvp-scheduler task events",
            "version": "1",
            "description": (
                "Every fact of the DVP CMS scheduler, in one JetStream stream. Bodies are JSON "
                "objects with the versioned tag in 'type' and instants as RFC 3339 UTC strings. "
                "Readers must ignore fields they do not know; a change of meaning gets a new tag."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components},
        "x-jetstream-stream": {
            "name": STREAM_NAME,
            "subjects": [ALL_EVENTS],
            "storage": "file",
            "retention": "limits",
            "duplicate_window_seconds": DUPLICATE_WINDOW_SECONDS,
            "allow_direct": True,
        },
    }
