"""`/v1/internal/ui/*`: what Consul's web UI reads (nodes, one node, the services listing,
a gateway's services and intentions, the catalog overview), built from the same store records
and renderers as the public API; the service summaries themselves are agent/http/ui_summary.py's
and the metrics proxy is agent/http/ui_metrics_proxy.py.

Their index is the highest of the nodes, services and checks tables (and the config entries',
where gateways or intentions take part): any of them changes what the UI shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from agent import render
from agent.connect import intentions as ixn
from agent.http import ui_summary, ui_topology
from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.authz import allowed, enabled, mark_filtered
from agent.http.blocking import blocking_query, query_options
from agent.http.catalog import (
    blocking_read,
    catalog_headers,
    compile_request_filter,
    select,
    sorted_nodes,
    sorted_services,
)
from agent.http.intentions import can_read_intention
from agent.state import mesh_views

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.ports import AgentIdentity
    from agent.state.store import Store


@dataclass(frozen=True)
class UIPorts:
    store: Store
    identity: AgentIdentity


_TABLES = ("nodes", "services", "checks")
_ENTRIES = "config-entries"
_TOPICS = tuple(("table", t) for t in _TABLES)
_ENTRY_TOPICS = (*_TOPICS, ("table", _ENTRIES))
_STATUS_RANK = {"passing": 0, "warning": 1, "critical": 2}


def _node_info(store: Store, name: str) -> dict:
    n = store.nodes[name]
    return render.node_info(
        n, sorted_services(store.services.get(name, {})), store.node_checks(name)
    )


async def nodes(ports: UIPorts, req: Request, _: str) -> Response:
    store = ports.store
    flt = compile_request_filter(req)

    def query() -> tuple[int, list[dict]]:
        items = [_node_info(store, n.Node) for n in sorted_nodes(store.nodes)]
        return store.table_index(*_TABLES), select(flt, items)

    return await blocking_read(req, _TOPICS, query)


async def node(ports: UIPorts, req: Request, name: str) -> Response:
    if not name:
        raise HTTPError(400, "Missing node name")
    store = ports.store

    def query() -> tuple[int, dict | None]:
        info = _node_info(store, name) if name in store.nodes else None
        return store.table_index(*_TABLES), info

    opts = query_options(req)
    index, info, _ = await blocking_query(req, _TOPICS, query, opts)
    headers = catalog_headers(req, index, opts)
    if info is None:
        return Response(b"", 404, headers=headers)
    return json_response(req, info, headers)


def _instances(store: Store) -> list[dict]:
    """Every service instance as a CheckServiceNode (what the UI's service filter sees)."""
    out = []
    for n in sorted_nodes(store.nodes):
        checks = store.node_checks(n.Node)
        for s in sorted_services(store.services.get(n.Node, {})):
            out.append(render.check_service_node(n, s, render.instance_checks(checks, s.ID)))
    return out


async def services(ports: UIPorts, req: Request, _: str) -> Response:
    store = ports.store
    flt = compile_request_filter(req)

    def query() -> tuple[int, list[dict]]:
        dump = select(flt, _instances(store))
        index = store.table_index(*_TABLES, _ENTRIES)
        return index, ui_summary.listing(dump, _gateway_links(store))

    return await blocking_read(req, _ENTRY_TOPICS, query)


def _gateway_links(store: Store) -> list[tuple[str, str]]:
    """(service, gateway) for every service an ingress or terminating gateway links."""
    links = []
    for kind in (mesh_views.INGRESS_GATEWAY, mesh_views.TERMINATING_GATEWAY):
        for entry in store.mesh.of_kind(kind):
            for linked in mesh_views.gateway_services(store, str(entry.get("Name") or "")):
                if linked["GatewayKind"] == kind:
                    links.append((linked["Service"]["Name"], linked["Gateway"]["Name"]))
    return links


def gateway_dump(store: Store, gateway: str) -> list[dict]:
    """Consul's GatewayServiceDump: each service the gateway links, as its instances with the
    link attached, or the link alone when the service has no instance."""
    dump: list[dict] = []
    for linked in mesh_views.gateway_services(store, gateway):
        name = linked["Service"]["Name"]
        found = [i for i in _instances(store) if i["Service"]["Service"] == name]
        for instance in found:
            dump.append(instance | {"GatewayService": linked})
        if not found:
            dump.append({"GatewayService": linked})
    return dump


async def gateway_services_nodes(ports: UIPorts, req: Request, name: str) -> Response:
    if not name:
        raise HTTPError(400, "Missing gateway name")
    store, config = ports.store, ports.identity.config
    domains = [config.domain] + ([config.alt_domain] if config.alt_domain else [])

    def query() -> tuple[int, list[dict]]:
        summaries, _ = ui_summary.summarize(
            gateway_dump(store, name), ports.identity.datacenter, domains
        )
        return store.table_index(*_TABLES, _ENTRIES), ui_summary.prepare(summaries)

    return await blocking_read(req, _ENTRY_TOPICS, query)


def _worst(statuses: list[str]) -> str:
    """An entity's status is its unhealthiest check's (no checks: passing)."""
    return max(statuses, key=lambda s: _STATUS_RANK.get(s, 0), default="passing")


def _health_summary(name: str | None) -> dict:
    out: dict = {"Name": name} if name else {}
    out.update({"Total": 0, "Passing": 0, "Warning": 0, "Critical": 0})
    return out


def _count(summary: dict, status: str) -> None:
    summary["Total"] += 1
    key = {"passing": "Passing", "warning": "Warning", "critical": "Critical"}.get(status)
    if key:
        summary[key] += 1


def catalog_overview_of(store: Store) -> dict:
    """Consul's CatalogSummary: node, service-instance and check health totals."""
    node_status: dict[str, list[str]] = {}
    instance_status: dict[tuple[str, str], list[str]] = {}
    check_summaries: dict[str, dict] = {}
    for c in store.all_checks():
        _count(check_summaries.setdefault(c.Name, _health_summary(c.Name)), c.Status)
        if c.ServiceID:
            instance_status.setdefault((c.Node, c.ServiceID), []).append(c.Status)
        else:
            node_status.setdefault(c.Node, []).append(c.Status)
    service_summaries: dict[str, dict] = {}
    for n in sorted_nodes(store.nodes):
        for s in sorted_services(store.services.get(n.Node, {})):
            summary = service_summaries.setdefault(s.Service, _health_summary(s.Service))
            _count(summary, _worst(instance_status.get((n.Node, s.ID), [])))
    nodes_summary = None
    if store.nodes:
        nodes_summary = _health_summary(None)
        for name in store.nodes:
            _count(nodes_summary, _worst(node_status.get(name, [])))

    def listed(summaries: dict[str, dict]) -> list[dict] | None:
        return [summaries[k] for k in sorted(summaries)] or None

    return {
        "Nodes": [nodes_summary] if nodes_summary else None,
        "Services": listed(service_summaries),
        "Checks": listed(check_summaries),
    }


async def gateway_intentions(ports: UIPorts, req: Request, name: str) -> Response:
    """Consul's GatewayIntentions: the intentions whose destination is a service the gateway
    links (or `*`), in the order of the links, each listed once. Consul keys "once" on the
    intention's ID, which only legacy intentions have: of the ID-less ones (every intention
    written as a config entry) only the first is kept, and so it is here."""
    if not name:
        raise HTTPError(400, "Missing gateway name")
    store = ports.store

    def query() -> tuple[int, list[dict]]:
        seen: set[str] = set()
        found: list[dict] = []
        for linked in mesh_views.gateway_services(store, name):
            service = linked["Service"]["Name"]
            for intention in ixn.match_service(store.mesh.entries, "destination", service):
                key = intention.get("ID", "")
                if key not in seen:
                    seen.add(key)
                    found.append(intention)
        readable = [i for i in found if can_read_intention(req, i)]
        if len(readable) != len(found):
            mark_filtered(req)
        return store.table_index(_ENTRIES, "services"), readable

    return await blocking_read(req, _ENTRY_TOPICS, query)


async def service_topology(ports: UIPorts, req: Request, name: str) -> Response:
    """The service's upstreams and downstreams (agent/http/ui_topology.py). With ACLs, the
    default intention decision is the ACL default policy's, and instances the token may not
    read are left out (`FilteredByACLs`)."""
    if not name:
        raise HTTPError(400, "Missing service name")
    if not (req.raw_query and req.has("kind")):
        raise HTTPError(400, "Missing service kind")
    kind = req.get("kind") or ""
    if kind not in ("", "ingress-gateway"):
        raise HTTPError(400, f'Unsupported service kind "{kind}"')
    store, identity = ports.store, ports.identity
    acl = identity.config.acl
    default_allow = not acl.enabled or acl.default_policy == "allow"

    def readable(item: dict) -> bool:
        return allowed(req, "service", item["Service"]["Service"], "read") and allowed(
            req, "node", item["Node"]["Node"], "read"
        )

    def query() -> tuple[int, dict]:
        topology = ui_topology.service_topology(
            store,
            identity.datacenter,
            store.mesh.trust_domain,
            name,
            kind,
            default_allow,
            readable if enabled(req) else None,
        )
        if topology["FilteredByACLs"]:
            mark_filtered(req)
        return store.table_index(*_TABLES, _ENTRIES), topology

    return await blocking_read(req, _ENTRY_TOPICS, query)


async def catalog_overview(ports: UIPorts, req: Request, _: str) -> Response:
    # Consul answers this one without blocking support or index headers.
    return json_response(req, catalog_overview_of(ports.store))


async def exported_services(req: Request, _: str) -> Response:
    # No cluster peering here: nothing is ever exported.
    return json_response(req, [])


def register(router: Router, deps: HTTPDeps) -> None:
    ports = UIPorts(deps.store, deps.identity)
    router.add("/v1/internal/ui/nodes", {"GET": partial(nodes, ports)})
    router.add("/v1/internal/ui/node/", {"GET": partial(node, ports)}, prefix=True)
    router.add("/v1/internal/ui/services", {"GET": partial(services, ports)})
    router.add("/v1/internal/ui/catalog-overview", {"GET": partial(catalog_overview, ports)})
    router.add("/v1/internal/ui/exported-services", {"GET": exported_services})
    router.add(
        "/v1/internal/ui/gateway-services-nodes/",
        {"GET": partial(gateway_services_nodes, ports)},
        prefix=True,
    )
    router.add(
        "/v1/internal/ui/service-topology/",
        {"GET": partial(service_topology, ports)},
        prefix=True,
    )
    router.add(
        "/v1/internal/ui/gateway-intentions/",
        {"GET": partial(gateway_intentions, ports)},
        prefix=True,
    )
