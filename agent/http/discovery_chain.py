"""`GET`/`POST /v1/discovery-chain/<service>`: the compiled discovery chain (routers,
splitters, resolvers and their targets), compiled by `agent/connect/chain.py` from the
config entries as they stand, with the service's virtual IPs (`agent/state/vips.py`);
blocking on the config-entry and virtual-IP tables."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from agent.connect import chain
from agent.connect.errors import MeshError
from agent.durations import DurationError, parse_duration
from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.authz import require
from agent.http.blocking import blocking_query, query_options, read_headers
from agent.http.gojson import parse
from agent.state.vips import VIRTUAL_IP_TABLE

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.state.store import Store

_DECODE = "Request decoding failed: "
_MODES = ("", "none", "local", "remote")
# The body's fields, by the lower-case, underscore-free spelling Consul's decoder matches.
_FIELDS = {
    "overridemeshgateway": "OverrideMeshGateway",
    "overrideprotocol": "OverrideProtocol",
    "overrideconnecttimeout": "OverrideConnectTimeout",
}


@dataclass(frozen=True)
class ChainPorts:
    store: Store
    datacenter: str
    enabled: bool


def _overrides(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise HTTPError(400, f"{_DECODE}json: cannot unmarshal into discoveryChainReadRequest")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        field = _FIELDS.get(key.replace("_", "").lower())
        if field is None or value is None:
            continue
        if field == "OverrideMeshGateway":
            mode = (
                (value or {}).get("Mode", (value or {}).get("mode", ""))
                if isinstance(value, dict)
                else None
            )
            if mode not in _MODES:
                raise HTTPError(400, "Invalid OverrideMeshGateway.Mode parameter")
            out[field] = {"Mode": mode}
        elif field == "OverrideProtocol":
            out[field] = str(value).lower() if not isinstance(value, bool) else str(value).lower()
        else:
            out[field] = _timeout(value)
    return out or None


def _timeout(value: Any) -> int:
    """The connect timeout in nanoseconds: a Go duration string, or a number of them."""
    if isinstance(value, bool):
        raise HTTPError(400, f"{_DECODE}invalid OverrideConnectTimeout")
    if isinstance(value, int | float):
        return int(value)
    try:
        return int(parse_duration(str(value)) * 1_000_000_000)
    except DurationError as exc:
        raise HTTPError(400, f"{_DECODE}{exc}") from None


async def read(ports: ChainPorts, req: Request, service: str) -> Response:
    if not service:
        raise HTTPError(400, "Missing chain name")
    overrides = None
    if req.method == "POST":
        overrides = _overrides(parse(await req.body(), _DECODE, empty=None))
    if not ports.enabled:
        raise HTTPError(500, "Connect must be enabled in order to use this endpoint")
    require(req, "service", service, "read")
    compile_dc = (req.get("compile-dc", "") if req.raw_query else "") or ports.datacenter
    mesh = ports.store.mesh

    def query() -> tuple[int, dict[str, Any]]:
        trust = mesh.trust_domain
        if not trust:
            raise HTTPError(500, "no cluster ca config setup")
        # The service's virtual IPs go with its chain (Consul's ReadDiscoveryChain).
        vips = ports.store.vips
        auto = [vips.ip_of(service)] if vips.ip_of(service) else None
        manual = (vips.assigned.get(service) or {}).get("ManualIPs")
        try:
            compiled = chain.compile_chain(
                service,
                compile_dc,
                trust,
                mesh.entries,
                overrides,
                auto_virtual_ips=auto,
                manual_virtual_ips=manual,
            )
        except MeshError as exc:
            raise HTTPError(500, f"failed to compile discovery chain: {exc.message}") from None
        index = max(ports.store.table_index("config-entries", VIRTUAL_IP_TABLE), 1)
        return index, {"Chain": compiled}

    opts = query_options(req)
    topics = (("table", "config-entries"), ("table", VIRTUAL_IP_TABLE))
    index, result, _ = await blocking_query(req, topics, query, opts)
    return json_response(req, result, read_headers(req, index, opts.consistency))


def register(router: Router, deps: HTTPDeps) -> None:
    ports = ChainPorts(deps.store, deps.identity.datacenter, deps.identity.config.connect_enabled)
    handler = partial(read, ports)
    router.add("/v1/discovery-chain/", {"GET": handler, "POST": handler}, prefix=True)
