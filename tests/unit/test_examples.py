"""The example plugins register cleanly and behave as their docstrings say."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dvp_cms.plugins import PluginManager, TaskResultFailure, discover_plugins
from dvp_cms.plugins.hooks.scheduled_tasks import TaskExecutionContext
from examples.cleanup import CleanupPlugin
from examples.hourly_sync import AuthenticationError

EXAMPLES = [
    "examples.cleanup:CleanupPlugin",
    "examples.hourly_sync:HourlySyncPlugin",
    "examples.fact_check:FactCheckPlugin",
]
NOW = datetime(2026, 11, 24, tzinfo=UTC)


def attempt(task_id: str, execution_id: str, number: int = 1) -> TaskExecutionContext:
    return TaskExecutionContext(
        task_id=task_id,
        tenant_id="default",
        execution_id=execution_id,
        attempt=number,
        scheduled_for=NOW,
        trigger="schedule",
        deadline=NOW + timedelta(seconds=30),
    )


async def test_examples_register_without_errors_or_warnings() -> None:
    found = discover_plugins(EXAMPLES, use_entry_points=False)
    assert found.errors == []
    registration = await PluginManager(found.plugins).collect_tasks("default")
    assert (registration.errors, registration.warnings) == ([], [])
    assert sorted(registration.tasks) == [
        "cleanup.temp-files",
        "fact-check.digest",
        "fact-check.reverify-claims",
        "hourly-sync.partner-records",
    ]


async def test_flaky_sync_is_rate_limited_then_refused() -> None:
    found = discover_plugins(EXAMPLES[1:2], use_entry_points=False)
    manager = PluginManager(found.plugins)
    task = (await manager.collect_tasks("default")).tasks["hourly-sync.partner-records"]
    outcomes = []
    for n in range(1, 8):
        ctx = attempt(task.task_id, f"e{n}")
        try:
            result = await manager.execute(task, ctx)
        except AuthenticationError as error:
            decision = await manager.task_failed(task, error, ctx)
            assert decision is not None
            outcomes.append(("abort", decision.decision.abort_remaining))
            continue
        if result.success:
            outcomes.append(("ok", True))
        else:
            decision = await manager.task_failed(task, TaskResultFailure(result), ctx)
            assert decision is not None
            outcomes.append(("retry", decision.decision.delay_seconds))
    assert outcomes == [
        ("ok", True),
        ("retry", 3),
        ("ok", True),
        ("abort", True),
        ("retry", 3),
        ("ok", True),
        ("ok", True),
    ]


async def test_cleanup_removes_only_stale_files(tmp_path: Path) -> None:
    plugin = CleanupPlugin(root=tmp_path)
    scratch = tmp_path / "default"
    scratch.mkdir()
    (scratch / "fresh.tmp").write_text("x")
    stale = scratch / "stale.tmp"
    stale.write_text("x")
    old = (NOW - timedelta(days=30)).timestamp()

    os.utime(stale, (old, old))
    manager = PluginManager([plugin])
    task = (await manager.collect_tasks("default")).tasks["cleanup.temp-files"]
    result = await manager.execute(task, attempt(task.task_id, "c1"))
    assert result.success
    assert result.data == {"deleted": 1, "directory": str(scratch)}
    assert [p.name for p in scratch.iterdir()] == ["fresh.tmp"]
