"""The plugin API of the reference page: discovery, validation, and the three hooks."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts import Schedule, spread_offset
from dvp_cms.plugins import (
    BadTaskResultError,
    PluginLoadError,
    PluginManager,
    TaskResultFailure,
    TaskTimeoutError,
    discover_plugins,
    load_plugin,
)
from dvp_cms.plugins.base import Plugin
from dvp_cms.plugins.context import HookContext
from dvp_cms.plugins.hooks.scheduled_tasks import (
    ScheduledTaskDefinition,
    TaskExecutionContext,
    TaskResult,
    TaskRetryDecision,
    TaskSchedule,
)
from dvp_cms.plugins.hookspec import ScheduledTaskHooks
from tests.plugins.evidence import (
    ArchivePlugin,
    AsyncPolicyPlugin,
    CredentialsRejectedError,
    MarketFeedPlugin,
)

NOW = datetime(2026, 11, 24, 4, 30, tzinfo=UTC)


def execution(task_id: str, attempt: int = 1) -> TaskExecutionContext:
    return TaskExecutionContext(
        task_id=task_id,
        tenant_id="acme",
        execution_id="e-1",
        attempt=attempt,
        scheduled_for=NOW,
        trigger="schedule",
        deadline=NOW + timedelta(minutes=1),
        max_attempts=5,
    )


class TestPageDataClasses:
    def test_defaults_are_the_pages(self) -> None:
        assert TaskResult(success=True) == TaskResult(True, None, None, None)
        decision = TaskRetryDecision(should_retry=True)
        assert (decision.delay_seconds, decision.abort_remaining, decision.reason) == (0, False, "")
        schedule = TaskSchedule(cron_expression="0 3 * * *")
        assert schedule.interval_seconds is None
        assert schedule.timezone == "UTC"

    def test_definition_takes_the_pages_fields_in_order(self) -> None:
        definition = ScheduledTaskDefinition(
            "x.y", "Y", TaskSchedule(interval_seconds=60), "desc", 2, 30
        )
        assert (definition.description, definition.max_retries, definition.timeout_seconds) == (
            "desc",
            2,
            30,
        )


class TestDiscovery:
    def test_module_attr_loads_a_class_or_an_instance(self) -> None:
        plugin = load_plugin("tests.plugins.evidence:ArchivePlugin")
        assert isinstance(plugin, ArchivePlugin)
        assert plugin.name == "archive"

    @pytest.mark.parametrize(
        ("reference", "expected"),
        [
            ("no-colon", "must look like 'package.module:PluginClass'"),
            ("tests.plugins.nope:X", "importing 'tests.plugins.nope' failed"),
            ("tests.plugins.evidence:Missing", "has no attribute 'Missing'"),
            ("tests.plugins.evidence:QuotaExceededError", "does not subclass"),
            ("tests.plugins.evidence:plugin_factory_attribute", "expected a Plugin"),
        ],
    )
    def test_bad_references_say_what_is_wrong(self, reference: str, expected: str) -> None:
        with pytest.raises(PluginLoadError, match=r"cannot load plugin|must look like") as error:
            load_plugin(reference)
        assert expected in str(error.value)

    def test_a_plugin_that_fails_to_load_does_not_stop_the_others(self) -> None:
        found = discover_plugins(
            [
                "tests.plugins.evidence:ArchivePlugin",
                "tests.plugins.evidence:Missing",
                "tests.plugins.evidence:MarketFeedPlugin",
                "tests.plugins.evidence:ArchivePlugin",
            ],
            use_entry_points=False,
        )
        assert [p.name for p in found.plugins] == ["archive", "market-feed"]
        assert len(found.errors) == 2
        assert "names must be unique" in str(found.errors[1])

    def test_entry_points_are_discovered(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        dist = tmp_path / "evidence_plugins-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: evidence-plugins\nVersion: 1.0\n"
        )
        (dist / "entry_points.txt").write_text(
            "[dvp_cms.plugins]\nmarket = tests.plugins.evidence:MarketFeedPlugin\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        found = discover_plugins()
        assert [p.name for p in found.plugins] == ["market-feed"]
        assert found.errors == []
        assert str(tmp_path) in sys.path


class TestRegistration:
    async def test_page_style_plugins_register_a_cron_and_an_interval_task(self) -> None:
        manager = PluginManager([ArchivePlugin(), MarketFeedPlugin(), AsyncPolicyPlugin()])
        registration = await manager.collect_tasks("acme")
        assert registration.errors == []
        assert registration.warnings == []
        cron = registration.tasks["archive.prune-snapshots"]
        interval = registration.tasks["market-feed.refresh-prices"]
        assert cron.spec.schedule == Schedule(cron_expression="30 4 * * *")
        assert (cron.spec.max_retries, cron.spec.timeout_seconds) == (2, 900.0)
        assert interval.spec.schedule.interval_seconds == 300
        # No offset given: spread over the interval by a stable hash of tenant and task.
        expected = spread_offset("acme", "market-feed.refresh-prices", 300)
        assert interval.spec.schedule.offset_seconds == expected
        assert interval.plugin.name == "market-feed"
        assert len(cron.definition_hash) == 32
        assert cron.definition_hash != interval.definition_hash

    async def test_the_hash_changes_with_the_definition_and_the_plugin_version(self) -> None:
        first = (await PluginManager([ArchivePlugin()]).collect_tasks("acme")).tasks
        again = (await PluginManager([ArchivePlugin()]).collect_tasks("acme")).tasks
        upgraded = ArchivePlugin()
        upgraded.version = "2.2.0"
        later = (await PluginManager([upgraded]).collect_tasks("acme")).tasks
        key = "archive.prune-snapshots"
        assert first[key].definition_hash == again[key].definition_hash
        assert first[key].definition_hash != later[key].definition_hash

    @pytest.mark.parametrize(
        ("definition", "problem"),
        [
            (
                ScheduledTaskDefinition(
                    "bad.both", "B", TaskSchedule(cron_expression="* * * * *", interval_seconds=5)
                ),
                "both of cron_expression and interval_seconds",
            ),
            (
                ScheduledTaskDefinition("bad.neither", "N", TaskSchedule()),
                "neither of cron_expression and interval_seconds",
            ),
            (
                ScheduledTaskDefinition(
                    "bad.cron", "C", TaskSchedule(cron_expression="61 * * * *")
                ),
                "field 1 (minute) '61': 61 is outside 0-59",
            ),
            (
                ScheduledTaskDefinition(
                    "bad.zone", "Z", TaskSchedule(cron_expression="0 3 * * *", timezone="Mars/Base")
                ),
                "unknown time zone 'Mars/Base'",
            ),
            (
                ScheduledTaskDefinition("bad.interval", "I", TaskSchedule(interval_seconds=0)),
                "interval_seconds must be a positive whole number",
            ),
            (
                ScheduledTaskDefinition(
                    "bad.timeout", "T", TaskSchedule(interval_seconds=5), timeout_seconds=0
                ),
                "timeout_seconds must be a number > 0",
            ),
            (
                ScheduledTaskDefinition(
                    "bad.retries", "R", TaskSchedule(interval_seconds=5), max_retries=-1
                ),
                "max_retries must be a whole number >= 0",
            ),
            (
                ScheduledTaskDefinition("bad.sub ject", "S", TaskSchedule(interval_seconds=5)),
                "task id 'bad.sub ject' is not allowed",
            ),
            (
                ScheduledTaskDefinition("bad.>", "W", TaskSchedule(interval_seconds=5)),
                "is not allowed",
            ),
        ],
    )
    async def test_invalid_definitions_are_rejected_and_the_others_register(
        self, definition: ScheduledTaskDefinition, problem: str
    ) -> None:
        class Bad(Plugin, ScheduledTaskHooks):
            name = "bad"

            def dvp_register_scheduled_tasks(
                self, ctx: HookContext
            ) -> list[ScheduledTaskDefinition]:
                good = ScheduledTaskDefinition("bad.fine", "F", TaskSchedule(interval_seconds=9))
                return [definition, good]

        registration = await PluginManager([Bad(), ArchivePlugin()]).collect_tasks("acme")
        assert sorted(registration.tasks) == ["archive.prune-snapshots", "bad.fine"]
        [error] = registration.errors
        message = str(error)
        assert message.startswith(f"plugin 'bad', task {definition.task_id!r}: ")
        assert problem in message

    async def test_explicit_offsets_align_and_crons_take_none(self) -> None:
        class Aligned(Plugin, ScheduledTaskHooks):
            name = "aligned"

            def dvp_register_scheduled_tasks(
                self, ctx: HookContext
            ) -> list[ScheduledTaskDefinition]:
                return [
                    ScheduledTaskDefinition(
                        "aligned.five", "F", TaskSchedule(interval_seconds=300, offset_seconds=0)
                    ),
                    ScheduledTaskDefinition(
                        "aligned.cron",
                        "C",
                        TaskSchedule(cron_expression="0 * * * *", offset_seconds=5),
                    ),
                ]

        registration = await PluginManager([Aligned()]).collect_tasks("acme")
        assert registration.tasks["aligned.five"].spec.schedule.offset_seconds == 0
        [error] = registration.errors
        assert "offset_seconds applies to interval schedules only" in str(error)

    async def test_two_plugins_declaring_one_task_id(self) -> None:
        class Copycat(ArchivePlugin):
            name = "copycat"

        registration = await PluginManager([ArchivePlugin(), Copycat()]).collect_tasks("acme")
        assert registration.tasks["archive.prune-snapshots"].plugin.name == "archive"
        [error] = registration.errors
        assert "plugin 'copycat', task 'archive.prune-snapshots'" in str(error)
        assert "already declared by plugin 'archive'" in str(error)

    async def test_a_task_id_without_the_plugin_prefix_gets_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        class Loose(Plugin, ScheduledTaskHooks):
            name = "loose"

            def dvp_register_scheduled_tasks(
                self, ctx: HookContext
            ) -> list[ScheduledTaskDefinition]:
                return [ScheduledTaskDefinition("sync", "S", TaskSchedule(interval_seconds=60))]

        with caplog.at_level(logging.WARNING):
            registration = await PluginManager([Loose()]).collect_tasks("acme")
        assert "sync" in registration.tasks
        [warning] = registration.warnings
        assert "should start with the plugin name, e.g. 'loose.sync'" in warning
        assert warning in caplog.text

    async def test_a_raising_or_async_register_hook(self) -> None:
        class Broken(Plugin, ScheduledTaskHooks):
            name = "broken"

            def dvp_register_scheduled_tasks(
                self, ctx: HookContext
            ) -> list[ScheduledTaskDefinition]:
                raise RuntimeError("config missing")

        class Later(Plugin, ScheduledTaskHooks):
            name = "later"

            async def dvp_register_scheduled_tasks(  # type: ignore[override]
                self, ctx: HookContext
            ) -> list[ScheduledTaskDefinition]:
                return [ScheduledTaskDefinition("later.job", "J", TaskSchedule(interval_seconds=5))]

        registration = await PluginManager([Broken(), Later()]).collect_tasks("acme")
        assert list(registration.tasks) == ["later.job"]
        assert (
            "plugin 'broken': dvp_register_scheduled_tasks raised RuntimeError: config missing"
            in str(registration.errors[0])
        )

    async def test_an_unsafe_tenant_id_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"tenant id 'ac\.me' is not allowed"):
            await PluginManager([ArchivePlugin()]).collect_tasks("ac.me")


class TestExecuteAndRetryHooks:
    async def test_execute_runs_on_the_owning_plugin_and_returns_a_task_result(self) -> None:
        archive = ArchivePlugin()
        manager = PluginManager([archive, MarketFeedPlugin()])
        task = (await manager.collect_tasks("acme")).tasks["archive.prune-snapshots"]
        result = await manager.execute(task, execution("archive.prune-snapshots", attempt=2))
        assert result == TaskResult(success=True, data={"pruned": 7, "attempt": 2})
        assert archive.pruned == {"acme": 7}

    async def test_a_result_that_is_not_a_task_result_is_an_error(self) -> None:
        class Sloppy(ArchivePlugin):
            async def dvp_execute_scheduled_task(self, task, ctx, execution_ctx):  # type: ignore[no-untyped-def]
                return {"success": True}

        manager = PluginManager([Sloppy()])
        task = (await manager.collect_tasks("acme")).tasks["archive.prune-snapshots"]
        with pytest.raises(BadTaskResultError, match=r"returned dict .* return a TaskResult"):
            await manager.execute(task, execution(task.task_id))

    async def test_rate_limit_gets_a_300s_retry(self) -> None:
        feed = MarketFeedPlugin()
        manager = PluginManager([AsyncPolicyPlugin(), feed])
        task = (await manager.collect_tasks("acme")).tasks["market-feed.refresh-prices"]
        result = await manager.execute(task, execution(task.task_id))
        assert result.success
        from tests.plugins.evidence import QuotaExceededError

        feed.next_error = QuotaExceededError("rate limit exceeded for key k1")
        failed = await manager.execute(task, execution(task.task_id))
        assert failed == TaskResult(
            success=False, error_message="Rate limited: rate limit exceeded for key k1"
        )
        answer = await manager.task_failed(task, TaskResultFailure(failed), execution(task.task_id))
        assert answer is not None
        assert answer.plugin is feed
        assert answer.decision.should_retry
        assert answer.decision.delay_seconds == 300
        assert answer.contract.source == "plugin"
        assert (answer.contract.plugin, answer.contract.plugin_version) == ("market-feed", "0.3.1")

    async def test_authentication_error_aborts(self) -> None:
        manager = PluginManager([MarketFeedPlugin()])
        task = (await manager.collect_tasks("acme")).tasks["market-feed.refresh-prices"]
        answer = await manager.task_failed(
            task, CredentialsRejectedError("401"), execution(task.task_id)
        )
        assert answer is not None
        assert answer.decision == TaskRetryDecision(
            should_retry=False,
            abort_remaining=True,
            reason="Credentials rejected - an operator must renew them",
        )
        assert answer.contract.abort_remaining

    async def test_none_from_every_plugin_means_the_default_policy(self) -> None:
        policy = AsyncPolicyPlugin()
        manager = PluginManager([MarketFeedPlugin(), policy])
        task = (await manager.collect_tasks("acme")).tasks["market-feed.refresh-prices"]
        error = TaskTimeoutError(task.task_id, 60)
        assert await manager.task_failed(task, error, execution(task.task_id)) is None
        # The async hook was awaited (a coroutine is never taken for an answer).
        assert policy.asked == ["market-feed.refresh-prices"]

    async def test_an_async_first_wins_hook_that_answers_wins(self) -> None:
        class Decisive(Plugin, ScheduledTaskHooks):
            name = "decisive"

            async def dvp_task_failed(  # type: ignore[override]
                self,
                ctx: HookContext,
                task: ScheduledTaskDefinition,
                error: Exception,
                execution_ctx: TaskExecutionContext,
            ) -> TaskRetryDecision | None:
                return TaskRetryDecision(should_retry=True, delay_seconds=5, reason="async says so")

        manager = PluginManager([ArchivePlugin(), Decisive()])
        task = (await manager.collect_tasks("acme")).tasks["archive.prune-snapshots"]
        answer = await manager.task_failed(task, RuntimeError("x"), execution(task.task_id))
        assert answer is not None
        assert answer.contract.reason == "async says so"
        assert answer.contract.plugin == "decisive"

    async def test_a_bad_answer_counts_as_none_and_the_next_plugin_is_asked(self) -> None:
        class Wrong(Plugin, ScheduledTaskHooks):
            name = "wrong"

            def dvp_task_failed(  # type: ignore[override]
                self, ctx: HookContext, task: object, error: Exception, execution_ctx: object
            ) -> object:
                return "retry please"

        manager = PluginManager([ArchivePlugin(), Wrong(), MarketFeedPlugin()])
        task = (await manager.collect_tasks("acme")).tasks["archive.prune-snapshots"]
        answer = await manager.task_failed(
            task, CredentialsRejectedError("no"), execution(task.task_id)
        )
        assert answer is not None
        assert answer.plugin.name == "market-feed"
