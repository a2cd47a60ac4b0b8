"""The executor: loads plugins, publishes their task definitions, and runs ``TaskDue``
attempts from the shared durable consumer with timeouts, heartbeats and retry decisions."""

from executor._stats import ExecutorStats
from executor.errors import (
    BadInputError,
    ExecutorError,
    ExecutorSetupError,
    UnownedTaskError,
)
from executor.outcomes import (
    execution_context,
    is_outcome_of,
    outcome_event,
    started_event,
)
from executor.registrations import KnownTask, PlannedPublish, plan_registrations
from executor.service import Executor
from executor.settings import ExecutorSettings

__all__ = [
    "BadInputError",
    "Executor",
    "ExecutorError",
    "ExecutorSettings",
    "ExecutorSetupError",
    "ExecutorStats",
    "KnownTask",
    "PlannedPublish",
    "UnownedTaskError",
    "execution_context",
    "is_outcome_of",
    "outcome_event",
    "plan_registrations",
    "started_event",
]
