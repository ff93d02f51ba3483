"""The FSM commands that change the mesh tables (`agent/state/mesh.py`).

`ConfigEntrySet` / `ConfigEntryDelete` answer `True`, or `False` when a CAS does not hold (as
Consul's `PUT /v1/config?cas=` answers). Before a write lands, the cross-entry rules are
checked against the tables as they would be after it (a router needs an HTTP-like protocol,
a redirect may not loop, ...): that check reads only the log's state, so every server refuses
the same writes. `CASet` replaces the CA state when its CAS still holds. A resolver, router or
splitter entry gives the service it names a virtual IP; deleting an entry frees it once
nothing names the service (`agent/state/vips.py`); `ServiceVirtualIPSet` sets manual ones.
`FederationStateSet` stores a datacenter's federation state (`agent/state/federation.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.connect.chain import graph_problem
from agent.state import commands as c
from agent.state.federation import FEDERATION_TABLE
from agent.state.results import Refusal
from agent.state.vips import VIRTUAL_IP_TABLE

if TYPE_CHECKING:
    from agent.state.store import Store

MESH_COMMANDS = (
    c.ConfigEntrySet,
    c.ConfigEntryDelete,
    c.CASet,
    c.ServiceVirtualIPSet,
    c.FederationStateSet,
)
# Entries that give the service they name a virtual IP (Consul's ensureConfigEntryTxn).
_VIP_KINDS = ("service-resolver", "service-router", "service-splitter")


def apply_mesh(store: Store, index: int, cmd: Any) -> Any:
    if isinstance(cmd, c.ConfigEntrySet):
        return _set_entry(store, index, cmd)
    if isinstance(cmd, c.ConfigEntryDelete):
        return _delete_entry(store, index, cmd)
    if isinstance(cmd, c.CASet):
        return _set_ca(store, index, cmd)
    if isinstance(cmd, c.ServiceVirtualIPSet):
        return _set_manual_vips(store, index, cmd)
    if isinstance(cmd, c.FederationStateSet):
        return _set_federation_state(store, index, cmd)
    return Refusal(f"unknown mesh command {type(cmd).__name__}", "failed")


def _cas_holds(current: dict[str, Any] | None, cas: int | None) -> bool:
    if cas is None:
        return True
    if cas == 0:
        return current is None
    return current is not None and current.get("ModifyIndex") == cas


def _set_entry(store: Store, index: int, cmd: c.ConfigEntrySet) -> Any:
    tables = store.mesh
    key = (str(cmd.Entry["Kind"]), str(cmd.Entry["Name"]))
    current = tables.entries.get(key)
    if not _cas_holds(current, cmd.CAS):
        return False
    entry = dict(cmd.Entry)
    entry["CreateIndex"] = current["CreateIndex"] if current is not None else index
    entry["ModifyIndex"] = index
    after = dict(tables.entries)
    after[key] = entry
    why = graph_problem(after, key, entries_before=tables.entries)
    if why is not None:
        return Refusal(why, "failed")
    tables.entries[key] = entry
    store._bump("config-entries", index)
    if key[0] in _VIP_KINDS:
        store.assign_virtual_ip(index, key[1])
    return True


def _delete_entry(store: Store, index: int, cmd: c.ConfigEntryDelete) -> Any:
    tables = store.mesh
    key = (cmd.EntryKind, cmd.Name)
    current = tables.entries.get(key)
    if cmd.CAS is not None and (current is None or current.get("ModifyIndex") != cmd.CAS):
        return False
    if current is None:
        return True
    after = dict(tables.entries)
    del after[key]
    why = graph_problem(after, key, entries_before=tables.entries)
    if why is not None:
        return Refusal(why, "failed")
    del tables.entries[key]
    store._bump("config-entries", index)
    store.free_virtual_ip(index, key[1])  # kept while an instance or another entry names it
    return True


def _set_ca(store: Store, index: int, cmd: c.CASet) -> Any:
    current = store.mesh.ca or None
    if not _cas_holds(current, cmd.CAS):
        return False
    if current is not None and current.get("ClusterID") and cmd.ClusterID != current["ClusterID"]:
        return Refusal("the cluster ID of an initialized CA cannot change", "invalid")
    store.mesh.ca = {
        "ClusterID": cmd.ClusterID,
        "Config": dict(cmd.Config),
        "Roots": [dict(r) for r in cmd.Roots],
        "CreateIndex": current["CreateIndex"] if current is not None else index,
        "ModifyIndex": index,
    }
    store._bump("connect-ca", index)
    return True


def _set_manual_vips(store: Store, index: int, cmd: c.ServiceVirtualIPSet) -> dict[str, Any]:
    """Consul's AssignServiceManualVIPsResponse: whether the service has a virtual IP record,
    and the services an address was taken from."""
    vips = store.vips
    before = vips.assigned.get(cmd.Service)
    found, losers = vips.set_manual(cmd.Service, list(cmd.ManualIPs), index)
    if found and vips.assigned[cmd.Service] is not before:  # a record replaced: a change
        store._bump(VIRTUAL_IP_TABLE, index)
    return {"Found": found, "UnassignedFrom": losers}


def _set_federation_state(store: Store, index: int, cmd: c.FederationStateSet) -> Any:
    state = cmd.State
    if not isinstance(state.get("Datacenter"), str) or not state["Datacenter"]:
        return Refusal("invalid request: missing federation state datacenter", "invalid")
    store.federation.upsert(state, index)
    store._bump(FEDERATION_TABLE, index)
    return True
