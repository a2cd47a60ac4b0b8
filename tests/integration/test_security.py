"""Every command takes the same NATS credentials, from flags or DVP_NATS_* variables."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import nats
import pytest

from contracts import STREAM_NAME
from dvp_scheduler.cli import main
from dvp_scheduler.natsserver import BinaryNatsServer

pytestmark = pytest.mark.integration


@pytest.fixture
def secured() -> Iterator[BinaryNatsServer]:
    server = BinaryNatsServer(extra_args=["--user", "scheduler", "--pass", "s3cret"]).start()
    try:
        yield server
    finally:
        server.stop()


def stream_exists(url: str) -> bool:
    async def check() -> bool:
        nc = await nats.connect(url, user="scheduler", password="s3cret")
        try:
            return (await nc.jetstream().stream_info(STREAM_NAME)).config.name == STREAM_NAME
        finally:
            await nc.close()

    return asyncio.run(check())


def test_user_and_password_from_flags(
    secured: BinaryNatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["init", "--nats-url", secured.url, "--nats-user", "scheduler"]
    assert main([*args, "--nats-password", "s3cret"]) == 0
    assert "created stream DVP_TASKS" in capsys.readouterr().out
    assert stream_exists(secured.url)


def test_credentials_from_the_environment(
    secured: BinaryNatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DVP_NATS_URL", secured.url)
    monkeypatch.setenv("DVP_NATS_USER", "scheduler")
    monkeypatch.setenv("DVP_NATS_PASSWORD", "s3cret")
    assert main(["init"]) == 0
    assert stream_exists(secured.url)


def test_wrong_credentials_fail_at_once_with_a_clear_error(
    secured: BinaryNatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--nats-url", secured.url, "--nats-user", "scheduler", "--nats-password", "wrong"]
    assert main(["init", *args]) == 2
    assert main(["tasks", *args]) == 2
    errors = capsys.readouterr().err
    assert errors.count(f"cannot connect to NATS at {secured.url}") == 2
    assert "Authorization Violation" in errors


def test_an_unreachable_server_is_reported_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"nats://127.0.0.1:{probe.getsockname()[1]}"
    started = time.monotonic()
    assert main(["tasks", "--nats-url", url]) == 2
    assert time.monotonic() - started < 10
    assert f"cannot connect to NATS at {url}" in capsys.readouterr().err
