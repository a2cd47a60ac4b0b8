"""Command-line arguments that take their defaults from the environment, and port numbers."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dvp_scheduler.cli import build_parser, main
from dvp_scheduler.cli import executor as executor_cli
from dvp_scheduler.cli import projector as projector_cli
from dvp_scheduler.cli._settings import settings_from_arguments
from dvp_scheduler.errors import SettingsError
from executor import ExecutorSettings
from projector import ProjectorSettings


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


def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in list(os.environ):
        if variable.startswith("DVP_"):
            monkeypatch.delenv(variable)


@pytest.mark.parametrize(
    ("command", "model", "flags"),
    [
        (["executor"], ExecutorSettings, executor_cli._FLAGS),
        (["projector"], ProjectorSettings, projector_cli._FLAGS),
    ],
)
def test_the_flags_defaults_are_the_settings_defaults(
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    model: type[ExecutorSettings | ProjectorSettings],
    flags: dict[str, str],
) -> None:
    _clean_environment(monkeypatch)
    args = build_parser().parse_args(command)
    built = settings_from_arguments(model, args, flags)
    reference = model()
    for field in flags:
        if field != "worker":  # host:pid, made per instance
            assert getattr(built, field) == getattr(reference, field), field


def test_a_flag_left_out_comes_from_the_services_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clean_environment(monkeypatch)
    monkeypatch.setenv("DVP_EXECUTOR_CONCURRENCY", "7")
    monkeypatch.setenv("DVP_EXECUTOR_USE_ENTRY_POINTS", "false")
    monkeypatch.setenv("DVP_EXECUTOR_TENANTS", '["acme", "globex"]')
    parser = build_parser()
    settings = settings_from_arguments(
        ExecutorSettings, parser.parse_args(["executor"]), executor_cli._FLAGS
    )
    assert (settings.concurrency, settings.use_entry_points) == (7, False)
    assert settings.tenants == ("acme", "globex")
    flagged = settings_from_arguments(
        ExecutorSettings,
        parser.parse_args(["executor", "--concurrency", "9", "--tenant", "t1"]),
        executor_cli._FLAGS,
    )
    assert (flagged.concurrency, flagged.tenants) == (9, ("t1",))


def test_a_value_the_settings_refuse_names_the_flag_and_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clean_environment(monkeypatch)
    args = build_parser().parse_args(["executor", "--concurrency", "0"])
    with pytest.raises(SettingsError, match=r"--concurrency 0: Input should be greater than"):
        settings_from_arguments(ExecutorSettings, args, executor_cli._FLAGS)
    monkeypatch.setenv("DVP_PROJECTOR_MIRROR", "maybe")
    args = build_parser().parse_args(["projector"])
    with pytest.raises(SettingsError, match="DVP_PROJECTOR_MIRROR 'maybe'"):
        settings_from_arguments(ProjectorSettings, args, projector_cli._FLAGS)


def test_the_help_names_each_default_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["executor", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "(default 32; DVP_EXECUTOR_CONCURRENCY)" in shown
    assert "(default 30; DVP_EXECUTOR_GRACE_SECONDS)" in shown


def test_next_previews_a_cron_expression_without_a_broker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["next", "--cron", "0 9 * * 5L", "--timezone", "Europe/Berlin", "-n", "3"]) == 0
    fires = [datetime.fromisoformat(line) for line in capsys.readouterr().out.split()]
    assert len(fires) == 3
    for fire in fires:
        local = fire.astimezone(ZoneInfo("Europe/Berlin"))
        assert (local.hour, local.minute, local.isoweekday()) == (9, 0, 5)
        assert (local + timedelta(days=7)).month != local.month  # the month's last Friday


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["next", "--cron", "0 0 L-2 * *"], "field 3 (day-of-month) 'L-2': 'L-2' is not supported"),
        (["next"], "next takes a TASK_ID or --cron EXPR"),
        (["next", "some.task", "--cron", "@daily"], "next takes a TASK_ID or --cron EXPR"),
    ],
)
def test_next_says_what_is_wrong_with_its_arguments(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert said in capsys.readouterr().err
