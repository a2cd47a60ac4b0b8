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
from projector.reader import (
    OrderedReader,
    ReaderClient,
    ReadProgress,
    connect_for_reading,
    read_to_end,
)
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
    "OrderedReader",
    "ProjectionState",
    "Projector",
    "ProjectorError",
    "ProjectorSettings",
    "QueryError",
    "ReadProgress",
    "ReaderClient",
    "TaskState",
    "TaskView",
    "UnknownTaskError",
    "apply",
    "connect_for_reading",
    "find_tasks",
    "history",
    "ingest",
    "list_tasks",
    "read_to_end",
    "replay",
    "task_key",
    "task_view",
]
