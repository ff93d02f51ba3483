"""`/v1/session/*`: create, destroy, renew, info, node, list.

Create and destroy go through the log (`agent/state/sessions.py`); the ID is generated here,
on the server that proposes, so applying stays deterministic. Renew touches no replicated
state: it restarts the leader's TTL timer (`agent/sessions_reaper.py`), as Consul's does. The
reads block on the sessions table's index and take `?filter=`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec

from agent.durations import DurationError, format_duration, parse_duration
from agent.filter import FilterError, compile_filter
from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.blocking import blocking_query, query_options, read_headers
from agent.http.bodies import SESSION
from agent.http.gojson import conform
from agent.state.commands import SessionCommand, SessionRecord, typed
from agent.state.sessions import NANOSECOND, SessionTable
from agent.state.structs import Session

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps, SessionRenewer
    from agent.ports import Writer
    from agent.state.store import Store

SERF_CHECK = "serfHealth"
DEFAULT_LOCK_DELAY_NS = 15 * NANOSECOND
MAX_TTL = 86400.0
# Consul reads a lock delay below this many nanoseconds as seconds ("LockDelay": 5 means 5s).
LOCK_DELAY_SECONDS_BELOW = 1000
_TOPICS = (("table", "sessions"),)


@dataclass(frozen=True)
class SessionPorts:
    store: Store
    writer: Writer
    reaper: SessionRenewer  # the leader's TTL timers: create and renew restart them
    node_name: str  # a session's node when the body names none
    ttl_min: float  # session_ttl_min, in seconds


def render(session: Session) -> dict:
    return msgspec.to_builtins(session)


# ---------------------------------------------------------------------- create body


def _decode_failed(why: str) -> HTTPError:
    return HTTPError(400, f"Request decode failed: {why}")


def lock_delay_ns(value: Any) -> int:
    """LockDelay as Consul reads it: a duration string or a number of nanoseconds, with
    small values (under 1000) taken as seconds."""
    if value is None:
        return DEFAULT_LOCK_DELAY_NS
    if isinstance(value, str):
        try:
            ns = round(parse_duration(value) * NANOSECOND)
        except DurationError as exc:
            raise _decode_failed(str(exc)) from None
    else:
        ns = int(value)
        if not -(2**63) <= ns < 2**63:
            raise _decode_failed(
                f"json: cannot unmarshal number {value} into Go struct field Session.LockDelay of type time.Duration"
            )
    if ns < 0:
        raise _decode_failed(f"LockDelay must not be negative (got {value})")
    if ns < LOCK_DELAY_SECONDS_BELOW:
        ns *= NANOSECOND
    return ns


def _node_checks(fields: dict) -> list[str]:
    """serfHealth unless the body names node checks itself (an explicit [] removes it)."""
    if "Checks" not in fields and "NodeChecks" not in fields:
        return [SERF_CHECK]
    merged: list[str] = []
    for check_id in (fields.get("NodeChecks") or []) + (fields.get("Checks") or []):
        if check_id not in merged:
            merged.append(check_id)
    return merged


def _service_checks(fields: dict) -> list[dict] | None:
    value = fields.get("ServiceChecks")
    if value is None:
        return None
    return [{"ID": item.get("ID", ""), "Namespace": item.get("Namespace", "")} for item in value]


def session_from_body(body: Any, default_node: str, ttl_min: float) -> dict:
    """The create command's session (without ID) from a request body; Consul's refusals."""
    fields = conform(body, SESSION) or {}
    session = {
        "Name": fields.get("Name", ""),
        "Node": fields.get("Node") or default_node,
        "LockDelay": lock_delay_ns(fields.get("LockDelay")),
        "Behavior": fields.get("Behavior") or "release",
        "TTL": fields.get("TTL", ""),
        "NodeChecks": _node_checks(fields),
        "ServiceChecks": _service_checks(fields),
    }
    # Refusals of Consul's Session.Apply endpoint: plain errors, so 500s.
    if session["Behavior"] not in ("release", "delete"):
        raise HTTPError(500, f"Invalid Behavior setting '{session['Behavior']}'")
    ttl_text = session["TTL"]
    if ttl_text:
        try:
            ttl = parse_duration(ttl_text)
        except DurationError as exc:
            raise HTTPError(500, f"Session TTL '{ttl_text}' invalid: {exc}") from None
        if ttl != 0 and (ttl < ttl_min or ttl > MAX_TTL):
            raise HTTPError(
                500,
                f"Invalid Session TTL '{round(ttl * NANOSECOND)}', must be between "
                f"[{format_duration(ttl_min)}={format_duration(MAX_TTL)}]",
            )
    return session


# ---------------------------------------------------------------------- handlers


async def session_create(ports: SessionPorts, req: Request, rest: str) -> Response:
    store = ports.store
    session = session_from_body(await req.json(), ports.node_name, ports.ttl_min)
    while True:
        session_id = str(uuid.uuid4())
        if store.sessions.get(session_id) is None:
            break
    session["ID"] = session_id
    await ports.writer.write(SessionCommand(Op="create", Session=typed(SessionRecord, session)))
    created = store.sessions.get(session_id)
    if created is not None:
        ports.reaper.renew(created)
    return json_response(req, {"ID": session_id})


async def session_destroy(ports: SessionPorts, req: Request, session_id: str) -> Response:
    if not session_id:
        raise HTTPError(400, "Missing session")
    await ports.writer.write(SessionCommand(Op="destroy", ID=session_id))
    return json_response(req, True)


async def session_renew(ports: SessionPorts, req: Request, session_id: str) -> Response:
    if not session_id:
        raise HTTPError(400, "Missing session")
    session = ports.store.sessions.get(session_id)
    if session is None:
        raise HTTPError(404, f"Session id '{session_id}' not found")
    ports.reaper.renew(session)
    return json_response(req, [render(session)])


def _filtered(req: Request, items: list[dict]) -> list[dict]:
    expression = req.get("filter") if req.raw_query else None
    if not expression:
        return items
    try:
        return compile_filter(expression).select(items)
    except FilterError as exc:
        raise HTTPError(400, f"Failed to create boolean expression evaluator: {exc}") from None


async def _read(
    store: Store, req: Request, select: Callable[[SessionTable], list[Session]]
) -> Response:
    opts = query_options(req)
    if req.raw_query and req.get("filter"):
        _filtered(req, [])  # a bad expression fails before blocking
    index, sessions, _ = await blocking_query(
        req,
        _TOPICS,
        lambda: (store.table_index("sessions"), [render(s) for s in select(store.sessions)]),
        opts,
    )
    return json_response(req, _filtered(req, sessions), read_headers(req, index, opts.consistency))


async def session_info(ports: SessionPorts, req: Request, session_id: str) -> Response:
    if not session_id:
        raise HTTPError(400, "Missing session")

    def select(table: SessionTable) -> list[Session]:
        found = table.get(session_id)
        return [found] if found is not None else []

    return await _read(ports.store, req, select)


async def session_node(ports: SessionPorts, req: Request, node: str) -> Response:
    if not node:
        raise HTTPError(400, "Missing node name")
    return await _read(ports.store, req, lambda table: table.on_node(node))


async def session_list(ports: SessionPorts, req: Request, rest: str) -> Response:
    return await _read(ports.store, req, lambda table: table.all())


def register(router: Router, deps: HTTPDeps) -> None:
    identity = deps.identity
    ports = SessionPorts(
        deps.store,
        deps.writer,
        deps.sessions_reaper,
        identity.node_name,
        identity.config.session_ttl_min or 10.0,  # Consul's default when unset
    )
    router.add("/v1/session/create", {"PUT": partial(session_create, ports)})
    router.add("/v1/session/destroy/", {"PUT": partial(session_destroy, ports)}, prefix=True)
    router.add("/v1/session/renew/", {"PUT": partial(session_renew, ports)}, prefix=True)
    router.add("/v1/session/info/", {"GET": partial(session_info, ports)}, prefix=True)
    router.add("/v1/session/node/", {"GET": partial(session_node, ports)}, prefix=True)
    router.add("/v1/session/list", {"GET": partial(session_list, ports)})
