"""Small asyncio helpers shared by the agent's background loops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


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


def wake(waiter: asyncio.Future) -> None:
    """Resolve a watch's waiter unless something already did (a timer's callback)."""
    if not waiter.done():
        waiter.set_result(None)


class Background:
    """One named background loop of a server (a reaper, a syncer): started once, stopped by
    cancelling it and waiting until it has ended."""

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self.run = run
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
