"""`/v1/coordinate/*`: the Vivaldi network coordinates agents report (from gossip probes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from agent.gossip.coordinate import Coordinate as Vivaldi
from agent.gossip.coordinate import VivaldiConfig
from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.blocking import blocking_query, query_options, read_headers
from agent.http.bodies import COORDINATE_UPDATE
from agent.http.gojson import conform
from agent.state.commands import Coordinate, CoordinateUpdate

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.ports import Writer
    from agent.state.store import Store

_VIVALDI = VivaldiConfig()
_ORIGIN = Vivaldi.origin(_VIVALDI).api_dict()


@dataclass(frozen=True)
class CoordinatePorts:
    store: Store
    writer: Writer
    datacenter: str
    server: bool  # a client agent holds no catalog to check an update's node against
    wan_maps: Callable[[], list[dict] | None]  # the WAN pool's view, None without one


def _sorted(store: Store) -> list[dict]:
    return [store.coordinates[n] for n in sorted(store.coordinates)]


async def datacenters(ports: CoordinatePorts, req: Request, _: str) -> Response:
    """Servers' coordinates per datacenter (the WAN area); this agent knows its own DC. The
    WAN pool names servers `<node>.<dc>`; Consul strips the suffix in this answer."""
    maps = ports.wan_maps()
    if maps is not None:  # every datacenter the WAN pool knows, as Consul answers
        return json_response(req, maps)
    store = ports.store
    servers = sorted(n for n, svcs in store.services.items() if "consul" in svcs)
    coords = [
        {
            "Node": name,
            "Coord": (store.coordinates.get(name) or {}).get("Coord") or _ORIGIN,
        }
        for name in servers
    ]
    return json_response(
        req, [{"Datacenter": ports.datacenter, "AreaID": "wan", "Coordinates": coords}]
    )


async def nodes(ports: CoordinatePorts, req: Request, _: str) -> Response:
    store = ports.store
    opts = query_options(req)
    index, result, _ = await blocking_query(
        req,
        (("table", "coordinates"),),
        lambda: (store.table_index("coordinates"), _sorted(store)),
        opts,
    )
    segment = req.get("segment") if req.raw_query else None
    if segment is not None:
        result = [c for c in result if c["Segment"] == segment]
    return json_response(req, result, read_headers(req, index, opts.consistency))


async def node(ports: CoordinatePorts, req: Request, name: str) -> Response:
    store = ports.store
    opts = query_options(req)
    index, entry, _ = await blocking_query(
        req,
        (("table", "coordinates"),),
        lambda: (store.table_index("coordinates"), store.coordinates.get(name)),
        opts,
    )
    headers = read_headers(req, index, opts.consistency)
    if entry is None:
        return Response(b"", 404, headers=headers)
    return json_response(req, [entry], headers)


def validate_coord(coord: object) -> dict:
    if not isinstance(coord, dict):
        raise HTTPError(400, "Request decode failed: missing or invalid Coord")
    vec = coord.get("Vec")
    if not isinstance(vec, list) or not all(isinstance(v, int | float) for v in vec):
        raise HTTPError(400, "Request decode failed: Coord.Vec must be a list of numbers")
    out = {"Vec": [float(v) for v in vec]}
    for field in ("Error", "Adjustment", "Height"):
        value = coord.get(field, 0.0)
        if not isinstance(value, int | float):
            raise HTTPError(400, f"Request decode failed: Coord.{field} must be a number")
        out[field] = float(value)
    if len(out["Vec"]) != _VIVALDI.dimensionality:
        # Consul checks a coordinate from elsewhere against its own (IsCompatibleWith): an
        # RPC error, so a 500, and nothing is written.
        raise HTTPError(500, "incompatible coordinate")
    return out


async def update(ports: CoordinatePorts, req: Request, _: str) -> Response:
    body = conform(await req.json(), COORDINATE_UPDATE) or {}
    name = body.get("Node")
    if not name:
        raise HTTPError(400, "Missing node name")
    coord = validate_coord(body.get("Coord"))
    if name not in ports.store.nodes and ports.server:
        raise HTTPError(500, f'No node found with name "{name}"')
    update = CoordinateUpdate(Node=name, Segment=body.get("Segment", "") or "", Coord=coord)
    await ports.writer.write(Coordinate(Updates=[update]))
    return Response(b"", 200)


def register(router: Router, deps: HTTPDeps) -> None:
    cluster = deps.cluster

    def wan_maps() -> list[dict] | None:
        wan = cluster.wan if cluster is not None else None
        return wan.coordinate_maps() if wan is not None else None

    ports = CoordinatePorts(
        deps.store, deps.writer, deps.identity.datacenter, deps.consensus is not None, wan_maps
    )
    router.add("/v1/coordinate/datacenters", {"GET": partial(datacenters, ports)})
    router.add("/v1/coordinate/nodes", {"GET": partial(nodes, ports)})
    router.add("/v1/coordinate/node/", {"GET": partial(node, ports)}, prefix=True)
    router.add("/v1/coordinate/update", {"PUT": partial(update, ports)})
