"""Where `/v1/agent/connect/authorize` finds intentions: the store on a server; on a client
agent a 0.5 s cache of a server's `service-intentions` entries (`agent/mesh_entries.py`), so
a changed intention takes effect within half a second."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.mesh_entries import Entries, RemoteEntries, StoreEntries

if TYPE_CHECKING:
    from agent.ports import RemoteReader

__all__ = ["Entries", "RemoteIntentions", "StoreIntentions"]

StoreIntentions = StoreEntries


def RemoteIntentions(  # noqa: N802 - reads as the cache it builds
    reader: RemoteReader, monotonic: Callable[[], float], max_age: float = 0.5
) -> RemoteEntries:
    return RemoteEntries(reader, monotonic, ("service-intentions",), max_age)
