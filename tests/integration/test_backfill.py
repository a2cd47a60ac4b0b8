"""``dvp-scheduler backfill`` against a real nats-server: the fires of a range with a DST change
in the task's zone run exactly as ``next`` lists them, once each, a second backfill adds
nothing, and by default the executions run one after another."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from contracts import (
    EventKind,
    Schedule,
    TaskDue,
    TaskRegistered,
    TaskSpec,
    TaskSucceeded,
    decode,
    definition_hash,
    encode,
    event_headers,
    event_subject,
    execution_id_for_fire,
    next_fires,
    subject,
    subject_filter,
)
from dvp_scheduler.backfill import plan_backfill, run_backfill
from dvp_scheduler.natsserver import NatsServer
from tests.support import cli, eventually, read_events

pytestmark = pytest.mark.integration

TENANT, TASK = "default", "reports.hourly"
BERLIN_HOURLY = Schedule(cron_expression="30 * * * *", timezone="Europe/Berlin")


async def publish(js: JetStreamContext, event: object) -> None:
    await js.publish(event_subject(event), encode(event), headers=event_headers(event))  # type: ignore[arg-type]


async def register(js: JetStreamContext, schedule: Schedule, when: datetime) -> None:
    spec = TaskSpec(name="Hourly report", schedule=schedule, max_retries=0, timeout_seconds=60)
    await publish(
        js,
        TaskRegistered(
            tenant_id=TENANT,
            task_id=TASK,
            occurred_at=when,
            plugin="reports",
            plugin_version="1",
            spec=spec,
            definition_hash=definition_hash("reports", "1", spec),
        ),
    )


async def dues(js: JetStreamContext) -> list[TaskDue]:
    events = await read_events(js, subject_filter(TENANT, EventKind.DUE, TASK))
    return [event for event in events if isinstance(event, TaskDue)]


def listed_by_next(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """What ``next`` lists from just before ``start``, up to ``end``."""
    fires = next_fires(schedule, start - timedelta(microseconds=1), 50)
    return [fire for fire in fires if fire < end]


@pytest.mark.parametrize(
    ("start", "end", "dst"),
    [
        # Berlin falls back at 01:00Z: 02:30 local happens twice and fires once.
        (datetime(2026, 10, 24, 22, 0, tzinfo=UTC), datetime(2026, 10, 25, 4, 0, tzinfo=UTC), 5),
        # Berlin springs forward at 01:00Z: 02:30 local never happens; its fire comes at 03:00.
        (datetime(2026, 3, 28, 23, 0, tzinfo=UTC), datetime(2026, 3, 29, 4, 0, tzinfo=UTC), 6),
    ],
)
async def test_a_backfill_across_a_dst_change_runs_what_next_lists_once_and_again_nothing(
    nats_server: NatsServer,
    nc: Client,
    js: JetStreamContext,
    stream: StreamInfo,
    start: datetime,
    end: datetime,
    dst: int,
) -> None:
    await register(js, BERLIN_HOURLY, start - timedelta(days=30))
    expected = listed_by_next(BERLIN_HOURLY, start, end)
    assert len(expected) == dst
    # One fire of the range ran on time: it is not run again.
    ran = expected[1]
    await publish(
        js,
        TaskDue(
            tenant_id=TENANT,
            task_id=TASK,
            occurred_at=ran,
            execution_id=execution_id_for_fire(TENANT, TASK, ran),
            attempt=1,
            trigger="schedule",
            scheduled_for=ran,
            fire_at=ran,
        ),
    )
    now = datetime.now(UTC)
    plan = await plan_backfill(nc, TENANT, TASK, start, end, now=now)
    assert plan.fires == expected
    first = await run_backfill(nc, plan, overlap="allow", rate=None, actor="ops@test")
    assert first.published == [fire for fire in expected if fire != ran]
    assert first.already == [ran]
    recorded = await dues(js)
    assert sorted(d.scheduled_for for d in recorded) == expected, "each fire once"
    for due in recorded:
        assert due.execution_id == execution_id_for_fire(TENANT, TASK, due.scheduled_for)
        assert due.trigger == ("schedule" if due.scheduled_for == ran else "backfill")
        assert due.attempt == 1
    # Again, beyond what the duplicate window would catch: the fires are found to have run.
    again = await run_backfill(
        nc,
        await plan_backfill(nc, TENANT, TASK, start, end, now=now),
        overlap="allow",
        rate=None,
        actor="ops@test",
    )
    assert (again.published, again.already) == ([], expected)
    assert len(await dues(js)) == len(expected)
    # The command line says the same (a dry run publishes nothing).
    arguments = ["backfill", TASK, "--from", start.isoformat(), "--to", end.isoformat()]
    code, out, err = await cli(nats_server, *arguments, "--dry-run")
    assert code == 0, err
    assert f"{dst} fire(s) of {TENANT}/{TASK}" in out
    assert "0 would run" in out
    assert len(await dues(js)) == len(expected)


async def test_by_default_the_backfilled_executions_run_one_after_another(
    nc: Client, js: JetStreamContext, stream: StreamInfo
) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hourly = Schedule(interval_seconds=3600, offset_seconds=0)  # overlap "skip"
    await register(js, hourly, now - timedelta(days=1))

    async def execute(msg: Msg) -> None:  # an executor that takes 0.2 s per attempt
        due = decode(msg.data)
        assert isinstance(due, TaskDue)
        await asyncio.sleep(0.2)
        done = TaskSucceeded(
            tenant_id=TENANT,
            task_id=TASK,
            occurred_at=datetime.now(UTC),
            execution_id=due.execution_id,
            attempt=1,
            worker="fake",
            duration_ms=200,
        )
        await publish(js, done)

    executor = await nc.subscribe(subject(TENANT, EventKind.DUE, TASK), cb=execute)
    try:
        plan = await plan_backfill(nc, TENANT, TASK, now - timedelta(hours=4), now, now=now)
        report = await run_backfill(nc, plan, overlap="buffer", rate=None, actor="ops@test")
        assert len(report.published) == 4

        async def all_ended() -> list[str] | None:
            events = await read_events(js, f"dvp.tasks.{TENANT}.*.{TASK}")
            found = [type(e).__name__ for e in events if isinstance(e, TaskDue | TaskSucceeded)]
            return found if found.count("TaskSucceeded") == 4 else None

        kinds = await eventually(all_ended, within=5, message="the last execution ended")
    finally:
        await executor.unsubscribe()
    assert kinds == ["TaskDue", "TaskSucceeded"] * 4, "each one after the previous ended"
