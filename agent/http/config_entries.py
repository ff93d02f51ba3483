"""`/v1/config`: config entries, every OSS kind, replicated through Raft.

Decoding, normalizing, validating and rendering an entry is `agent/connect/entries.py`'s
(pure); this area adds what Consul's endpoint does around it: the ACL rule of the kind, the
no-op write (an identical entry answers `true` without a log entry), `?cas=`, blocking reads,
and Consul's statuses: decode errors are 400s, validation and graph errors plain-text 500s,
an unknown kind is a 500 on reads and a 400 on deletes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from agent.connect import entries
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

_DECODE = "Request decoding failed: "
_TOPIC = (("table", "config-entries"),)


@dataclass(frozen=True)
class ConfigPorts:
    store: Store
    writer: Writer
    connect_enabled: bool


def mesh_error(exc: MeshError) -> HTTPError:
    return HTTPError(exc.status, exc.message)


def require_needs(req: Request, needs: Any) -> None:
    """403 unless the token satisfies `needs`: a `Need`, a sequence of them (all must hold),
    or an `AnyOf` of such sequences (one must hold entirely)."""
    if not enabled(req):
        return
    options = getattr(needs, "options", None)
    if options is None:
        for need in _as_list(needs):
            require(req, need.resource, need.segment, need.level)
        return
    for option in options:
        if all(allowed(req, n.resource, n.segment or "", n.level) for n in _as_list(option)):
            return
    first = _as_list(options[0])[0]
    require(req, first.resource, first.segment, first.level)


def _as_list(needs: Any) -> list[Any]:
    return [needs] if hasattr(needs, "resource") else list(needs)


def needs_met(req: Request, needs: Any) -> bool:
    try:
        require_needs(req, needs)
    except HTTPError:
        return False
    return True


def _check_kind(kind: str, status: int = 500) -> None:
    if kind not in entries.KINDS:
        raise HTTPError(status, f"invalid config entry kind: {kind}")


def _cas(req: Request) -> int | None:
    if not req.raw_query or not req.has("cas"):
        return None
    raw = req.get("cas", "")
    if not raw.isdigit():
        raise HTTPError(500, f'strconv.ParseUint: parsing "{raw}": invalid syntax')
    return int(raw)


def _without_indexes(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {k: v for k, v in entry.items() if k not in ("CreateIndex", "ModifyIndex")}


async def put(ports: ConfigPorts, req: Request, _: str) -> Response:
    raw = parse(await req.body(), _DECODE, empty=None)
    if raw is None:
        raise HTTPError(400, f"{_DECODE}EOF")
    try:
        entry = entries.decode_entry(raw)
        if entry.get("Kind") == "service-intentions" and not ports.connect_enabled:
            raise HTTPError(500, "Connect must be enabled in order to use this endpoint")
        entry = entries.normalize(entry)
        entries.validate(entry)
    except MeshError as exc:
        raise mesh_error(exc) from None
    require_needs(req, entries.write_rules(entry))
    cas = _cas(req)
    current = ports.store.mesh.entry(entry["Kind"], entry["Name"])
    if cas is None and _without_indexes(current) == entry:
        return json_response(req, True)  # nothing changes: no log entry (as Consul)
    result = await ports.writer.write(ConfigEntrySet(Entry=entry, CAS=cas))
    return json_response(req, bool(result))


def _split(rest: str) -> tuple[str, str]:
    kind, _, name = rest.partition("/")
    return kind, name


async def get(ports: ConfigPorts, req: Request, rest: str) -> Response:
    kind, name = _split(rest)
    if kind:
        _check_kind(kind)
    if name:
        return await _get_one(ports, req, kind, name)
    return await _list(ports, req, kind or None)


async def _get_one(ports: ConfigPorts, req: Request, kind: str, name: str) -> Response:
    require_needs(req, entries.read_rule(kind, name))
    mesh = ports.store.mesh
    index, found, opts = await blocking_query(
        req,
        _TOPIC,
        lambda: (ports.store.table_index("config-entries"), mesh.entry(kind, name)),
    )
    if found is None:
        raise HTTPError(404, f'Config entry not found for "{kind}" / "{name}"')
    return json_response(
        req, entries.render_entry(found), read_headers(req, index, opts.consistency)
    )


async def _list(ports: ConfigPorts, req: Request, kind: str | None) -> Response:
    flt = compile_request_filter(req)
    if flt is not None and kind != "service-defaults":
        raise HTTPError(500, f"filtering not supported for config entry kind={kind}")
    mesh = ports.store.mesh

    def query() -> tuple[int, list[dict[str, Any]]]:
        rendered = [entries.render_entry(e) for e in _readable(req, mesh.of_kind(kind))]
        return ports.store.table_index("config-entries"), select(flt, rendered)

    opts = query_options(req)
    index, result, _ = await blocking_query(req, _TOPIC, query, opts)
    return json_response(req, result, read_headers(req, index, opts.consistency))


def _readable(req: Request, found: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    kept = []
    for entry in found:
        if needs_met(req, entries.read_rule(entry["Kind"], entry["Name"])):
            kept.append(entry)
        else:
            mark_filtered(req)
    return kept


async def delete(ports: ConfigPorts, req: Request, rest: str) -> Response:
    kind, name = _split(rest)
    _check_kind(kind, 400)
    if not name:
        raise HTTPError(404, "Must provide both a kind and name to delete")
    try:
        name = entries.validate_delete_name(kind, name)
    except MeshError as exc:
        raise mesh_error(exc) from None
    require_needs(req, entries.write_rules({"Kind": kind, "Name": name}))
    cas = _cas(req)
    if cas is None and ports.store.mesh.entry(kind, name) is None:
        return json_response(req, {})  # nothing to delete: no log entry (as Consul)
    result = await ports.writer.write(ConfigEntryDelete(EntryKind=kind, Name=name, CAS=cas))
    return json_response(req, bool(result) if cas is not None else {})


def register(router: Router, deps: HTTPDeps) -> None:
    ports = ConfigPorts(deps.store, deps.writer, deps.identity.config.connect_enabled)
    router.add("/v1/config", {"PUT": partial(put, ports)})
    router.add(
        "/v1/config/",
        {"GET": partial(get, ports), "DELETE": partial(delete, ports)},
        prefix=True,
    )
