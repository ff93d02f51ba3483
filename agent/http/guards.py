"""The permission table: one guard per (route, method), wrapped around the route's handler.

Why a table rather than checks inside every handler: the endpoint modules stay as they are
(and fast when ACLs are off, because nothing is wrapped then), and the whole policy of the
HTTP API can be read and tested in one place (consul-api.md section 8.5). A guard either
checks before the handler runs (`before`), or filters the handler's JSON answer (`after`),
or both. A route no guard names is held to `operator:read` (reads) / `operator:write`
(writes), so an endpoint added later is closed by default rather than open.

Filtering keeps the handler's index headers: a blocking query still returns when anything
under it changed, exactly as Consul's filtered queries do.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec

from agent.acl.enforce import denied_message
from agent.http.app import Handler, HTTPError, Request, Response, Router, json_response
from agent.http.authz import (
    allowed,
    filter_items,
    filtered_headers,
    identity,
    mark_filtered,
    require,
    require_management,
)
from agent.http.debug import ROUTES as DEBUG_ROUTES
from agent.http.webui import ui_route

if TYPE_CHECKING:
    from agent.local import LocalState
    from agent.ports import AgentIdentity
    from agent.state.store import Store

__all__ = ["GuardPorts", "install", "table", "wrap"]

log = logging.getLogger("agent.acl")

Before = Callable[[Request, str], Awaitable[None]]
After = Callable[[Request, str, Any], Any]


@dataclass(frozen=True)
class GuardPorts:
    """What the guards read to name a resource: the catalog and sessions (the store), this
    agent's own services and checks (local), and its node name and ACL settings (identity)."""

    store: Store
    local: LocalState
    identity: AgentIdentity


class Guard:
    __slots__ = ("before", "after")

    def __init__(self, before: Before | None = None, after: After | None = None) -> None:
        self.before = before
        self.after = after


# ---------------------------------------------------------------------- building blocks


def need(resource: str, level: str, name: Callable[[Request, str], str | None] | None = None):
    """A `before` check of one permission; `name(req, rest)` picks the resource name."""

    async def check(req: Request, rest: str) -> None:
        require(req, resource, name(req, rest) if name else None, level)

    return check


def _rest(req: Request, rest: str) -> str:
    return rest


def _this_node(identity: AgentIdentity, req: Request, rest: str) -> str:
    return identity.node_name


async def _replay_body(req: Request) -> bytes:
    """Read the body for a check and let the handler read it again."""
    raw = await req.body()
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    req._receive = receive
    return raw


async def _json_body(req: Request) -> Any:
    raw = await _replay_body(req)
    try:
        return msgspec.json.decode(raw) if raw.strip() else None
    except (msgspec.DecodeError, RecursionError):
        return None  # the handler reports the decode error


def _get(obj: Any, name: str) -> Any:
    """Case-insensitive field of a decoded body."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    low = name.lower()
    for key, value in obj.items():
        if isinstance(key, str) and key.replace("_", "").lower() == low:
            return value
    return None


def _items(resource: str, field: str) -> After:
    def after(req: Request, rest: str, value: Any) -> Any:
        if isinstance(value, list):
            return filter_items(req, value, lambda item: (resource, str(_get(item, field) or "")))
        return value

    return after


# ---------------------------------------------------------------------- KV and txn


async def _kv_get_before(identity: AgentIdentity, req: Request, key: str) -> None:
    if req.has("recurse") or req.has("keys"):
        if identity.config.acl.enable_key_list_policy:
            require(req, "key", key, "list")
        return
    require(req, "key", key, "read")


def _kv_get_after(req: Request, key: str, value: Any) -> Any:
    if not isinstance(value, list) or not (req.has("recurse") or req.has("keys")):
        return value
    if req.has("keys"):
        return filter_items(req, value, lambda k: ("key", str(k)))
    return filter_items(req, value, lambda e: ("key", str(e.get("Key", ""))))


async def _kv_delete_before(req: Request, key: str) -> None:
    if req.has("recurse"):
        if not identity(req).authz.key_write_prefix(key):
            raise HTTPError(403, denied_message(identity(req), "key", key, "write"))
        return
    require(req, "key", key, "write")


_TXN_READS = {"get", "get-tree"}
_TXN_CHECKS = {"check-index", "check-session", "check-not-exists"}


async def _txn_before(req: Request, rest: str) -> None:
    ops = await _json_body(req)
    if not isinstance(ops, list):
        return
    ident = identity(req)
    errors = []
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            continue
        for kind, body in op.items():
            if not isinstance(body, dict):
                continue
            verb = str(_get(body, "Verb") or "")
            needed = _txn_need(req, kind.lower(), verb, body)
            if needed is None:
                continue
            resource, name, level = needed
            if not ident.authz.allowed(resource, name, level):
                errors.append({"OpIndex": i, "What": denied_message(ident, resource, name, level)})
    if errors:
        body = msgspec.json.encode({"Results": None, "Errors": errors})
        raise _Answer(Response(body, 409))


def _txn_need(req: Request, kind: str, verb: str, body: dict) -> tuple[str, str, str] | None:
    if kind == "kv":
        key = str(_get(body, "Key") or "")
        if verb in _TXN_READS:
            return None  # filtered on the way out, as Consul does
        if verb == "delete-tree":
            return None if identity(req).authz.key_write_prefix(key) else ("key", key, "write")
        return ("key", key, "read" if verb in _TXN_CHECKS else "write")
    level = "read" if verb == "get" else "write"
    if kind == "node":
        node = _get(body, "Node")
        return ("node", str(_get(node, "Node") or ""), level)
    if kind == "service":
        svc = _get(body, "Service")
        return ("service", str(_get(svc, "Service") or ""), level)
    if kind == "check":
        check = _get(body, "Check")
        service = str(_get(check, "ServiceName") or "")
        if service:
            return ("service", service, level)
        return ("node", str(_get(check, "Node") or ""), level)
    return None


def _txn_after(req: Request, rest: str, value: Any) -> Any:
    results = value.get("Results") if isinstance(value, dict) else None
    if not isinstance(results, list):
        return value

    def needs(item: Any) -> tuple[str, str]:
        kv = _get(item, "KV")
        if isinstance(kv, dict):
            return ("key", str(kv.get("Key", "")))
        node = _get(item, "Node")
        if isinstance(node, dict):
            return ("node", str(node.get("Node", "")))
        return ("key", "")  # other results were checked before the write

    kept = filter_items(req, results, needs)
    return {**value, "Results": kept or None}


# ---------------------------------------------------------------------- catalog / health


async def _catalog_register_before(store: Store, req: Request, rest: str) -> None:
    body = await _json_body(req)
    if not isinstance(body, dict):
        return
    node = str(_get(body, "Node") or "")
    existing = store.nodes.get(node)
    unchanged = existing is not None and _same_node(existing, body)
    # As Consul's RegisterRequest.ChangesNode: creating the node always takes node:write;
    # SkipNodeUpdate only spares it for a node that is already there.
    if existing is None or (not _get(body, "SkipNodeUpdate") and not unchanged):
        require(req, "node", node, "write")
    service = _get(body, "Service")
    if isinstance(service, dict):
        require(req, "service", str(_get(service, "Service") or ""), "write")
    listed = _get(body, "Checks")
    # A body of the wrong shape gets its decode error from the handler, not a guess here.
    checks = [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
    if isinstance(_get(body, "Check"), dict):
        checks.append(_get(body, "Check"))
    for check in checks:
        service_id = _get(check, "ServiceID")
        if service_id:
            name = _service_name(store, node, str(service_id), service)
            require(req, "service", name, "write")
        else:
            require(req, "node", node, "write")


def _same_node(existing: Any, body: dict) -> bool:
    """Whether a registration leaves the node's record as it is (Consul's ChangesNode: ID,
    address, tagged addresses and meta; an absent map equals an empty one)."""
    return (
        (_get(body, "ID") or "") == (existing.ID or "")
        and (_get(body, "Address") or "") == existing.Address
        and (_get(body, "TaggedAddresses") or {}) == (existing.TaggedAddresses or {})
        and (_get(body, "NodeMeta") or {}) == (existing.Meta or {})
    )


def _service_name(store: Store, node: str, service_id: str, body_service: Any = None) -> str:
    if isinstance(body_service, dict) and (_get(body_service, "ID") or "") == service_id:
        return str(_get(body_service, "Service") or "")
    svc = store.services.get(node, {}).get(service_id)
    return svc.Service if svc is not None else service_id


async def _catalog_deregister_before(store: Store, req: Request, rest: str) -> None:
    body = await _json_body(req)
    if not isinstance(body, dict):
        return
    node = str(_get(body, "Node") or "")
    service_id = _get(body, "ServiceID")
    check_id = _get(body, "CheckID")
    # As Consul's vetDeregisterWithACL: node:write on the node removes anything registered on
    # it, so an agent's token can clean up a service whose own token is gone (or never had
    # the agent's rights); the per-service rules below are for tokens without it.
    if allowed(req, "node", node, "write"):
        return
    if service_id:
        require(req, "service", _service_name(store, node, str(service_id)), "write")
    elif check_id:
        check = store.checks.get(node, {}).get(str(check_id))
        if check is not None and check.ServiceName:
            require(req, "service", check.ServiceName, "write")
        else:
            require(req, "node", node, "write")
    else:
        require(req, "node", node, "write")


def _node_and_service(node_of: Callable[[Any], Any], service_of: Callable[[Any], Any]) -> After:
    def after(req: Request, rest: str, value: Any) -> Any:
        if not isinstance(value, list):
            return value

        def needs(item: Any) -> list[tuple[str, str]]:
            out = [("node", str(node_of(item) or ""))]
            service = service_of(item)
            if service:
                out.append(("service", str(service)))
            return out

        return filter_items(req, value, needs)

    return after


def _dict_keys(resource: str) -> After:
    def after(req: Request, rest: str, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        kept = filter_items(req, list(value.items()), lambda kv: (resource, str(kv[0])))
        return dict(kept)

    return after


def _catalog_node_after(req: Request, rest: str, value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if not allowed(req, "node", rest, "read"):
        mark_filtered(req)
        return None
    services = value.get("Services")
    if isinstance(services, dict):
        kept = filter_items(
            req, list(services.items()), lambda kv: ("service", kv[1].get("Service", ""))
        )
        value = {**value, "Services": dict(kept)}
    elif isinstance(services, list):
        value = {
            **value,
            "Services": filter_items(req, services, lambda s: ("service", s.get("Service", ""))),
        }
    return value


def _health_entry_after(req: Request, rest: str, value: Any) -> Any:
    return _node_and_service(
        lambda e: (e.get("Node") or {}).get("Node"),
        lambda e: (e.get("Service") or {}).get("Service"),
    )(req, rest, value)


_checks_after = _node_and_service(lambda c: c.get("Node"), lambda c: c.get("ServiceName"))
_catalog_service_after = _node_and_service(lambda e: e.get("Node"), lambda e: e.get("ServiceName"))


# ---------------------------------------------------------------------- agent


def _agent_services_after(req: Request, rest: str, value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    kept = filter_items(req, list(value.items()), lambda kv: ("service", kv[1].get("Service", "")))
    return dict(kept)


def _agent_checks_after(req: Request, rest: str, value: Any) -> Any:
    if not isinstance(value, dict):
        return value

    def needs(kv: tuple[str, Any]) -> tuple[str, str]:
        check = kv[1]
        if check.get("ServiceName"):
            return ("service", check["ServiceName"])
        return ("node", check.get("Node", ""))

    return dict(filter_items(req, list(value.items()), needs))


def _agent_service_after(req: Request, rest: str, value: Any) -> Any:
    if isinstance(value, dict):
        require(req, "service", str(value.get("Service", "")), "read")
    return value


def _local_service_name(local: LocalState, service_id: str) -> str:
    defn = local.services.get(service_id)
    return defn.name if defn is not None else service_id


async def _agent_service_write(local: LocalState, req: Request, service_id: str) -> None:
    require(req, "service", _local_service_name(local, service_id), "write")


async def _agent_service_read(local: LocalState, req: Request, service_id: str) -> None:
    require(req, "service", _local_service_name(local, service_id), "read")


async def _service_register_before(req: Request, rest: str) -> None:
    body = await _json_body(req)
    name = str(_get(body, "Name") or "") if isinstance(body, dict) else ""
    require(req, "service", name, "write")


async def _local_check_write(ports: GuardPorts, req: Request, check_id: str) -> None:
    check = ports.local.checks.get(check_id)
    service_id = check.definition.service_id if check is not None else ""
    if service_id:
        require(req, "service", _local_service_name(ports.local, service_id), "write")
    else:
        require(req, "node", ports.identity.node_name, "write")


async def _check_register_before(ports: GuardPorts, req: Request, rest: str) -> None:
    body = await _json_body(req)
    service_id = _get(body, "ServiceID") if isinstance(body, dict) else None
    if service_id:
        require(req, "service", _local_service_name(ports.local, str(service_id)), "write")
    else:
        require(req, "node", ports.identity.node_name, "write")


async def _session_create_before(identity: AgentIdentity, req: Request, rest: str) -> None:
    body = await _json_body(req)
    node = _get(body, "Node") if isinstance(body, dict) else None
    require(req, "session", str(node or identity.node_name), "write")


def _session_node(ports: GuardPorts, req: Request, session_id: str) -> str:
    """The node a session belongs to (the agent's own node for an unknown one)."""
    sessions = getattr(ports.store, "sessions", None)
    session = sessions.get(session_id) if sessions is not None else None
    if session is None:
        return ports.identity.node_name
    node = session.get("Node") if isinstance(session, dict) else getattr(session, "Node", None)
    return str(node or ports.identity.node_name)


# ---------------------------------------------------------------------- the table

_OP_READ = Guard(need("operator", "read"))
_OP_WRITE = Guard(need("operator", "write"))
_NODE_READ = Guard(need("node", "read", _rest))
_NONE = Guard()
_MANAGEMENT = Guard(lambda req, rest: _async(require_management, req))


async def _async(fn: Callable[[Request], None], req: Request) -> None:
    fn(req)


def table(ports: GuardPorts) -> dict[str, dict[str, Guard] | str]:
    """Route path (as registered) -> method -> guard; "acl" marks routes that check for
    themselves. Guards that name a resource from state are bound to `ports` here."""
    this_node = partial(_this_node, ports.identity)
    kv_get = Guard(partial(_kv_get_before, ports.identity), _kv_get_after)
    service_write = Guard(partial(_agent_service_write, ports.local))
    check_write = Guard(partial(_local_check_write, ports))
    session_node = partial(_session_node, ports)
    ui_path = ui_route(ports.identity.config)
    return {
        "/v1/kv/": {
            "GET": kv_get,
            "PUT": Guard(need("key", "write", _rest)),
            "DELETE": Guard(_kv_delete_before),
        },
        "/v1/kv": {
            "GET": kv_get,
            "PUT": Guard(need("key", "write", _rest)),
            "DELETE": Guard(_kv_delete_before),
        },
        "/v1/txn": {"PUT": Guard(_txn_before, _txn_after)},
        "/v1/status/leader": {"GET": _NONE},
        "/v1/status/peers": {"GET": _NONE},
        "/v1/catalog/register": {"PUT": Guard(partial(_catalog_register_before, ports.store))},
        "/v1/catalog/deregister": {"PUT": Guard(partial(_catalog_deregister_before, ports.store))},
        "/v1/catalog/datacenters": {"GET": _NONE},
        "/v1/catalog/nodes": {"GET": Guard(after=_items("node", "Node"))},
        "/v1/catalog/services": {"GET": Guard(after=_dict_keys("service"))},
        "/v1/catalog/service/": {"GET": Guard(after=_catalog_service_after)},
        "/v1/catalog/connect/": {"GET": Guard(after=_catalog_service_after)},
        "/v1/catalog/node/": {"GET": Guard(after=_catalog_node_after)},
        "/v1/catalog/node-services/": {"GET": Guard(after=_catalog_node_after)},
        "/v1/catalog/gateway-services/": {"GET": Guard(need("service", "read", _rest))},
        "/v1/health/node/": {"GET": Guard(after=_checks_after)},
        "/v1/health/checks/": {"GET": Guard(after=_checks_after)},
        "/v1/health/state/": {"GET": Guard(after=_checks_after)},
        "/v1/health/service/": {"GET": Guard(after=_health_entry_after)},
        "/v1/health/connect/": {"GET": Guard(after=_health_entry_after)},
        "/v1/health/ingress/": {"GET": Guard(after=_health_entry_after)},
        "/v1/agent/self": {"GET": Guard(need("agent", "read", this_node))},
        "/v1/agent/version": {"GET": _NONE},
        "/v1/agent/host": {"GET": _OP_READ},
        "/v1/agent/members": {"GET": Guard(after=_items("node", "Name"))},
        "/v1/agent/services": {"GET": Guard(after=_agent_services_after)},
        "/v1/agent/metrics": {"GET": Guard(need("agent", "read", this_node))},
        "/v1/agent/metrics/stream": {"GET": Guard(need("agent", "read", this_node))},
        "/v1/agent/monitor": {"GET": Guard(need("agent", "read", this_node))},
        "/v1/agent/service/register": {"PUT": Guard(_service_register_before)},
        "/v1/agent/service/deregister/": {"PUT": service_write},
        "/v1/agent/service/maintenance/": {"PUT": service_write},
        "/v1/agent/service/": {"GET": Guard(after=_agent_service_after)},
        "/v1/agent/checks": {"GET": Guard(after=_agent_checks_after)},
        "/v1/agent/check/register": {"PUT": Guard(partial(_check_register_before, ports))},
        "/v1/agent/check/deregister/": {"PUT": check_write},
        "/v1/agent/check/pass/": {"PUT": check_write},
        "/v1/agent/check/warn/": {"PUT": check_write},
        "/v1/agent/check/fail/": {"PUT": check_write},
        "/v1/agent/check/update/": {"PUT": check_write},
        "/v1/agent/maintenance": {"PUT": Guard(need("node", "write", this_node))},
        "/v1/agent/reload": {"PUT": Guard(need("agent", "write", this_node))},
        "/v1/agent/leave": {"PUT": Guard(need("agent", "write", this_node))},
        "/v1/agent/join/": {"PUT": Guard(need("agent", "write", this_node))},
        "/v1/agent/force-leave/": {"PUT": _OP_WRITE},
        "/v1/agent/health/service/id/": {"GET": Guard(partial(_agent_service_read, ports.local))},
        "/v1/agent/health/service/name/": {"GET": Guard(need("service", "read", _rest))},
        "/v1/agent/token/": "acl",
        "/v1/operator/raft/configuration": {"GET": _OP_READ},
        "/v1/operator/raft/peer": {"DELETE": _OP_WRITE},
        "/v1/operator/raft/transfer-leader": {"POST": _OP_WRITE},
        "/v1/operator/autopilot/configuration": {"GET": _OP_READ, "PUT": _OP_WRITE},
        "/v1/operator/autopilot/health": {"GET": _OP_READ},
        "/v1/operator/autopilot/state": {"GET": _OP_READ},
        "/v1/operator/keyring": {
            "GET": Guard(need("keyring", "read")),
            "POST": Guard(need("keyring", "write")),
            "PUT": Guard(need("keyring", "write")),
            "DELETE": Guard(need("keyring", "write")),
        },
        "/v1/operator/usage": {"GET": _OP_READ},
        # CE answers 404 "requires Consul Enterprise" before any token is looked at.
        "/v1/operator/utilization": {"GET": _NONE},
        "/v1/operator/area": {"GET": _OP_READ, "POST": _OP_WRITE},
        "/v1/operator/area/": {"GET": _OP_READ, "PUT": _OP_WRITE, "DELETE": _OP_WRITE},
        "/v1/snapshot": {"GET": _MANAGEMENT, "PUT": _MANAGEMENT},
        "/v1/session/create": {"PUT": Guard(partial(_session_create_before, ports.identity))},
        "/v1/session/destroy/": {"PUT": Guard(need("session", "write", session_node))},
        "/v1/session/renew/": {"PUT": Guard(need("session", "write", session_node))},
        "/v1/session/info/": {"GET": Guard(after=_items("session", "Node"))},
        "/v1/session/node/": {"GET": Guard(need("session", "read", _rest))},
        "/v1/session/list": {"GET": Guard(after=_items("session", "Node"))},
        "/v1/event/fire/": {"PUT": Guard(need("event", "write", _rest))},
        "/v1/event/list": {"GET": Guard(after=_items("event", "Name"))},
        "/v1/coordinate/datacenters": {"GET": _NONE},
        "/v1/coordinate/nodes": {"GET": Guard(after=_items("node", "Node"))},
        "/v1/coordinate/node/": {"GET": _NODE_READ},
        "/v1/coordinate/update": {"PUT": Guard(need("node", "write", this_node))},
        # Prepared queries: the rule depends on the query (its name, or none for an unnamed
        # one), so agent/http/query.py and query_acl.py check for themselves.
        "/v1/query": {"GET": _NONE, "POST": _NONE},
        "/v1/query/": {"GET": _NONE, "PUT": _NONE, "DELETE": _NONE},
        "/v1/internal/ui/nodes": {"GET": Guard(after=_items("node", "Node"))},
        "/v1/internal/ui/node/": {"GET": _NODE_READ},
        "/v1/internal/ui/services": {"GET": Guard(after=_items("service", "Name"))},
        "/v1/internal/ui/catalog-overview": {"GET": _OP_READ},
        "/v1/internal/ui/exported-services": {"GET": _NONE},
        "/v1/internal/ui/gateway-services-nodes/": {
            "GET": Guard(need("service", "read", _rest), _items("service", "Name"))
        },
        "/v1/internal/ui/gateway-intentions/": {"GET": Guard(need("service", "read", _rest))},
        "/v1/internal/ui/service-topology/": {"GET": Guard(need("service", "read", _rest))},
        "/v1/internal/ui/metrics-proxy/": "acl",
        "/v1/internal/acl/authorize": "acl",
        # Peering is off: Consul's peering service refuses before it resolves a token.
        "/v1/peering/token": {"POST": _NONE},
        "/v1/peering/establish": {"POST": _NONE},
        "/v1/peering/": {"GET": _NONE, "DELETE": _NONE},
        "/v1/peerings": {"GET": _NONE},
        "/v1/exported-services": {"GET": Guard(need("mesh", "read"))},
        # Consul's AssignManualServiceVIPs asks for mesh:write (operator:write implies it).
        "/v1/internal/service-virtual-ip": {"PUT": Guard(need("mesh", "write"))},
        "/v1/internal/federation-states": {"GET": _OP_READ},
        "/v1/internal/federation-state/": {"GET": _OP_READ},
        # Filtered per gateway by agent/http/federation.py (node:read and service:read).
        "/v1/internal/federation-states/mesh-gateways": {"GET": _NONE},
        # pprof: a bare 403 without operator:read, decided by agent/http/debug.py itself.
        **dict.fromkeys(DEBUG_ROUTES, "acl"),
        # The UI's static files (agent/http/webui.py): its pages call the API with the token.
        ui_path: {"GET": _NONE, "HEAD": _NONE},
        ui_path.rstrip("/"): {"GET": _NONE},
        # The mesh's areas decide per kind and per entry (config entries' rules, intentions'
        # destination, the CA's operator rule), so their handlers check for themselves.
        "/v1/config": {"PUT": _NONE},
        "/v1/config/": {"GET": _NONE, "DELETE": _NONE},
        "/v1/connect/ca/roots": {"GET": _NONE},
        "/v1/connect/ca/configuration": {"GET": _NONE, "PUT": _NONE},
        "/v1/agent/connect/ca/roots": {"GET": _NONE},
        "/v1/agent/connect/ca/leaf/": {"GET": _NONE},
        "/v1/agent/connect/authorize": {"POST": _NONE},
        "/v1/connect/intentions": {"GET": _NONE, "POST": _NONE},
        "/v1/connect/intentions/": {m: _NONE for m in ("GET", "PUT", "DELETE", "POST")},
        "/v1/discovery-chain/": {"GET": _NONE, "POST": _NONE},
    }


class _Answer(Exception):
    """A guard's own complete answer (txn's 409 listing denied operations)."""

    def __init__(self, response: Response) -> None:
        super().__init__("answer")
        self.response = response


def wrap(handler: Handler, guard: Guard) -> Handler:
    async def guarded(req: Request, rest: str) -> Response:
        await req.acl.ensure_initialized()
        identity(req)  # 403 "ACL not found" first, for every guarded route
        if guard.before is not None:
            try:
                await guard.before(req, rest)
            except _Answer as answer:
                return answer.response
        response = await handler(req, rest)
        if guard.after is None or response.status not in (200, 409) or response.stream:
            return response
        if not response.body or not response.content_type.startswith(b"application/json"):
            return response
        value = guard.after(req, rest, msgspec.json.decode(response.body))
        extra = filtered_headers(req)
        if value is None and response.body.strip() != b"null":
            return json_response(req, None, response.headers + extra, response.status)
        if isinstance(value, list) and not value and _empty_is_404(req):
            return Response(b"", 404, headers=response.headers)
        return json_response(req, value, response.headers + extra, response.status)

    return guarded


def _empty_is_404(req: Request) -> bool:
    return req.path.startswith("/v1/kv") and (req.has("recurse") or req.has("keys"))


def install(router: Router, ports: GuardPorts) -> list[str]:
    """Wrap every route's handlers; returns the routes held to the default operator guard."""
    unguarded: list[str] = []
    default = {"GET": _OP_READ}
    guards = table(ports)
    for path, methods in list(router.exact.items()) + list(router.prefixes):
        spec = guards.get(path)
        if spec == "acl" or path.startswith("/v1/acl/"):
            continue
        for method, handler in list(methods.items()):
            guard = spec.get(method) if isinstance(spec, dict) else None
            if guard is None:
                guard = default.get(method, _OP_WRITE)
                unguarded.append(f"{method} {path}")
            if guard.before is None and guard.after is None:
                continue  # no permission needed: a token is not even looked at (as Consul)
            methods[method] = wrap(handler, guard)
    if unguarded:
        log.info("routes held to operator permissions by default: %s", ", ".join(unguarded))
    return unguarded
