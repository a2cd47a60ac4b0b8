"""Fixtures for the ticker's integration tests."""

from __future__ import annotations

import pytest

from contracts import NatsConnection
from dvp_scheduler.natsserver import NatsServer


@pytest.fixture
def connection(nats_server: NatsServer) -> NatsConnection:
    """Connection settings for tickers under test."""
    return NatsConnection(url=nats_server.url, name="ticker-under-test")
