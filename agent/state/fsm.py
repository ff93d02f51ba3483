"""The finite state machine: the only writer of the store.

`FSM.apply(index, command)` is deterministic: given the same log it produces the same store on
every server, with the same indexes. It reads no clock and no randomness; anything
time-dependent arrives inside the command. A command is a plain dict (msgpack on the log):

    {"Type": "kv", "Verb": "set"|"cas"|..., "Key", "Value", "Flags", "Index", "Session"}
    {"Type": "txn", "Ops": [{"KV": {...}} | {"Node": {...}} | {"Service": {...}} | {"Check": {...}}]}
    {"Type": "register", "Node", "Address", "ID", "Datacenter", "TaggedAddresses", "NodeMeta",
     "Service", "Check", "Checks", "SkipNodeUpdate"}
    {"Type": "deregister", "Node", "ServiceID", "CheckID"}
    {"Type": "noop"}
    {"Type": "restore", "State": <store snapshot bytes>}

Every command is checked against its schema (`agent/state/commands.py`) before it touches the
store. Refusals, of a command's shape or of the state it meets (a stale CAS index, a check
naming an unknown service), are results, never exceptions: a command that is in the log has
been applied, successfully or not, the same way on every server and on every replay.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from agent.state import commands
from agent.state.fsm_acl import ACL_COMMANDS, apply_acl
from agent.state.fsm_sessions import (
    SESSION_COMMAND,
    SessionRefused,
    apply_session,
    invalidate_check,
    invalidate_node,
)
from agent.state.results import Refusal, TxnResult  # agent.py, http/txn.py import them here
from agent.state.snapshot import SnapshotInvalid
from agent.state.store import Store
from agent.state.structs import HealthCheck, KVEntry, Node, Service, Weights


class FSM:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._handlers: dict[str, Callable[[int, dict], Any]] = {
            "kv": self._apply_kv,
            "txn": self._apply_txn,
            "register": self._apply_register,
            "deregister": self._apply_deregister,
            "noop": lambda index, cmd: None,
            "restore": self._apply_restore,
            "coordinate": lambda index, cmd: self.store.set_coordinates(index, cmd["Updates"]),
            "autopilot": self._apply_autopilot,
            SESSION_COMMAND: self._apply_session,  # agent/state/fsm_sessions.py
        }
        for kind in ACL_COMMANDS:  # agent/state/fsm_acl.py
            self._handlers[kind] = self._apply_acl

    def apply(self, index: int, command: dict) -> Any:
        why = commands.problem(command)
        if why is None:
            result = self._handlers[command["Type"]](index, command)
        else:
            # A shape no handler can apply: refused before anything is read or written.
            result = Refusal(why, "invalid")
        self.store.last_index = index
        return result

    def _apply_acl(self, index: int, cmd: dict) -> Any:
        return apply_acl(self.store, index, cmd)

    def _apply_session(self, index: int, cmd: dict) -> Any:
        try:
            return apply_session(self.store, index, cmd)
        except SessionRefused as exc:
            return Refusal(str(exc))

    def _apply_autopilot(self, index: int, cmd: dict) -> bool:
        current = self.store.autopilot
        cas = cmd.get("CAS")
        if cas is not None and cas != current.get("ModifyIndex", 0):
            return False
        self.store.autopilot = dict(cmd["Config"]) | {
            "CreateIndex": current.get("CreateIndex", index),
            "ModifyIndex": index,
        }
        return True

    def _apply_restore(self, index: int, cmd: dict) -> Any:
        """Replace the whole state with a saved snapshot (PUT /v1/snapshot). The HTTP layer
        verified the archive; a state that still fails to decode leaves the store as it was."""
        try:
            self.store.restore(cmd["State"])
        except SnapshotInvalid as exc:
            return Refusal(f"failed to decode snapshot state: {exc}", "invalid")
        return True

    # ------------------------------------------------------------------ KV

    def _apply_kv(self, index: int, cmd: dict) -> Any:
        error = _kv_precondition(self.store.kv_get, cmd, self.store.sessions.by_id)
        if error is not None:
            if error.startswith(_ANSWERED_FALSE):
                return False
            return Refusal(error)
        return _kv_write(self.store, index, cmd)

    # ------------------------------------------------------------------ catalog

    def _apply_register(self, index: int, cmd: dict) -> Any:
        error = _register_precondition(self.store, cmd, {})
        if error:
            return Refusal(error)
        _register(self.store, index, cmd)
        return True

    def _apply_deregister(self, index: int, cmd: dict) -> Any:
        store, node = self.store, cmd["Node"]
        if cmd.get("ServiceID"):
            _delete_service(store, index, node, cmd["ServiceID"])
        elif cmd.get("CheckID"):
            _delete_check(store, index, node, cmd["CheckID"])
        else:
            _delete_node(store, index, node)
        return True

    # ------------------------------------------------------------------ txn

    def read_txn(self, ops: list[dict]) -> TxnResult:
        """A txn of reads only: answered from the store without a log entry."""
        return self._apply_txn(0, {"Ops": ops})

    def _apply_txn(self, index: int, cmd: dict) -> TxnResult:
        ops = cmd["Ops"]
        errors = _txn_dry_run(self.store, ops)
        if errors:
            return TxnResult(results=None, errors=errors)
        results: list[dict] = []
        store = self.store
        for op in ops:
            if "KV" in op:
                kv = op["KV"]
                verb = kv["Verb"]
                if verb in ("get", "get-tree", "check-index", "check-session", "check-not-exists"):
                    results.extend(_kv_read_results(store, kv))
                    continue
                _kv_write(store, index, kv)
                if verb in ("set", "cas", "lock", "unlock"):
                    entry = store.kv_get(kv["Key"])
                    results.append({"KV": _kv_result(entry, with_value=False)})
            elif "Node" in op:
                results.extend(_txn_node(store, index, op["Node"]))
            elif "Service" in op:
                results.extend(_txn_service(store, index, op["Service"]))
            elif "Check" in op:
                results.extend(_txn_check(store, index, op["Check"]))
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
    lookup: Callable[[str], KVEntry | None], cmd: dict, sessions: Mapping[str, Any]
) -> str | None:
    """Why this KV op cannot run against the given view, or None."""
    verb, key = cmd["Verb"], cmd.get("Key", "")
    entry = lookup(key)
    if verb == "cas":
        wanted = cmd.get("Index", 0)
        if (entry is None and wanted != 0) or (entry is not None and entry.ModifyIndex != wanted):
            return f'failed to set key "{key}", index is stale'
    elif verb == "delete-cas":
        wanted = cmd.get("Index", 0)
        if entry is not None and entry.ModifyIndex != wanted:
            return f'failed to delete key "{key}", index is stale'
    elif verb == "lock":
        session = cmd.get("Session", "")
        if not session:
            return "missing session"
        if session not in sessions:
            return f'invalid session "{session}"'
        if entry is not None and entry.Session and entry.Session != session:
            return f'failed to lock key "{key}", lock is already held'
    elif verb == "unlock":
        if not cmd.get("Session"):
            return "missing session"
        if entry is None or entry.Session != cmd.get("Session"):
            return f'failed to unlock key "{key}", lock isn\'t held, or is held by another session'
    elif verb == "get":
        if entry is None:
            return f'key "{key}" doesn\'t exist'
    elif verb == "check-index":
        if entry is None:
            return f'key "{key}" doesn\'t exist'
        if entry.ModifyIndex != cmd.get("Index", 0):
            return f"current modify index {entry.ModifyIndex} != {cmd.get('Index', 0)}"
    elif verb == "check-session":
        if entry is None:
            return f'failed to check session, key "{key}" doesn\'t exist'
        if entry.Session != cmd.get("Session", ""):
            return (
                f'failed session check for key "{key}", '
                f'current session "{entry.Session}" != "{cmd.get("Session", "")}"'
            )
    elif verb == "check-not-exists":
        if entry is not None:
            return f'key "{key}" exists'
    elif verb not in ("set", "delete", "delete-tree", "get-tree"):
        return f'unknown KV verb "{verb}"'
    return None


def _kv_write(store: Store, index: int, cmd: dict) -> bool:
    verb, key = cmd["Verb"], cmd.get("Key", "")
    if verb in ("set", "cas", "unlock", "lock"):
        old = store.kv_get(key)
        session, lock_index = ("", 0) if old is None else (old.Session, old.LockIndex)
        if verb == "unlock":
            session = ""
        elif verb == "lock":
            # A new acquisition counts; re-acquiring a lock already held does not.
            if session != cmd["Session"]:
                lock_index += 1
            session = cmd["Session"]
        store.kv_put(
            index,
            KVEntry(
                Key=key,
                Value=cmd.get("Value") or b"",
                Flags=cmd.get("Flags", 0),
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


def _kv_read_results(store: Store, kv: dict) -> list[dict]:
    verb = kv["Verb"]
    if verb == "get":
        return [{"KV": _kv_result(store.kv_get(kv["Key"]), with_value=True)}]
    if verb == "get-tree":
        return [{"KV": _kv_result(e, with_value=True)} for e in store.kv_range(kv.get("Key", ""))]
    if verb in ("check-index", "check-session"):
        return [{"KV": _kv_result(store.kv_get(kv["Key"]), with_value=False)}]
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

    def kv_after(self, cmd: dict) -> None:
        verb, key = cmd["Verb"], cmd.get("Key", "")
        if verb in ("set", "cas", "unlock", "lock"):
            old = self.kv_get(key)
            session = old.Session if old else ""
            if verb == "lock":
                session = cmd.get("Session", "")
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


def _txn_dry_run(store: Store, ops: list[dict]) -> list[dict]:
    overlay = _Overlay(store)
    errors: list[dict] = []
    for i, op in enumerate(ops):
        if "KV" in op:
            kv = op["KV"]
            why = _kv_precondition(overlay.kv_get, kv, store.sessions.by_id)
            if why is None:
                overlay.kv_after(kv)
        elif "Node" in op:
            why = _node_precondition(store, overlay, op["Node"])
        elif "Service" in op:
            why = _service_precondition(store, overlay, op["Service"])
        elif "Check" in op:
            why = _check_precondition(store, overlay, op["Check"])
        else:
            why = "unknown transaction operation"
        if why is not None:
            errors.append({"OpIndex": i, "What": why})
    return errors


# ---------------------------------------------------------------------- catalog helpers


def _node_from(cmd: dict) -> Node:
    return Node(
        Node=cmd["Node"],
        Address=cmd.get("Address", ""),
        ID=cmd.get("ID", "") or "",
        Datacenter=cmd.get("Datacenter", "") or "",
        TaggedAddresses=dict(cmd.get("TaggedAddresses") or {}),
        Meta=dict(cmd.get("NodeMeta") or cmd.get("Meta") or {}),
    )


def service_from(raw: dict) -> Service:
    weights = raw.get("Weights") or {}
    return Service(
        ID=raw.get("ID") or raw["Service"],
        Service=raw["Service"],
        Tags=list(raw.get("Tags") or []),
        Address=raw.get("Address", "") or "",
        TaggedAddresses=dict(raw.get("TaggedAddresses") or {}),
        Meta=dict(raw.get("Meta") or {}),
        Port=int(raw.get("Port") or 0),
        Weights=Weights(Passing=weights.get("Passing", 1), Warning=weights.get("Warning", 1)),
        EnableTagOverride=bool(raw.get("EnableTagOverride", False)),
        Kind=raw.get("Kind", "") or "",
    )


def check_from(raw: dict, node: str, services: dict[str, Service]) -> HealthCheck:
    service_id = raw.get("ServiceID", "") or ""
    svc = services.get(service_id)
    return HealthCheck(
        Node=node,
        CheckID=raw.get("CheckID") or raw.get("Name", ""),
        Name=raw.get("Name", "") or raw.get("CheckID", ""),
        Status=raw.get("Status") or "critical",
        Notes=raw.get("Notes", "") or "",
        Output=raw.get("Output", "") or "",
        ServiceID=service_id,
        ServiceName=svc.Service if svc else raw.get("ServiceName", "") or "",
        ServiceTags=list(svc.Tags) if svc else list(raw.get("ServiceTags") or []),
        Type=raw.get("Type", "") or "",
        Interval=raw.get("Interval", "") or "",
        Timeout=raw.get("Timeout", "") or "",
        ExposedPort=int(raw.get("ExposedPort") or 0),
        Definition=dict(raw.get("Definition") or {}),
    )


def _register_checks(cmd: dict) -> list[dict]:
    checks = list(cmd.get("Checks") or [])
    if cmd.get("Check"):
        checks.insert(0, cmd["Check"])
    return checks


def _register_precondition(store: Store, cmd: dict, pending_services: dict) -> str | None:
    node = cmd.get("Node", "")
    services = dict(store.services.get(node, {}))
    if cmd.get("Service"):
        services[cmd["Service"].get("ID") or cmd["Service"].get("Service")] = True
    for check in _register_checks(cmd):
        sid = check.get("ServiceID")
        if sid and sid not in services:
            return f'Unknown service ID "{sid}" for check ID "{check.get("CheckID") or check.get("Name")}"'
    node_id = cmd.get("ID")
    if node_id:
        for other in store.nodes.values():
            if node_id == other.ID and other.Node != node:
                return (
                    f'failed inserting node: Error while renaming Node ID: "{node_id}": '
                    f"Node name {node} is reserved by node {other.ID} with name {other.Node}"
                )
    return None


def _register(store: Store, index: int, cmd: dict) -> None:
    node_name = cmd["Node"]
    existing = store.nodes.get(node_name)
    if not (cmd.get("SkipNodeUpdate") and existing is not None):
        store.ensure_node(index, _node_from(cmd))
    if cmd.get("Service"):
        store.ensure_service(index, node_name, service_from(cmd["Service"]))
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


def _txn_node(store: Store, index: int, op: dict) -> list[dict]:
    verb, raw = op["Verb"], op.get("Node") or {}
    name = raw.get("Node", "")
    if verb in ("set", "cas"):
        store.ensure_node(index, _node_from(raw))
    elif verb in ("delete", "delete-cas"):
        _delete_node(store, index, name)
        return []
    node = store.nodes.get(name)
    return [{"Node": msgspec.to_builtins(node)}] if node else []


def _txn_service(store: Store, index: int, op: dict) -> list[dict]:
    verb, node, raw = op["Verb"], op.get("Node", ""), op.get("Service") or {}
    sid = raw.get("ID") or raw.get("Service", "")
    if verb in ("set", "cas"):
        store.ensure_service(index, node, service_from(raw))
    elif verb in ("delete", "delete-cas"):
        _delete_service(store, index, node, sid)
        return []
    svc = store.services.get(node, {}).get(sid)
    return [{"Service": msgspec.to_builtins(svc)}] if svc else []


def _txn_check(store: Store, index: int, op: dict) -> list[dict]:
    verb, raw = op["Verb"], op.get("Check") or {}
    node, cid = raw.get("Node", ""), raw.get("CheckID", "")
    if verb in ("set", "cas"):
        _ensure_check(store, index, check_from(raw, node, store.services.get(node, {})))
    elif verb in ("delete", "delete-cas"):
        _delete_check(store, index, node, cid)
        return []
    check = store.checks.get(node, {}).get(cid)
    return [{"Check": msgspec.to_builtins(check)}] if check else []


def _cas_mismatch(current: Any, wanted: int) -> bool:
    return current is None or current.ModifyIndex != wanted


def _node_precondition(store: Store, overlay: _Overlay, op: dict) -> str | None:
    verb, raw = op.get("Verb", ""), op.get("Node") or {}
    name = raw.get("Node", "")
    if not name:
        return "Must provide a node name"
    if verb == "get":
        return None if overlay.node_exists(name) else f'node "{name}" doesn\'t exist'
    if verb in ("cas", "delete-cas"):
        wanted = raw.get("ModifyIndex", 0)
        current = store.nodes.get(name)
        if (wanted == 0 and verb == "cas" and current is not None) or (
            wanted != 0 and _cas_mismatch(current, wanted)
        ):
            action = "set" if verb == "cas" else "delete"
            return f'failed to {action} node "{name}", index is stale'
    elif verb not in ("set", "delete"):
        return f'unknown Node verb "{verb}"'
    overlay.nodes[name] = verb in ("set", "cas")
    return None


def _service_precondition(store: Store, overlay: _Overlay, op: dict) -> str | None:
    verb, node, raw = op.get("Verb", ""), op.get("Node", ""), op.get("Service") or {}
    sid = raw.get("ID") or raw.get("Service", "")
    if not sid:
        return "Must provide a service name"
    if verb == "get":
        return None if overlay.service_exists(node, sid) else f'service "{sid}" doesn\'t exist'
    if verb in ("set", "cas") and not overlay.node_exists(node):
        return f'node "{node}" doesn\'t exist'
    if verb in ("set", "cas") and not raw.get("Service"):
        return "Must provide service name (Service.Service) when service ID is provided"
    if verb in ("cas", "delete-cas"):
        wanted = raw.get("ModifyIndex", 0)
        current = store.services.get(node, {}).get(sid)
        if (wanted == 0 and verb == "cas" and current is not None) or (
            wanted != 0 and _cas_mismatch(current, wanted)
        ):
            action = "set" if verb == "cas" else "delete"
            return f'failed to {action} service "{sid}", index is stale'
    elif verb not in ("set", "delete"):
        return f'unknown Service verb "{verb}"'
    overlay.services[(node, sid)] = verb in ("set", "cas")
    return None


def _check_precondition(store: Store, overlay: _Overlay, op: dict) -> str | None:
    verb, raw = op.get("Verb", ""), op.get("Check") or {}
    node, cid = raw.get("Node", ""), raw.get("CheckID", "")
    if not cid:
        return "Must provide a check ID"
    if verb == "get":
        exists = cid in store.checks.get(node, {})
        return None if exists else f'check "{cid}" doesn\'t exist'
    if verb in ("set", "cas"):
        if not overlay.node_exists(node):
            return f'node "{node}" doesn\'t exist'
        sid = raw.get("ServiceID")
        if sid and not overlay.service_exists(node, sid):
            return f'Unknown service ID "{sid}" for check ID "{cid}"'
    if verb in ("cas", "delete-cas"):
        wanted = raw.get("ModifyIndex", 0)
        current = store.checks.get(node, {}).get(cid)
        if (wanted == 0 and verb == "cas" and current is not None) or (
            wanted != 0 and _cas_mismatch(current, wanted)
        ):
            action = "set" if verb == "cas" else "delete"
            return f'failed to {action} check "{cid}", index is stale'
    elif verb not in ("set", "delete"):
        return f'unknown Check verb "{verb}"'
    return None
