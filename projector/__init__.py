"""The projector: folds the event stream into task state and execution history, serves queries
over NATS, mirrors task state into a key-value bucket, and replays the stream as of any instant.

The fold (`apply`, `ingest`) is pure; the service (`Projector`) and `replay` do the I/O.
"""

from projector._stats import ProjectorStats
from projector.errors import (
    AmbiguousTaskError,
    ProjectorError,
    QueryError,
    UnknownTaskError,
)
from projector.fold import apply, ingest
from projector.replay import replay
from projector.service import Projector, ProjectorSettings
from projector.state import (
    DEFAULT_HISTORY_LIMIT,
    AttemptState,
    ExecutionState,
    ProjectionState,
    TaskState,
)
from projector.views import (
    AttemptView,
    ExecutionView,
    TaskView,
    find_tasks,
    history,
    list_tasks,
    task_view,
)

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "AmbiguousTaskError",
    "AttemptState",
    "AttemptView",
    "ExecutionState",
    "ExecutionView",
    "ProjectionState",
    "Projector",
    "ProjectorError",
    "ProjectorSettings",
    "ProjectorStats",
    "QueryError",
    "TaskState",
    "TaskView",
    "UnknownTaskError",
    "apply",
    "find_tasks",
    "history",
    "ingest",
    "list_tasks",
    "replay",
    "task_view",
]
