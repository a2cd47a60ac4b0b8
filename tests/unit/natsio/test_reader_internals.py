"""The nats-py internals the fast reading client relies on: the installed nats-py must be one it
was tested with, with those internals in the expected shape; when not, the check says what is
wrong and readers fall back to nats-py's public ordered consumer."""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.protocol.parser import Parser

from natsio import reader as natsio_reader
from natsio import reader_client_class
from natsio.reader import TESTED_NATS_PY, _DirectClient, _internals_problems, _is_tested


@pytest.fixture
def fresh_check() -> Iterator[None]:
    """The check as if not yet made in this process (it is made once, then remembered)."""
    natsio_reader._fast_client_usable.cache_clear()
    yield
    natsio_reader._fast_client_usable.cache_clear()


def test_the_installed_nats_py_is_one_the_fast_reader_was_tested_with() -> None:
    # Fails on purpose when nats-py is upgraded: the fast client overrides its internals.
    version = importlib.metadata.version("nats-py")
    assert _is_tested(version), (
        f"nats-py {version} is not among the versions natsio.reader was tested with "
        f"({', '.join(TESTED_NATS_PY)}): run tests/integration/natsio and bench/replay.py, "
        "then add it to TESTED_NATS_PY"
    )
    problems = _internals_problems()
    assert problems == [], (
        f"nats-py {version} changed internals natsio.reader's fast client relies on: "
        f"{'; '.join(problems)}. Adapt natsio.reader._DirectClient and _internals_problems to "
        "them (or drop the fast client), then run tests/integration/natsio and bench/replay.py"
    )


@pytest.mark.usefixtures("fresh_check")
def test_readers_get_the_fast_client_with_the_tested_nats_py(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert reader_client_class() is _DirectClient
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("version", ["2.16", "2.16.0", "2.16.12", "2.16.0rc1"])
def test_a_tested_series_covers_its_patch_releases(version: str) -> None:
    assert _is_tested(version)


@pytest.mark.parametrize("version", ["2.15.0", "2.17.0", "2.160.0", "2.1", "3.0.0", "unknown"])
def test_other_versions_are_not_tested(version: str) -> None:
    assert not _is_tested(version)


def test_an_untested_version_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(natsio_reader, "_installed_nats_py", lambda: "2.17.0")
    assert _internals_problems() == ["it is not among the tested versions (2.16)"]


def test_a_process_msg_with_other_parameters_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    async def process_msg(self: Client, sid: int, subject: bytes, reply: bytes, msg: Any) -> None:
        pass

    monkeypatch.setattr(Client, "_process_msg", process_msg)
    assert _internals_problems() == [
        "Client._process_msg takes (self, sid, subject, reply, msg), "
        "not (self, sid, subject, reply, data, headers)"
    ]


def test_a_process_msg_that_is_not_a_coroutine_function_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def process_msg(
        self: Client, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        pass

    monkeypatch.setattr(Client, "_process_msg", process_msg)
    assert _internals_problems() == ["Client._process_msg is not a coroutine function"]


def test_a_missing_process_msg_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(Client, "_process_msg")
    assert _internals_problems() == ["Client._process_msg is missing"]


def test_a_parser_that_no_longer_calls_process_msg_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def parse(self: Parser, data: bytes = b"") -> None:
        await self.nc._dispatch_msg(data)

    monkeypatch.setattr(Parser, "parse", parse)
    assert _internals_problems() == [
        "the protocol parser (Parser.parse) does not call _process_msg"
    ]


def test_a_subscription_without_id_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def init(self: Subscription, conn: Any, id: int = 0, subject: str = "") -> None:
        self._sid = id  # type: ignore[attr-defined]

    monkeypatch.setattr(Subscription, "__init__", init)
    assert _internals_problems() == ["Subscription does not keep its id in _id"]


@pytest.mark.usefixtures("fresh_check")
def test_on_a_mismatch_readers_get_the_plain_client_and_one_warning_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(natsio_reader, "_installed_nats_py", lambda: "2.17.0")

    assert reader_client_class() is Client
    assert reader_client_class() is Client

    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.levelno == logging.WARNING
    assert warning.name == "dvp_scheduler.natsio"
    message = warning.getMessage()
    assert "nats-py 2.17.0: it is not among the tested versions (2.16)" in message
    assert "nats-py's own ordered consumer" in message
