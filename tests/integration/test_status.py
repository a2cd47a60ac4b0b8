"""``dvp-scheduler status`` against a real server: the stream, the queued work, the projector."""

from __future__ import annotations

import json

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from dvp_scheduler.natsserver import NatsServer
from natsio import NatsConnection
from natsio.provision import prepare_stream
from projector import Projector, ProjectorSettings
from tests.integration.projector.test_projector import caught_up, publish
from tests.support import cli
from tests.unit.projector import events as ev

pytestmark = pytest.mark.integration


async def test_without_a_stream_it_says_what_to_do(nats_server: NatsServer) -> None:
    code, _, err = await cli(nats_server, "status")
    assert code == 2
    assert "no stream DVP_TASKS" in err
    assert "dvp-scheduler init" in err


async def test_queued_work_and_the_projectors_lag(
    nats_server: NatsServer, nc: Client, js: JetStreamContext
) -> None:
    await prepare_stream(js, tenants=(ev.TENANT,))
    last = await publish(
        js,
        [
            ev.registered(),
            ev.registered(task="report.daily"),
            ev.due(ev.at(300)),
            ev.due(ev.at(300), task="report.daily"),
        ],
    )

    code, out, _ = await cli(nats_server, "status", "--json")
    assert code == 0
    before = json.loads(out)
    assert before["last_sequence"] == last
    assert before["due_queued"] == 2  # both TaskDue wait for an executor
    assert before["attempts_running"] == 0
    assert before["retries_waiting"] is None  # no ticker ever ran
    assert before["projector_sequence"] is None

    settings = ProjectorSettings(connection=NatsConnection(url=nats_server.url), mirror=False)
    async with Projector(settings):
        await caught_up(nc, last)
        code, out, _ = await cli(nats_server, "status", "--json")
        assert code == 0
        after = json.loads(out)
        assert after["projector_sequence"] == last
        assert after["projector_lag"] == 0
        assert after["tasks"] == 2

        code, out, _ = await cli(nats_server, "status")
        assert code == 0
        assert "2 TaskDue queued" in out
        assert f"tenant {ev.TENANT}: 2 TaskDue wait for an executor" in out
        assert f"projector  at sequence {last} (0 behind), 2 task(s)" in out
