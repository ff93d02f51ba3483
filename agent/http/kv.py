"""`/v1/kv/<key>`: GET (one key, recurse, keys, raw), PUT (flags, cas, acquire, release), DELETE."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.blocking import blocking_query, query_options, read_headers
from agent.limits import kv_key_error
from agent.state.commands import KV
from agent.state.structs import KVEntry

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.ports import Writer
    from agent.state.store import Store

_NOT_FOUND = b""


@dataclass(frozen=True)
class KVPorts:
    store: Store
    writer: Writer
    max_value_size: int  # limits.kv_max_value_size


def render_entry(entry: KVEntry) -> dict:
    out = {
        "LockIndex": entry.LockIndex,
        "Key": entry.Key,
        "Flags": entry.Flags,
        "Value": entry.Value if entry.Value else None,
        "CreateIndex": entry.CreateIndex,
        "ModifyIndex": entry.ModifyIndex,
    }
    if entry.Session:
        out["Session"] = entry.Session
    return out


def parse_uint(raw: str) -> int:
    """Go's strconv.ParseUint, with its error text (Consul answers these with a 500)."""
    if not raw.isdigit():
        raise HTTPError(500, f'strconv.ParseUint: parsing "{raw}": invalid syntax')
    value = int(raw)
    if value >= 1 << 64:
        raise HTTPError(500, f'strconv.ParseUint: parsing "{raw}": value out of range')
    return value


def _conflicting(req: Request) -> HTTPError:
    query = urlencode(sorted((k, v) for k, vs in req.query.items() for v in vs))
    return HTTPError(400, f"Conflicting flags: {query}\n")


async def kv_get(ports: KVPorts, req: Request, key: str) -> Response:
    store = ports.store
    opts = query_options(req)
    recurse, keys = req.has("recurse"), req.has("keys")
    if not key and not (recurse or keys):
        raise HTTPError(400, "Missing key name")
    if keys:
        separator = req.get("separator") or req.get("seperator") or ""
        index, result, _ = await blocking_query(
            req,
            (("kvp", key),),
            lambda: (store.kv_prefix_index(key), store.kv_keys(key, separator)),
            opts,
        )
        headers = read_headers(req, index, opts.consistency)
        if not result and key:
            return Response(_NOT_FOUND, 404, headers=headers)
        return json_response(req, result, headers)
    if recurse:
        index, entries, _ = await blocking_query(
            req,
            (("kvp", key),),
            lambda: (store.kv_prefix_index(key), [render_entry(e) for e in store.kv_range(key)]),
            opts,
        )
        headers = read_headers(req, index, opts.consistency)
        if not entries:
            return Response(_NOT_FOUND, 404, headers=headers)
        return json_response(req, entries, headers)
    if opts.index:
        index, entry, _ = await blocking_query(
            req, (("kv", key),), lambda: (store.kv_key_index(key), store.kv_get(key)), opts
        )
    else:
        entry = store.kv_get(key)
        index = entry.ModifyIndex if entry is not None else store.kv_key_index(key)
    headers = read_headers(req, index, opts.consistency)
    if entry is None:
        return Response(_NOT_FOUND, 404, headers=headers)
    if req.raw_query and req.has("raw"):
        headers.append((b"x-content-type-options", b"nosniff"))
        headers.append((b"content-security-policy", b"sandbox"))
        return Response(entry.Value, 200, b"text/plain; charset=utf-8", headers)
    return json_response(req, [render_entry(entry)], headers)


async def kv_put(ports: KVPorts, req: Request, key: str) -> Response:
    if not key:
        raise HTTPError(400, "Missing key name")
    if (too_long := kv_key_error(key)) is not None:
        raise HTTPError(400, too_long)
    cmd = KV(Verb="set", Key=key)
    if req.raw_query:
        modes = [m for m in ("cas", "acquire", "release") if req.has(m)]
        if len(modes) > 1:
            raise _conflicting(req)
        if req.has("flags"):
            cmd.Flags = parse_uint(req.get("flags", ""))
        if modes == ["cas"]:
            cmd.Verb, cmd.Index = "cas", parse_uint(req.get("cas", ""))
        elif modes == ["acquire"]:
            cmd.Verb, cmd.Session = "lock", req.get("acquire", "")
        elif modes == ["release"]:
            cmd.Verb, cmd.Session = "unlock", req.get("release", "")
    limit = ports.max_value_size
    declared = req.header(b"content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, _too_large(int(declared), limit))
    try:
        cmd.Value = await req.body(limit)
    except HTTPError:
        raise HTTPError(413, _too_large(None, limit)) from None
    result = await ports.writer.write(cmd)
    return json_response(req, bool(result))


def _too_large(size: int | None, limit: int) -> str:
    shown = f"({size} bytes) " if size is not None else " "
    return (
        f"Request body{shown}too large, max size: {limit} bytes. "
        "See the agent configuration's kv_max_value_size."
    )


async def kv_delete(ports: KVPorts, req: Request, key: str) -> Response:
    recurse = req.has("recurse")
    cas = req.has("cas")
    if recurse and cas:
        raise _conflicting(req)
    if not key and not recurse:
        raise HTTPError(400, "Missing key name")
    if recurse:
        cmd = KV(Verb="delete-tree", Key=key)
    elif cas:
        cmd = KV(Verb="delete-cas", Key=key, Index=parse_uint(req.get("cas", "")))
    else:
        cmd = KV(Verb="delete", Key=key)
    result = await ports.writer.write(cmd)
    return json_response(req, bool(result))


def register(router: Router, deps: HTTPDeps) -> None:
    ports = KVPorts(deps.store, deps.writer, deps.identity.config.kv_max_value_size)
    methods = {
        "GET": partial(kv_get, ports),
        "PUT": partial(kv_put, ports),
        "DELETE": partial(kv_delete, ports),
    }
    router.add("/v1/kv/", methods, prefix=True)
    router.add("/v1/kv", methods)
