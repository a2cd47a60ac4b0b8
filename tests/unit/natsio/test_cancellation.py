"""`raise_if_cancelled`: a loop whose cancellation a library swallowed still ends."""

from __future__ import annotations

import asyncio
from contextlib import suppress

import pytest

from natsio.service import raise_if_cancelled


async def _swallowing_flush() -> None:
    """What nats-py's flush does when the task is cancelled while it waits."""
    with suppress(asyncio.CancelledError):
        await asyncio.sleep(10)


async def test_a_loop_whose_cancellation_was_swallowed_ends_at_its_next_turn() -> None:
    turns = 0
    going = True

    async def loop(check: bool) -> None:
        nonlocal turns
        while going:
            if check:
                raise_if_cancelled()
            turns += 1
            await _swallowing_flush()

    guarded = asyncio.create_task(loop(check=True))
    await asyncio.sleep(0.01)
    guarded.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(guarded, 1)
    assert turns == 1

    # Without the check the same loop goes on after the cancellation: the bug it guards against.
    unguarded = asyncio.create_task(loop(check=False))
    await asyncio.sleep(0.01)
    unguarded.cancel()
    await asyncio.sleep(0.01)
    assert not unguarded.done()
    assert turns == 3
    going = False
    unguarded.cancel()  # lands in its next flush, swallowed again; then the loop stops
    await asyncio.wait_for(unguarded, 1)


async def test_an_uncancelled_task_is_left_alone() -> None:
    raise_if_cancelled()
    assert asyncio.current_task() is not None
