"""Where a client agent finds the central service config it merges into its own proxy and
gateway registrations: a server's proxy-defaults and service-defaults entries, cached.

A server reads its store instead (`agent.mesh_intentions.StoreIntentions` hands out every
entry). The cache works as the intentions one does: answered from memory, refreshed once it
is `max_age` old, one refresh at a time, the last answer kept when a server cannot be read,
so a changed entry shows in `/v1/agent/service/<id>` within `max_age`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.ports import RemoteReader

log = logging.getLogger(__name__)
KINDS = ("proxy-defaults", "service-defaults")
Entries = Mapping[tuple[str, str], dict[str, Any]]


class RemoteServiceDefaults:
    def __init__(
        self, reader: RemoteReader, monotonic: Callable[[], float], max_age: float = 1.0
    ) -> None:
        self.reader = reader
        self.monotonic = monotonic
        self.max_age = max_age
        self._entries: dict[tuple[str, str], dict[str, Any]] = {}
        self._fetched = float("-inf")
        self._lock = asyncio.Lock()

    async def entries(self) -> Entries:
        if self.monotonic() - self._fetched < self.max_age:
            return self._entries
        async with self._lock:
            if self.monotonic() - self._fetched >= self.max_age:
                await self._refresh()
        return self._entries

    async def _refresh(self) -> None:
        try:
            found = [
                e
                for kind in KINDS
                for e in await self.reader.read_remote(f"/v1/config/{kind}") or ()
            ]
        except Exception as exc:  # keep merging with what we had, as for intentions
            log.warning("connect: could not refresh central service config: %s", exc)
        else:
            self._entries = {(e["Kind"], e["Name"]): e for e in found}
        self._fetched = self.monotonic()
