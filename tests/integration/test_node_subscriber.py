"""The Node.js example reads every event kind a short real run produces, from the JSON alone."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from contracts import EVENT_TYPES, STREAM_NAME, event_type
from dvp_scheduler.natsserver import NatsServer
from tests.support import eventually, read_events

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("node") and shutil.which("npm")), reason="needs node and npm"
    ),
]

NODE_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "subscribers" / "node"
WANTED = {
    "task.registered.v1",
    "task.due.v1",
    "task.started.v1",
    "task.succeeded.v1",
    "task.retry_scheduled.v1",
    "task.failed.v1",
    "task.paused.v1",
    "task.resumed.v1",
}


@pytest.fixture(scope="module")
def node_example() -> Path:
    if not (NODE_EXAMPLE / "node_modules" / "@nats-io" / "jetstream").is_dir():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_EXAMPLE,
            check=True,
            timeout=300,
            capture_output=True,
        )
    return NODE_EXAMPLE


async def service(url: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dvp_scheduler", "--log-level", "WARNING", *args, "--nats-url", url
    )


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.mark.timeout(120)
async def test_node_subscriber_understands_a_real_run(
    node_example: Path, nats_server: NatsServer, js: JetStreamContext, stream: StreamInfo
) -> None:
    url = nats_server.url
    processes = [
        await service(
            url,
            "executor",
            "--no-entry-points",
            "--plugin",
            "tests.plugins.pulse:PulsePlugin",
        ),
        await service(url, "ticker"),
    ]
    try:

        async def every_outcome_seen() -> bool:
            seen = {event_type(e) for e in await read_events(js)}
            return WANTED - {"task.paused.v1", "task.resumed.v1"} <= seen

        await eventually(every_outcome_seen, within=40, message="success, retry and failure")
        for command in ("pause", "resume"):
            done = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dvp_scheduler", command, "pulse.beat", "--nats-url", url
            )
            assert await done.wait() == 0
    finally:
        for process in processes:
            await stop(process)
    produced = Counter(event_type(e) for e in await read_events(js))
    assert set(produced) >= WANTED
    # Every message says its type in a header too, so routers can filter without decoding.
    last = (await js.stream_info(STREAM_NAME)).state.last_seq
    for seq in range(1, last + 1):
        raw = await js.get_msg(STREAM_NAME, seq)
        assert raw.headers is not None
        assert raw.headers["Dvp-Event-Type"] == json.loads(raw.data or b"{}")["type"]

    node = await asyncio.create_subprocess_exec(
        "node",
        str(node_example / "subscriber.mjs"),
        "--server",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(node.communicate(), 60)
    assert node.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    understood = Counter(line.split()[1] for line in lines)
    assert understood == produced
    assert set(understood) <= set(EVENT_TYPES)
    assert not [line for line in lines if "unknown type" in line or "not an event" in line]
    assert any("reason=aborted" in line for line in lines if " task.failed.v1 " in line)
