"""Bad input is terminated and counted, an unowned task waits for its owner; long attempts
heartbeat; a redelivered attempt whose
outcome is already recorded is not recorded twice; a plugin blocking the loop is named."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime

import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, StreamInfo

from contracts import (
    STREAM_NAME,
    TaskDue,
    TaskStarted,
    TaskSucceeded,
    encode,
    event_headers,
    event_subject,
)
from contracts.stream import executor_durable
from natsio import executor_consumer_config, stream_config
from natsio.provision import ensure_consumer
from tests.integration.executor.conftest import ACK_WAIT, StartExecutor, events_of, publish_due
from tests.plugins.outcomes import OutcomesPlugin
from tests.plugins.slow import SlowPlugin
from tests.support import eventually, read_events

pytestmark = pytest.mark.integration


async def consumer_settled(js: JetStreamContext) -> ConsumerInfo:
    async def settled() -> ConsumerInfo | None:
        info = await js.consumer_info(STREAM_NAME, executor_durable("default"))
        return info if info.num_ack_pending == 0 and info.num_pending == 0 else None

    return await eventually(settled, within=5, message="every TaskDue settled")


async def test_garbage_is_terminated_and_an_unowned_task_waits_for_its_owner(
    js: JetStreamContext,
    consumer: ConsumerInfo,
    start_executor: StartExecutor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dvp_scheduler.executor")
    async with start_executor(plugins=[OutcomesPlugin()]) as executor:
        good = [await publish_due(js, "outcomes.count-items")]
        garbage = await js.publish("dvp.tasks.default.due.outcomes.count-items", b"\x00{not json")
        good.append(await publish_due(js, "outcomes.count-items"))
        ghost = await publish_due(js, "ghost.task")  # no loaded plugin owns it
        await ensure_consumer(js, executor_consumer_config("nobody"))
        await publish_due(js, "outcomes.count-items", tenant_id="nobody")  # tenant not served
        wrong = TaskStarted(
            tenant_id="default",
            task_id="outcomes.count-items",
            occurred_at=datetime.now(UTC),
            execution_id="x",
            attempt=1,
            worker="w",
            deadline=datetime.now(UTC),
        )
        await js.publish("dvp.tasks.default.due.outcomes.count-items", encode(wrong))
        good.append(await publish_due(js, "outcomes.count-items"))

        async def all_good_done() -> bool:
            return executor.stats.succeeded == len(good) and executor.stats.unowned >= 1

        await eventually(all_good_done, within=5, message="good tasks done, the ghost offered")
        assert executor.stats.bad_input == 2  # the garbage and the wrong event: terminated
        info = await js.consumer_info(STREAM_NAME, executor_durable("default"))
        assert info.num_ack_pending == 1, "the ghost's TaskDue waits, given back, not ended"
        nobody = await js.consumer_info(STREAM_NAME, executor_durable("nobody"))
        assert (nobody.num_pending, nobody.delivered.consumer_seq) == (1, 0), "never offered"
    ghost_events = await read_events(js, "dvp.tasks.default.*.ghost.task")
    assert [type(e) for e in ghost_events] == [TaskDue], "no outcome: it waits for an owner"
    assert ghost_events[0] == ghost
    messages = [r.getMessage() for r in caplog.records if r.name == "dvp_scheduler.executor"]
    assert any(
        "dvp.tasks.default.due.outcomes.count-items" in m and f"sequence {garbage.seq})" in m
        for m in messages
    )
    assert any(
        "no loaded plugin owns task 'ghost.task'" in m and "given back" in m for m in messages
    )
    assert any("(task.started.v1 of tenant" in m and "kind 'due'" in m for m in messages)
    assert not any("tenant 'nobody'" in m for m in messages)


async def test_an_unowned_task_runs_once_an_executor_that_owns_it_appears(
    js: JetStreamContext, consumer: ConsumerInfo, start_executor: StartExecutor
) -> None:
    async with start_executor(plugins=[]) as bare:
        due = await publish_due(js, "outcomes.count-items")

        async def offered() -> bool:
            return bare.stats.unowned >= 1

        await eventually(offered, within=5, message="offered to the executor without the plugin")
    async with start_executor(plugins=[OutcomesPlugin()]) as owner:

        async def ran() -> bool:
            return owner.stats.succeeded == 1

        await eventually(ran, within=15, message="run by the executor that owns it")
    kinds = [type(e).__name__ for e in await events_of(js, due.execution_id)]
    assert kinds == ["TaskDue", "TaskStarted", "TaskSucceeded"]


async def test_heartbeats_keep_a_long_attempt_from_redelivery(
    js: JetStreamContext,
    consumer: ConsumerInfo,
    start_executor: StartExecutor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DVP_TEST_SLOW_SECONDS", str(ACK_WAIT * 2.5))
    async with start_executor(plugins=[SlowPlugin()]) as executor:
        due = await publish_due(js, "slow.reindex")

        async def done() -> bool:
            return executor.stats.succeeded == 1

        await eventually(done, within=ACK_WAIT * 2.5 + 5, message="the long attempt done")
        info = await consumer_settled(js)
    assert info.num_redelivered == 0
    kinds = [type(e).__name__ for e in await events_of(js, due.execution_id)]
    assert kinds == ["TaskDue", "TaskStarted", "TaskSucceeded"]


async def test_redelivered_attempt_whose_outcome_is_recorded_is_not_run_again(
    js: JetStreamContext, start_executor: StartExecutor
) -> None:
    """The first executor recorded the outcome but died before acknowledging; the redelivery
    comes after the duplicate window, so message ids alone would not stop a second outcome."""
    await js.add_stream(dataclasses.replace(stream_config(), duplicate_window=0.5))
    await js.add_consumer(
        STREAM_NAME, dataclasses.replace(executor_consumer_config("default"), ack_wait=ACK_WAIT)
    )
    due = await publish_due(js, "outcomes.count-items")
    # The first executor: takes the attempt, records its outcome, dies without an ack.
    first = await js.pull_subscribe_bind(durable=executor_durable("default"), stream=STREAM_NAME)
    (taken,) = await first.fetch(1, timeout=5)
    assert taken.metadata.num_delivered == 1
    outcome = TaskSucceeded(
        tenant_id=due.tenant_id,
        task_id=due.task_id,
        occurred_at=datetime.now(UTC),
        execution_id=due.execution_id,
        attempt=1,
        worker="first:1",
        duration_ms=3,
        data={"items": 1},
    )
    await js.publish(event_subject(outcome), encode(outcome), headers=event_headers(outcome))
    await first.unsubscribe()
    await asyncio.sleep(0.6)  # the duplicate window (0.5 s) has passed, on purpose
    plugin = OutcomesPlugin()
    async with start_executor(plugins=[plugin]) as executor:

        async def acked() -> bool:
            return executor.stats.already_recorded == 1

        await eventually(acked, within=ACK_WAIT + 5, message="the redelivery acknowledged")
        await consumer_settled(js)
    assert plugin.contexts == []
    assert [type(e).__name__ for e in await events_of(js, due.execution_id)] == [
        "TaskDue",
        "TaskSucceeded",
    ]


async def test_a_redelivered_attempt_is_not_run_again_after_later_fires_ran(
    js: JetStreamContext, start_executor: StartExecutor
) -> None:
    """The outcome was stored, the acknowledgement lost with a broker node; by the redelivery
    (an ack wait later) a later fire of the task has run, so the task's last outcome is no
    longer this attempt's (issue 17: a 1 s task's attempts ran twice in the chaos runs)."""
    await js.add_stream(stream_config())
    await js.add_consumer(
        STREAM_NAME, dataclasses.replace(executor_consumer_config("default"), ack_wait=ACK_WAIT)
    )
    due = await publish_due(js, "outcomes.count-items")
    first = await js.pull_subscribe_bind(durable=executor_durable("default"), stream=STREAM_NAME)
    (taken,) = await first.fetch(1, timeout=5)
    for execution in (due, await publish_due(js, "outcomes.count-items")):
        outcome = TaskSucceeded(
            tenant_id=execution.tenant_id,
            task_id=execution.task_id,
            occurred_at=datetime.now(UTC),
            execution_id=execution.execution_id,
            attempt=1,
            worker="first:1",
            duration_ms=3,
        )
        await js.publish(event_subject(outcome), encode(outcome), headers=event_headers(outcome))
    await first.unsubscribe()
    assert taken.metadata.sequence.stream < (await js.stream_info(STREAM_NAME)).state.last_seq
    async with start_executor(plugins=[OutcomesPlugin()]) as executor:
        await eventually(
            lambda: executor.stats.already_recorded == 1,
            within=ACK_WAIT + 5,
            message="the redelivery acknowledged",
        )
        await consumer_settled(js)
    assert [type(e).__name__ for e in await events_of(js, due.execution_id)] == [
        "TaskDue",
        "TaskSucceeded",
    ]


async def test_a_plugin_blocking_the_event_loop_is_named(
    js: JetStreamContext,
    stream: StreamInfo,
    start_executor: StartExecutor,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("DVP_TEST_SLOW_SECONDS", "0.8")
    caplog.set_level(logging.WARNING, logger="dvp_scheduler.executor")
    async with start_executor(
        plugins=[SlowPlugin()], blocked_loop_warning_seconds=0.3, isolation="inline"
    ) as executor:
        await publish_due(js, "slow.blocking-export")

        async def done() -> bool:
            return executor.stats.succeeded == 1

        await eventually(done, within=5, message="the blocking attempt done")
        assert executor.blocked_loop_warnings >= 1
    warnings = [r.getMessage() for r in caplog.records if "blocked for" in r.getMessage()]
    named = [w for w in warnings if "plugin 'slow'" in w]
    assert len(named) == 1, warnings
    assert "tests/plugins/slow.py" in named[0]
    assert "dvp_execute_scheduled_task" in named[0]
    assert len(await read_events(js, "dvp.tasks.default.succeeded.>")) == 1
