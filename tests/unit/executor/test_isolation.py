"""Choosing where attempts run: the setting, its flag, and the plugin instances that a worker
process cannot be given."""

from __future__ import annotations

import os
import threading

import pytest
from pydantic import ValidationError

from dvp_cms.plugins import Plugin
from dvp_scheduler.cli import build_parser
from dvp_scheduler.cli import executor as executor_cli
from dvp_scheduler.cli._settings import settings_from_arguments
from executor import Executor, ExecutorSettings, ExecutorSetupError


class LockedPlugin(Plugin):
    """Holds a lock, which cannot be pickled."""

    name = "locked"
    version = "1.0.0"

    def __init__(self) -> None:
        self.lock = threading.Lock()


def test_attempts_run_in_worker_processes_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DVP_EXECUTOR_ISOLATION", raising=False)
    assert ExecutorSettings().isolation == "process"
    monkeypatch.setenv("DVP_EXECUTOR_ISOLATION", "inline")
    assert ExecutorSettings().isolation == "inline"
    with pytest.raises(ValidationError, match="'process' or 'inline'"):
        ExecutorSettings(isolation="thread")  # type: ignore[arg-type]


def test_the_flag_sets_the_isolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DVP_EXECUTOR_ISOLATION", raising=False)
    args = build_parser().parse_args(["executor", "--isolation", "inline"])
    settings = settings_from_arguments(ExecutorSettings, args, executor_cli._FLAGS)
    assert settings.isolation == "inline"
    up = build_parser().parse_args(["up", "--isolation", "inline"])
    assert up.isolation == "inline"


def test_a_plugin_instance_that_cannot_be_pickled_stops_the_executor_at_once() -> None:
    with pytest.raises(ExecutorSetupError) as caught:
        Executor(ExecutorSettings(isolation="process"), plugins=[LockedPlugin()])
    message = str(caught.value)
    assert "plugin 'locked' (tests.unit.executor.test_isolation.LockedPlugin)" in message
    assert "cannot pickle '_thread.lock' object" in message
    assert "--plugin module:Class" in message
    assert "--isolation inline" in message
    inline = Executor(ExecutorSettings(isolation="inline"), plugins=[LockedPlugin()])
    assert inline.worker_pids == []


def test_an_executor_starts_no_process_before_it_runs() -> None:
    executor = Executor(ExecutorSettings(isolation="process"))
    assert executor.worker_pids == []
    assert executor.stats.workers == 0
    assert os.getpid() not in executor.worker_pids
