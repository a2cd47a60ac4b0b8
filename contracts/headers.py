"""NATS header names used on dvp-scheduler messages."""

from __future__ import annotations

from typing import Final

MSG_ID: Final = "Nats-Msg-Id"
"""JetStream de-duplication id: a second publish with the same id inside the window is dropped."""

EXPECTED_LAST_SUBJECT_SEQUENCE: Final = "Nats-Expected-Last-Subject-Sequence"
"""Optimistic concurrency: the publish is refused unless the subject's last sequence matches."""

EVENT_TYPE: Final = "Dvp-Event-Type"
"""The event's versioned tag (``task.due.v1``), so routers can filter without decoding."""

EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT: Final = "Nats-Expected-Last-Subject-Sequence-Subject"
"""The subject (wildcards allowed) whose last sequence ``EXPECTED_LAST_SUBJECT_SEQUENCE`` checks,
instead of the published subject: the ticker checks all of one task's subjects at once."""

TRACEPARENT: Final = "traceparent"
"""W3C Trace Context: the span an event continues (only when tracing is on; see
``natsio.tracing``). A ``TaskDue`` names its fire, retry or trigger; the executor's events
name the attempt."""

TRACESTATE: Final = "tracestate"
"""W3C Trace Context: vendor data that travels with ``traceparent``."""
