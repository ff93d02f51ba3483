"""`GET /v1/query/<id or name>/execute` and `/explain`: running a prepared query.

Consul's HTTP side (agent/prepared_query_endpoint.go) in front of `PreparedQuery.Execute`:
`?limit=` trims the answer, `?connect=` asks for the Connect-capable instances, `?near=`
names the node to sort near (`_agent`: the agent that took the request), and `?dc=` runs the
query in another datacenter (the request goes there, as every `?dc=` request does). The
execution itself, failover over the WAN included, is `agent.queries.runner.QueryRunner`.

The answer is the whole PreparedQueryExecuteResponse as Go encodes it: its own fields, then
the embedded QueryMeta's (`Index` 0, as Execute is no blocking query; `LastContact` in
nanoseconds; `KnownLeader`; `ConsistencyLevel` ...), which Consul's JSON carries too. An
explain answers `{"Query": <the query, template rendered>}` with the same meta, after
Consul's ACL filter of queries (`agent/http/query_acl.py`: `query:read` on its name, the
token `<hidden>` to all but management).

The handlers are registered by the CRUD area (`agent/http/query.py`) under its
`/v1/query/` prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.acl.resolve import ACLNotFound, token_from_request
from agent.http.app import HTTPError, Request, Response, json_response
from agent.http.blocking import QueryOptions, query_meta, query_options, read_headers
from agent.http.forward import origin
from agent.http.query_acl import readable_one
from agent.queries.definition import QueryError
from agent.queries.runner import Caller, QueryRunner
from agent.queries.template import resolve

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.state.store import Store

__all__ = ["QueryExecPorts", "exec_ports", "execute", "explain"]

NOT_FOUND = "Query not found"
_BOOLS = {
    "1": True,
    "t": True,
    "T": True,
    "TRUE": True,
    "true": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "FALSE": False,
    "false": False,
    "False": False,
}


@dataclass(frozen=True)
class QueryExecPorts:
    store: Store
    runner: QueryRunner
    node_name: str


def exec_ports(deps: HTTPDeps) -> QueryExecPorts:
    """The agent's runner (it fails over over the WAN), else one on the store alone."""
    runner = deps.queries or QueryRunner(
        deps.store, deps.acl, deps.identity.datacenter, federation=None
    )
    return QueryExecPorts(deps.store, runner, deps.identity.node_name)


def _limit(req: Request) -> int:
    """`?limit=` as Go's strconv.Atoi reads it (a sign, then ASCII digits, 64 bits)."""
    raw = req.get("limit") or ""
    if not raw:
        return 0
    digits = raw[1:] if raw[0] in "+-" else raw
    reason = "invalid syntax"
    if digits.isascii() and digits.isdigit():
        value = int(raw)
        if -(2**63) <= value < 2**63:
            return value
        reason = "value out of range"
    raise HTTPError(500, f'Bad limit: strconv.Atoi: parsing "{raw}": {reason}')


def _connect(req: Request) -> bool:
    raw = req.get("connect") or ""
    if not raw:
        return False
    if raw not in _BOOLS:
        raise HTTPError(
            500,
            f"Error parsing 'connect' value: strconv.ParseBool: parsing \"{raw}\": invalid syntax",
        )
    return _BOOLS[raw]


def _resolve(ports: QueryExecPorts, id_or_name: str) -> dict:
    try:
        query = resolve(ports.store.queries.all(), id_or_name)
    except QueryError as exc:
        raise HTTPError(exc.status, exc.message) from None
    if query is None:
        raise HTTPError(404, NOT_FOUND)
    return query


async def _options(req: Request) -> QueryOptions:
    opts = query_options(req)
    if opts.consistency == "consistent":
        await req.reads.leadership.barrier()
    return opts


async def execute(ports: QueryExecPorts, req: Request, id_or_name: str) -> Response:
    opts = await _options(req)
    count, connect = _limit(req), _connect(req)
    query = _resolve(ports, id_or_name)
    agent_node, client = origin(req, ports.node_name)
    caller = Caller(
        token=token_from_request(req.query if req.raw_query else {}, req.headers),
        agent_node=agent_node,
        near=req.get("near") or "",
        source_ip=client,
        limit=count,
        connect=connect,
        allow_stale=opts.consistency == "stale",
    )
    try:
        result = await ports.runner.execute(query, caller)
    except ACLNotFound:
        raise HTTPError(403, "ACL not found") from None
    filtered = bool(result.pop("ResultsFilteredByACLs", False))
    # Index 0 in the body, as Consul's execute leaves it (the header carries the index).
    result.update(query_meta(req, 0, opts.consistency), ResultsFilteredByACLs=filtered)
    headers = read_headers(req, 0, opts.consistency)
    if filtered:
        headers.append((b"x-consul-results-filtered-by-acls", b"true"))
    return json_response(req, result, headers)


async def explain(ports: QueryExecPorts, req: Request, id_or_name: str) -> Response:
    opts = await _options(req)
    _limit(req)  # parsed and refused alike, though an explain applies none
    query = readable_one(req, _resolve(ports, id_or_name))
    body = {"Query": query, **query_meta(req, 0, opts.consistency)}
    return json_response(req, body, read_headers(req, 0, opts.consistency))
