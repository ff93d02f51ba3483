"""Where `/v1/agent/connect/authorize` finds intentions: the store on a server; on a client
agent (which holds no state) a cache of a server's `service-intentions` entries.

The cache answers from memory and refreshes once it is `max_age` old, one refresh at a time,
so thousands of authorizations a second cost a server two reads a second, and a changed
intention takes effect within `max_age` (Consul's agent cache keeps a blocking query open;
a short refresh gives the same bound with less machinery).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.ports import RemoteReader
    from agent.state.store import Store

log = logging.getLogger(__name__)
Entries = Mapping[tuple[str, str], dict[str, Any]]


class StoreIntentions:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def entries(self) -> Entries:
        return self.store.mesh.entries

    def version(self) -> int:
        """Changes whenever the entries may have changed (decisions cached per version)."""
        return self.store.table_index("config-entries")


class RemoteIntentions:
    def __init__(
        self, reader: RemoteReader, monotonic: Callable[[], float], max_age: float = 0.5
    ) -> None:
        self.reader = reader
        self.monotonic = monotonic
        self.max_age = max_age
        self._entries: dict[tuple[str, str], dict[str, Any]] = {}
        self._fetched = float("-inf")
        self._lock = asyncio.Lock()
        self._version = 0

    async def entries(self) -> Entries:
        if self.monotonic() - self._fetched < self.max_age:
            return self._entries
        async with self._lock:
            if self.monotonic() - self._fetched >= self.max_age:
                await self._refresh()
        return self._entries

    async def _refresh(self) -> None:
        try:
            found = await self.reader.read_remote("/v1/config/service-intentions")
        except Exception as exc:  # keep deciding with what we had (Consul's cache does too)
            log.warning("connect: could not refresh intentions: %s", exc)
            self._fetched = self.monotonic()
            return
        entries = {(e["Kind"], e["Name"]): e for e in found or []}
        if entries != self._entries:
            self._entries = entries
            self._version += 1
        self._fetched = self.monotonic()

    def version(self) -> int:
        return self._version
