"""`/v1/connect/intentions*` and `/v1/agent/connect/authorize`.

Intentions are `service-intentions` config entries, one per destination (Consul 1.9+); the
legacy ID API and the exact API are views over them (`agent/connect/intentions.py`, pure).
A write reads the destination's entry, computes the new one and proposes it with a CAS on
the entry's index, retrying when another write won the race: two writers never lose each
other's sources. `authorize` answers from this agent's view of the entries: the store on a
server, a cache of a server's answer on a client agent (`IntentionSource`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from agent.connect import entries as entry_rules
from agent.connect import intentions as ixn
from agent.connect import spiffe
from agent.connect.errors import MeshError
from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.authz import allowed, enabled, mark_filtered, require
from agent.http.blocking import blocking_query, query_options, read_headers
from agent.http.catalog import compile_request_filter, select
from agent.http.gojson import parse
from agent.state.commands import ConfigEntryDelete, ConfigEntrySet

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.ports import Writer
    from agent.state.store import Store

_DISABLED = "Connect must be enabled in order to use this endpoint"
_KIND = "service-intentions"
_TOPIC = (("table", "config-entries"),)
_RETRIES = 8

Entries = Mapping[tuple[str, str], dict[str, Any]]


class IntentionSource(Protocol):
    """The service-intentions entries this agent decides with."""

    async def entries(self) -> Entries: ...

    def version(self) -> int:
        """A number that changes whenever the entries may have (decisions are cached per
        version)."""
        ...


class DecisionCache:
    """Authorize answers by (entries version, source namespace, source, target): a proxy asks
    once per connection, and most connections repeat a pair. Bounded; cleared when the
    entries change."""

    LIMIT = 8192

    def __init__(self) -> None:
        self.version = -1
        self.answers: dict[tuple[str, str, str], ixn.Decision] = {}

    def get(self, version: int, key: tuple[str, str, str]) -> ixn.Decision | None:
        if version != self.version:
            self.version, self.answers = version, {}
            return None
        return self.answers.get(key)

    def put(self, key: tuple[str, str, str], decision: ixn.Decision) -> None:
        if len(self.answers) >= self.LIMIT:
            self.answers.clear()
        self.answers[key] = decision


@dataclass(frozen=True)
class IntentionPorts:
    store: Store
    writer: Writer
    enabled: bool
    source: IntentionSource
    default_allow: bool  # no intention matches: ACLs off, or acl.default_policy = "allow"
    clock: Callable[[], dt.datetime]
    decisions: DecisionCache


def _enabled(ports: IntentionPorts) -> None:
    if not ports.enabled:
        raise HTTPError(500, _DISABLED)


def _mesh_error(exc: MeshError) -> HTTPError:
    return HTTPError(exc.status, exc.message)


def can_read_intention(req: Request, intention: dict[str, Any]) -> bool:
    if not enabled(req):
        return True
    return allowed(req, "intention", intention.get("DestinationName", ""), "read") or allowed(
        req, "intention", intention.get("SourceName", ""), "read"
    )


# ---------------------------------------------------------------------- writes


async def _write(
    ports: IntentionPorts,
    destination: str,
    change: Callable[[dict | None], Mapping[str, Any] | None],
    validate: bool = True,
) -> None:
    """Apply `change` to the destination's entry under a CAS, retrying lost races. Exact
    writes are config-entry writes by another door: validated as `PUT /v1/config` is."""
    mesh = ports.store.mesh
    for _ in range(_RETRIES):
        current = mesh.entry(_KIND, destination)
        try:
            new = change(current)
            if new is current:
                return  # nothing to do (an exact delete of an absent source)
            if new is not None and validate:
                new = entry_rules.normalize(dict(new))
                entry_rules.validate(new)
        except MeshError as exc:
            raise _mesh_error(exc) from None
        cas = current.get("ModifyIndex", 0) if current is not None else 0
        if new is None:
            if current is None:
                return
            done = await ports.writer.write(
                ConfigEntryDelete(EntryKind=_KIND, Name=destination, CAS=cas)
            )
        else:
            clean = {k: v for k, v in new.items() if k not in ("CreateIndex", "ModifyIndex")}
            done = await ports.writer.write(ConfigEntrySet(Entry=clean, CAS=cas))
        if done:
            return
    raise HTTPError(500, "intention write lost too many races; try again")


def _query(req: Request) -> dict[str, list[str]]:
    return req.query if req.raw_query else {}


async def _body(req: Request, prefix: str, status: int = 400) -> dict[str, Any]:
    try:
        body = parse(await req.body(), prefix, empty={})
    except HTTPError as exc:
        raise HTTPError(status, exc.message) from None
    if not isinstance(body, dict):
        raise HTTPError(
            status, f"{prefix}json: cannot unmarshal array into Go value of type structs.Intention"
        )
    return body


def _require_write(req: Request, destination: str) -> None:
    if not destination:  # Consul's CanWrite: no destination, no permission
        raise HTTPError(403, "Permission denied")
    require(req, "intention", destination, "write")


async def create(ports: IntentionPorts, req: Request) -> Response:
    """`POST /v1/connect/intentions` (legacy): a new source with a new ID."""
    body = await _body(req, "Failed to decode request body: ", 500)
    try:
        ixn.check_legacy_request(body)
    except MeshError as exc:
        raise _mesh_error(exc) from None
    destination = str(body.get("DestinationName") or "")
    _require_write(req, destination)
    new_id = str(uuid.uuid4())
    now = ports.clock()
    await _write(
        ports, destination, lambda e: ixn.create_legacy(e, body, new_id, now), validate=False
    )
    return json_response(req, {"ID": new_id})


async def exact(ports: IntentionPorts, req: Request) -> Response:
    write = req.method != "GET"
    try:
        query = ixn.exact_query(_query(req), write=write)
        if not write:
            found = ixn.get_exact(ports.store.mesh.entries, query.source, query.destination)
    except MeshError as exc:
        raise _mesh_error(exc) from None
    if not write:
        if not can_read_intention(req, found):
            raise HTTPError(403, "Permission denied")
        return json_response(req, found, read_headers(req, found.get("ModifyIndex", 0)))
    source, destination = query.source.name, query.destination.name
    if req.method == "DELETE":
        _require_write(req, destination)
        await _write(ports, destination, lambda e: ixn.delete_exact(e, source))
        return json_response(req, True)
    body = await _body(req, "Request decode failed: ")
    try:
        ixn.check_apply_body(body)
    except MeshError as exc:
        raise _mesh_error(exc) from None
    _require_write(req, destination)
    now = ports.clock()
    await _write(ports, destination, lambda e: ixn.upsert_exact(e, source, destination, body, now))
    return json_response(req, True)


async def by_id(ports: IntentionPorts, req: Request, ident: str) -> Response:
    mesh = ports.store.mesh
    try:
        if req.method == "GET":
            view = ixn.get_legacy(mesh.entries, ident)
            if not can_read_intention(req, view):
                raise HTTPError(403, "Permission denied")
            return json_response(req, view, read_headers(req, view.get("ModifyIndex", 0)))
        if req.method == "DELETE":
            destination = ixn.legacy_destination(mesh.entries, ident, deleting=True)
            _require_write(req, destination)
            await _write(
                ports,
                destination,
                lambda e: ixn.delete_legacy({(_KIND, destination): e} if e else {}, ident)[1],
                validate=False,
            )
            return json_response(req, True)
        body = await _body(req, "Request decode failed: ")
        ixn.check_legacy_request(body, update=True)
        destination = ixn.legacy_destination(mesh.entries, ident)
        _require_write(req, destination)
        now = ports.clock()
        await _write(
            ports,
            destination,
            lambda e: ixn.update_legacy({(_KIND, destination): e} if e else {}, ident, body, now)[
                1
            ],
            validate=False,
        )
    except MeshError as exc:
        raise _mesh_error(exc) from None
    return json_response(req, {"ID": ident})


# ---------------------------------------------------------------------- reads


async def listing(ports: IntentionPorts, req: Request, rest: str) -> Response:
    _enabled(ports)
    if req.method == "POST" and not rest:
        return await create(ports, req)
    if rest == "exact":
        return await exact(ports, req)
    if rest == "match":
        return await match(ports, req)
    if rest == "check":
        return await check(ports, req)
    if rest:
        if req.method not in ("GET", "PUT", "DELETE"):
            raise HTTPError(405, f"method {req.method} not allowed")
        return await by_id(ports, req, rest)
    flt = compile_request_filter(req)
    mesh = ports.store.mesh

    def query() -> tuple[int, list[dict[str, Any]]]:
        found = []
        for item in ixn.all_intentions(mesh.entries):
            if can_read_intention(req, item):
                found.append(item)
            else:
                mark_filtered(req)
        return ports.store.table_index("config-entries"), select(flt, found)

    opts = query_options(req)
    index, result, _ = await blocking_query(req, _TOPIC, query, opts)
    return json_response(req, result, read_headers(req, index, opts.consistency))


async def match(ports: IntentionPorts, req: Request) -> Response:
    try:
        query = ixn.match_query(_query(req))
    except MeshError as exc:
        raise _mesh_error(exc) from None
    for target in query.targets:
        require(req, "intention", target.name, "read")
    mesh = ports.store.mesh
    names = [t.name for t in query.targets]

    def answer() -> tuple[int, dict[str, Any]]:
        found = ixn.match(mesh.entries, query.by, names)
        return ports.store.table_index("config-entries"), {
            raw: found.get(name) for raw, name in zip(query.names, names, strict=True)
        }

    opts = query_options(req)
    index, result, _ = await blocking_query(req, _TOPIC, answer, opts)
    return json_response(req, result, read_headers(req, index, opts.consistency))


async def check(ports: IntentionPorts, req: Request) -> Response:
    try:
        query = ixn.check_query(_query(req))
    except MeshError as exc:
        raise _mesh_error(exc) from None
    require(req, "service", query.destination, "read")
    decision = ixn.decide(
        ports.store.mesh.entries,
        query.source,
        query.destination,
        ports.default_allow,
        destination_ns=query.destination_ns,
    )
    return json_response(req, {"Allowed": decision.allowed})


async def authorize(ports: IntentionPorts, req: Request, _: str) -> Response:
    _enabled(ports)
    body = await _body(req, "Request decode failed: ")
    target = str(body.get("Target") or "")
    if not target:
        raise HTTPError(400, "Target service must be specified")
    try:
        who = spiffe.parse_uri(str(body.get("ClientCertURI") or ""))
    except MeshError:
        raise HTTPError(400, "ClientCertURI not a valid Connect identifier") from None
    if who.kind != "service":
        raise HTTPError(400, "ClientCertURI not a valid Service identifier")
    require(req, "service", target, "write")
    reason = ixn.ACL_DEFAULT_REASON if enabled(req) else ixn.DEFAULT_POLICY_REASON
    source_ns = who.namespace or "default"
    key = (source_ns, who.service, target)
    entries = await ports.source.entries()  # from memory; a client agent refreshes when due
    version = ports.source.version()
    decision = ports.decisions.get(version, key)
    hit = decision is not None
    if decision is None:
        decision = ixn.decide(
            entries, who.service, target, ports.default_allow, reason, source_ns=source_ns
        )
        ports.decisions.put(key, decision)
    return json_response(
        req,
        {"Authorized": decision.allowed, "Reason": decision.reason},
        [(b"x-cache", b"HIT" if hit else b"MISS")],
    )


def register(router: Router, deps: HTTPDeps) -> None:
    acl = deps.identity.config.acl
    ports = IntentionPorts(
        deps.store,
        deps.writer,
        deps.identity.config.connect_enabled,
        deps.intentions,
        not acl.enabled or acl.default_policy == "allow",
        lambda: dt.datetime.now(dt.UTC),
        DecisionCache(),
    )
    router.add(
        "/v1/connect/intentions",
        {"GET": partial(listing, ports), "POST": partial(listing, ports)},
    )
    router.add(
        "/v1/connect/intentions/",
        {m: partial(listing, ports) for m in ("GET", "PUT", "DELETE", "POST")},
        prefix=True,
    )
    router.add("/v1/agent/connect/authorize", {"POST": partial(authorize, ports)})
