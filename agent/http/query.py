"""`/v1/query`: prepared queries, created, read, updated and deleted through Raft.

Consul's `PreparedQuery.Apply`, `Get` and `List` (agent/consul/prepared_query_endpoint.go)
behind its HTTP endpoint (agent/prepared_query_endpoint.go), in the same order of checks:

- create (`POST /v1/query`): a body Go cannot decode is a 400 (`Request decode failed: ...`);
  an `ID` in it, an ACL denial on its name (403), a definition `parseQuery` refuses
  (`Invalid prepared query: ...`) and what the state store refuses (`raft apply failed: ...`:
  a name taken in any case, a name that is another query's ID, an unknown session, a template
  that does not compile) are the RPC's errors, so 500s, except the 403. Answers `{"ID": ...}`.
- update (`PUT /v1/query/<id>`, the ID from the path) and delete (`DELETE`): the query must
  exist (`Cannot modify non-existent prepared query: '<id>'`, a 500 for either), and the
  token needs `query:write` on both the old and the new name. Both answer an empty 200.
- `GET /v1/query` and `/v1/query/<id>` block on the table's index; what a token sees is
  `agent/http/query_acl.py`'s. An unknown ID is a 404 `Query not found`.

Every check the state store makes is made once here, before proposing, so a refused write
leaves no log entry; the FSM makes it again at apply time. `<id or name>/execute` and
`/explain` (`agent/http/query_exec.py`) are answered under this area's prefix.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from agent.errors import CommandRefused
from agent.http.app import JSON_BODY_LIMIT, HTTPError, Request, Response, Router, json_response
from agent.http.authz import filtered_headers
from agent.http.blocking import blocking_query, query_options, read_headers
from agent.http.gojson import parse
from agent.http.query_acl import readable, readable_one, require_write
from agent.http.query_exec import QueryExecPorts, exec_ports, execute, explain
from agent.queries.definition import DECODE_PREFIX, QueryError, blank, decode, id_problem, validate
from agent.state.commands import PreparedQueryDelete, PreparedQueryRecord, PreparedQuerySet, typed
from agent.state.fsm_queries import set_problem

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.ports import Writer
    from agent.state.store import Store

NOT_FOUND = "Query not found"  # structs.ErrQueryNotFound
_TOPIC = (("table", "prepared-queries"),)
_SUFFIXES = ("/execute", "/explain")


@dataclass(frozen=True)
class QueryPorts:
    store: Store
    writer: Writer
    run: QueryExecPorts  # what execute and explain use (agent/http/query_exec.py)


def _error(exc: QueryError) -> HTTPError:
    return HTTPError(exc.status, exc.message)


async def _body(req: Request) -> Any:
    """The body's JSON value (None when blank), bounded as every JSON body here is (413)."""
    return parse(await req.body(JSON_BODY_LIMIT), DECODE_PREFIX, empty=None)


def _decoded(raw: Any) -> dict[str, Any]:
    try:
        return decode(raw)
    except QueryError as exc:
        raise _error(exc) from None


async def _apply(ports: QueryPorts, query: dict[str, Any]) -> None:
    """Validate and propose a create or update, with the state store's checks first."""
    try:
        validate(query)
    except QueryError as exc:
        raise _error(exc) from None
    why = set_problem(ports.store, query)
    if why is not None:
        raise HTTPError(500, f"raft apply failed: {why}")
    await _write(ports, PreparedQuerySet(Query=typed(PreparedQueryRecord, query)))


async def _write(ports: QueryPorts, command: PreparedQuerySet | PreparedQueryDelete) -> None:
    try:
        await ports.writer.write(command)
    except CommandRefused as exc:  # the state changed between the check and the apply
        raise HTTPError(500, f"raft apply failed: {exc.message}") from None


def _existing(ports: QueryPorts, query_id: str) -> dict[str, Any]:
    """The query an update or delete names; Consul's errors when there is none."""
    why = id_problem(query_id)
    if why is not None:
        raise HTTPError(500, f"Prepared Query lookup failed: failed prepared query lookup: {why}")
    found = ports.store.queries.lookup(query_id)
    if found is None:
        raise HTTPError(500, f"Cannot modify non-existent prepared query: '{query_id}'")
    return found


# ---------------------------------------------------------------------- /v1/query


async def create(ports: QueryPorts, req: Request, rest: str) -> Response:
    raw = await _body(req)
    if raw is None:
        raise HTTPError(400, f"{DECODE_PREFIX}EOF")
    query = _decoded(raw)
    if query["ID"]:
        raise HTTPError(500, "ID must be empty when creating a new prepared query")
    store = ports.store
    while True:
        query_id = str(uuid.uuid4())
        if store.queries.lookup(query_id) is None:
            break
    query["ID"] = query_id
    require_write(req, query)
    await _apply(ports, query)
    return json_response(req, {"ID": query_id})


async def list_queries(ports: QueryPorts, req: Request, rest: str) -> Response:
    store = ports.store
    opts = query_options(req)

    def run() -> tuple[int, list[dict[str, Any]]]:
        return store.table_index("prepared-queries"), readable(req, store.queries.all())

    index, queries, _ = await blocking_query(req, _TOPIC, run, opts)
    headers = read_headers(req, index, opts.consistency) + filtered_headers(req)
    return json_response(req, queries, headers)


# ---------------------------------------------------------------------- /v1/query/<id>


def _split(rest: str) -> tuple[str, str]:
    """(the ID or name, "/execute" or "/explain" or "") from the path after /v1/query/."""
    for suffix in _SUFFIXES:
        if rest.endswith(suffix):
            return rest[: -len(suffix)], suffix
    return rest, ""


def _only_get(req: Request) -> None:
    raise HTTPError(405, f"method {req.method} not allowed", [(b"allow", b"OPTIONS,GET")])


async def get(ports: QueryPorts, req: Request, rest: str) -> Response:
    target, suffix = _split(rest)
    if suffix == "/execute":
        return await execute(ports.run, req, target)
    if suffix == "/explain":
        return await explain(ports.run, req, target)
    return await _get_one(ports, req, target)


async def _get_one(ports: QueryPorts, req: Request, query_id: str) -> Response:
    why = id_problem(query_id)
    if why is not None:
        raise HTTPError(500, f"failed prepared query lookup: {why}")
    store = ports.store
    opts = query_options(req)
    if store.queries.lookup(query_id) is None:
        raise HTTPError(404, NOT_FOUND)  # Consul's query fails at once, without blocking

    def run() -> tuple[int, dict[str, Any] | None]:
        return store.table_index("prepared-queries"), store.queries.lookup(query_id)

    index, found, _ = await blocking_query(req, _TOPIC, run, opts)
    if found is None:
        raise HTTPError(404, NOT_FOUND)
    shown = readable_one(req, found, by_id=True)
    return json_response(req, [shown], read_headers(req, index, opts.consistency))


async def update(ports: QueryPorts, req: Request, rest: str) -> Response:
    query_id, suffix = _split(rest)
    if suffix:
        _only_get(req)
    raw = await _body(req)
    query = blank() if raw is None else _decoded(raw)
    query["ID"] = query_id  # the path's ID, never the body's
    require_write(req, query)
    existing = _existing(ports, query_id)
    require_write(req, existing)
    query["ID"] = existing["ID"]  # as stored: the path may spell its hex in another case
    await _apply(ports, query)
    return Response(b"", 200)


async def delete(ports: QueryPorts, req: Request, rest: str) -> Response:
    query_id, suffix = _split(rest)
    if suffix:
        _only_get(req)
    existing = _existing(ports, query_id)
    require_write(req, existing)
    await _write(ports, PreparedQueryDelete(ID=existing["ID"]))
    return Response(b"", 200)


def register(router: Router, deps: HTTPDeps) -> None:
    ports = QueryPorts(deps.store, deps.writer, exec_ports(deps))
    router.add("/v1/query", {"GET": partial(list_queries, ports), "POST": partial(create, ports)})
    router.add(
        "/v1/query/",
        {
            "GET": partial(get, ports),
            "PUT": partial(update, ports),
            "DELETE": partial(delete, ports),
        },
        prefix=True,
    )
