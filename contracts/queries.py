"""Where the projector's read model can be asked or watched: query subjects and the KV bucket.

The projector answers JSON requests on the query subjects (a NATS micro service, so
``nats micro ls`` / ``$SRV.PING`` find it) and mirrors each task's current state into a
JetStream key-value bucket. Replies and bucket values are JSON objects whose fields are
documented in the README (``tasks --json``, ``history --json``). None of these subjects is
under ``dvp.tasks.>``, so none of it lands in the event stream.
"""

from __future__ import annotations

from typing import Final

from contracts.identifiers import validate_task_id, validate_tenant_id

QUERY_SERVICE_NAME: Final = "dvp-projector"
"""The NATS micro service name every projector registers (``$SRV.PING.dvp-projector``)."""

QUERY_PREFIX: Final = "dvp.projector.v1"
"""Every query subject starts with this; a reply format change gets a new version."""

TASKS_QUERY: Final = f"{QUERY_PREFIX}.tasks"
"""Request ``{"tenant_id": str|null, "include_unregistered": bool, "after": str|null}``; reply
``{"sequence": int, "items": [task...], "next": str|null}`` (pass ``next`` as ``after`` for the
following page)."""

HISTORY_QUERY: Final = f"{QUERY_PREFIX}.history"
"""Request ``{"task_id": str, "tenant_id": str|null, "limit": int}``; reply
``{"sequence": int, "items": [execution...], "truncated": bool}``, newest execution first."""

FAILURES_QUERY: Final = f"{QUERY_PREFIX}.failures"
"""Request ``{"tenant_id": str|null, "since": str|null, "limit": int}``; reply
``{"sequence": int, "items": [failure...], "truncated": bool}``: executions that ended failed,
newest first."""

EXECUTION_QUERY: Final = f"{QUERY_PREFIX}.execution"
"""Request ``{"execution_id": str, "tenant_id": str|null}``; reply
``{"sequence": int, "items": [execution...]}``: the executions of that id in any task's history
(one, unless a tenant-less request matches several tenants)."""

STATUS_QUERY: Final = f"{QUERY_PREFIX}.status"
"""Request ``{}``; reply ``{"sequence", "events_applied", "unknown_events", "invalid_messages",
"tasks"}``: how far the projector has read."""

QUERY_QUEUE_GROUP: Final = "dvp-projector"
"""Projectors answer in this queue group, so one of several answers each request."""

CHECKPOINT_BUCKET: Final = "dvp-projector"
"""The object store the projector keeps its checkpoint in."""

TASK_STATE_BUCKET: Final = "dvp-task-state"
"""Key-value bucket with each task's current state, keyed by `task_state_key`."""


def task_state_key(tenant_id: str, task_id: str) -> str:
    """The key of a task in `TASK_STATE_BUCKET`: ``<tenant>.<task_id>`` (watch ``acme.>``)."""
    return f"{validate_tenant_id(tenant_id)}.{validate_task_id(task_id)}"
