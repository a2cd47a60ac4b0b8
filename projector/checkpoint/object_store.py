"""Checkpoints in a JetStream object store bucket: beside the stream, any projector resumes."""

from __future__ import annotations

from typing import Final

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from contracts.queries import CHECKPOINT_BUCKET
from natsio.provision import checkpoint_store_config

"""The object store bucket holding the projector's checkpoint."""

CHECKPOINT_OBJECT: Final = "checkpoint"
"""The object name of the checkpoint inside `CHECKPOINT_BUCKET`."""


class ObjectStoreCheckpoints:
    """Keep the checkpoint as one object (chunked by JetStream, so its size is not bounded by
    the server's max payload) in ``bucket``, created on first use with ``replicas`` (the
    stream's, so that the checkpoint survives what the stream survives)."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        bucket: str = CHECKPOINT_BUCKET,
        name: str = CHECKPOINT_OBJECT,
        replicas: int = 1,
    ) -> None:
        self._js = js
        self._replicas = replicas
        self._bucket = bucket
        self._name = name
        self._store: ObjectStore | None = None

    async def _open(self) -> ObjectStore:
        if self._store is None:
            try:
                self._store = await self._js.object_store(self._bucket)
            except BucketNotFoundError:
                self._store = await self._js.create_object_store(
                    self._bucket, config=checkpoint_store_config(replicas=self._replicas)
                )
        return self._store

    async def load(self) -> bytes | None:
        """The checkpoint's bytes, or ``None`` if there is none yet."""
        try:
            store = await self._js.object_store(self._bucket)
        except BucketNotFoundError:
            return None
        try:
            result = await store.get(self._name)
        except ObjectNotFoundError:
            return None
        return bytes(result.data) if result.data else None

    async def save(self, data: bytes) -> None:
        """Replace the checkpoint with ``data``."""
        store = await self._open()
        await store.put(self._name, data)
