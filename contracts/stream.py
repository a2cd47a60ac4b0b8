"""The names and limits of the JetStream stream and its consumers, in one place.

Plain constants and names: `natsio.provision` turns them into the NATS client's configuration
objects, so that every service creates or checks the stream the same way.
"""

from __future__ import annotations

from typing import Final

from contracts.identifiers import validate_tenant_id

STREAM_NAME: Final = "DVP_TASKS"
"""The one stream that holds every fact."""

DUPLICATE_WINDOW_SECONDS: Final = 15 * 60.0
"""How long JetStream remembers ``Nats-Msg-Id``s to drop duplicate publishes."""

EXECUTOR_DURABLE_PREFIX: Final = "dvp-executor-"
"""Each tenant's ``TaskDue`` work queue is the durable pull consumer ``dvp-executor-<tenant>``."""


def executor_durable(tenant_id: str) -> str:
    """The durable consumer that every executor serving ``tenant_id`` shares: filtered on that
    tenant's due subjects, so work goes only to executors that serve its tenant."""
    return f"{EXECUTOR_DURABLE_PREFIX}{validate_tenant_id(tenant_id)}"


def task_listing_consumer(tenant_id: str) -> str:
    """The consumer that lists ``tenant_id``'s registered tasks for its executors
    (``natsio.listing``): one fixed name per tenant, so that the tenant's grants can name it."""
    return f"dvp-tasks-{validate_tenant_id(tenant_id)}"


EXECUTOR_ACK_WAIT_SECONDS: Final = 30.0
"""A ``TaskDue`` not acknowledged (nor marked in progress) for this long is redelivered."""

EXECUTOR_MAX_ACK_PENDING: Final = 10_000
"""Most ``TaskDue`` messages handed out and not yet acknowledged, across all executors."""

TICKER_RETRY_DURABLE: Final = "dvp-ticker-retries"
"""The durable pull consumer of ``RetryScheduled`` that every ticker shares."""

TICKER_RETRY_ACK_WAIT_SECONDS: Final = 30.0
"""A ``RetryScheduled`` held by a ticker that stopped without handing it back is delivered to
another ticker after this long (a running ticker puts each one back with a delay)."""

TICKER_RETRY_MAX_ACK_PENDING: Final = 100_000
"""Most retries waiting for their ``retry_at`` at once (each is held unacknowledged until then)."""
