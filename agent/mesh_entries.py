"""The config entries an agent decides with: the store on a server; on a client agent (which
holds no state) a short cache of a server's `/v1/config/<kind>` answers.

The cache answers from memory and refreshes once it is `max_age` old, one refresh at a time,
keeping the last answer when no server can be read. Thousands of reads a second cost a server
a few reads a second, and a changed entry takes effect within `max_age` (Consul's agent cache
keeps a blocking query open; a short refresh gives the same bound with less machinery).
`version()` changes whenever the entries may have, so callers can cache what they derive.
Used for intentions (`agent/mesh_intentions.py`) and for the central service config merged
into proxy registrations (proxy-defaults, service-defaults).
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
CENTRAL_CONFIG_KINDS = ("proxy-defaults", "service-defaults")


class StoreEntries:
    """A server's own entries (every kind)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def entries(self) -> Entries:
        return self.store.mesh.entries

    def version(self) -> int:
        return self.store.table_index("config-entries")

    async def wait_change(self, version: int, timeout: float) -> int:
        """Block on the store's config-entries table until its index moves from `version`."""
        loop = asyncio.get_running_loop()
        topics = (("table", "config-entries"),)
        waiter = loop.create_future()
        self.store.watches.add(topics, waiter)
        try:
            if self.version() == version:
                await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            self.store.watches.remove(topics, waiter)
        return self.version()


class RemoteEntries:
    """A client agent's cache of a server's entries of `kinds`."""

    def __init__(
        self,
        reader: RemoteReader,
        monotonic: Callable[[], float],
        kinds: tuple[str, ...],
        max_age: float,
    ) -> None:
        self.reader = reader
        self.monotonic = monotonic
        self.kinds = kinds
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

    def version(self) -> int:
        return self._version

    async def wait_change(self, version: int, timeout: float) -> int:
        """Refresh every `max_age` until the entries differ from `version` (or `timeout`)."""
        deadline = self.monotonic() + timeout
        await self.entries()
        while self._version == version and self.monotonic() < deadline:
            await asyncio.sleep(min(self.max_age, max(0.0, deadline - self.monotonic())))
            await self.entries()
        return self._version

    async def _refresh(self) -> None:
        try:
            found = [
                e
                for kind in self.kinds
                for e in await self.reader.read_remote(f"/v1/config/{kind}") or ()
            ]
        except Exception as exc:  # keep deciding with what we had (Consul's cache does too)
            log.warning("connect: could not refresh %s: %s", ", ".join(self.kinds), exc)
        else:
            entries = {(e["Kind"], e["Name"]): e for e in found}
            if entries != self._entries:
                self._entries = entries
                self._version += 1
        self._fetched = self.monotonic()


def RemoteServiceDefaults(  # noqa: N802 - reads as the cache it builds
    reader: RemoteReader, monotonic: Callable[[], float], max_age: float = 1.0
) -> RemoteEntries:
    """The central service config a client agent merges into its proxies."""
    return RemoteEntries(reader, monotonic, CENTRAL_CONFIG_KINDS, max_age)
