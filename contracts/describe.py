"""Events in words: one line for a person, and the fields a log line carries."""

from __future__ import annotations

from typing import Final

from contracts.events import (
    Event,
    RetryScheduled,
    ScheduledRunsChanged,
    TaskCancelRequested,
    TaskDue,
    TaskFailed,
    TaskPaused,
    TaskRegistered,
    TaskResumed,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskUnregistered,
)

_LABELS: Final[dict[type[Event], str]] = {
    TaskRegistered: "registered",
    TaskUnregistered: "unregistered",
    TaskPaused: "paused",
    TaskResumed: "resumed",
    TaskDue: "due",
    TaskStarted: "started",
    TaskSucceeded: "succeeded",
    RetryScheduled: "retry",
    TaskFailed: "FAILED",
    TaskSkipped: "skipped",
    TaskCancelRequested: "cancel",
    ScheduledRunsChanged: "one-off",
}


def describe_event(event: Event) -> str:
    """``<label> <tenant>/<task>  <what happened>``, e.g.
    ``retry default/sync.partner  attempt 1 failed: 429; next in 3s (rate limited)``."""
    match event:
        case TaskRegistered():
            what = f"{event.spec.schedule.describe()} from {event.plugin} {event.plugin_version}"
        case TaskUnregistered():
            what = f"no longer declared by {event.plugin}"
        case TaskPaused() | TaskResumed():
            what = f"{event.note} ({event.actor})" if event.actor else event.note
        case TaskDue():
            what = f"attempt {event.attempt} ({event.trigger})"
        case TaskStarted():
            what = f"attempt {event.attempt} on {event.worker}"
        case TaskSucceeded():
            what = f"attempt {event.attempt} in {event.duration_ms} ms  {event.data or ''}"
        case RetryScheduled():
            what = (
                f"attempt {event.attempt} failed: {event.error.message}; next in "
                f"{event.delay_seconds:g}s ({event.decision.reason})"
            )
        case TaskFailed():
            decided = (
                f"; {event.decision.reason}" if event.decision and event.decision.reason else ""
            )
            what = f"attempt {event.attempt}: {event.error.message} ({event.reason}{decided})"
        case TaskSkipped():
            what = f"fire {event.scheduled_for:%Y-%m-%d %H:%M:%S}Z ({event.reason}) {event.detail}"
        case ScheduledRunsChanged():
            by = f" by {event.actor}" if event.actor else ""
            what = f"run {event.run_id} {event.change}{by}; {len(event.runs)} waiting"
        case TaskCancelRequested():
            by = f" by {event.actor}" if event.actor else ""
            note = f": {event.note}" if event.note else ""
            what = f"execution {event.execution_id} from attempt {event.attempt}{by}{note}"
    label = _LABELS[type(event)]
    return f"{label:<11} {event.tenant_id}/{event.task_id}  {what}".rstrip()


def event_log_fields(event: Event) -> dict[str, object]:
    """Structured fields for a log record: tenant, task, event type, execution and attempt."""
    fields: dict[str, object] = {
        "tenant_id": event.tenant_id,
        "task_id": event.task_id,
        "event": _LABELS[type(event)].lower(),
    }
    execution_id = getattr(event, "execution_id", None)
    if execution_id is not None:
        fields["execution_id"] = execution_id
        fields["attempt"] = getattr(event, "attempt", None)
    return fields
