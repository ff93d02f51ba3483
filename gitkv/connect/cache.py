"""A small TTL cache with single flight, for answers the proxy asks the agent per connection.

A burst of connections that miss together causes one request; the others await its answer.
Only successful answers are kept; a failure reaches every waiter of that request and the next
caller asks again. The clock is passed in, so tests move time by hand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["TTLCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MAX_ENTRIES = 4096


class TTLCache(Generic[K, V]):
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        self._flights: dict[K, asyncio.Future[V]] = {}

    def clear(self) -> None:
        self._values.clear()

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        now = self._clock()
        hit = self._values.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        flight = self._flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight)
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            value = await load()
        except BaseException as exc:
            if not flight.done():
                flight.set_exception(exc)
                flight.exception()  # retrieved here, so no waiter-less future logs it
            raise
        else:
            if self.ttl > 0:
                if len(self._values) >= _MAX_ENTRIES:
                    self._evict(now)
                self._values[key] = (self._clock() + self.ttl, value)
            flight.set_result(value)
            return value
        finally:
            del self._flights[key]

    def _evict(self, now: float) -> None:
        for key in [k for k, (until, _) in self._values.items() if until <= now]:
            del self._values[key]
        if len(self._values) >= _MAX_ENTRIES:
            self._values.clear()
