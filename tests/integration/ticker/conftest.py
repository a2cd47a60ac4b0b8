"""Fixtures for the ticker's integration tests."""

from __future__ import annotations

import pytest

from dvp_scheduler.natsserver import NatsServer
from natsio import NatsConnection


@pytest.fixture
def connection(nats_server: NatsServer) -> NatsConnection:
    """Connection settings for tickers under test."""
    return NatsConnection(url=nats_server.url, name="ticker-under-test")
