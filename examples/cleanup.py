"""Removes stale temporary files of each tenant.

In production this runs nightly (``cron_expression="0 3 * * *"``); the demo runs every 5 s.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dvp_cms.plugins.base import Plugin
from dvp_cms.plugins.hookspec import ScheduledTaskHooks

if TYPE_CHECKING:
    from dvp_cms.plugins.context import HookContext
    from dvp_cms.plugins.hooks.scheduled_tasks import (
        ScheduledTaskDefinition,
        TaskExecutionContext,
        TaskResult,
    )

MAX_AGE_SECONDS = 7 * 24 * 3600


class CleanupPlugin(Plugin, ScheduledTaskHooks):
    """Deletes files older than a week from the tenant's scratch directory."""

    name = "cleanup"
    version = "1.0.0"

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.gettempdir()) / "dvp-scratch"

    def dvp_register_scheduled_tasks(self, ctx: "HookContext") -> list["ScheduledTaskDefinition"]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        return [
            ScheduledTaskDefinition(
                task_id="cleanup.temp-files",
                name="Clean temp files",
                schedule=TaskSchedule(interval_seconds=5),
                description="Remove scratch files older than 7 days",
                max_retries=3,
                timeout_seconds=60,
            ),
        ]

    async def dvp_execute_scheduled_task(
        self,
        task: "ScheduledTaskDefinition",
        ctx: "HookContext",
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskResult":
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        if task.task_id != "cleanup.temp-files":
            return TaskResult(success=False, error_message=f"unknown task {task.task_id}")
        scratch = self.root / ctx.tenant_id
        deleted = 0
        cutoff = time.time() - MAX_AGE_SECONDS
        if scratch.is_dir():
            for path in scratch.iterdir():
                if path.is_file() and path.stat().st_mtime < cutoff:
                    os.unlink(path)
                    deleted += 1
        ctx.logger.info("removed %d stale files from %s", deleted, scratch)
        return TaskResult(success=True, data={"deleted": deleted, "directory": str(scratch)})
