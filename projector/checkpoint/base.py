"""Checkpoints: the read model as of a stream sequence, so that a restart does not replay all.

A checkpoint names the stream it was taken from (name and creation instant) and the fold's
format; one that does not match the stream or the code is ignored and the projector replays from
the start, which is always correct, only slower.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Protocol

import msgspec

from projector.errors import CheckpointError
from projector.state import ProjectionState

CHECKPOINT_FORMAT: Final = 4
"""Bump when the state's shape or the fold's meaning changes: older checkpoints are ignored."""


class Checkpoint(msgspec.Struct, kw_only=True):
    """The projection state at ``state.sequence`` of stream ``stream`` created at
    ``stream_created``."""

    format: int = CHECKPOINT_FORMAT
    stream: str
    stream_created: datetime | None
    state: ProjectionState

    @property
    def sequence(self) -> int:
        """The last stream sequence folded into the state."""
        return self.state.sequence


# JSON rather than MessagePack: result data may hold integers beyond 64 bits, which JSON events
# carry and MessagePack cannot; msgspec writes JSON fast enough, and people can read it.
_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Checkpoint)


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    """The checkpoint as JSON bytes."""
    return _encoder.encode(checkpoint)


def decode_checkpoint(data: bytes) -> Checkpoint:
    """Decode a checkpoint; raise `CheckpointError` if it is unreadable or of another format."""
    try:
        checkpoint = _decoder.decode(data)
    except (msgspec.DecodeError, ValueError, TypeError) as error:
        raise CheckpointError(f"checkpoint is unreadable ({error}); replaying instead") from None
    if checkpoint.format != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint has format {checkpoint.format}, this projector writes "
            f"{CHECKPOINT_FORMAT}; replaying instead"
        )
    return checkpoint


class CheckpointStore(Protocol):
    """Where checkpoints live. ``load`` returns ``None`` when there is none."""

    async def load(self) -> bytes | None:
        """The newest checkpoint's bytes, or ``None``."""

    async def save(self, data: bytes) -> None:
        """Replace the checkpoint with ``data``."""
