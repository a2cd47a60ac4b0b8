"""The one internal package that talks to NATS: connection settings and the stream's and
consumers' configuration. Services use it; `contracts` and the plugin API never import it."""

from natsio.connection import DEFAULT_NATS_URL, NatsConnection
from natsio.provision import (
    executor_consumer_config,
    stream_config,
    ticker_retry_consumer_config,
)

__all__ = [
    "DEFAULT_NATS_URL",
    "NatsConnection",
    "executor_consumer_config",
    "stream_config",
    "ticker_retry_consumer_config",
]
