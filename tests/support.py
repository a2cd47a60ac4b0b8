"""Helpers shared by the tests: bounded waiting, reading the stream back, running the command
line."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import STREAM_NAME, Event, decode
from dvp_scheduler.natsserver import NatsServer
from dvp_scheduler.natsserver.cluster import free_port

__all__ = ["ROOT", "alive", "cli", "eventually", "free_port", "last_sequence", "read_events"]

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
"""The project's root folder, where the command line runs."""


async def eventually(
    check: Callable[[], Awaitable[T | None] | T | None],
    *,
    within: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Call ``check`` until it returns something truthy, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + within
    last: T | None = None
    while True:
        result = check()
        last = await result if asyncio.iscoroutine(result) else result  # type: ignore[assignment]
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not met within {within}s (last value: {last!r})")
        await asyncio.sleep(interval)


def alive(pid: int) -> bool:
    """Whether process ``pid`` is still there (a zombie not yet waited for counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def read_events(js: JetStreamContext, subject: str = ">") -> list[Event]:
    """Every event in the stream on ``subject`` (a filter), oldest first, decoded."""
    info = await js.stream_info(STREAM_NAME)
    last = info.state.last_seq
    events: list[Event] = []
    if info.state.messages == 0:
        return events
    sub = await js.subscribe(subject, ordered_consumer=True, stream=STREAM_NAME)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except TimeoutError:
                break
            events.append(decode(msg.data))
            if msg.metadata.sequence.stream >= last:
                break
    finally:
        await sub.unsubscribe()
    return events


async def last_sequence(js: JetStreamContext, subject: str) -> int:
    """The stream sequence of the last message on ``subject``, 0 if none."""
    try:
        msg = await js.get_last_msg(STREAM_NAME, subject)
    except NotFoundError:
        return 0
    return int(msg.seq or 0)


async def cli(server: NatsServer, *args: str) -> tuple[int, str, str]:
    """``python -m dvp_scheduler ARGS --nats-url URL`` run in the project's root, as a user runs
    it: its exit status, stdout and stderr (killed after 30 s)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dvp_scheduler",
        *args,
        "--nats-url",
        server.url,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
