"""`/v1/operator/usage` and `/v1/operator/utilization`, as Consul CE answers them.

Usage is a blocking read of the catalog's counts (agent/state/usage.py) keyed by datacenter;
`?global` adds every other datacenter's own answer, asked over the WAN with the caller's token
(a datacenter that cannot answer is left out and logged, as Consul's server does). The body
carries Consul's QueryMeta fields beside `Usage`, because Consul returns the whole reply
struct, meta included. Utilization is an Enterprise feature: CE answers 404 before looking at
the request at all.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import quote

from agent.acl.resolve import token_from_request
from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.blocking import blocking_query, query_meta, query_options
from agent.http.catalog import catalog_headers
from agent.state.usage import service_usage

if TYPE_CHECKING:
    from agent.cluster import ClusterManager
    from agent.http.deps import HTTPDeps
    from agent.ports import AgentIdentity, APICaller
    from agent.state.store import Store

log = logging.getLogger("agent.http")

_TOPICS = (("table", "services"), ("table", "nodes"))


@dataclass(frozen=True)
class UsagePorts:
    store: Store
    identity: AgentIdentity
    cluster: ClusterManager | None  # the WAN pool names the other datacenters
    api: APICaller | None  # asks them, through this agent's own forwarding


def _other_datacenters(ports: UsagePorts) -> list[str]:
    wan = ports.cluster.wan if ports.cluster is not None else None
    if wan is None:
        return []
    own = ports.identity.datacenter
    return sorted(dc for dc in wan.datacenters() if dc != own)


async def _remote_usage(ports: UsagePorts, req: Request, dc: str) -> dict | None:
    if ports.api is None:
        return None
    token = token_from_request(req.query if req.raw_query else {}, req.headers)
    try:
        status, text = await ports.api.api_call(
            "GET", "/v1/operator/usage", None, token, query=f"dc={quote(dc)}"
        )
        usage = json.loads(text)["Usage"][dc] if status == 200 else None
    except (ValueError, KeyError, TypeError, OSError) as exc:
        status, usage = 0, None
        log.warning("error forwarding usage request to remote datacenter %s: %s", dc, exc)
    if usage is None and status:
        log.warning(
            "error forwarding usage request to remote datacenter %s: %s %s", dc, status, text
        )
    return usage


async def usage(ports: UsagePorts, req: Request, _: str) -> Response:
    opts = query_options(req)
    remote: dict[str, dict] = {}
    if req.raw_query and req.has("global"):
        for dc in _other_datacenters(ports):
            found = await _remote_usage(ports, req, dc)
            if found is not None:
                remote[dc] = found
    store = ports.store
    index, local, _ = await blocking_query(req, _TOPICS, partial(service_usage, store), opts)
    usage = remote | {ports.identity.datacenter: local}
    body = {"Usage": usage, **query_meta(req, index, opts.consistency)}
    return json_response(req, body, catalog_headers(req, index, opts))


async def utilization(req: Request, _: str) -> Response:
    raise HTTPError(404, "operator utilization requires Consul Enterprise")


def register(router: Router, deps: HTTPDeps) -> None:
    ports = UsagePorts(deps.store, deps.identity, deps.cluster, deps.api)
    router.add("/v1/operator/usage", {"GET": partial(usage, ports)})
    router.add("/v1/operator/utilization", {"GET": utilization})
