"""`/v1/health/*`: checks by node, service and state; service instances with their health.

Indexes follow Consul's state store: check lists carry the checks table's index, while
`/health/service/<name>` carries the service's own index, which moves whenever an instance,
its node, or any check deciding its health changes (the store bumps it), so a blocking query
there wakes only for its service.

`/health/connect/<name>` answers the same way for the instances that accept Connect traffic
for the service (`agent.state.mesh_views`). `/health/ingress/<name>` needs the
ingress-gateway config entries' view of the catalog (Consul's gateway-services table), which
this agent does not keep yet: it answers no instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from agent import render
from agent.connect.central_config import merged_proxy
from agent.http.app import HTTPError, Request, Response, Router
from agent.http.catalog import (
    blocking_read,
    central_config,
    central_index,
    central_topics,
    compile_request_filter,
    has_tags,
    meta_matches,
    node_meta_filters,
    select,
    tag_filters,
)
from agent.state.mesh_views import connect_instances, ingress_gateways
from agent.state.structs import HealthCheck, Node, Service

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.state.store import Store


@dataclass(frozen=True)
class HealthPorts:
    store: Store


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _bool_param(req: Request, name: str) -> bool:
    """Go's getBoolQueryParam: present and empty means true, else strconv.ParseBool."""
    if not req.raw_query or name not in req.query:
        return False
    value = req.query[name][0]
    if value == "" or value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise HTTPError(400, f"Invalid value for ?{name}")


def _checks_tables(meta: dict[str, str]) -> tuple[str, ...]:
    return ("checks", "nodes") if meta else ("checks",)


async def node_checks(ports: HealthPorts, req: Request, node: str) -> Response:
    if not node:
        raise HTTPError(400, "Missing node name")
    store = ports.store
    flt = compile_request_filter(req)

    def query() -> tuple[int, list[dict]]:
        items = [render.check(c) for c in store.node_checks(node)]
        return store.table_index("checks"), select(flt, items)

    return await blocking_read(req, (("table", "checks"),), query)


def _node_ok(store: Store, node: str, meta: dict[str, str]) -> bool:
    if not meta:
        return True
    n = store.nodes.get(node)
    return n is not None and meta_matches(n.Meta, meta)


async def service_checks(ports: HealthPorts, req: Request, name: str) -> Response:
    if not name:
        raise HTTPError(400, "Missing service name")
    store = ports.store
    meta, flt = node_meta_filters(req), compile_request_filter(req)
    tables = _checks_tables(meta)

    def query() -> tuple[int, list[dict]]:
        items = [
            render.check(c)
            for c in store.all_checks()
            if c.ServiceName == name and _node_ok(store, c.Node, meta)
        ]
        return store.table_index(*tables), select(flt, items)

    return await blocking_read(req, [("table", t) for t in tables], query)


def _all_passing(checks: list[HealthCheck]) -> bool:
    return all(c.Status == "passing" for c in checks)


async def service_instances(ports: HealthPorts, req: Request, name: str) -> Response:
    if not name:
        raise HTTPError(400, "Missing service name")
    store = ports.store
    meta, flt, tags = node_meta_filters(req), compile_request_filter(req), tag_filters(req)
    passing = _bool_param(req, "passing")
    # Cluster peering: nothing is imported from any peer, so a named peer has no instances.
    peered = bool(req.raw_query and req.get("peer"))
    merging = central_config(req)

    def query() -> tuple[int, list[dict]]:
        pairs = [
            (n, s)
            for n, s in ([] if peered else store.service_instances(name))
            if (not tags or has_tags(s.Tags, tags)) and meta_matches(n.Meta, meta)
        ]
        items = _with_checks(store, pairs, passing, merging)
        return central_index(store, store.service_name_index(name), merging), select(flt, items)

    return await blocking_read(req, central_topics((("service", name),), merging), query)


async def checks_in_state(ports: HealthPorts, req: Request, state: str) -> Response:
    if not state:
        raise HTTPError(400, "Missing check state")
    store = ports.store
    meta, flt = node_meta_filters(req), compile_request_filter(req)
    tables = _checks_tables(meta)

    def query() -> tuple[int, list[dict]]:
        # Like Consul, an unknown state is not an error: it simply matches no check.
        items = [
            render.check(c)
            for c in store.all_checks()
            if (state == "any" or c.Status == state) and _node_ok(store, c.Node, meta)
        ]
        return store.table_index(*tables), select(flt, items)

    return await blocking_read(req, [("table", t) for t in tables], query)


def _with_checks(
    store: Store, pairs: list[tuple[Node, Service]], passing: bool, merging: bool = False
) -> list[dict]:
    items = []
    for n, s in pairs:
        checks = render.instance_checks(store.node_checks(n.Node), s.ID)
        if passing and not _all_passing(checks):
            continue
        item = render.check_service_node(n, s, checks)
        if merging:
            service = item["Service"]
            service["Proxy"] = merged_proxy(store.mesh.entries, s.Kind, s.Service, service["Proxy"])
        items.append(item)
    return items


async def connect_instances_health(ports: HealthPorts, req: Request, name: str) -> Response:
    """The Connect-capable instances of `name` with their health; as in Consul, `?tag=` does
    not narrow a Connect lookup."""
    if not name:
        raise HTTPError(400, "Missing service name")
    store = ports.store
    meta, flt = node_meta_filters(req), compile_request_filter(req)
    passing = _bool_param(req, "passing")
    peered = bool(req.raw_query and req.get("peer"))
    merging = central_config(req)

    def query() -> tuple[int, list[dict]]:
        found = connect_instances(store, name)
        pairs = [] if peered else [(n, s) for n, s in found.pairs if meta_matches(n.Meta, meta)]
        items = _with_checks(store, pairs, passing, merging)
        return central_index(store, found.index, merging), select(flt, items)

    topics = central_topics(connect_instances(store, name).topics, merging)
    return await blocking_read(req, topics, query)


async def ingress_instances(ports: HealthPorts, req: Request, name: str) -> Response:
    """The ingress gateways whose ingress-gateway entry exposes the service, with health."""
    if not name:
        raise HTTPError(400, "Missing service name")
    store = ports.store
    meta, flt = node_meta_filters(req), compile_request_filter(req)
    passing = _bool_param(req, "passing")

    def query() -> tuple[int, list[dict]]:
        found = ingress_gateways(store, name)
        pairs = [(n, s) for n, s in found.pairs if meta_matches(n.Meta, meta)]
        return found.index, select(flt, _with_checks(store, pairs, passing))

    return await blocking_read(req, ingress_gateways(store, name).topics, query)


def register(router: Router, deps: HTTPDeps) -> None:
    ports = HealthPorts(deps.store)
    router.add("/v1/health/node/", {"GET": partial(node_checks, ports)}, prefix=True)
    router.add("/v1/health/checks/", {"GET": partial(service_checks, ports)}, prefix=True)
    router.add("/v1/health/service/", {"GET": partial(service_instances, ports)}, prefix=True)
    router.add("/v1/health/state/", {"GET": partial(checks_in_state, ports)}, prefix=True)
    router.add(
        "/v1/health/connect/", {"GET": partial(connect_instances_health, ports)}, prefix=True
    )
    router.add("/v1/health/ingress/", {"GET": partial(ingress_instances, ports)}, prefix=True)
