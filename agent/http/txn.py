"""`PUT /v1/txn`: up to 64 KV/Node/Service/Check operations, all or nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import msgspec

from agent.http.app import JSON, HTTPError, Request, Response, Router, json_response
from agent.http.blocking import query_options, read_headers
from agent.http.bodies import TXN_OPS
from agent.http.gojson import b64decode, conform, parse
from agent.limits import kv_key_error
from agent.state.commands import KV_READ_VERBS, KV_VERBS, KVOp, Txn, TxnOp, typed
from agent.state.fsm import TxnResult

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.ports import Writer
    from agent.state.fsm import FSM
    from agent.state.store import Store

MAX_OPS = 64


_PREFIX = "Failed to parse body: "


@dataclass(frozen=True)
class TxnPorts:
    store: Store  # the index a read-only txn answers with
    fsm: FSM  # read-only txns are answered from it, without a log entry
    writer: Writer
    max_req_len: int  # limits.txn_max_req_len
    max_value_size: int  # limits.kv_max_value_size


def _parse_ops(raw: object, max_value: int) -> list[TxnOp]:
    """The FSM's txn ops for a decoded body: every field of the right Go type, every verb
    known, every value within limits, or a refusal before anything is proposed."""
    if isinstance(raw, list) and len(raw) > MAX_OPS:
        raise HTTPError(413, f"Transaction contains too many operations ({len(raw)} > {MAX_OPS})")
    ops: list[TxnOp] = []
    for i, item in enumerate(conform(raw, TXN_OPS, _PREFIX) or []):
        kinds = [k for k in ("KV", "Node", "Service", "Check") if k in item]
        if len(kinds) != 1:
            raise HTTPError(
                400,
                f"{_PREFIX}operation {i} must have exactly one of KV, Node, Service or Check",
            )
        kind = kinds[0]
        body = item[kind]
        if kind == "KV":
            verb = body.get("Verb", "")
            if verb not in KV_VERBS:
                raise HTTPError(400, f'{_PREFIX}unknown KV verb "{verb}"')
            ops.append(TxnOp(KV=_kv_op(body, max_value)))
        else:
            ops.append(typed(TxnOp, {kind: body}))
    return ops


def _kv_op(body: dict, max_value: int) -> KVOp:
    if (too_long := kv_key_error(body.get("Key", ""))) is not None:
        raise HTTPError(400, too_long)
    value = b64decode(body.get("Value"), _PREFIX)
    if len(value) > max_value:
        raise HTTPError(
            413,
            f'Value for key "{body.get("Key", "")}" is too large ({len(value)} > {max_value} bytes)',
        )
    return KVOp(
        Verb=body["Verb"],
        Key=body.get("Key", ""),
        Value=value,
        Flags=body.get("Flags", 0),
        Index=body.get("Index", 0),
        Session=body.get("Session", ""),
    )


def _is_read_only(ops: list[TxnOp]) -> bool:
    for op in ops:
        if op.KV is not None:
            if op.KV.Verb not in KV_READ_VERBS:
                return False
        elif (op.Node or op.Service or op.Check).Verb != "get":
            return False
    return True


async def txn(ports: TxnPorts, req: Request, _: str) -> Response:
    limit = max(ports.max_req_len, ports.max_value_size)
    declared = req.header(b"content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"Request body({declared} bytes) too large, max size: {limit} bytes.")
    decoded = parse(await req.body(limit), _PREFIX, empty=[])
    ops = _parse_ops(decoded, ports.max_value_size)
    headers: list = []
    if _is_read_only(ops):
        opts = query_options(req)
        if opts.consistency == "consistent":
            await req.reads.leadership.barrier()
        result = ports.fsm.read_txn(ops) if ops else TxnResult([], None)
        headers = read_headers(req, ports.store.last_index, opts.consistency)[1:3]
    else:
        result = await ports.writer.write(Txn(Ops=ops))
    if result.errors:
        return json_response(req, {"Results": None, "Errors": result.errors}, headers, status=409)
    results = [_as_consul(item) for item in result.results] if result.results else None
    if results and not req.has("pretty") and _values_size(results) > STREAM_ABOVE:
        response = Response(b"", 200, JSON, headers)
        response.stream = _streamed(results)
        return response
    return json_response(req, {"Results": results, "Errors": None}, headers)


# What Consul's structs leave out when empty (`json:",omitempty"`). A txn answers with the
# stored structs as they are, unlike the catalog and health endpoints, which turn nil lists
# and maps into empty ones; so a node registered without tagged addresses or meta shows null
# there, and clients that compare whole results (the Go client's own txn test) see the same.
_SERVICE_OMITTED = {"Kind": "", "Port": 0, "SocketPath": "", "PeerName": "", "Locality": None}


def _as_consul(item: dict) -> dict:
    """One txn result (`KV`, `Node`, `Service` or `Check`) in the JSON shape Consul's gives."""
    if (node := item.get("Node")) is not None:
        node = {**node, **{k: node.get(k) or None for k in ("TaggedAddresses", "Meta")}}
        if node.get("Locality") is None:
            node.pop("Locality", None)
        return {"Node": node}
    if (svc := item.get("Service")) is not None:
        svc = {
            k: v for k, v in svc.items() if k not in _SERVICE_OMITTED or v != _SERVICE_OMITTED[k]
        }
        if not svc.get("TaggedAddresses"):
            svc.pop("TaggedAddresses", None)
        return {"Service": svc}
    if (check := item.get("Check")) is not None:
        return {"Check": {**check, "ServiceTags": check.get("ServiceTags") or None}}
    return item


# 64 gets of 512 KiB values answer ~45 MB of JSON; encoded whole, the agent holds the answer
# two or three times over. Above this many value bytes, results go out one at a time.
STREAM_ABOVE = 1 << 20
_encode = msgspec.json.Encoder().encode


def _values_size(results: list[dict]) -> int:
    return sum(len((r.get("KV") or {}).get("Value") or b"") for r in results)


async def _streamed(results: list[dict]) -> AsyncIterator[bytes]:
    yield b'{"Results":['
    for i, item in enumerate(results):
        yield (b"," if i else b"") + _encode(item)
    yield b'],"Errors":null}'


def register(router: Router, deps: HTTPDeps) -> None:
    config = deps.identity.config
    ports = TxnPorts(
        deps.store, deps.fsm, deps.writer, config.txn_max_req_len, config.kv_max_value_size
    )
    router.add("/v1/txn", {"PUT": partial(txn, ports)})
