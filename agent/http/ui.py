"""`/v1/internal/ui/*`: the summaries Consul's web UI reads (nodes, one node, services,
catalog overview), built from the same store records and renderers as the public API.

Their index is the highest of the nodes, services and checks tables: any of them changes
what the UI shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from agent import render
from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.blocking import blocking_query, query_options
from agent.http.catalog import (
    blocking_read,
    catalog_headers,
    compile_request_filter,
    select,
    sorted_nodes,
    sorted_services,
)

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.state.store import Store


@dataclass(frozen=True)
class UIPorts:
    store: Store


_TABLES = ("nodes", "services", "checks")
_TOPICS = tuple(("table", t) for t in _TABLES)
_STATUS_RANK = {"passing": 0, "warning": 1, "critical": 2}
_SUMMARY_COUNTERS = {
    "passing": "ChecksPassing",
    "warning": "ChecksWarning",
    "critical": "ChecksCritical",
}


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


def summarize_services(instances: list[dict]) -> list[dict]:
    """Consul's ServiceListingSummary per service name, sorted by name."""
    summaries: dict[str, dict] = {}
    seen_checks: dict[str, dict[tuple[str, str], str]] = {}
    for inst in instances:
        svc, node_name = inst["Service"], inst["Node"]["Node"]
        name = svc["Service"]
        summary = summaries.get(name)
        if summary is None:
            summary = summaries[name] = {
                "Name": name,
                "Datacenter": "",
                "Tags": None,
                "Nodes": [],
                "ExternalSources": None,
                "InstanceCount": 0,
                "ChecksPassing": 0,
                "ChecksWarning": 0,
                "ChecksCritical": 0,
                "GatewayConfig": {},
                "TransparentProxy": False,
                "ConnectNative": False,
                "ConnectedWithProxy": False,
                "ConnectedWithGateway": False,
            }
        if svc.get("Kind"):
            summary["Kind"] = svc["Kind"]
        summary["Nodes"].append(node_name)
        summary["Datacenter"] = inst["Node"]["Datacenter"]
        summary["InstanceCount"] += 1
        for tag in svc["Tags"]:
            summary["Tags"] = summary["Tags"] or []
            if tag not in summary["Tags"]:
                summary["Tags"].append(tag)
        source = svc["Meta"].get("external-source")
        if source:
            summary["ExternalSources"] = summary["ExternalSources"] or []
            if source not in summary["ExternalSources"]:
                summary["ExternalSources"].append(source)
        for c in inst["Checks"]:
            seen_checks.setdefault(name, {})[(node_name, c["CheckID"])] = c["Status"]
    out = []
    for name in sorted(summaries):
        summary = summaries[name]
        summary["Nodes"].sort()
        if summary["Tags"]:
            summary["Tags"].sort()
        for status in seen_checks.get(name, {}).values():
            key = _SUMMARY_COUNTERS.get(status)
            if key:
                summary[key] += 1
        out.append(summary)
    return out


async def services(ports: UIPorts, req: Request, _: str) -> Response:
    store = ports.store
    flt = compile_request_filter(req)

    def query() -> tuple[int, list[dict]]:
        return store.table_index(*_TABLES), summarize_services(select(flt, _instances(store)))

    return await blocking_read(req, _TOPICS, query)


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


async def catalog_overview(ports: UIPorts, req: Request, _: str) -> Response:
    # Consul answers this one without blocking support or index headers.
    return json_response(req, catalog_overview_of(ports.store))


async def exported_services(req: Request, _: str) -> Response:
    # No cluster peering here: nothing is ever exported.
    return json_response(req, [])


def register(router: Router, deps: HTTPDeps) -> None:
    ports = UIPorts(deps.store)
    router.add("/v1/internal/ui/nodes", {"GET": partial(nodes, ports)})
    router.add("/v1/internal/ui/node/", {"GET": partial(node, ports)}, prefix=True)
    router.add("/v1/internal/ui/services", {"GET": partial(services, ports)})
    router.add("/v1/internal/ui/catalog-overview", {"GET": partial(catalog_overview, ports)})
    router.add("/v1/internal/ui/exported-services", {"GET": exported_services})
