"""The Connect CA's endpoints: `/v1/connect/ca/roots` and `/configuration` (server state,
forwarded there by client agents), `/v1/agent/connect/ca/roots` and
`/v1/agent/connect/ca/leaf/<service>` (this agent's view and its leaf cache)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from agent.connect import ca
from agent.connect.errors import MeshError
from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.authz import require
from agent.http.blocking import blocking_query, query_options, read_headers
from agent.http.gojson import parse

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.mesh_ca import CARuntime, LeafCache, Signer
    from agent.state.store import Store

_DISABLED = "Connect must be enabled in order to use this endpoint"
_TOPIC = (("table", "connect-ca"),)
PEM = b"application/pem-certificate-chain"


@dataclass(frozen=True)
class CAPorts:
    store: Store
    enabled: bool
    runtime: CARuntime | None  # servers
    signer: Signer  # this agent's way to the CA (local on servers, RPC on clients)
    leaves: LeafCache


def _enabled(ports: CAPorts) -> None:
    if not ports.enabled:
        raise HTTPError(500, _DISABLED)


def _runtime(ports: CAPorts) -> CARuntime:
    _enabled(ports)
    if ports.runtime is None:  # a client agent forwards these paths; never reached there
        raise HTTPError(500, "No known Consul servers")
    return ports.runtime


def _pem_flag(req: Request) -> bool:
    if not req.raw_query or not req.has("pem"):
        return False
    raw = req.get("pem", "")
    if raw in ("", "true", "1", "t", "T", "TRUE", "True"):
        return True
    if raw in ("false", "0", "f", "F", "FALSE", "False"):
        return False
    raise HTTPError(400, "The 'pem' query parameter must be a boolean value")


async def roots(ports: CAPorts, req: Request, _: str) -> Response:
    runtime = _runtime(ports)
    pem = _pem_flag(req)

    def query() -> tuple[int, dict[str, Any]]:
        try:
            view = runtime.roots_view()
        except MeshError as exc:
            raise HTTPError(exc.status, exc.message) from None
        return view.pop("Index"), view

    opts = query_options(req)
    index, view, _ = await blocking_query(req, _TOPIC, query, opts)
    headers = read_headers(req, index, opts.consistency)
    if pem:
        body = ca.roots_pem(ports.store.mesh.ca.get("Roots") or [])
        return Response(body.encode(), 200, PEM, headers)
    return json_response(req, view, headers)


async def configuration(ports: CAPorts, req: Request, _: str) -> Response:
    runtime = _runtime(ports)
    require(req, "operator", None, "write")
    if req.method == "GET":
        state = ports.store.mesh.ca
        if not state:
            raise HTTPError(500, "CA has not finished initializing")
        out = ca.render_config(
            dict(state.get("Config") or {})
            | {
                "CreateIndex": state.get("CreateIndex", 0),
                "ModifyIndex": state.get("ModifyIndex", 0),
            }
        )
        return json_response(req, out, read_headers(req, ports.store.table_index("connect-ca")))
    body = parse(await req.body(), "Request decode failed: ", empty={})
    if not isinstance(body, dict):
        raise HTTPError(400, "Request decode failed: json: cannot unmarshal into CAConfiguration")
    try:
        await runtime.set_config(body)
    except MeshError as exc:
        raise HTTPError(exc.status, exc.message) from None
    return Response(b"", 200)


async def agent_roots(ports: CAPorts, req: Request, _: str) -> Response:
    _enabled(ports)
    try:
        view = dict(await ports.signer.roots())
    except MeshError as exc:
        raise HTTPError(exc.status, exc.message) from None
    index = int(view.pop("Index", 0) or 0)
    headers = read_headers(req, index) + [(b"x-cache", b"MISS")]
    return json_response(req, view, headers)


async def leaf(ports: CAPorts, req: Request, service: str) -> Response:
    _enabled(ports)
    if not service:
        raise HTTPError(400, "Missing service name")
    require(req, "service", service, "write")
    opts = query_options(req)
    try:
        if opts.index > 0:
            cert = await ports.leaves.wait(service, opts.index, opts.wait)
        else:
            cert = await ports.leaves.get(service)
    except MeshError as exc:
        raise HTTPError(exc.status, exc.message) from None
    headers = read_headers(req, int(cert.get("ModifyIndex") or 0)) + [(b"x-cache", b"MISS")]
    return json_response(req, cert, headers)


def register(router: Router, deps: HTTPDeps) -> None:
    ports = CAPorts(
        deps.store,
        deps.identity.config.connect_enabled,
        deps.ca,
        deps.signer,
        deps.leaves,
    )
    router.add("/v1/connect/ca/roots", {"GET": partial(roots, ports)})
    router.add(
        "/v1/connect/ca/configuration",
        {"GET": partial(configuration, ports), "PUT": partial(configuration, ports)},
    )
    router.add("/v1/agent/connect/ca/roots", {"GET": partial(agent_roots, ports)})
    router.add("/v1/agent/connect/ca/leaf/", {"GET": partial(leaf, ports)}, prefix=True)
