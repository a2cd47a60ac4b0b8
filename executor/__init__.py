"""The executor: loads plugins, publishes their task definitions, and runs ``TaskDue``
attempts from the shared durable consumer with timeouts, heartbeats and retry decisions."""

from executor.errors import (
    BadInputError,
    ExecutorError,
    ExecutorSetupError,
    UnknownTaskError,
    UnserializableResultError,
)
from executor.outcomes import (
    AttemptResult,
    Failure,
    Success,
    execution_context,
    is_outcome_of,
    outcome_event,
    result_of_exception,
    result_of_return,
    started_event,
)
from executor.registrations import KnownTask, PlannedPublish, plan_registrations, plan_task
from executor.service import Executor, ExecutorStats
from executor.settings import ExecutorSettings

__all__ = [
    "AttemptResult",
    "BadInputError",
    "Executor",
    "ExecutorError",
    "ExecutorSettings",
    "ExecutorSetupError",
    "ExecutorStats",
    "Failure",
    "KnownTask",
    "PlannedPublish",
    "Success",
    "UnknownTaskError",
    "UnserializableResultError",
    "execution_context",
    "is_outcome_of",
    "outcome_event",
    "plan_registrations",
    "plan_task",
    "result_of_exception",
    "result_of_return",
    "started_event",
]
