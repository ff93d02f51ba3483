"""Small asyncio helpers shared by the agent's background loops."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds; True if it was set.

    `asyncio.timeout` rather than `wait_for`: on Python 3.11, `wait_for` can swallow a
    cancellation that races with the inner wait finishing, and a loop built on it then never
    stops (seen as an agent hanging on shutdown).
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return False
