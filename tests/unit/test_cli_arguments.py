"""Command-line arguments that take their defaults from the environment, and port numbers."""

from __future__ import annotations

import pytest

from dvp_scheduler.cli import build_parser


def test_metrics_are_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DVP_METRICS_PORT", raising=False)
    monkeypatch.delenv("DVP_METRICS_HOST", raising=False)
    args = build_parser().parse_args(["projector"])
    assert args.metrics_port is None
    assert args.metrics_host == "127.0.0.1"


def test_the_environment_sets_the_metrics_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVP_METRICS_PORT", "9464")
    monkeypatch.setenv("DVP_METRICS_HOST", "0.0.0.0")
    parser = build_parser()
    args = parser.parse_args(["ticker"])
    assert (args.metrics_host, args.metrics_port) == ("0.0.0.0", 9464)
    assert parser.parse_args(["ticker", "--metrics-port", "9500"]).metrics_port == 9500


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["executor", "--metrics-port", "70000"], "a port is 0 to 65535, not 70000"),
        (["up", "--port", "http"], "not a port number: 'http'"),
    ],
)
def test_a_bad_port_is_a_usage_error(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert said in capsys.readouterr().err


def test_a_bad_port_in_the_environment_troubles_only_the_commands_that_serve(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DVP_METRICS_PORT", "abc")
    parser = build_parser()
    assert parser.parse_args(["tasks"]).command == "tasks"
    with pytest.raises(SystemExit):
        parser.parse_args(["projector"])
    assert "not a port number: 'abc'" in capsys.readouterr().err
