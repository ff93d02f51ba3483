"""Federation states: per datacenter, the mesh gateways it can be reached through, as Consul's
servers keep them (the `federation-states` table).

Consul's leader writes its own datacenter's state whether or not mesh gateway WAN federation
is on (its anti-entropy runs once every server supports the feature): the datacenter's name,
its mesh-gateway instances with their checks (a health-service dump, `null` when there are
none), when it was last written and `PrimaryModifyIndex`. Records are the JSON Consul returns
(Go field names) plus the Raft indexes. Pure: `agent/state/fsm_mesh.py` writes them.
"""

from __future__ import annotations

from typing import Any

FEDERATION_TABLE = "federation-states"


class FederationStates:
    def __init__(self) -> None:
        self.by_dc: dict[str, dict[str, Any]] = {}

    def get(self, datacenter: str) -> dict[str, Any] | None:
        return self.by_dc.get(datacenter)

    def all(self) -> list[dict[str, Any]]:
        return [self.by_dc[dc] for dc in sorted(self.by_dc)]

    def upsert(self, state: dict[str, Any], index: int) -> None:
        current = self.by_dc.get(state["Datacenter"])
        self.by_dc[state["Datacenter"]] = dict(state) | {
            "CreateIndex": current["CreateIndex"] if current is not None else index,
            "ModifyIndex": index,
        }

    def dump(self) -> list[dict[str, Any]]:
        return self.all()

    @classmethod
    def load(cls, raw: list[dict[str, Any]] | None) -> FederationStates:
        table = cls()
        for state in raw or ():
            table.by_dc[str(state["Datacenter"])] = dict(state)
        return table


def same_state(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    """Consul's FederationState.IsSame: the datacenter, its gateways and PrimaryModifyIndex
    (not when it was written, nor the indexes)."""
    if a is None:
        return False
    keys = ("Datacenter", "MeshGateways", "PrimaryModifyIndex")
    return all(a.get(k) == b.get(k) for k in keys)
