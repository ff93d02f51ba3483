"""The service mesh's tables: config entries and the Connect CA.

Config entries are plain dicts with Consul's wire field names (`Kind`, `Name`, the kind's
fields, `Meta`, `CreateIndex`, `ModifyIndex`), keyed by (kind, name), already normalized and
validated by the HTTP layer (`agent/connect/entries.py`) before they were proposed. Intentions
live here too, as `service-intentions` entries, one per destination, as in Consul 1.9+.

The CA state is one record: the cluster's ID (the trust domain is `<id>.consul`), the CA
configuration and every root, the active one with its signing key. The key is replicated
through Raft and kept in snapshots, as Consul keeps it, and never leaves the servers otherwise:
every reader renders roots through `agent/connect/ca.py`, which drops it.

The commands that change these tables are applied by `agent/state/fsm_mesh.py`; this module
imports nothing of the store or the FSM.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MESH_TABLES = ("config-entries", "connect-ca")
EntryKey = tuple[str, str]


class MeshTables:
    def __init__(self) -> None:
        self.entries: dict[EntryKey, dict[str, Any]] = {}
        # {"ClusterID", "Config", "Roots", "CreateIndex", "ModifyIndex"} once initialized
        self.ca: dict[str, Any] = {}

    def entry(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.entries.get((kind, name))

    def of_kind(self, kind: str | None) -> Iterator[dict[str, Any]]:
        """Entries of `kind` (every kind when None), ordered by kind then name."""
        for key in sorted(self.entries):
            if kind is None or key[0] == kind:
                yield self.entries[key]

    @property
    def cluster_id(self) -> str:
        return str(self.ca.get("ClusterID") or "")

    @property
    def trust_domain(self) -> str:
        cluster = self.cluster_id
        return f"{cluster}.consul" if cluster else ""

    def active_root(self) -> dict[str, Any] | None:
        return next((r for r in self.ca.get("Roots") or () if r.get("Active")), None)

    # ------------------------------------------------------------------ snapshots

    def dump(self) -> dict[str, Any]:
        return {"entries": [self.entries[k] for k in sorted(self.entries)], "ca": self.ca}

    @classmethod
    def load(cls, raw: dict[str, Any] | None) -> MeshTables:
        tables = cls()
        if not raw:
            return tables
        for entry in raw.get("entries") or []:
            tables.entries[(entry["Kind"], entry["Name"])] = entry
        tables.ca = dict(raw.get("ca") or {})
        return tables
