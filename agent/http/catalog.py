"""`/v1/catalog/*`: register and deregister through consensus; reads from the local store.

Writes are checked here, before they are proposed, the way Consul's `Catalog.Register` RPC
checks them before its Raft apply: a request that Consul would refuse never reaches the log.
Type errors in the body are 400s (`Request decode failed: ...`); refusals of the RPC itself
(`Must provide node`, unknown service of a check, a proxy without a destination, ...) are
500s with Consul's text. A service's Connect settings are kept as sent: the catalog expands no
`SidecarService` (that is the agent's sugar).

`/v1/catalog/connect/<service>` lists the instances that accept Connect traffic for a service
(`agent.state.mesh_views`).

Reads share a few query-parameter helpers with `health.py` and `ui.py` (node-meta, tag and
`?filter=` handling, the read headers), kept here beside the first user.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec

from agent import render
from agent.connect.central_config import merged_proxy
from agent.durations import format_nanoseconds, parse_nanoseconds
from agent.filter import Filter, FilterError, compile_filter
from agent.gojson import Mismatch
from agent.http import gojson
from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.blocking import QueryOptions, blocking_query, query_options, read_headers
from agent.http.bodies import DEREGISTER, HEADER, REGISTER
from agent.http.gojson import STRINGS, Struct
from agent.proxy_config import decode_connect_fields, multierror, service_errors
from agent.state import mesh_views
from agent.state.commands import CheckRecord, Deregister, Register, ServiceRecord, typed
from agent.state.mesh_views import connect_instances
from agent.state.structs import Node, Service

if TYPE_CHECKING:
    from agent.cluster import ClusterManager
    from agent.http.deps import HTTPDeps
    from agent.ports import Writer
    from agent.state.store import Store


@dataclass(frozen=True)
class CatalogPorts:
    """What `/v1/catalog/*` uses: the store it reads, the writer it proposes through, this
    agent's datacenter (fixed for the life of the process) and the gossip pools (the WAN pool
    knows the datacenters; None in twins)."""

    store: Store
    writer: Writer
    datacenter: str
    cluster: ClusterManager | None


# ---------------------------------------------------------------------------- read helpers


def node_meta_filters(req: Request) -> dict[str, str]:
    """`?node-meta=key:value` (repeatable, AND-ed); a pair without ':' wants an empty value."""
    if not req.raw_query:
        return {}
    filters: dict[str, str] = {}
    for raw in req.query.get("node-meta", ()):
        key, _, value = raw.partition(":")
        filters[key] = value
    return filters


def meta_matches(meta: dict[str, str], filters: dict[str, str]) -> bool:
    return all(key in meta and meta[key] == value for key, value in filters.items())


def tag_filters(req: Request) -> list[str]:
    return list(req.query.get("tag", ())) if req.raw_query else []


def has_tags(tags: Iterable[str], wanted: list[str]) -> bool:
    """Consul matches `?tag=` case-insensitively, every wanted tag must be present."""
    have = {t.lower() for t in tags}
    return all(w.lower() in have for w in wanted)


def compile_request_filter(req: Request) -> Filter | None:
    expression = req.get("filter") if req.raw_query else None
    if not expression:
        return None
    try:
        return compile_filter(expression)
    except FilterError as exc:
        raise _filter_error(exc) from None


def _filter_error(exc: FilterError) -> HTTPError:
    return HTTPError(400, f"Failed to create boolean expression evaluator: {exc}")


def select(flt: Filter | None, items: list[dict]) -> list[dict]:
    if flt is None:
        return items
    try:
        return flt.select(items)
    except FilterError as exc:
        raise _filter_error(exc) from None


def select_values(flt: Filter | None, items: dict[str, dict]) -> dict[str, dict]:
    if flt is None:
        return items
    try:
        return flt.select_values(items)
    except FilterError as exc:
        raise _filter_error(exc) from None


def central_config(req: Request) -> bool:
    """`?merge-central-config`: proxies and gateways answer with proxy-defaults and their
    service-defaults merged into their Proxy (Consul's MergeNodeServiceWithCentralConfig),
    so the read also waits on, and is indexed by, the config entries."""
    return bool(req.raw_query) and req.has("merge-central-config")


def central_topics(topics: Iterable[Hashable], merging: bool) -> list[Hashable]:
    return [*topics, ("table", "config-entries")] if merging else list(topics)


def central_index(store: Store, index: int, merging: bool) -> int:
    return max(index, store.table_index("config-entries")) if merging else index


def merged_service_nodes(store: Store, items: list[dict]) -> list[dict]:
    entries = store.mesh.entries
    for item in items:
        item["ServiceProxy"] = merged_proxy(
            entries, item["ServiceKind"], item["ServiceName"], item["ServiceProxy"]
        )
    return items


def catalog_headers(req: Request, index: int, opts: QueryOptions) -> list[tuple[bytes, bytes]]:
    headers = read_headers(req, index, opts.consistency)
    headers.append((b"x-consul-query-backend", b"blocking-query"))
    return headers


async def blocking_read(
    req: Request, topics: Iterable[Hashable], query: Callable[[], tuple[int, Any]]
) -> Response:
    """Run a (possibly long-polling) read and answer it as JSON with the read headers."""
    opts = query_options(req)
    index, result, _ = await blocking_query(req, topics, query, opts)
    return json_response(req, result, catalog_headers(req, index, opts))


def sorted_nodes(nodes: dict[str, Node]) -> list[Node]:
    # Consul's node table is indexed by the lower-cased name; listings come out in that order.
    return [nodes[name] for name in sorted(nodes, key=lambda n: (n.lower(), n))]


def sorted_services(services: dict[str, Service]) -> list[Service]:
    return [services[sid] for sid in sorted(services)]


# ---------------------------------------------------------------------------- body decoding

# HealthCheckDefinition fields: name -> kind ("string", "bool", "duration", "strings", "header")
_DEFINITION_FIELDS = {
    "HTTP": "string",
    "TLSServerName": "string",
    "TLSSkipVerify": "bool",
    "Header": "header",
    "Method": "string",
    "Body": "string",
    "DisableRedirects": "bool",
    "TCP": "string",
    "TCPUseTLS": "bool",
    "UDP": "string",
    "H2PING": "string",
    "H2PingUseTLS": "bool",
    "GRPC": "string",
    "GRPCUseTLS": "bool",
    "OSService": "string",
    "AliasNode": "string",
    "AliasService": "string",
    "DockerContainerID": "string",
    "Shell": "string",
    "ScriptArgs": "strings",
    "Interval": "duration",
    "Timeout": "duration",
    "TTL": "duration",
    "DeregisterCriticalServiceAfter": "duration",
    "OutputMaxSize": "int",
}
_DEFINITION_BY_LOWER = {name.lower(): name for name in _DEFINITION_FIELDS}
_DEFINITION_BY_LOWER["args"] = "ScriptArgs"
_DEFINITION_BY_LOWER["h2ping_use_tls"] = "H2PingUseTLS"


async def _read_body(req: Request, spec: Struct) -> dict:
    body = gojson.parse(await req.body())
    if body is None:
        raise HTTPError(400, "Request decode failed: EOF")
    return gojson.conform(body, spec)


_DEFINITION_KINDS = {"header": HEADER, "strings": STRINGS}


def _definition(raw: Any) -> dict:
    """A HealthCheckDefinition as Consul stores it: known fields only, durations as Go text."""
    if raw is None:
        return {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = _DEFINITION_BY_LOWER.get(key.lower()) or _DEFINITION_BY_LOWER.get(key)
        if name is None or value is None:
            continue
        kind = _DEFINITION_FIELDS[name]
        where = {"struct": "HealthCheckDefinition", "path": name}
        if kind == "duration":
            gojson.conform(value, gojson.DURATION, **where)
            if isinstance(value, str):
                try:
                    ns = parse_nanoseconds(value)
                except ValueError as exc:
                    raise HTTPError(400, f"Request decode failed: {exc}") from None
            else:
                ns = int(value)
            if ns:
                out[name] = format_nanoseconds(ns)
            continue
        value = gojson.conform(value, _DEFINITION_KINDS.get(kind, kind), **where)
        if value not in ("", False, 0, [], {}):
            out[name] = value
    return out


def _check_type(definition: dict) -> str:
    """What Consul infers for a check registered straight into the catalog without a Type."""
    interval = "Interval" in definition
    if definition.get("GRPC") and interval:
        return "grpc"
    if definition.get("HTTP") and interval:
        return "http"
    if definition.get("TTL"):
        return "ttl"
    if definition.get("TCP") and interval:
        return "tcp"
    if definition.get("UDP") and interval:
        return "udp"
    if definition.get("AliasNode") or definition.get("AliasService"):
        return "alias"
    if definition.get("DockerContainerID") and interval:
        return "docker"
    if definition.get("ScriptArgs") and interval:
        return "script"
    if definition.get("H2PING") and interval:
        return "h2ping"
    if definition.get("OSService") and interval:
        return "os_service"
    return ""


# ---------------------------------------------------------------------------- register

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ANY_ADDRESS = {"0.0.0.0", "::", "[::]"}


def _refused(message: str) -> HTTPError:
    # A refusal by the catalog RPC: Consul's HTTP layer answers these with a 500.
    return HTTPError(500, message)


def _node_id_error(node_id: str) -> str | None:
    """go-uuid's ParseUUID messages."""
    if len(node_id) != 36:
        return "uuid string is wrong length"
    if not _UUID.match(node_id):
        if any(node_id[i] != "-" for i in (8, 13, 18, 23)):
            return "uuid is improperly formatted"
        bad = next(c for c in node_id.replace("-", "") if c not in "0123456789abcdefABCDEF")
        return f"encoding/hex: invalid byte: U+{ord(bad):04X} {bad!r}"
    return None


def _weights(raw: dict | None) -> dict:
    """Consul keeps given weights only when valid; anything else becomes the 1/1 default."""
    if raw is None:
        return {"Passing": 1, "Warning": 1}
    passing, warning = raw.get("Passing") or 0, raw.get("Warning") or 0
    if passing < 1 or warning < 0 or passing > 65535 or warning > 65535:
        return {"Passing": 1, "Warning": 1}
    return {"Passing": passing, "Warning": warning}


def _connect_settings(raw: dict) -> dict:
    """The service's Connect fields for its record, refused as Consul's Validate refuses."""
    try:
        fields = decode_connect_fields(raw, struct="NodeService", path="Service")
    except Mismatch as exc:
        raise HTTPError(400, f"Request decode failed: {exc}") from None
    kind, socket_path = raw.get("Kind") or "", raw.get("SocketPath") or ""
    errors = service_errors(kind, raw.get("Port") or 0, socket_path, fields, catalog=True)
    if errors:
        raise _refused(multierror(errors))
    return {
        "SocketPath": socket_path,
        "Locality": render.locality(fields.locality),
        "Proxy": msgspec.to_builtins(fields.proxy),
        "Connect": msgspec.to_builtins(fields.connect),
    }


def build_service(raw: dict) -> ServiceRecord:
    connect = _connect_settings(raw)
    name, sid = raw.get("Service") or "", raw.get("ID") or ""
    if sid and not name:
        raise _refused("Must provide service name (Service.Service) when service ID is provided")
    if not sid and not name:
        raise _refused("failed inserting service: object missing primary index")
    address = raw.get("Address") or ""
    if address in _ANY_ADDRESS:
        raise _refused("Invalid service address")
    tagged = {
        key: {"Address": (val or {}).get("Address") or "", "Port": (val or {}).get("Port") or 0}
        for key, val in (raw.get("TaggedAddresses") or {}).items()
    }
    fields = {
        "ID": sid or name,
        "Service": name,
        "Tags": list(raw.get("Tags") or []),
        "Address": address,
        "TaggedAddresses": tagged,
        "Meta": dict(raw.get("Meta") or {}),
        "Port": raw.get("Port") or 0,
        "Weights": _weights(raw.get("Weights")),
        "EnableTagOverride": bool(raw.get("EnableTagOverride")),
        "Kind": raw.get("Kind") or "",
        **connect,
    }
    return typed(ServiceRecord, fields)


def build_check(raw: dict, node: str) -> CheckRecord:
    check_node = raw.get("Node") or node
    check_id = raw.get("CheckID") or raw.get("Name") or ""
    if check_node.lower() != node.lower():
        raise _refused(
            f"Node '{check_node}' for check '{check_id}' doesn't match register request node '{node}'"
        )
    if not check_id:
        raise _refused("failed inserting check: object missing primary index")
    definition = _definition(raw.get("Definition"))
    fields = {
        "CheckID": check_id,
        "Name": raw.get("Name") or "",
        "Status": raw.get("Status") or "critical",
        "Notes": raw.get("Notes") or "",
        "Output": raw.get("Output") or "",
        "ServiceID": raw.get("ServiceID") or "",
        "ServiceName": raw.get("ServiceName") or "",
        "ServiceTags": list(raw.get("ServiceTags") or []),
        "Type": raw.get("Type") or _check_type(definition),
        "Interval": raw.get("Interval") or "",
        "Timeout": raw.get("Timeout") or "",
        "ExposedPort": raw.get("ExposedPort") or 0,
        "Definition": definition,
    }
    return typed(CheckRecord, fields)


def build_register(body: dict, datacenter: str, known_services: Iterable[str]) -> Register:
    """The FSM's "register" command for a decoded body, or the refusal Consul would give."""
    node = body.get("Node") or ""
    if not node:
        raise _refused("Must provide node")
    node_id = body.get("ID") or ""
    if node_id and (why := _node_id_error(node_id)):
        raise _refused(f"Bad node ID: {why}")
    skip = bool(body.get("SkipNodeUpdate"))
    address = body.get("Address") or ""
    if not address and not skip:
        raise _refused("Must provide address if SkipNodeUpdate is not set")
    command = Register(
        Node=node,
        Address=address,
        ID=node_id,
        Datacenter=body.get("Datacenter") or datacenter,
        TaggedAddresses=dict(body.get("TaggedAddresses") or {}),
        NodeMeta=dict(body.get("NodeMeta") or {}),
        SkipNodeUpdate=skip,
    )
    if body.get("Service") is not None:
        command.Service = build_service(body["Service"])
    raw_checks = [c for c in body.get("Checks") or [] if c is not None]
    if body.get("Check") is not None:
        raw_checks.append(body["Check"])
    checks = [build_check(raw, node) for raw in raw_checks]
    services = set(known_services)
    if command.Service is not None:
        services.add(command.Service.ID or "")
    for check in checks:
        if check.ServiceID and check.ServiceID not in services:
            raise _refused(f"Unknown service ID '{check.ServiceID}' for check ID '{check.CheckID}'")
    if checks:
        command.Checks = checks
    return command


def _check_datacenter(datacenter: str, body: dict) -> None:
    dc = body.get("Datacenter")
    if dc and dc.lower() != datacenter.lower():
        raise HTTPError(500, "No path to datacenter")


async def register_handler(ports: CatalogPorts, req: Request, _: str) -> Response:
    body = await _read_body(req, REGISTER)
    _check_datacenter(ports.datacenter, body)
    node = body.get("Node") or ""
    known = ports.store.services.get(node, {}).keys()
    command = build_register(body, ports.datacenter, known)
    await ports.writer.write(command)
    return json_response(req, True)


async def deregister_handler(ports: CatalogPorts, req: Request, _: str) -> Response:
    body = await _read_body(req, DEREGISTER)
    _check_datacenter(ports.datacenter, body)
    node = body.get("Node") or ""
    if not node:
        raise _refused("Must provide node")
    command = Deregister(Node=node)
    if body.get("ServiceID"):
        command.ServiceID = body["ServiceID"]
    elif body.get("CheckID"):
        command.CheckID = body["CheckID"]
    await ports.writer.write(command)
    return json_response(req, True)


# ---------------------------------------------------------------------------- reads


async def datacenters(ports: CatalogPorts, req: Request, _: str) -> Response:
    # A client agent never gets here: it forwards to a server, whose WAN pool knows them all.
    pool = ports.cluster.wan if ports.cluster is not None else None
    names = pool.datacenters() if pool is not None else [ports.datacenter]
    return json_response(req, names)


async def nodes(ports: CatalogPorts, req: Request, _: str) -> Response:
    store = ports.store
    meta, flt = node_meta_filters(req), compile_request_filter(req)

    def query() -> tuple[int, list[dict]]:
        items = [render.node(n) for n in sorted_nodes(store.nodes) if meta_matches(n.Meta, meta)]
        return store.table_index("nodes"), select(flt, items)

    return await blocking_read(req, (("table", "nodes"),), query)


def _all_instances(store: Store, meta: dict[str, str]) -> list[tuple[Node, Service]]:
    out = []
    for n in sorted_nodes(store.nodes):
        if meta and not meta_matches(n.Meta, meta):
            continue
        out.extend((n, s) for s in sorted_services(store.services.get(n.Node, {})))
    return out


async def services(ports: CatalogPorts, req: Request, _: str) -> Response:
    store = ports.store
    meta, flt = node_meta_filters(req), compile_request_filter(req)
    tables = ("services", "nodes") if meta else ("services",)

    def query() -> tuple[int, dict[str, list[str]]]:
        pairs = _all_instances(store, meta)
        if flt is not None:
            rendered = [render.service_node(n, s) for n, s in pairs]
            chosen = select(flt, rendered)
            named = [(sn["ServiceName"], sn["ServiceTags"]) for sn in chosen]
        else:
            named = [(s.Service, s.Tags) for _, s in pairs]
        tags: dict[str, dict[str, None]] = {}
        for name, service_tags in named:
            tags.setdefault(name, {}).update(dict.fromkeys(service_tags))
        return store.table_index(*tables), {name: list(tags[name]) for name in sorted(tags)}

    return await blocking_read(req, [("table", t) for t in tables], query)


async def service_nodes(ports: CatalogPorts, req: Request, name: str) -> Response:
    if not name:
        raise HTTPError(400, "Missing service name")
    store = ports.store
    meta, flt, tags = node_meta_filters(req), compile_request_filter(req), tag_filters(req)
    peered = bool(req.raw_query and req.get("peer"))  # no peers: nothing imported from one
    merging = central_config(req)

    def query() -> tuple[int, list[dict]]:
        items = [
            render.service_node(n, s)
            for n, s in ([] if peered else store.service_instances(name))
            if (not tags or has_tags(s.Tags, tags)) and meta_matches(n.Meta, meta)
        ]
        if merging:
            items = merged_service_nodes(store, items)
        index = central_index(store, store.service_name_index(name), merging)
        return index, select(flt, items)

    return await blocking_read(req, central_topics((("service", name),), merging), query)


async def connect_nodes(ports: CatalogPorts, req: Request, name: str) -> Response:
    """The instances that accept Connect traffic for `name`. As in Consul, `?tag=` does not
    narrow a Connect lookup."""
    if not name:
        raise HTTPError(400, "Missing service name")
    store = ports.store
    meta, flt = node_meta_filters(req), compile_request_filter(req)
    merging = central_config(req)

    def query() -> tuple[int, list[dict]]:
        found = connect_instances(store, name)
        items = [render.service_node(n, s) for n, s in found.pairs if meta_matches(n.Meta, meta)]
        if merging:
            items = merged_service_nodes(store, items)
        return central_index(store, found.index, merging), select(flt, items)

    topics = central_topics(connect_instances(store, name).topics, merging)
    return await blocking_read(req, topics, query)


async def node_services(ports: CatalogPorts, req: Request, name: str) -> Response:
    if not name:
        raise HTTPError(400, "Missing node name")
    store = ports.store
    flt = compile_request_filter(req)

    def query() -> tuple[int, dict | None]:
        index = store.table_index("nodes", "services")
        n = store.nodes.get(name)
        if n is None:
            return index, None
        mapped = {
            s.ID: render.node_service(s) for s in sorted_services(store.services.get(name, {}))
        }
        return index, {"Node": render.node(n), "Services": select_values(flt, mapped)}

    return await blocking_read(req, (("table", "nodes"), ("table", "services")), query)


async def node_service_list(ports: CatalogPorts, req: Request, name: str) -> Response:
    if not name:
        raise HTTPError(400, "Missing node name")
    store = ports.store
    flt = compile_request_filter(req)

    def query() -> tuple[int, dict]:
        index = store.table_index("nodes", "services")
        n = store.nodes.get(name)
        if n is None:
            return index, {"Node": None, "Services": None}
        listed = [render.node_service(s) for s in sorted_services(store.services.get(name, {}))]
        return index, {"Node": render.node(n), "Services": select(flt, listed)}

    return await blocking_read(req, (("table", "nodes"), ("table", "services")), query)


async def gateway_services(ports: CatalogPorts, req: Request, name: str) -> Response:
    """What an ingress or terminating gateway's config entry links (Consul's gateway-services
    table, wildcards expanded to the typical services registered)."""
    if not name:
        raise HTTPError(400, "Missing gateway name")
    store = ports.store
    return await blocking_read(
        req,
        (("table", "services"), ("table", "config-entries")),
        lambda: (
            max(store.table_index("services", "config-entries"), 1),
            mesh_views.gateway_services(store, name),
        ),
    )


def register(router: Router, deps: HTTPDeps) -> None:
    ports = CatalogPorts(deps.store, deps.writer, deps.identity.datacenter, deps.cluster)
    router.add("/v1/catalog/register", {"PUT": partial(register_handler, ports)})
    router.add("/v1/catalog/deregister", {"PUT": partial(deregister_handler, ports)})
    router.add("/v1/catalog/datacenters", {"GET": partial(datacenters, ports)})
    router.add("/v1/catalog/nodes", {"GET": partial(nodes, ports)})
    router.add("/v1/catalog/services", {"GET": partial(services, ports)})
    router.add("/v1/catalog/service/", {"GET": partial(service_nodes, ports)}, prefix=True)
    router.add("/v1/catalog/connect/", {"GET": partial(connect_nodes, ports)}, prefix=True)
    router.add("/v1/catalog/node/", {"GET": partial(node_services, ports)}, prefix=True)
    router.add(
        "/v1/catalog/node-services/", {"GET": partial(node_service_list, ports)}, prefix=True
    )
    router.add(
        "/v1/catalog/gateway-services/", {"GET": partial(gateway_services, ports)}, prefix=True
    )
