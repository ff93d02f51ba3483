"""The in-memory state store: tables, Consul's raft-index bookkeeping, watches, snapshots.

The store owns its tables: KV (with tombstones), the catalog (nodes, services, checks,
coordinates), sessions (`agent/state/sessions.py`), ACL (`agent/state/acl.py`), the mesh's
entries and CA (`agent/state/mesh.py`), prepared queries (`agent/state/queries.py`) and the
services' virtual IPs (`agent/state/vips.py`, assigned as proxies register). Only the
FSM writes here (`agent/state/fsm*.py`), always with the raft index of the command being
applied, so every record's `CreateIndex`/`ModifyIndex` and every table's max index are a pure
function of the log. Readers (the HTTP layer) run on the same event loop and never see a
half-applied command. A write keeps its own tables consistent (deleting a node deletes its
services and checks; a KV write keeps the sessions' held-keys index); what a write means for
other records, such as the sessions a critical check invalidates, is the FSM's to apply.

Index rules follow Consul's memdb: each table keeps the index of its last change; a KV delete
leaves a tombstone carrying the delete's index, so a blocking query on a deleted key or an
emptied prefix still sees its index move forward.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

import msgspec
from sortedcontainers import SortedDict

from agent.state.acl import ACL_TABLES, ACLTables
from agent.state.commands import CoordinateUpdate
from agent.state.federation import FEDERATION_TABLE, FederationStates
from agent.state.mesh import MESH_TABLES, MeshTables
from agent.state.queries import QUERY_TABLES, QueryTable
from agent.state.sessions import SessionTable
from agent.state.snapshot import CapturedState, decode_state
from agent.state.snapshot import SnapshotInvalid as SnapshotInvalid  # raised by restore()
from agent.state.structs import HealthCheck, KVEntry, Node, Service
from agent.state.vips import TAGGED_ADDRESS, VIRTUAL_IP_TABLE, VirtualIPs
from agent.state.watch import WatchRegistry

TABLES = (
    "kvs",
    "tombstones",
    "nodes",
    "services",
    "checks",
    "sessions",
    "coordinates",
    *ACL_TABLES,
    *MESH_TABLES,
    *QUERY_TABLES,
    VIRTUAL_IP_TABLE,
    FEDERATION_TABLE,
)
# Entries that keep a service's virtual IP once its last instance is gone (Consul's
# freeServiceVirtualIP checks these kinds).
VIP_ENTRY_KINDS = (
    "service-resolver",
    "service-router",
    "service-splitter",
    "service-defaults",
    "service-intentions",
)


def without_indexes(record: msgspec.Struct) -> msgspec.Struct:
    return msgspec.structs.replace(record, CreateIndex=0, ModifyIndex=0)


class Store:
    def __init__(self) -> None:
        self.kv: SortedDict[str, KVEntry] = SortedDict()
        self.tombstones: SortedDict[str, int] = SortedDict()
        self.nodes: dict[str, Node] = {}
        self.services: dict[str, dict[str, Service]] = {}
        self.checks: dict[str, dict[str, HealthCheck]] = {}
        self.indexes: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.service_index: dict[str, int] = {}
        # node -> {"Node", "Segment", "Coord"}: Vivaldi coordinates the agents report
        self.coordinates: dict[str, dict] = {}
        # the operator's autopilot settings, with CreateIndex/ModifyIndex once set
        self.autopilot: dict = {}
        self.sessions = SessionTable()  # agent/state/sessions.py
        self.acl = ACLTables()  # tokens, policies, roles (agent/state/acl.py)
        self.mesh = MeshTables()  # config entries, the Connect CA (agent/state/mesh.py)
        self.queries = QueryTable()  # prepared queries (agent/state/queries.py)
        self.vips = VirtualIPs()  # services' virtual IPs (agent/state/vips.py)
        self.federation = FederationStates()  # per datacenter (agent/state/federation.py)
        self.last_index = 0
        self.watches = WatchRegistry()

    # ---------------------------------------------------------------- indexes

    def table_index(self, *tables: str) -> int:
        return max(self.indexes[t] for t in tables)

    def _bump(self, table: str, index: int) -> None:
        self.indexes[table] = index
        self.watches.fire(("table", table))

    def _bump_service(self, name: str, index: int) -> None:
        self.service_index[name] = index
        self.watches.fire(("service", name))

    # ---------------------------------------------------------------- KV reads

    def kv_get(self, key: str) -> KVEntry | None:
        return self.kv.get(key)

    def kv_key_index(self, key: str) -> int:
        entry = self.kv.get(key)
        if entry is not None:
            return entry.ModifyIndex
        return self.tombstones.get(key) or self.table_index("kvs", "tombstones")

    def kv_range(self, prefix: str) -> Iterator[KVEntry]:
        kv = self.kv
        for key in kv.irange(minimum=prefix):
            if not key.startswith(prefix):
                break
            yield kv[key]

    def kv_prefix_index(self, prefix: str) -> int:
        """Highest index touching the prefix: live entries and tombstones under it."""
        best = 0
        for entry in self.kv_range(prefix):
            if entry.ModifyIndex > best:
                best = entry.ModifyIndex
        for key in self.tombstones.irange(minimum=prefix):
            if not key.startswith(prefix):
                break
            best = max(best, self.tombstones[key])
        return best or self.table_index("kvs", "tombstones")

    def kv_keys(self, prefix: str, separator: str) -> list[str]:
        keys: list[str] = []
        last_rolled = None
        for key in self.kv.irange(minimum=prefix):
            if not key.startswith(prefix):
                break
            if separator:
                cut = key.find(separator, len(prefix))
                if cut >= 0:
                    rolled = key[: cut + len(separator)]
                    if rolled != last_rolled:
                        keys.append(rolled)
                        last_rolled = rolled
                    continue
            keys.append(key)
        return keys

    # ---------------------------------------------------------------- KV writes

    def kv_put(self, index: int, entry: KVEntry) -> None:
        """Insert or replace; keeps CreateIndex of an existing key."""
        old = self.kv.get(entry.Key)
        entry.CreateIndex = old.CreateIndex if old is not None else index
        entry.ModifyIndex = index
        self.kv[entry.Key] = entry
        if entry.Session or (old is not None and old.Session):
            self.sessions.track(entry.Key, old.Session if old is not None else "", entry.Session)
        self.tombstones.pop(entry.Key, None)
        self._bump("kvs", index)
        self.watches.fire_key(entry.Key)

    def kv_delete(self, index: int, key: str) -> bool:
        old = self.kv.pop(key, None)
        if old is None:
            return False
        if old.Session:
            self.sessions.track(key, old.Session, "")
        self.tombstones[key] = index
        self._bump("kvs", index)
        self._bump("tombstones", index)
        self.watches.fire_key(key)
        return True

    def kv_delete_tree(self, index: int, prefix: str) -> int:
        keys = [e.Key for e in self.kv_range(prefix)]
        for key in keys:
            self.kv_delete(index, key)
        return len(keys)

    def reap_tombstones(self, upto_index: int) -> int:
        """Drop tombstones at or below an index nobody can still be blocking on."""
        dead = [k for k, i in self.tombstones.items() if i <= upto_index]
        for key in dead:
            del self.tombstones[key]
        return len(dead)

    # ---------------------------------------------------------------- catalog writes

    def ensure_node(self, index: int, node: Node) -> bool:
        old = self.nodes.get(node.Node)
        if old is not None and without_indexes(old) == without_indexes(node):
            return False
        node.CreateIndex = old.CreateIndex if old is not None else index
        node.ModifyIndex = index
        self.nodes[node.Node] = node
        self._bump("nodes", index)
        # Service and health views embed node fields: they change with the node.
        for svc in self.services.get(node.Node, {}).values():
            self._bump_service(svc.Service, index)
        return True

    def ensure_service(self, index: int, node: str, svc: Service) -> bool:
        if svc.connect_name:
            # A proxy (or Connect-native instance) gives the service it serves a virtual IP,
            # shown on the instance (Consul's ensureServiceTxn).
            vip = self.assign_virtual_ip(index, svc.connect_name)
            if vip:
                port = svc.Port
                svc.TaggedAddresses = svc.TaggedAddresses | {
                    TAGGED_ADDRESS: {"Address": vip, "Port": port}
                }
        per_node = self.services.setdefault(node, {})
        old = per_node.get(svc.ID)
        if old is not None and without_indexes(old) == without_indexes(svc):
            return False
        svc.CreateIndex = old.CreateIndex if old is not None else index
        svc.ModifyIndex = index
        per_node[svc.ID] = svc
        self._bump("services", index)
        self._bump_service(svc.Service, index)
        if old is not None and old.Service != svc.Service:
            self._bump_service(old.Service, index)
        return True

    def ensure_check(self, index: int, check: HealthCheck) -> bool:
        per_node = self.checks.setdefault(check.Node, {})
        old = per_node.get(check.CheckID)
        if old is not None and without_indexes(old) == without_indexes(check):
            return False
        check.CreateIndex = old.CreateIndex if old is not None else index
        check.ModifyIndex = index
        per_node[check.CheckID] = check
        self._bump("checks", index)
        self._touch_check_service(check, index)
        if old is not None and old.ServiceName != check.ServiceName:
            self._touch_check_service(old, index)
        return True

    def _touch_check_service(self, check: HealthCheck, index: int) -> None:
        if check.ServiceName:
            self._bump_service(check.ServiceName, index)
        elif not check.ServiceID:
            # A node-level check changes the health of every service on the node.
            for svc in self.services.get(check.Node, {}).values():
                self._bump_service(svc.Service, index)

    def delete_check(self, index: int, node: str, check_id: str) -> bool:
        per_node = self.checks.get(node)
        if not per_node or check_id not in per_node:
            return False
        check = per_node.pop(check_id)
        if not per_node:
            del self.checks[node]
        self._bump("checks", index)
        self._touch_check_service(check, index)
        return True

    def delete_service(self, index: int, node: str, service_id: str) -> bool:
        per_node = self.services.get(node)
        if not per_node or service_id not in per_node:
            return False
        svc = per_node.pop(service_id)
        if not per_node:
            del self.services[node]
        for check in list(self.checks.get(node, {}).values()):
            if check.ServiceID == service_id:
                self.delete_check(index, node, check.CheckID)
        self._bump("services", index)
        self._bump_service(svc.Service, index)
        if svc.Service in self.vips.assigned:
            self.free_virtual_ip(index, svc.Service)
        return True

    # ---------------------------------------------------------------- virtual IPs

    def assign_virtual_ip(self, index: int, service: str) -> str:
        vip, new = self.vips.assign(service, index)
        if new:
            self._bump(VIRTUAL_IP_TABLE, index)
        return vip

    def free_virtual_ip(self, index: int, service: str) -> None:
        """Free `service`'s virtual IP unless an instance or an entry still names it."""
        if service not in self.vips.assigned:
            return
        if any(s.Service == service for per in self.services.values() for s in per.values()):
            return
        if any((kind, service) in self.mesh.entries for kind in VIP_ENTRY_KINDS):
            return
        if self.vips.free(service):
            self._bump(VIRTUAL_IP_TABLE, index)

    def set_coordinates(self, index: int, updates: list[CoordinateUpdate]) -> None:
        changed = False
        for update in updates:
            if update.Node in self.nodes:  # as Consul: only for registered nodes
                self.coordinates[update.Node] = {
                    "Node": update.Node,
                    "Segment": update.Segment or "",
                    "Coord": update.Coord,
                }
                changed = True
        if changed:
            self._bump("coordinates", index)

    def delete_node(self, index: int, node: str) -> bool:
        if node not in self.nodes:
            return False
        for service_id in list(self.services.get(node, {})):
            self.delete_service(index, node, service_id)
        for check_id in list(self.checks.get(node, {})):
            self.delete_check(index, node, check_id)
        del self.nodes[node]
        self._bump("nodes", index)
        if self.coordinates.pop(node, None) is not None:
            self._bump("coordinates", index)
        return True

    # ---------------------------------------------------------------- catalog reads

    def service_names(self) -> dict[str, set[str]]:
        """Service name -> union of tags, over every instance."""
        names: dict[str, set[str]] = {}
        for per_node in self.services.values():
            for svc in per_node.values():
                names.setdefault(svc.Service, set()).update(svc.Tags)
        return names

    def service_instances(self, name: str) -> list[tuple[Node, Service]]:
        out = []
        for node_name in sorted(self.services):
            node = self.nodes.get(node_name)
            if node is None:
                continue
            for svc in self.services[node_name].values():
                if svc.Service == name:
                    out.append((node, svc))
        return out

    def service_name_index(self, name: str) -> int:
        return self.service_index.get(name) or self.table_index("services", "nodes", "checks")

    def node_checks(self, node: str) -> list[HealthCheck]:
        return sorted(self.checks.get(node, {}).values(), key=lambda c: c.CheckID)

    def all_checks(self) -> Iterator[HealthCheck]:
        for node in sorted(self.checks):
            yield from sorted(self.checks[node].values(), key=lambda c: c.CheckID)

    # ---------------------------------------------------------------- snapshots

    def capture(self) -> CapturedState:
        """The state at this instant, cheap enough for the event loop (~20 ms per million
        keys): everything small is encoded now, the KV table is a list of references.
        Records are replaced, never changed in place, so encoding that list later (on another
        thread, while the store moves on) still yields exactly this instant."""
        header = {
            "last_index": self.last_index,
            "indexes": self.indexes,
            "service_index": self.service_index,
            "tombstones": list(self.tombstones.items()),
            "nodes": list(self.nodes.values()),
            "services": [[n, list(s.values())] for n, s in self.services.items()],
            "checks": [c for per in self.checks.values() for c in per.values()],
            "sessions": self.sessions.dump(),
            "acl": self.acl.dump(),
            "mesh": self.mesh.dump(),
            "queries": self.queries.dump(),
            "vips": self.vips.dump(),
            "federation_states": self.federation.dump(),
            "coordinates": list(self.coordinates.values()),
            "autopilot": self.autopilot,
        }
        return CapturedState(msgspec.msgpack.encode(header), list(self.kv.values()))

    def snapshot(self) -> bytes:
        return b"".join(self.capture().chunks())

    def restore(self, data: bytes | memoryview) -> None:
        self.restore_from(io.BytesIO(data))

    def restore_from(self, stream: BinaryIO) -> None:
        """Replace the state from a snapshot stream (see `CapturedState.chunks`), atomically:
        the whole stream is decoded into fresh tables first, and they are swapped in only once
        every record has passed. On `SnapshotInvalid` the store is exactly as it was."""
        state = decode_state(stream)
        sessions = SessionTable.load(state.sessions, state.kv, self.sessions.lock_delay)
        acl = ACLTables.load(state.acl)
        mesh = MeshTables.load(state.mesh)
        queries = QueryTable.load(state.queries)
        vips = VirtualIPs.load(state.vips)
        federation = FederationStates.load(state.federation_states)
        # Nothing below can fail: the swap is all or nothing.
        self.kv = state.kv
        self.tombstones = state.tombstones
        self.nodes = state.nodes
        self.services = state.services
        self.checks = state.checks
        self.indexes = dict.fromkeys(TABLES, 0) | state.indexes
        self.service_index = state.service_index
        self.sessions = sessions
        self.acl = acl
        self.mesh = mesh
        self.queries = queries
        self.vips = vips
        self.federation = federation
        self.coordinates = state.coordinates
        self.autopilot = dict(state.autopilot)
        self.last_index = state.last_index
        self.watches.fire_all()
