"""The finite state machine: the only writer of the store.

`FSM.apply(index, entry)` is deterministic: given the same log it produces the same store on
every server, with the same indexes. It reads no clock and no randomness; anything
time-dependent arrives inside the command. An entry is a command's msgpack bytes, decoded
against the tagged union of typed commands in `agent/state/commands.py` (in-process callers
may hand over the command itself).

Refusals, of a command's shape or of the state it meets (a stale CAS index, a check
naming an unknown service), are results, never exceptions: a command that is in the log has
been applied, successfully or not, the same way on every server and on every replay.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from agent.state import commands as c
from agent.state.fsm_acl import apply_acl
from agent.state.fsm_mesh import MESH_COMMANDS, apply_mesh
from agent.state.fsm_queries import QUERY_COMMANDS, apply_query
from agent.state.fsm_sessions import (
    SessionRefused,
    apply_session,
    invalidate_check,
    invalidate_node,
)
from agent.state.results import Refusal, TxnResult  # agent.py, http/txn.py import them here
from agent.state.snapshot import SnapshotInvalid
from agent.state.store import Store
from agent.state.structs import HealthCheck, KVEntry, Node, Service, Weights
from agent.state.vips import EXHAUSTED

KVLike = c.KV | c.KVOp


class FSM:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._handlers: dict[type, Callable[[int, Any], Any]] = {
            c.KV: self._apply_kv,
            c.Txn: self._apply_txn,
            c.Register: self._apply_register,
            c.Deregister: self._apply_deregister,
            c.Noop: lambda index, cmd: None,
            c.Restore: self._apply_restore,
            c.Coordinate: lambda index, cmd: self.store.set_coordinates(index, cmd.Updates),
            c.Autopilot: self._apply_autopilot,
            c.SessionCommand: self._apply_session,  # agent/state/fsm_sessions.py
        }
        for kind in c.ACL_COMMANDS:  # agent/state/fsm_acl.py
            self._handlers[kind] = self._apply_acl
        for kind in MESH_COMMANDS:  # agent/state/fsm_mesh.py
            self._handlers[kind] = self._apply_mesh
        for kind in QUERY_COMMANDS:  # agent/state/fsm_queries.py
            self._handlers[kind] = self._apply_query

    def apply(self, index: int, entry: bytes | memoryview | c.Command) -> Any:
        why = None
        try:
            if isinstance(entry, bytes | memoryview):
                command = c.decode(entry)
            else:  # in-process (tests): checked exactly as its log entry would be
                c.encode(entry)
                command = entry
        except c.Invalid as exc:
            why = str(exc)
        if why is None:
            result = self._handlers[type(command)](index, command)
        else:
            # A shape no handler can apply: refused before anything is read or written.
            result = Refusal(why, "invalid")
        self.store.last_index = index
        return result

    def skip(self, index: int) -> None:
        """An entry that holds no command (a membership change, a leader's no-op)."""
        self.store.last_index = index

    def _apply_mesh(self, index: int, cmd: Any) -> Any:
        return apply_mesh(self.store, index, cmd)

    def _apply_query(self, index: int, cmd: Any) -> Any:
        return apply_query(self.store, index, cmd)

    def _apply_acl(self, index: int, cmd: Any) -> Any:
        return apply_acl(self.store, index, cmd)

    def _apply_session(self, index: int, cmd: c.SessionCommand) -> Any:
        try:
            return apply_session(self.store, index, cmd)
        except SessionRefused as exc:
            return Refusal(str(exc))

    def _apply_autopilot(self, index: int, cmd: c.Autopilot) -> bool:
        current = self.store.autopilot
        if cmd.CAS is not None and current.get("ModifyIndex", 0) != cmd.CAS:
            return False
        self.store.autopilot = dict(cmd.Config) | {
            "CreateIndex": current.get("CreateIndex", index),
            "ModifyIndex": index,
        }
        return True

    def _apply_restore(self, index: int, cmd: c.Restore) -> Any:
        """Replace the whole state with a saved snapshot (PUT /v1/snapshot). The HTTP layer
        verified the archive; a state that still fails to decode leaves the store as it was."""
        try:
            self.store.restore(cmd.State)
        except SnapshotInvalid as exc:
            return Refusal(f"failed to decode snapshot state: {exc}", "invalid")
        return True

    # ------------------------------------------------------------------ KV

    def _apply_kv(self, index: int, cmd: c.KV) -> Any:
        error = _kv_precondition(self.store.kv_get, cmd, self.store.sessions.by_id)
        if error is not None:
            if error.startswith(_ANSWERED_FALSE):
                return False
            return Refusal(error)
        return _kv_write(self.store, index, cmd)

    # ------------------------------------------------------------------ catalog

    def _apply_register(self, index: int, cmd: c.Register) -> Any:
        error = _register_precondition(self.store, cmd)
        if error:
            return Refusal(error)
        _register(self.store, index, cmd)
        return True

    def _apply_deregister(self, index: int, cmd: c.Deregister) -> Any:
        store, node = self.store, cmd.Node
        if cmd.ServiceID:
            _delete_service(store, index, node, cmd.ServiceID)
        elif cmd.CheckID:
            _delete_check(store, index, node, cmd.CheckID)
        else:
            _delete_node(store, index, node)
        return True

    # ------------------------------------------------------------------ txn

    def read_txn(self, ops: list[c.TxnOp]) -> TxnResult:
        """A txn of reads only: answered from the store without a log entry."""
        return self._apply_txn(0, c.Txn(Ops=ops))

    def _apply_txn(self, index: int, cmd: c.Txn) -> TxnResult:
        ops = cmd.Ops
        errors = _txn_dry_run(self.store, ops)
        if errors:
            return TxnResult(results=None, errors=errors)
        results: list[dict] = []
        store = self.store
        for op in ops:
            if op.KV is not None:
                kv = op.KV
                if kv.Verb in c.KV_READ_VERBS:
                    results.extend(_kv_read_results(store, kv))
                    continue
                _kv_write(store, index, kv)
                if kv.Verb in ("set", "cas", "lock", "unlock"):
                    entry = store.kv_get(kv.Key)
                    results.append({"KV": _kv_result(entry, with_value=False)})
            elif op.Node is not None:
                results.extend(_txn_node(store, index, op.Node))
            elif op.Service is not None:
                results.extend(_txn_service(store, index, op.Service))
            elif op.Check is not None:
                results.extend(_txn_check(store, index, op.Check))
        return TxnResult(results=results, errors=None)


# ---------------------------------------------------------------------- KV helpers


# Refusals a plain KV write answers with `false` (any other refusal is a failure).
_ANSWERED_FALSE = (
    "failed to set key",
    "failed to delete key",
    "failed to lock key",
    "failed to unlock key",
)


def _kv_precondition(
    lookup: Callable[[str], KVEntry | None], cmd: KVLike, sessions: Mapping[str, Any]
) -> str | None:
    """Why this KV op cannot run against the given view, or None."""
    verb, key = cmd.Verb, cmd.Key
    entry = lookup(key)
    if verb == "cas":
        wanted = cmd.Index
        if (entry is None and wanted != 0) or (entry is not None and entry.ModifyIndex != wanted):
            return f'failed to set key "{key}", index is stale'
    elif verb == "delete-cas":
        wanted = cmd.Index
        if entry is not None and entry.ModifyIndex != wanted:
            return f'failed to delete key "{key}", index is stale'
    elif verb == "lock":
        session = cmd.Session
        if not session:
            return "missing session"
        if session not in sessions:
            return f'invalid session "{session}"'
        if entry is not None and entry.Session and entry.Session != session:
            return f'failed to lock key "{key}", lock is already held'
    elif verb == "unlock":
        if not cmd.Session:
            return "missing session"
        if entry is None or entry.Session != cmd.Session:
            return f'failed to unlock key "{key}", lock isn\'t held, or is held by another session'
    elif verb == "get":
        if entry is None:
            return f'key "{key}" doesn\'t exist'
    elif verb == "check-index":
        if entry is None:
            return f'key "{key}" doesn\'t exist'
        if entry.ModifyIndex != cmd.Index:
            return f"current modify index {entry.ModifyIndex} != {cmd.Index}"
    elif verb == "check-session":
        if entry is None:
            return f'failed to check session, key "{key}" doesn\'t exist'
        if entry.Session != cmd.Session:
            return (
                f'failed session check for key "{key}", '
                f'current session "{entry.Session}" != "{cmd.Session}"'
            )
    elif verb == "check-not-exists":
        if entry is not None:
            return f'key "{key}" exists'
    elif verb not in ("set", "delete", "delete-tree", "get-tree"):
        return f'unknown KV verb "{verb}"'
    return None


def _kv_write(store: Store, index: int, cmd: KVLike) -> bool:
    verb, key = cmd.Verb, cmd.Key
    if verb in ("set", "cas", "unlock", "lock"):
        old = store.kv_get(key)
        session, lock_index = ("", 0) if old is None else (old.Session, old.LockIndex)
        if verb == "unlock":
            session = ""
        elif verb == "lock":
            # A new acquisition counts; re-acquiring a lock already held does not.
            if session != cmd.Session:
                lock_index += 1
            session = cmd.Session
        store.kv_put(
            index,
            KVEntry(
                Key=key,
                Value=cmd.Value or b"",
                Flags=cmd.Flags,
                LockIndex=lock_index,
                Session=session,
            ),
        )
    elif verb in ("delete", "delete-cas"):
        store.kv_delete(index, key)
    elif verb == "delete-tree":
        store.kv_delete_tree(index, key)
    return True


def _kv_result(entry: KVEntry | None, with_value: bool) -> dict | None:
    if entry is None:
        return None
    out = {
        "LockIndex": entry.LockIndex,
        "Key": entry.Key,
        "Flags": entry.Flags,
        "Value": entry.Value if with_value and entry.Value else None,
        "CreateIndex": entry.CreateIndex,
        "ModifyIndex": entry.ModifyIndex,
    }
    if entry.Session:
        out["Session"] = entry.Session
    return out


def _kv_read_results(store: Store, kv: c.KVOp) -> list[dict]:
    verb = kv.Verb
    if verb == "get":
        return [{"KV": _kv_result(store.kv_get(kv.Key), with_value=True)}]
    if verb == "get-tree":
        return [{"KV": _kv_result(e, with_value=True)} for e in store.kv_range(kv.Key)]
    if verb in ("check-index", "check-session"):
        return [{"KV": _kv_result(store.kv_get(kv.Key), with_value=False)}]
    return []


class _Overlay:
    """KV and catalog as a txn's earlier ops leave them, for checking later ops' conditions."""

    _GONE = object()

    def __init__(self, store: Store) -> None:
        self.store = store
        self.kv: dict[str, Any] = {}
        self.prefix_deletes: list[str] = []
        self.nodes: dict[str, bool] = {}
        self.services: dict[tuple[str, str], bool] = {}

    def kv_get(self, key: str) -> KVEntry | None:
        if key in self.kv:
            value = self.kv[key]
            return None if value is self._GONE else value
        if any(key.startswith(p) for p in self.prefix_deletes):
            return None
        return self.store.kv_get(key)

    def kv_after(self, cmd: c.KVOp) -> None:
        verb, key = cmd.Verb, cmd.Key
        if verb in ("set", "cas", "unlock", "lock"):
            old = self.kv_get(key)
            session = old.Session if old else ""
            if verb == "lock":
                session = cmd.Session
            elif verb == "unlock":
                session = ""
            # A later CAS in the same txn cannot match an index not yet assigned.
            self.kv[key] = KVEntry(Key=key, Value=b"", ModifyIndex=-1, Session=session)
        elif verb in ("delete", "delete-cas"):
            self.kv[key] = self._GONE
        elif verb == "delete-tree":
            self.prefix_deletes.append(key)
            for k in list(self.kv):
                if k.startswith(key):
                    self.kv[k] = self._GONE

    def node_exists(self, name: str) -> bool:
        if name in self.nodes:
            return self.nodes[name]
        return name in self.store.nodes

    def service_exists(self, node: str, service_id: str) -> bool:
        if (node, service_id) in self.services:
            return self.services[(node, service_id)]
        if node in self.nodes and not self.nodes[node]:
            return False
        return service_id in self.store.services.get(node, {})


def _txn_dry_run(store: Store, ops: list[c.TxnOp]) -> list[dict]:
    overlay = _Overlay(store)
    errors: list[dict] = []
    for i, op in enumerate(ops):
        if op.KV is not None:
            why = _kv_precondition(overlay.kv_get, op.KV, store.sessions.by_id)
            if why is None:
                overlay.kv_after(op.KV)
        elif op.Node is not None:
            why = _node_precondition(store, overlay, op.Node)
        elif op.Service is not None:
            why = _service_precondition(store, overlay, op.Service)
        elif op.Check is not None:
            why = _check_precondition(store, overlay, op.Check)
        else:
            why = "unknown transaction operation"
        if why is not None:
            errors.append({"OpIndex": i, "What": why})
    return errors


# ---------------------------------------------------------------------- catalog helpers


def _node_from(raw: c.Register | c.NodeRecord) -> Node:
    meta = raw.NodeMeta or (raw.Meta if isinstance(raw, c.NodeRecord) else None)
    return Node(
        Node=raw.Node or "",
        Address=raw.Address or "",
        ID=raw.ID or "",
        Datacenter=raw.Datacenter or "",
        TaggedAddresses=dict(raw.TaggedAddresses or {}),
        Meta=dict(meta or {}),
    )


def service_from(raw: c.ServiceRecord) -> Service:
    weights = raw.Weights or c.Weights()
    return Service(
        ID=raw.ID or raw.Service or "",
        Service=raw.Service or "",
        Tags=list(raw.Tags or []),
        Address=raw.Address or "",
        TaggedAddresses={k: msgspec.to_builtins(v) for k, v in (raw.TaggedAddresses or {}).items()},
        Meta=dict(raw.Meta or {}),
        Port=raw.Port or 0,
        Weights=Weights(
            Passing=1 if weights.Passing is None else weights.Passing,
            Warning=1 if weights.Warning is None else weights.Warning,
        ),
        EnableTagOverride=bool(raw.EnableTagOverride),
        Kind=raw.Kind or "",
        SocketPath=raw.SocketPath or "",
        Locality=raw.Locality,
        Proxy=raw.Proxy or c.ConnectProxyConfig(),
        Connect=raw.Connect or c.ServiceConnect(),
    )


def check_from(raw: c.CheckRecord, node: str, services: dict[str, Service]) -> HealthCheck:
    service_id = raw.ServiceID or ""
    svc = services.get(service_id)
    return HealthCheck(
        Node=node,
        CheckID=raw.CheckID or raw.Name or "",
        Name=raw.Name or "",  # Consul names no check for its ID (checkPreApply goes the other way)
        Status=raw.Status or "critical",
        Notes=raw.Notes or "",
        Output=raw.Output or "",
        ServiceID=service_id,
        ServiceName=svc.Service if svc else raw.ServiceName or "",
        ServiceTags=list(svc.Tags) if svc else list(raw.ServiceTags or []),
        Type=raw.Type or "",
        Interval=raw.Interval or "",
        Timeout=raw.Timeout or "",
        ExposedPort=raw.ExposedPort or 0,
        Definition=dict(raw.Definition or {}),
    )


def _register_checks(cmd: c.Register) -> list[c.CheckRecord]:
    checks = list(cmd.Checks or [])
    if cmd.Check is not None:
        checks.insert(0, cmd.Check)
    return checks


def _register_precondition(store: Store, cmd: c.Register) -> str | None:
    node = cmd.Node
    services = dict(store.services.get(node, {}))
    if cmd.Service is not None:
        services[cmd.Service.ID or cmd.Service.Service or ""] = True
    for check in _register_checks(cmd):
        sid = check.ServiceID
        if sid and sid not in services:
            return f'Unknown service ID "{sid}" for check ID "{check.CheckID or check.Name}"'
    target = _service_connect_name(cmd.Service)
    if target and store.vips.exhausted_for(target):
        return f"failed updating virtual IP: {EXHAUSTED}"
    node_id = cmd.ID
    if node_id:
        for other in store.nodes.values():
            if node_id == other.ID and other.Node != node:
                return (
                    f'failed inserting node: Error while renaming Node ID: "{node_id}": '
                    f"Node name {node} is reserved by node {other.ID} with name {other.Node}"
                )
    return None


def _service_connect_name(raw: c.ServiceRecord | None) -> str:
    """The service a registered proxy or Connect-native instance serves ("" for others)."""
    if raw is None:
        return ""
    if raw.Kind == "connect-proxy":
        return raw.Proxy.DestinationServiceName if raw.Proxy is not None else ""
    return (raw.Service or "") if raw.Connect is not None and raw.Connect.Native else ""


def _register(store: Store, index: int, cmd: c.Register) -> None:
    node_name = cmd.Node
    existing = store.nodes.get(node_name)
    if not (cmd.SkipNodeUpdate and existing is not None):
        store.ensure_node(index, _node_from(cmd))
    if cmd.Service is not None:
        store.ensure_service(index, node_name, service_from(cmd.Service))
    services = store.services.get(node_name, {})
    for raw in _register_checks(cmd):
        _ensure_check(store, index, check_from(raw, node_name, services))


# Catalog writes that end sessions: a check going critical or away, or a node leaving the
# catalog, invalidates the sessions that depend on it, in the same apply (as Consul's state
# store does). The store removes the records; the invalidation is applied here.


def _ensure_check(store: Store, index: int, check: HealthCheck) -> None:
    if store.ensure_check(index, check) and check.Status == "critical":
        invalidate_check(store, index, check.Node, check.CheckID)


def _delete_check(store: Store, index: int, node: str, check_id: str) -> None:
    if store.delete_check(index, node, check_id):
        invalidate_check(store, index, node, check_id)


def _delete_service(store: Store, index: int, node: str, service_id: str) -> None:
    checks = [c.CheckID for c in store.checks.get(node, {}).values() if c.ServiceID == service_id]
    if store.delete_service(index, node, service_id):  # its checks go with it
        for check_id in checks:
            invalidate_check(store, index, node, check_id)


def _delete_node(store: Store, index: int, node: str) -> None:
    if store.delete_node(index, node):  # with its services and checks
        invalidate_node(store, index, node)  # every session on the node, whatever it names


def _txn_node(store: Store, index: int, op: c.NodeOp) -> list[dict]:
    raw = op.Node or c.NodeRecord()
    name = raw.Node or ""
    if op.Verb in ("set", "cas"):
        store.ensure_node(index, _node_from(raw))
    elif op.Verb in ("delete", "delete-cas"):
        _delete_node(store, index, name)
        return []
    node = store.nodes.get(name)
    return [{"Node": msgspec.to_builtins(node)}] if node else []


def _txn_service(store: Store, index: int, op: c.ServiceOp) -> list[dict]:
    node, raw = op.Node, op.Service or c.ServiceRecord()
    sid = raw.ID or raw.Service or ""
    if op.Verb in ("set", "cas"):
        store.ensure_service(index, node, service_from(raw))
    elif op.Verb in ("delete", "delete-cas"):
        _delete_service(store, index, node, sid)
        return []
    svc = store.services.get(node, {}).get(sid)
    return [{"Service": msgspec.to_builtins(svc)}] if svc else []


def _txn_check(store: Store, index: int, op: c.CheckOp) -> list[dict]:
    raw = op.Check or c.CheckRecord()
    node, cid = raw.Node or "", raw.CheckID or ""
    if op.Verb in ("set", "cas"):
        _ensure_check(store, index, check_from(raw, node, store.services.get(node, {})))
    elif op.Verb in ("delete", "delete-cas"):
        _delete_check(store, index, node, cid)
        return []
    check = store.checks.get(node, {}).get(cid)
    return [{"Check": msgspec.to_builtins(check)}] if check else []


def _cas_refusal(verb: str, what: str, ident: str, current: Any, wanted: int) -> str | None:
    """A cas with index 0 wants the record absent; any other index wants it at that index."""
    stale = (wanted == 0 and verb == "cas" and current is not None) or (
        wanted != 0 and (current is None or current.ModifyIndex != wanted)
    )
    if not stale:
        return None
    action = "set" if verb == "cas" else "delete"
    return f'failed to {action} {what} "{ident}", index is stale'


def _node_precondition(store: Store, overlay: _Overlay, op: c.NodeOp) -> str | None:
    verb, raw = op.Verb, op.Node or c.NodeRecord()
    name = raw.Node or ""
    if not name:
        return "Must provide a node name"
    if verb == "get":
        return None if overlay.node_exists(name) else f'node "{name}" doesn\'t exist'
    if verb in ("cas", "delete-cas"):
        current = store.nodes.get(name)
        if why := _cas_refusal(verb, "node", name, current, raw.ModifyIndex or 0):
            return why
    elif verb not in ("set", "delete"):
        return f'unknown Node verb "{verb}"'
    overlay.nodes[name] = verb in ("set", "cas")
    return None


def _service_precondition(store: Store, overlay: _Overlay, op: c.ServiceOp) -> str | None:
    verb, node, raw = op.Verb, op.Node, op.Service or c.ServiceRecord()
    sid = raw.ID or raw.Service or ""
    if not sid:
        return "Must provide a service name"
    if verb == "get":
        return None if overlay.service_exists(node, sid) else f'service "{sid}" doesn\'t exist'
    if verb in ("set", "cas") and not overlay.node_exists(node):
        return f'node "{node}" doesn\'t exist'
    if verb in ("set", "cas") and not raw.Service:
        return "Must provide service name (Service.Service) when service ID is provided"
    if verb in ("cas", "delete-cas"):
        current = store.services.get(node, {}).get(sid)
        if why := _cas_refusal(verb, "service", sid, current, raw.ModifyIndex or 0):
            return why
    elif verb not in ("set", "delete"):
        return f'unknown Service verb "{verb}"'
    overlay.services[(node, sid)] = verb in ("set", "cas")
    return None


def _check_precondition(store: Store, overlay: _Overlay, op: c.CheckOp) -> str | None:
    verb, raw = op.Verb, op.Check or c.CheckRecord()
    node, cid = raw.Node or "", raw.CheckID or ""
    if not cid:
        return "Must provide a check ID"
    if verb == "get":
        exists = cid in store.checks.get(node, {})
        return None if exists else f'check "{cid}" doesn\'t exist'
    if verb in ("set", "cas"):
        if not overlay.node_exists(node):
            return f'node "{node}" doesn\'t exist'
        sid = raw.ServiceID
        if sid and not overlay.service_exists(node, sid):
            return f'Unknown service ID "{sid}" for check ID "{cid}"'
    if verb in ("cas", "delete-cas"):
        current = store.checks.get(node, {}).get(cid)
        if why := _cas_refusal(verb, "check", cid, current, raw.ModifyIndex or 0):
            return why
    elif verb not in ("set", "delete"):
        return f'unknown Check verb "{verb}"'
    return None
