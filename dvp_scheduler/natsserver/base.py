"""What every way of running a nats-server offers."""

from __future__ import annotations

from typing import Protocol


class NatsServer(Protocol):
    """A running nats-server with JetStream, reachable at `url`."""

    @property
    def url(self) -> str:
        """The client URL, e.g. ``nats://127.0.0.1:4222``."""
        ...

    def stop(self) -> None:
        """Stop the server and wait for it to exit. Safe to call twice."""
        ...
