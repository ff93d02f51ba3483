"""`config_entries { bootstrap = [...] }`: config entries a server writes when it gains
leadership, each only if no entry of that kind and name exists yet (as Consul does), so an
operator's later change through the API is never overwritten by the file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent.connect import entries
from agent.connect.errors import MeshError
from agent.errors import AgentError
from agent.state.commands import ConfigEntrySet

if TYPE_CHECKING:
    from agent.ports import Writer
    from agent.state.store import Store

log = logging.getLogger(__name__)


def decoded(raw_entries: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """The bootstrap entries decoded, normalized and validated; a bad one is logged and
    skipped (Consul refuses to start; a running cluster should not lose its leader for it)."""
    found = []
    for n, raw in enumerate(raw_entries):
        try:
            entry = entries.normalize(entries.decode_entry(raw))
            entries.validate(entry)
        except MeshError as exc:
            log.error("config_entries.bootstrap[%d]: %s", n, exc.message)
            continue
        found.append(entry)
    return found


class BootstrapEntries:
    def __init__(
        self,
        store: Store,
        writer: Writer,
        is_leader: Callable[[], bool],
        raw_entries: tuple[dict[str, Any], ...],
    ) -> None:
        self.store = store
        self.writer = writer
        self.is_leader = is_leader
        self.pending = decoded(raw_entries)

    async def ensure_written(self) -> None:
        if not self.pending or not self.is_leader():
            return
        left = []
        for entry in self.pending:
            if self.store.mesh.entry(entry["Kind"], entry["Name"]) is not None:
                continue
            try:
                await self.writer.write(ConfigEntrySet(Entry=entry, CAS=0))
            except AgentError as exc:
                log.warning("config_entries.bootstrap %s/%s: %s", entry["Kind"], entry["Name"], exc)
                left.append(entry)
        self.pending = left
