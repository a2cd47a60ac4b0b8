"""``dvp_cms.plugins.testing``: plugin tests see what the engine would do."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from contracts import default_backoff_seconds
from dvp_cms.plugins import (
    BadTaskResultError,
    PluginManager,
    TaskDefinitionError,
    TaskNotRegisteredError,
    TaskResultFailure,
    TaskTimeoutError,
    UnserializableResultError,
)
from dvp_cms.plugins.attempts import Failure
from dvp_cms.plugins.base import Plugin
from dvp_cms.plugins.hooks.scheduled_tasks import (
    ScheduledTaskDefinition,
    TaskExecutionContext,
    TaskResult,
    TaskRetryDecision,
    TaskSchedule,
)
from dvp_cms.plugins.hookspec import ScheduledTaskHooks
from dvp_cms.plugins.testing import (
    context_for,
    hook_context,
    registered_tasks,
    retry_decision,
    run_task,
)

if TYPE_CHECKING:
    from dvp_cms.plugins.context import HookContext

NOW = datetime(2026, 11, 24, 4, 30, tzinfo=UTC)


class QuotaError(Exception):
    """The stand-in service refused: over quota."""


class LedgerPlugin(Plugin, ScheduledTaskHooks):
    """One task per way an attempt can end, and a retry policy that reads the error."""

    name = "ledger"
    version = "1.0.0"

    def __init__(self) -> None:
        self.seen: list[TaskExecutionContext] = []
        self.failures: list[Exception] = []

    def dvp_register_scheduled_tasks(self, ctx: HookContext) -> list[ScheduledTaskDefinition]:
        def task(suffix: str, **limits: Any) -> ScheduledTaskDefinition:
            return ScheduledTaskDefinition(
                task_id=f"ledger.{suffix}",
                name=suffix.title(),
                schedule=TaskSchedule(interval_seconds=60),
                **limits,
            )

        return [
            task("balance", max_retries=2, timeout_seconds=45),
            task("quota"),
            task("locked", max_retries=5),
            task("crash"),
            task("hang", timeout_seconds=0.05),
            task("wrong-type"),
            task("not-json"),
        ]

    async def dvp_execute_scheduled_task(
        self, task: ScheduledTaskDefinition, ctx: HookContext, execution_ctx: TaskExecutionContext
    ) -> TaskResult:
        self.seen.append(execution_ctx)
        suffix = task.task_id.removeprefix("ledger.")
        if suffix == "balance":
            return TaskResult(success=True, data={"tenant": ctx.tenant_id, "entries": 12})
        if suffix == "quota":
            return TaskResult(success=False, error_message="quota exceeded for today")
        if suffix == "locked":
            return TaskResult(success=False, error_message="ledger locked by a migration")
        if suffix == "crash":
            raise QuotaError("service answered 429")
        if suffix == "hang":
            await asyncio.sleep(5)
        if suffix == "wrong-type":
            return {"entries": 12}  # type: ignore[return-value]
        return TaskResult(success=True, data={"reporter": self})

    def dvp_task_failed(
        self,
        ctx: HookContext,
        task: ScheduledTaskDefinition,
        error: Exception,
        execution_ctx: TaskExecutionContext,
    ) -> TaskRetryDecision | None:
        self.failures.append(error)
        if "quota" in str(error):
            return TaskRetryDecision(should_retry=True, delay_seconds=120, reason="wait for quota")
        if "locked" in str(error):
            return TaskRetryDecision(should_retry=False, reason="retry after the migration")
        if isinstance(error, QuotaError):
            return TaskRetryDecision(should_retry=False, abort_remaining=True, reason="stop")
        return None


class BystanderPlugin(Plugin, ScheduledTaskHooks):
    """Registers nothing, but answers ``dvp_task_failed`` for everyone."""

    name = "bystander"

    def dvp_task_failed(
        self,
        ctx: HookContext,
        task: ScheduledTaskDefinition,
        error: Exception,
        execution_ctx: TaskExecutionContext,
    ) -> TaskRetryDecision | None:
        return TaskRetryDecision(should_retry=True, delay_seconds=7, reason="bystander")


class BrokenPlugin(Plugin, ScheduledTaskHooks):
    name = "broken"

    def dvp_register_scheduled_tasks(self, ctx: HookContext) -> list[ScheduledTaskDefinition]:
        return [
            ScheduledTaskDefinition("broken.fine", "Fine", TaskSchedule(interval_seconds=60)),
            ScheduledTaskDefinition("broken.never", "Never", TaskSchedule()),
            ScheduledTaskDefinition(
                "broken.slow", "Slow", TaskSchedule(interval_seconds=60), timeout_seconds=0
            ),
        ]


class TestContexts:
    def test_an_execution_context_needs_only_a_task_id(self) -> None:
        before = datetime.now(UTC)
        context = TaskExecutionContext("ledger.balance")
        assert (context.tenant_id, context.attempt, context.trigger) == ("default", 1, "manual")
        assert (context.max_attempts, context.previous_error) == (1, None)
        assert before <= context.scheduled_for <= datetime.now(UTC)
        assert context.scheduled_for.tzinfo is UTC
        assert context.deadline == context.scheduled_for + timedelta(seconds=300)
        assert context.execution_id != TaskExecutionContext("ledger.balance").execution_id

    def test_given_fields_are_kept_and_the_deadline_follows_scheduled_for(self) -> None:
        context = TaskExecutionContext("ledger.balance", attempt=2, scheduled_for=NOW)
        assert context.deadline == NOW + timedelta(seconds=300)
        explicit = TaskExecutionContext(
            "ledger.balance", "acme", "e-1", 3, NOW, "retry", NOW + timedelta(seconds=9), 4, "x"
        )
        assert (explicit.tenant_id, explicit.execution_id, explicit.attempt) == ("acme", "e-1", 3)
        assert (explicit.trigger, explicit.max_attempts, explicit.previous_error) == (
            "retry",
            4,
            "x",
        )
        assert explicit.deadline == NOW + timedelta(seconds=9)

    async def test_context_for_takes_the_limits_of_the_definition(self) -> None:
        definition = (await registered_tasks(LedgerPlugin()))["ledger.balance"]
        first = context_for(definition, tenant_id="acme", scheduled_for=NOW)
        assert (first.task_id, first.tenant_id, first.trigger) == (
            "ledger.balance",
            "acme",
            "schedule",
        )
        assert first.deadline == NOW + timedelta(seconds=45)
        assert first.max_attempts == 3
        retry = context_for(definition, attempt=2, execution_id="e-7", previous_error="boom")
        assert (retry.attempt, retry.trigger, retry.execution_id) == (2, "retry", "e-7")
        assert retry.previous_error == "boom"
        with pytest.raises(ValueError, match="1-based"):
            context_for(definition, attempt=0)

    def test_hook_context_is_the_engines(self) -> None:
        plugin = LedgerPlugin()
        ctx = hook_context(plugin, "acme")
        assert ctx == PluginManager([plugin]).context(plugin, "acme")
        assert (ctx.tenant_id, ctx.plugin_name, ctx.logger.name) == (
            "acme",
            "ledger",
            "dvp_cms.plugins.ledger",
        )
        assert hook_context(plugin).tenant_id == "default"


class TestRegistration:
    async def test_registered_tasks_are_validated_definitions(self) -> None:
        tasks = await registered_tasks(LedgerPlugin())
        assert "ledger.hang" in tasks
        assert tasks["ledger.hang"].timeout_seconds == 0.05
        assert len(tasks) == 7

    async def test_an_invalid_definition_raises_naming_it_and_the_others(self) -> None:
        with pytest.raises(TaskDefinitionError, match=r"'broken'.*'broken\.never'") as error:
            await run_task(BrokenPlugin(), "broken.fine")
        assert "neither of cron_expression and interval_seconds" in str(error.value)
        assert any("broken.slow" in note for note in error.value.__notes__)

    async def test_a_duplicate_across_plugins_is_an_error(self) -> None:
        with pytest.raises(TaskDefinitionError, match="already declared by plugin 'ledger'"):
            await registered_tasks([LedgerPlugin(), LedgerPlugin()])

    async def test_an_unknown_task_names_the_registered_ones(self) -> None:
        with pytest.raises(TaskNotRegisteredError, match=r"'ledger\.balanse'.*'ledger\.balance'"):
            await run_task(LedgerPlugin(), "ledger.balanse")


class TestRunTask:
    async def test_success_records_the_data(self) -> None:
        plugin = LedgerPlugin()
        run = await run_task(plugin, "ledger.balance", tenant_id="acme")
        assert run.succeeded
        assert run.data == {"tenant": "acme", "entries": 12}
        assert (run.error_kind, run.error_message, run.exception) == (None, None, None)
        assert run.duration_ms >= 0
        assert plugin.seen == [run.context]
        assert (run.context.attempt, run.context.max_attempts) == (1, 3)

    async def test_a_returned_failure(self) -> None:
        run = await run_task(LedgerPlugin(), "ledger.quota")
        assert not run.succeeded
        assert run.data is None
        assert run.error_kind == "returned"
        assert run.error_message == "quota exceeded for today"
        assert isinstance(run.exception, TaskResultFailure)
        assert run.exception.result.error_message == "quota exceeded for today"

    async def test_a_raised_exception(self) -> None:
        run = await run_task(LedgerPlugin(), "ledger.crash", attempt=2, execution_id="e-9")
        assert run.error_kind == "raised"
        assert run.error_message == "service answered 429"
        assert isinstance(run.exception, QuotaError)
        assert isinstance(run.result, Failure)
        assert run.result.error.exception_type == f"{__name__}.QuotaError"
        assert (run.context.attempt, run.context.execution_id) == (2, "e-9")

    async def test_a_timeout_cancels_the_attempt(self) -> None:
        run = await run_task(LedgerPlugin(), "ledger.hang")
        assert run.error_kind == "timeout"
        assert isinstance(run.exception, TaskTimeoutError)
        assert run.error_message == "task 'ledger.hang' exceeded its timeout of 0.05s"
        assert run.duration_ms < 2000

    async def test_a_result_of_the_wrong_type(self) -> None:
        run = await run_task(LedgerPlugin(), "ledger.wrong-type")
        assert run.error_kind == "bad_result"
        assert isinstance(run.exception, BadTaskResultError)
        assert "returned dict" in (run.error_message or "")

    async def test_data_that_is_not_json(self) -> None:
        run = await run_task(LedgerPlugin(), "ledger.not-json")
        assert run.error_kind == "bad_result"
        assert isinstance(run.exception, UnserializableResultError)
        assert "TaskResult.data must be a dict" in (run.error_message or "")


class TestRetryDecision:
    async def test_the_default_policy_when_no_plugin_answers(self) -> None:
        decision = await retry_decision(LedgerPlugin(), "ledger.balance", KeyError("row"))
        assert decision.retry
        assert decision.decided_by is None
        assert decision.delay_seconds == default_backoff_seconds(1, 0.0) == 5.0
        assert decision.next_attempt == 2
        assert decision.give_up_reason is None
        assert decision.decision.source == "default"
        later = await retry_decision(
            LedgerPlugin(), "ledger.balance", KeyError("row"), attempt=2, jitter=0.5
        )
        assert later.delay_seconds == default_backoff_seconds(2, 0.5)

    async def test_the_plugin_decides_after_a_returned_failure(self) -> None:
        plugin = LedgerPlugin()
        run = await run_task(plugin, "ledger.quota")
        decision = await run.retry_decision()
        assert (decision.retry, decision.delay_seconds, decision.next_attempt) == (True, 120.0, 2)
        assert (decision.decided_by, decision.reason) == ("ledger", "wait for quota")
        assert plugin.failures == [run.exception]

    async def test_a_failed_task_result_is_passed_on_as_the_engine_does(self) -> None:
        plugin = LedgerPlugin()
        failed = TaskResult(success=False, error_message="quota exceeded")
        decision = await retry_decision(plugin, "ledger.quota", failed)
        assert decision.delay_seconds == 120.0
        assert isinstance(plugin.failures[0], TaskResultFailure)
        with pytest.raises(ValueError, match="success=True"):
            await retry_decision(plugin, "ledger.quota", TaskResult(success=True))

    async def test_abort_remaining_gives_up_at_once(self) -> None:
        run = await run_task(LedgerPlugin(), "ledger.crash")
        decision = await run.retry_decision()
        assert not decision.retry
        assert (decision.give_up_reason, decision.reason) == ("aborted", "stop")
        assert (decision.delay_seconds, decision.next_attempt) == (None, None)

    async def test_a_plugin_may_decline(self) -> None:
        run = await run_task(LedgerPlugin(), "ledger.locked")
        decision = await run.retry_decision()
        assert (decision.retry, decision.give_up_reason) == (False, "declined")
        assert decision.decided_by == "ledger"

    async def test_no_decision_exceeds_max_retries(self) -> None:
        # max_retries=3 (the default): the fourth attempt is the last one.
        third = await retry_decision(LedgerPlugin(), "ledger.quota", KeyError("quota"), attempt=3)
        assert third.retry
        fourth = await retry_decision(LedgerPlugin(), "ledger.quota", KeyError("quota"), attempt=4)
        assert (fourth.retry, fourth.give_up_reason, fourth.decided_by) == (
            False,
            "exhausted",
            "ledger",
        )
        default = await retry_decision(LedgerPlugin(), "ledger.balance", KeyError(), attempt=3)
        assert (default.retry, default.give_up_reason) == (False, "exhausted")
        assert default.reason == "no retries left (2 allowed)"

    async def test_a_timeout_reaches_the_hook_as_a_task_timeout_error(self) -> None:
        plugin = LedgerPlugin()
        run = await run_task(plugin, "ledger.hang")
        decision = await run.retry_decision()
        assert isinstance(plugin.failures[0], TaskTimeoutError)
        assert (decision.retry, decision.decided_by) == (True, None)

    async def test_the_owner_answers_first_then_the_others_in_load_order(self) -> None:
        plugins = [BystanderPlugin(), LedgerPlugin()]
        owner_answers = await retry_decision(plugins, "ledger.quota", KeyError("quota"))
        assert owner_answers.decided_by == "ledger"
        owner_passes = await retry_decision(plugins, "ledger.balance", KeyError("row"))
        assert (owner_passes.decided_by, owner_passes.delay_seconds) == ("bystander", 7.0)

    async def test_a_successful_run_has_nothing_to_decide(self) -> None:
        run = await run_task(LedgerPlugin(), "ledger.balance")
        with pytest.raises(ValueError, match="succeeded"):
            await run.retry_decision()
