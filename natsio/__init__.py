"""The one internal package that talks to NATS: connection settings and the stream's and
consumers' configuration. Services use it; `contracts` and the plugin API never import it."""

from natsio.connection import DEFAULT_NATS_URL, NatsConnection
from natsio.provision import (
    executor_consumer_config,
    stream_config,
    ticker_retry_consumer_config,
)
from natsio.reader import (
    OrderedReader,
    ProgressCallback,
    ReadProgress,
    StreamHandler,
    connect_for_reading,
    read_to_end,
    reader_client_class,
)

__all__ = [
    "DEFAULT_NATS_URL",
    "NatsConnection",
    "OrderedReader",
    "ProgressCallback",
    "ReadProgress",
    "StreamHandler",
    "connect_for_reading",
    "executor_consumer_config",
    "read_to_end",
    "reader_client_class",
    "stream_config",
    "ticker_retry_consumer_config",
]
