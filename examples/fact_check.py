"""Re-verifies stored claims against their sources, so content grows more trustworthy.

Two tasks: a frequent re-check of the claims whose evidence is oldest (every 6 s in the demo;
hourly in production) and a cron digest of what changed (every minute in the demo).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
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

BATCH = 3


@dataclass
class Claim:
    """A statement in published content and the source it rests on."""

    claim_id: str
    text: str
    source: str
    verified_at: datetime | None = None
    still_supported: bool | None = None


def _source_supports(claim: Claim, when: datetime) -> bool:
    """A deterministic stand-in for fetching the source and comparing it with the claim."""
    digest = hashlib.sha256(f"{claim.claim_id}:{when:%Y%m%d%H%M}".encode()).digest()
    return digest[0] % 10 != 0  # about one check in ten finds the source changed


class FactCheckPlugin(Plugin, ScheduledTaskHooks):
    """Keeps published claims backed by current evidence."""

    name = "fact-check"
    version = "0.9.0"

    def __init__(self) -> None:
        self.claims = [
            Claim("c1", "The bridge opened in 1932", "archive/bridge"),
            Claim("c2", "The city has 1.2 million residents", "stats/census"),
            Claim("c3", "The river is 320 km long", "atlas/rivers"),
            Claim("c4", "The museum is free on Sundays", "museum/visit"),
            Claim("c5", "The tram runs every 6 minutes", "transit/timetable"),
        ]
        self.changes: list[str] = []

    def dvp_register_scheduled_tasks(self, ctx: "HookContext") -> list["ScheduledTaskDefinition"]:
        from dvp_cms.plugins.hooks.scheduled_tasks import ScheduledTaskDefinition, TaskSchedule

        return [
            ScheduledTaskDefinition(
                task_id="fact-check.reverify-claims",
                name="Re-verify oldest claims",
                schedule=TaskSchedule(interval_seconds=6),
                description=f"Re-check the {BATCH} claims with the oldest evidence",
                max_retries=3,
                timeout_seconds=20,
            ),
            ScheduledTaskDefinition(
                task_id="fact-check.digest",
                name="Evidence digest",
                schedule=TaskSchedule(cron_expression="* * * * *"),
                description="Summarise claims whose sources changed",
                max_retries=0,
                timeout_seconds=10,
            ),
        ]

    async def dvp_execute_scheduled_task(
        self,
        task: "ScheduledTaskDefinition",
        ctx: "HookContext",
        execution_ctx: "TaskExecutionContext",
    ) -> "TaskResult":
        from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult

        if task.task_id == "fact-check.reverify-claims":
            now = datetime.now(UTC)
            oldest = sorted(
                self.claims, key=lambda c: c.verified_at or datetime.min.replace(tzinfo=UTC)
            )
            flagged = []
            for claim in oldest[:BATCH]:
                await asyncio.sleep(0.01)  # fetching the source
                claim.verified_at = now
                claim.still_supported = _source_supports(claim, now)
                if not claim.still_supported:
                    flagged.append(claim.claim_id)
                    self.changes.append(claim.claim_id)
            return TaskResult(success=True, data={"checked": BATCH, "flagged": flagged})
        if task.task_id == "fact-check.digest":
            changed, self.changes = sorted(set(self.changes)), []
            ctx.logger.info("claims needing review: %s", ", ".join(changed) or "none")
            return TaskResult(success=True, data={"needs_review": changed})
        return TaskResult(success=False, error_message=f"unknown task {task.task_id}")
