"""The projector: folds the event stream into task state and execution history, serves queries
over NATS, mirrors task state into a key-value bucket, and replays the stream as of any instant.

The fold (`apply`, `ingest`) is pure; the service (`Projector`) and `replay` do the I/O.
"""

from projector.errors import (
    AmbiguousTaskError,
    CheckpointError,
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
    task_key,
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
    "CheckpointError",
    "ExecutionState",
    "ExecutionView",
    "ProjectionState",
    "Projector",
    "ProjectorError",
    "ProjectorSettings",
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
    "task_key",
    "task_view",
]
