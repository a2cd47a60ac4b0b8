"""The projector: folds the event stream into task state and execution history, serves queries
over NATS, mirrors task state into a key-value bucket, and replays the stream as of any instant.

The fold (`apply`, `ingest`) is pure; the service (`Projector`) and `replay` do the I/O.
"""

from projector._stats import ProjectorStats
from projector.errors import (
    AmbiguousExecutionError,
    AmbiguousTaskError,
    ProjectorError,
    QueryError,
    UnknownExecutionError,
    UnknownTaskError,
)
from projector.fold import apply, ingest
from projector.replay import replay
from projector.service import Projector, ProjectorSettings
from projector.state import (
    DEFAULT_HISTORY_LIMIT,
    AttemptState,
    ExecutionState,
    OpenExecution,
    ProjectionState,
    TaskState,
)
from projector.views import (
    AttemptView,
    ExecutionView,
    FailureView,
    TaskView,
    find_executions,
    find_tasks,
    history,
    list_failures,
    list_tasks,
    task_view,
)

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "AmbiguousExecutionError",
    "AmbiguousTaskError",
    "AttemptState",
    "AttemptView",
    "ExecutionState",
    "ExecutionView",
    "FailureView",
    "OpenExecution",
    "ProjectionState",
    "Projector",
    "ProjectorError",
    "ProjectorSettings",
    "ProjectorStats",
    "QueryError",
    "TaskState",
    "TaskView",
    "UnknownExecutionError",
    "UnknownTaskError",
    "apply",
    "find_executions",
    "find_tasks",
    "history",
    "ingest",
    "list_failures",
    "list_tasks",
    "replay",
    "task_view",
]
