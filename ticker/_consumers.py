"""Each tenant's executor consumer exists before the tenant's first ``TaskDue`` is published.

An executor consumer starts at new messages, so a ``TaskDue`` published before its tenant's
consumer exists would wait for no executor at all. The ticker makes the consumer the first time
it publishes for a tenant (and for every registered tenant at start); executors make those of
their own tenants.
"""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext

from natsio import executor_consumer_config
from natsio.provision import ensure_consumer


class ExecutorConsumers:
    """Which tenants' executor consumers are known to exist; makes the others."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._ready: set[str] = set()
        self._making: dict[str, asyncio.Future[None]] = {}

    def ready(self, tenant_id: str) -> bool:
        """Whether the tenant's consumer is known to exist (no I/O)."""
        return tenant_id in self._ready

    async def ensure(self, tenant_id: str) -> None:
        """Make sure the tenant's consumer exists; one request per tenant however many wait."""
        if tenant_id in self._ready:
            return
        making = self._making.get(tenant_id)
        if making is None:
            making = self._making[tenant_id] = asyncio.ensure_future(self._make(tenant_id))
            making.add_done_callback(lambda _: self._making.pop(tenant_id, None))
        await asyncio.shield(making)

    async def _make(self, tenant_id: str) -> None:
        await ensure_consumer(self._js, executor_consumer_config(tenant_id))
        self._ready.add(tenant_id)
