"""``dvp-scheduler cancel`` against a real nats-server: a running plugin is cancelled within a
second by whichever executor runs it, an attempt not started yet is ended by the executor that
takes it, a retry waiting for its time is closed by a ticker and never published; each is
recorded as ``TaskCancelRequested`` and then ``TaskFailed`` (kind and reason ``cancelled``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo

from contracts import (
    Event,
    RetryScheduled,
    TaskCancelRequested,
    TaskDue,
    TaskFailed,
    TaskStarted,
)
from dvp_scheduler import operations
from dvp_scheduler.natsserver import NatsServer
from natsio import NatsConnection
from tests.integration.executor.conftest import (
    SpawnExecutor,
    StartExecutor,
    events_of,
    publish_due,
)
from tests.plugins.outcomes import OutcomesPlugin
from tests.support import cli, eventually
from ticker import Ticker, TickerSettings

pytestmark = pytest.mark.integration

SLOW = "tests.plugins.slow:SlowPlugin"


def of_kind(events: list[Event], kind: type[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, kind)]


async def ended(js: JetStreamContext, execution_id: str, within: float = 10.0) -> list[Event]:
    """The execution's events once a ``TaskFailed`` is among them."""

    async def failed() -> list[Event] | None:
        events = await events_of(js, execution_id)
        return events if of_kind(events, TaskFailed) else None

    return await eventually(failed, within=within, message=f"the end of {execution_id}")


async def running(js: JetStreamContext, due: TaskDue) -> TaskStarted:
    async def started() -> TaskStarted | None:
        found = of_kind(await events_of(js, due.execution_id), TaskStarted)
        return found[0] if found else None  # type: ignore[return-value]

    return await eventually(started, within=10, message="the attempt started")


def assert_cancelled_once(events: list[Event], *, note: str) -> TaskFailed:
    """One request, then one ``TaskFailed`` of kind and reason ``cancelled`` within a second,
    and nothing after it: no retry, no further attempt."""
    [request] = of_kind(events, TaskCancelRequested)
    [failed] = of_kind(events, TaskFailed)
    assert isinstance(request, TaskCancelRequested)
    assert isinstance(failed, TaskFailed)
    assert (failed.error.kind, failed.reason, failed.decision) == ("cancelled", "cancelled", None)
    assert failed.error.message.endswith(note) or f": {note}" in failed.error.message
    assert failed.occurred_at - request.occurred_at < timedelta(seconds=1)
    assert events[-1] == failed, "nothing follows the cancel"
    assert not [e for e in events if isinstance(e, TaskDue) and e.attempt > failed.attempt]
    return failed


@pytest.mark.parametrize("isolation", ["process", "inline"])
async def test_cancel_ends_a_running_plugin_within_a_second_and_is_recorded(
    nc: Client,
    js: JetStreamContext,
    consumer: ConsumerInfo,
    start_executor: StartExecutor,
    monkeypatch: pytest.MonkeyPatch,
    isolation: str,
) -> None:
    monkeypatch.setenv("DVP_TEST_SLOW_SECONDS", "60")  # slow.reindex sleeps; 1 retry allowed
    async with start_executor(references=[SLOW], isolation=isolation) as executor:
        due = await publish_due(js, "slow.reindex")
        await running(js, due)
        answer = await operations.cancel(
            nc, due.execution_id, "default", actor="ops@test", note="reindexing the wrong shard"
        )
        events = await ended(js, due.execution_id)
        assert executor.stats.cancelled == 1
    failed = assert_cancelled_once(events, note="reindexing the wrong shard")
    assert failed.error.message == "cancelled by ops@test: reindexing the wrong shard"
    assert (failed.attempt, failed.worker) == (1, executor.worker)
    assert failed.duration_ms < 60_000
    assert answer.startswith(f"cancelled execution {due.execution_id} of default/slow.reindex")
    # Asked again, the answer says that it has ended.
    with pytest.raises(operations.ExecutionEndedError, match="has ended already"):
        await operations.cancel(nc, due.execution_id, None, actor="ops@test")


async def test_whichever_executor_runs_it_cancels_it_on_a_cli_request(
    nats_server: NatsServer,
    js: JetStreamContext,
    consumer: ConsumerInfo,
    spawn_executor: SpawnExecutor,
) -> None:
    env = {"DVP_TEST_SLOW_SECONDS": "60"}
    executors = [spawn_executor(SLOW, env=env) for _ in range(2)]
    due = await publish_due(js, "slow.reindex")
    started = await running(js, due)
    code, out, err = await cli(nats_server, "cancel", due.execution_id, "--note", "stop it")
    assert code == 0, err
    assert out.startswith(f"cancelled execution {due.execution_id}"), out
    failed = assert_cancelled_once(await ended(js, due.execution_id), note="stop it")
    assert isinstance(started, TaskStarted)
    assert failed.worker == started.worker, "the executor that ran it ended it"
    assert all(e.process.poll() is None for e in executors), "both executors go on"


async def test_an_attempt_not_started_yet_is_ended_by_the_executor_that_takes_it(
    nc: Client,
    js: JetStreamContext,
    consumer: ConsumerInfo,
    start_executor: StartExecutor,
) -> None:
    plugin = OutcomesPlugin()
    due = await publish_due(js, "outcomes.count-items")  # no executor runs yet
    answer = await operations.cancel(
        nc, due.execution_id, "default", actor="ops@test", note="not today", wait_seconds=0
    )
    assert "attempt 1 waits for an executor" in answer
    async with start_executor(plugins=[plugin], isolation="inline"):
        events = await ended(js, due.execution_id)
    assert not of_kind(events, TaskStarted), "it never ran"
    assert plugin.contexts == []
    [failed] = of_kind(events, TaskFailed)
    assert isinstance(failed, TaskFailed)
    assert (failed.error.kind, failed.reason) == ("cancelled", "cancelled")
    assert failed.error.message == "cancelled by ops@test: not today (before it started)"


async def test_cancelling_a_pending_retry_prevents_it(
    nats_server: NatsServer,
    nc: Client,
    js: JetStreamContext,
    consumer: ConsumerInfo,
    start_executor: StartExecutor,
) -> None:
    ticker = TickerSettings(connection=NatsConnection(url=nats_server.url, name="ticker"))
    # jitter 0: the default policy retries the first failure 5 s later
    async with start_executor(plugins=[OutcomesPlugin()], jitter=0.0), Ticker(ticker) as tick:
        due = await publish_due(js, "outcomes.return-failure")

        async def retry_waits() -> RetryScheduled | None:
            found = of_kind(await events_of(js, due.execution_id), RetryScheduled)
            return found[0] if found else None  # type: ignore[return-value]

        retry = await eventually(retry_waits, within=10, message="the retry scheduled")
        answer = await operations.cancel(
            nc, due.execution_id, "default", actor="ops@test", note="the service is gone"
        )
        assert answer.startswith(f"cancelled execution {due.execution_id}"), answer
        # Past the retry's time and then some: its attempt is never published.
        wait = (retry.retry_at - retry.occurred_at).total_seconds() + 2  # type: ignore[attr-defined]
        await asyncio.sleep(wait)
        events = await events_of(js, due.execution_id)
        closed_by_this_ticker = tick.stats.cancels_closed
        assert tick.stats.lost_closed == 0
    failed = assert_cancelled_once(events, note="the service is gone")
    assert closed_by_this_ticker == 1
    assert (failed.attempt, failed.worker) == (2, ""), "closed by a ticker: no worker ran it"
    assert "(attempt 2 was waiting for its retry)" in failed.error.message
    assert [e.attempt for e in of_kind(events, TaskDue)] == [1]  # type: ignore[attr-defined]
