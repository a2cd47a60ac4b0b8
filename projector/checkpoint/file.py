"""Checkpoints in a local file: for a projector pinned to one machine, or without JetStream
storage to spare."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path


class FileCheckpoints:
    """Keep the checkpoint in ``path``, replaced atomically (write, fsync, rename)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    async def load(self) -> bytes | None:
        """The checkpoint's bytes, or ``None`` if the file does not exist."""
        return await asyncio.to_thread(self._read)

    async def save(self, data: bytes) -> None:
        """Replace the checkpoint with ``data``."""
        await asyncio.to_thread(self._write, data)

    def _read(self) -> bytes | None:
        try:
            return self._path.read_bytes()
        except FileNotFoundError:
            return None

    def _write(self, data: bytes) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temp = self._path.with_suffix(self._path.suffix + ".tmp")
        with temp.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        temp.replace(self._path)
