"""The example plugins, tested the way a plugin author would: through
``dvp_cms.plugins.testing`` only, with no engine, stream or service running."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from contracts import default_backoff_seconds
from dvp_cms.plugins import TaskResultFailure, TaskTimeoutError
from dvp_cms.plugins.hooks.scheduled_tasks import TaskResult
from dvp_cms.plugins.testing import registered_tasks, retry_decision, run_task
from examples import fact_check
from examples.cleanup import CleanupPlugin
from examples.fact_check import Claim, FactCheckPlugin
from examples.hourly_sync import AuthenticationError, HourlySyncPlugin

SYNC = "hourly-sync.partner-records"


async def test_the_examples_register_together() -> None:
    tasks = await registered_tasks([CleanupPlugin(), HourlySyncPlugin(), FactCheckPlugin()])
    assert sorted(tasks) == [
        "cleanup.temp-files",
        "fact-check.digest",
        "fact-check.reverify-claims",
        "hourly-sync.partner-records",
    ]
    limits = {task_id: (t.max_retries, t.timeout_seconds) for task_id, t in tasks.items()}
    assert limits == {
        "cleanup.temp-files": (3, 60),
        "fact-check.digest": (0, 10),
        "fact-check.reverify-claims": (3, 20),
        "hourly-sync.partner-records": (2, 30),
    }


class TestCleanup:
    async def test_only_stale_files_of_the_tenant_go(self, tmp_path: Path) -> None:
        scratch = tmp_path / "acme"
        scratch.mkdir()
        (scratch / "fresh.tmp").write_text("x")
        stale = scratch / "stale.tmp"
        stale.write_text("x")
        eight_days_ago = (datetime.now() - timedelta(days=8)).timestamp()
        os.utime(stale, (eight_days_ago, eight_days_ago))
        other_tenant = tmp_path / "default"
        other_tenant.mkdir()
        (other_tenant / "old.tmp").write_text("x")
        os.utime(other_tenant / "old.tmp", (eight_days_ago, eight_days_ago))

        run = await run_task(CleanupPlugin(root=tmp_path), "cleanup.temp-files", tenant_id="acme")

        assert run.succeeded, run.error_message
        assert run.data == {"deleted": 1, "directory": str(scratch)}
        assert sorted(p.name for p in scratch.iterdir()) == ["fresh.tmp"]
        assert (other_tenant / "old.tmp").exists()

    async def test_a_tenant_without_a_scratch_directory_deletes_nothing(
        self, tmp_path: Path
    ) -> None:
        run = await run_task(CleanupPlugin(root=tmp_path), "cleanup.temp-files")
        assert run.data == {"deleted": 0, "directory": str(tmp_path / "default")}

    async def test_failures_follow_the_default_policy_for_three_retries(
        self, tmp_path: Path
    ) -> None:
        plugin = CleanupPlugin(root=tmp_path)
        error = PermissionError("scratch directory is read-only")
        first = await retry_decision(plugin, "cleanup.temp-files", error)
        assert (first.retry, first.decided_by) == (True, None)
        assert first.delay_seconds == default_backoff_seconds(1, 0.0)
        last = await retry_decision(plugin, "cleanup.temp-files", error, attempt=4)
        assert (last.retry, last.give_up_reason) == (False, "exhausted")


class TestHourlySync:
    async def test_a_rate_limited_attempt_is_retried_after_the_plugins_backoff(self) -> None:
        plugin = HourlySyncPlugin()
        first = await run_task(plugin, SYNC, execution_id="e-1")
        assert first.data == {"synced_records": 41}

        limited = await run_task(plugin, SYNC, execution_id="e-2")
        assert limited.error_kind == "returned"
        assert limited.error_message == "Rate limited: 429 Too Many Requests"
        decision = await limited.retry_decision()
        assert (decision.retry, decision.delay_seconds, decision.next_attempt) == (True, 3.0, 2)
        assert (decision.decided_by, decision.reason) == (
            "hourly-sync",
            "Rate limited - backing off",
        )

        retried = await run_task(plugin, SYNC, execution_id="e-2", attempt=2)
        assert retried.data == {"synced_records": 42}

    async def test_refused_credentials_abort_the_execution(self) -> None:
        plugin = HourlySyncPlugin()
        for n in range(1, 4):  # second attempts: the partner rate-limits only first ones
            assert (await run_task(plugin, SYNC, execution_id=f"e-{n}", attempt=2)).succeeded
        refused = await run_task(plugin, SYNC, execution_id="e-4")
        assert refused.error_kind == "raised"
        assert isinstance(refused.exception, AuthenticationError)
        decision = await refused.retry_decision()
        assert (decision.retry, decision.give_up_reason) == (False, "aborted")
        assert decision.reason == "Credentials refused - renew the API key"

    async def test_rate_limits_never_outlast_max_retries(self) -> None:
        limited = TaskResult(success=False, error_message="Rate limited: 429")
        last_retry = await retry_decision(HourlySyncPlugin(), SYNC, limited, attempt=2)
        assert (last_retry.retry, last_retry.delay_seconds) == (True, 3.0)
        exhausted = await retry_decision(HourlySyncPlugin(), SYNC, limited, attempt=3)
        assert (exhausted.retry, exhausted.give_up_reason) == (False, "exhausted")
        assert exhausted.decided_by == "hourly-sync"

    @pytest.mark.parametrize(
        "error",
        [TaskTimeoutError(SYNC, 30), TaskResultFailure(TaskResult(False, error_message="502"))],
    )
    async def test_other_failures_are_left_to_the_default_policy(self, error: Exception) -> None:
        decision = await retry_decision(HourlySyncPlugin(), SYNC, error)
        assert (decision.retry, decision.decided_by) == (True, None)
        assert decision.decision.source == "default"


class TestFactCheck:
    @pytest.fixture(autouse=True)
    def source_of_c2_changed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def supports(claim: Claim, when: datetime) -> bool:
            return claim.claim_id != "c2"

        monkeypatch.setattr(fact_check, "_source_supports", supports)

    async def test_reverify_checks_the_oldest_claims_and_the_digest_reports_changes(
        self,
    ) -> None:
        plugin = FactCheckPlugin()
        first = await run_task(plugin, "fact-check.reverify-claims")
        assert first.data == {"checked": 3, "flagged": ["c2"]}
        second = await run_task(plugin, "fact-check.reverify-claims")
        assert second.data == {"checked": 3, "flagged": []}
        assert all(claim.verified_at is not None for claim in plugin.claims)
        assert [c.claim_id for c in plugin.claims if not c.still_supported] == ["c2"]

        digest = await run_task(plugin, "fact-check.digest")
        assert digest.data == {"needs_review": ["c2"]}
        again = await run_task(plugin, "fact-check.digest")
        assert again.data == {"needs_review": []}

    async def test_the_digest_is_never_retried_but_reverification_is(self) -> None:
        error = ConnectionError("source unreachable")
        digest = await retry_decision(FactCheckPlugin(), "fact-check.digest", error)
        assert (digest.retry, digest.give_up_reason) == (False, "exhausted")
        reverify = await retry_decision(FactCheckPlugin(), "fact-check.reverify-claims", error)
        assert (reverify.retry, reverify.next_attempt, reverify.decided_by) == (True, 2, None)
