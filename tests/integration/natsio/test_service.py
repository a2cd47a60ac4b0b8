"""The lifecycle every service shares (`natsio.service.NatsService`), against a real server."""

from __future__ import annotations

import asyncio
import logging
import socket
from contextlib import suppress

import pytest

from dvp_scheduler.natsserver import NatsServer
from natsio import NatsConnection
from natsio.errors import ServiceFailedError, ServiceNotRunningError, ServiceStartupError
from natsio.service import NatsService
from natsio.settings import ServiceSettings


class Probe(NatsService):
    """A service with one loop that fails on demand and jobs that take as long as asked."""

    service_name = "probe"
    job_noun = "chore"

    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__(settings)
        self.fail_with: asyncio.Future[BaseException] | None = None
        self.closed = False
        self.finished: list[str] = []

    async def _start(self) -> None:
        self.fail_with = asyncio.get_running_loop().create_future()
        self.start_loop(self._loop(), "loop")

    async def _loop(self) -> None:
        assert self.fail_with is not None
        raise await self.fail_with

    async def chore(self, name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.finished.append(name)

    async def _close(self) -> None:
        if self._client is not None:  # the parts are closed before the connection
            assert not self.nc.is_closed
        self.closed = True


def settings_for(server: NatsServer, grace: float = 5.0) -> ServiceSettings:
    return ServiceSettings(connection=NatsConnection(url=server.url), grace_seconds=grace)


async def test_a_failing_loop_stops_the_service_with_its_error(nats_server: NatsServer) -> None:
    service = Probe(settings_for(nats_server))

    async def run_until_the_loop_fails() -> None:
        async with service:
            assert service.fail_with is not None
            service.fail_with.set_result(KeyError("lost the heap"))
            await asyncio.wait_for(service.wait_stopped(), 5)
            assert service.stopping

    with pytest.raises(ServiceFailedError, match="probe stopped") as raised:
        await run_until_the_loop_fails()
    assert isinstance(raised.value.__cause__, KeyError)
    assert service.closed
    with pytest.raises(ServiceNotRunningError):
        service.nc  # noqa: B018 - the property raises outside the block


async def test_jobs_finish_within_the_grace_and_late_ones_are_cancelled(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dvp_scheduler.probe")
    service = Probe(settings_for(nats_server, grace=0.5))
    async with service:
        quick = service.spawn(service.chore("quick", 0.1))
        slow = service.spawn(service.chore("slow", 30))
        service.stop()
    assert service.finished == ["quick"]
    assert quick.done()
    assert not quick.cancelled()
    assert slow.cancelled()
    assert "waiting up to 0.5s for 2 chore(s) in flight" in caplog.text
    assert "cancelling 1 chore(s) still running after the 0.5s grace period" in caplog.text


async def test_a_job_started_during_the_grace_is_waited_for_too(nats_server: NatsServer) -> None:
    service = Probe(settings_for(nats_server, grace=5))

    async def chain() -> None:
        await service.chore("first", 0.1)
        service.spawn(service.chore("second", 0.1))

    async with service:
        service.spawn(chain())
        service.stop()
    assert service.finished == ["first", "second"]


async def test_an_unreachable_server_is_a_startup_error_naming_the_address() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free, and nothing listens on it
    url = f"nats://127.0.0.1:{port}"
    service = Probe(
        ServiceSettings(connection=NatsConnection(url=url), connect_timeout_seconds=1.5)
    )
    with pytest.raises(ServiceStartupError, match=f"cannot connect to NATS at {url}") as raised:
        await service.__aenter__()
    assert "no server answered within 1.5s" in str(raised.value)
    assert service.closed


class Stubborn(Probe):
    """A service whose parts never finish closing and whose job ignores being cancelled."""

    service_name = "stubborn"

    async def _close(self) -> None:
        await asyncio.Event().wait()

    deaf = True

    async def deaf_chore(self) -> None:
        while self.deaf:
            with suppress(asyncio.CancelledError):  # the bug under test: swallowing it
                await asyncio.sleep(30)


async def test_leaving_is_bounded_and_names_what_it_waited_for(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("natsio.service.STOP_STEP_SECONDS", 0.5)
    caplog.set_level(logging.INFO, logger="dvp_scheduler.stubborn")
    service = Stubborn(settings_for(nats_server, grace=0.2))
    started = asyncio.get_running_loop().time()
    async with service:
        deaf = service.spawn(service.deaf_chore())
        service.stop()
    took = asyncio.get_running_loop().time() - started
    # grace 0.2 s, then at most 0.5 s for the cancelled job and 0.5 s for closing the parts
    assert took < 2.0
    assert not deaf.done()
    said = caplog.text
    assert "1 task(s) did not end within 0.5s of being cancelled" in said
    assert "in deaf_chore" in said
    assert "closing its parts took over 0.5s; going on without it" in said
    assert "still stopping after 0.7s" in said
    service.deaf = False
    deaf.cancel()
    await asyncio.wait([deaf], timeout=1)
    assert deaf.done()
