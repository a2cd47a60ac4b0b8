"""Where the projector keeps its checkpoint: a JetStream object store (default) or a file."""

from projector.checkpoint.base import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    CheckpointStore,
    decode_checkpoint,
    encode_checkpoint,
)
from projector.checkpoint.file import FileCheckpoints
from projector.checkpoint.object_store import CHECKPOINT_OBJECT, ObjectStoreCheckpoints

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_OBJECT",
    "Checkpoint",
    "CheckpointStore",
    "FileCheckpoints",
    "ObjectStoreCheckpoints",
    "decode_checkpoint",
    "encode_checkpoint",
]
