"""`/v1/internal/federation-states`, `.../federation-states/mesh-gateways` and
`/v1/internal/federation-state/<dc>`: the federation states the servers keep
(`agent/state/federation.py`, written by the leader's `agent/federation_sync.py`), as Consul's
FederationState endpoints answer them.

All three are blocking reads on the federation-states table. The list and the single state
need `operator:read` (the guard table's default for these routes); the single state is
Consul's FederationStateResponse (`State` and the query meta) or a bare 404 when the
datacenter has none, and a path without a datacenter is a 400. The mesh-gateway listing needs
no operator right: it maps each datacenter that has gateways to them, filtered as Consul's
filterACL filters health results (`node:read` and `service:read` on each).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.authz import filter_items
from agent.http.blocking import blocking_query, query_meta, query_options
from agent.http.catalog import blocking_read, catalog_headers
from agent.state.federation import FEDERATION_TABLE

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.state.store import Store

_TOPICS = (("table", FEDERATION_TABLE),)


def _index(store: Store) -> int:
    return store.table_index(FEDERATION_TABLE)


async def states(store: Store, req: Request, _: str) -> Response:
    return await blocking_read(req, _TOPICS, lambda: (_index(store), store.federation.all()))


def _gateways(store: Store, req: Request) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    dump = {}
    for state in store.federation.all():
        kept = filter_items(
            req,
            state.get("MeshGateways") or [],
            lambda csn: [
                ("node", str(csn["Node"]["Node"])),
                ("service", str(csn["Service"]["Service"])),
            ],
        )
        if kept:
            dump[state["Datacenter"]] = kept
    return _index(store), dump


async def mesh_gateways(store: Store, req: Request, _: str) -> Response:
    return await blocking_read(req, _TOPICS, partial(_gateways, store, req))


async def state(store: Store, req: Request, datacenter: str) -> Response:
    if not datacenter:
        raise HTTPError(400, "Missing datacenter name")
    opts = query_options(req)
    index, found, _ = await blocking_query(
        req, _TOPICS, lambda: (_index(store), store.federation.get(datacenter)), opts
    )
    headers = catalog_headers(req, index, opts)
    if found is None:
        return Response(b"", 404, headers=headers)
    body = {"State": found, **query_meta(req, index, opts.consistency)}
    return json_response(req, body, headers)


def register(router: Router, deps: HTTPDeps) -> None:
    store = deps.store
    router.add("/v1/internal/federation-states", {"GET": partial(states, store)})
    router.add(
        "/v1/internal/federation-states/mesh-gateways", {"GET": partial(mesh_gateways, store)}
    )
    router.add("/v1/internal/federation-state/", {"GET": partial(state, store)}, prefix=True)
