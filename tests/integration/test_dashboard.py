"""The dashboard against a real nats-server, without a browser: what it says with no projector,
and a broker going away and coming back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from dvp_scheduler.dashboard import DashboardSettings, run_dashboard
from dvp_scheduler.natsserver import BinaryNatsServer, NatsServer
from natsio import NatsConnection
from tests.support import eventually, free_port

pytestmark = pytest.mark.integration


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def get(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=10) as response:
            return Answer(response.status, response.read().decode(), dict(response.headers))
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read().decode(), dict(error.headers))


class Answer(NamedTuple):
    status: int
    body: str
    headers: dict[str, str]


async def fetch(url: str, data: bytes | None = None, **headers: str) -> Answer:
    return await asyncio.to_thread(
        get, url, data, {k.replace("_", "-"): v for k, v in headers.items()}
    )


async def health(base: str) -> dict[str, Any]:
    _, body, _ = await fetch(base + "/health")
    answer: dict[str, Any] = json.loads(body)
    return answer


@contextlib.asynccontextmanager
async def serving(url: str, **options: Any) -> AsyncIterator[str]:
    """The dashboard on a free port, connected to ``url``; its base URL."""
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    settings = DashboardSettings(connection=NatsConnection(url=url), port=free_port(), **options)
    task = asyncio.create_task(run_dashboard(settings, on_ready=ready.set_result, stop=stop))
    try:
        yield (await asyncio.wait_for(ready, 20)).rstrip("/")
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


@pytest.fixture
async def dashboard(nats_server: NatsServer) -> AsyncIterator[str]:
    async with serving(nats_server.url) as base:
        yield base


async def test_without_a_projector_the_pages_say_so_and_the_live_page_works(
    dashboard: str,
) -> None:
    await eventually(lambda: health(dashboard), within=10, message="health answers")
    answer = await health(dashboard)
    assert answer["nats"] is True
    assert answer["projector"] is False
    status, body, _ = await fetch(dashboard + "/")
    assert status == 200
    assert "No projector answers on dvp.projector.v1.tasks" in body
    assert "dvp-scheduler projector" in body
    status, body, _ = await fetch(dashboard + "/live")
    assert status == 200
    assert "There is no stream DVP_TASKS yet" in body or '<tbody id="feed">' in body


@pytest.mark.timeout(90)
async def test_nats_going_away_shows_a_banner_and_it_reconnects(tmp_path: Path) -> None:
    port = free_port()
    server = BinaryNatsServer(port=port, store_dir=tmp_path / "store").start()
    try:
        async with serving(server.url) as base:
            await eventually(lambda: _connected(base), within=15, message="connected")
            _, body, _ = await fetch(base + "/")
            assert 'id="banner" class="banner" role="alert" hidden' in body
            server.stop(signal.SIGKILL)
            answer = await eventually(
                lambda: _disconnected(base), within=20, message="the outage noticed"
            )
            assert "unreachable" in answer["problem"]
            status, body, _ = await fetch(base + "/tasks")
            assert status == 200  # the dashboard stays up
            assert f"NATS at nats://127.0.0.1:{port} is unreachable" in body
            assert 'role="alert" hidden' not in body
            server = BinaryNatsServer(port=port, store_dir=tmp_path / "store").start()
            await eventually(lambda: _connected(base), within=30, message="reconnected")
            _, body, _ = await fetch(base + "/")
            assert 'role="alert" hidden' in body
    finally:
        server.stop()


async def _connected(base: str) -> dict[str, Any] | None:
    answer = await health(base)
    return answer if answer["nats"] else None


async def _disconnected(base: str) -> dict[str, Any] | None:
    answer = await health(base)
    return answer if not answer["nats"] else None


async def test_signing_in_needs_a_known_token_from_the_dashboards_own_page(
    nats_server: NatsServer,
) -> None:
    async with serving(nats_server.url, token="op-token", require_token=True) as base:
        status, body, _ = await fetch(base + "/tasks")
        assert status == 401  # --require-token: nothing without a token
        assert "This dashboard shows nothing without a token" in body
        assert (await fetch(base + "/events")).status == 401
        form = b"token=op-token&next=/tasks"
        elsewhere = await fetch(base + "/signin", form, Origin="http://evil.example")
        assert elsewhere.status == 403
        wrong = await fetch(base + "/signin", b"token=nope", Origin=base)
        assert wrong.status == 401
        assert "That token is not known here." in wrong.body
        signed_in = await fetch(base + "/signin", form, Origin=base)
        assert signed_in.status == 303
        assert signed_in.headers["location"] == "/tasks"
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        session = cookie.split(";")[0]
        status, body, _ = await fetch(base + "/tasks", Cookie=session)
        assert status == 200
        assert "signed in: operator" in body
