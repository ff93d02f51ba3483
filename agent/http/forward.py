"""Forwarding HTTP API calls to the server that must answer them.

Consul's client agents hold no state: everything but `/v1/agent/*` is answered by a server
over RPC. A follower sends writes, and reads that are not `?stale`, to the leader. Rather than
one RPC per endpoint, the whole request travels (method, path, query, the headers that matter,
body) and is answered by the same handlers on the other side, so every endpoint forwards the
same way and blocking queries block on the server that owns the data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import msgspec

from agent.errors import AgentError, NoServers
from agent.http.app import HTTPError, Request, Response
from agent.http.errors import as_http
from agent.rpc import DialError, RPCError

if TYPE_CHECKING:
    from agent.rpc import RPCPool

# Never forwarded: this agent's own view, its UI, and user events (gossip, held per agent).
LOCAL_PREFIXES = ("/v1/agent/", "/ui", "/v1/internal/ui/metrics-proxy/", "/v1/event/")
# Local, yet sent to the datacenter that `?dc=` names.
REMOTE_EVENT = "/v1/event/fire/"
# Answered by any server from its own Raft view.
SERVER_LOCAL = ("/v1/status/",)
HOP_HEADER = b"x-gitkv-forwarded"
# The agent that took the request, and the address of its client: Consul's agent puts both
# in an RPC's QuerySource (`?near=_agent`, a prepared query's `Near: "_ip"`).
AGENT_HEADER = b"x-gitkv-agent-node"
CLIENT_HEADER = b"x-forwarded-for"
PASSED_HEADERS = {
    b"x-consul-token",
    b"authorization",
    b"content-type",
    b"cache-control",
    AGENT_HEADER,
    CLIENT_HEADER,
}
WRITE_METHODS = {"PUT", "POST", "DELETE", "PATCH"}
HOLD_STEP = 0.2  # seconds between tries while a forwarded request waits for a new leader
BLOCKING_MARGIN = 60.0


class WanView(Protocol):
    """The WAN pool as routing sees it: which datacenters exist, and a server in each."""

    def knows(self, dc: str) -> bool: ...

    def server_for(self, dc: str) -> str | None: ...


class ForwardHost(Protocol):
    """What forwarding needs of its agent: its name (a session's node), whether it is a
    server and who leads (`consensus`: is_leader, leader_address; None on a client agent),
    a server to send to, the WAN pool (servers), and the RPC pool to send with."""

    node_name: str
    consensus: Any
    rpc_pool: RPCPool
    rpc_address: str  # this agent's own RPC listener (a server that just became leader)

    def pick_server(self) -> str | None: ...

    def wan(self) -> WanView | None: ...


def forward_target(agent: ForwardHost, req: Request) -> str | None:
    """The RPC address of the server that must answer `req`, or None to answer here."""
    path = req.path
    if path.startswith(LOCAL_PREFIXES) or not path.startswith("/v1/"):
        return None
    consensus = agent.consensus
    if consensus is None:  # a client agent
        server = agent.pick_server()
        if server is None:
            raise NoServers()
        return server
    if path.startswith(SERVER_LOCAL):
        return None
    if consensus.is_leader:
        return None
    stale = req.raw_query and req.has("stale")
    if req.method not in WRITE_METHODS and stale:
        return None
    if req.method == "PUT" and path == "/v1/txn" and _read_only_txn_allowed_stale(req):
        return None
    leader = consensus.leader_address
    if not leader:
        raise HTTPError(500, "No cluster leader")
    if req.headers.get(HOP_HEADER, b"0") >= b"2":
        raise HTTPError(500, "No cluster leader (forwarding loop)")
    return leader


class RemoteTarget(NamedTuple):
    """Where a `?dc=<other>` request goes: a server of that datacenter (`cross_dc`), or, from a
    client agent, a server of ours that takes it there."""

    address: str
    cross_dc: bool


def datacenter_target(agent: ForwardHost, req: Request, dc: str) -> RemoteTarget | None:
    """Route a request for datacenter `dc` (not ours); None to answer it here.

    This agent's own endpoints answer here when the datacenter exists, except a user event,
    which is fired by a server of that datacenter into its own LAN (as Consul does). A client
    agent knows no other datacenter: its servers do, and refuse an unknown one themselves."""
    pool = agent.wan()
    remote_event = req.path.startswith(REMOTE_EVENT)
    if not remote_event and (
        req.path.startswith(LOCAL_PREFIXES) or not req.path.startswith("/v1/")
    ):
        if pool is not None and pool.knows(dc):
            return None
        raise HTTPError(500, "No path to datacenter")
    if agent.consensus is None:
        server = agent.pick_server()
        if server is None:
            raise HTTPError(500, "No known Consul servers")
        return RemoteTarget(server, False)
    server = pool.server_for(dc) if pool is not None else None
    if server is None:
        raise HTTPError(500, "No path to datacenter")
    return RemoteTarget(server, True)


def _read_only_txn_allowed_stale(req: Request) -> bool:
    return bool(req.raw_query) and req.has("stale")


def _timeout(req: Request) -> float:
    if req.method == "GET" and req.raw_query and req.has("index"):
        return 600.0 + BLOCKING_MARGIN
    return 60.0


async def forward(
    agent: ForwardHost,
    req: Request,
    target: str,
    cross_dc: bool = False,
    hold: float = 0.0,
    retarget: Callable[[], str | None] | None = None,
) -> Response:
    """Send `req` to `target` and return its answer. `cross_dc`: the target is a server of
    another datacenter, which answers as for its own; its hop count starts afresh there
    (it may still need to reach its leader), as a loop across datacenters cannot happen."""
    hops = 1 if cross_dc else int(req.headers.get(HOP_HEADER, b"0") or 0) + 1
    headers = [[k, v] for k, v in req.headers.items() if k in PASSED_HEADERS]
    if HOP_HEADER not in req.headers:  # the first agent names itself and its client
        node, client = origin(req, agent.node_name)
        headers = [h for h in headers if h[0] not in (AGENT_HEADER, CLIENT_HEADER)]
        headers.append([AGENT_HEADER, node.encode()])
        if client:
            headers.append([CLIENT_HEADER, client.encode()])
    headers.append([HOP_HEADER, str(hops).encode()])
    args = {
        "method": req.method,
        "path": req.path,
        "query": req.raw_query,
        "headers": headers,
        "body": await req.body() if req.method in WRITE_METHODS else b"",
    }
    if hops == 1 and not cross_dc and req.path == "/v1/session/create":
        args["body"] = session_body_with_node(args["body"], agent.node_name)
    reply = await _call_holding(agent, req, target, args, hold, retarget)
    return Response(
        reply["body"],
        reply["status"],
        reply["content_type"],
        [(k, v) for k, v in reply["headers"]],
    )


async def _call_holding(
    agent: ForwardHost,
    req: Request,
    target: str,
    args: dict,
    hold: float,
    retarget: Callable[[], str | None] | None,
) -> dict:
    """The RPC, retried for up to `hold` seconds while its target cannot be dialed and
    `retarget` names another (Consul's rpc_hold_timeout: a request that meets a leader
    election waits for the new leader instead of failing). Only dial failures are retried:
    nothing reached the old target, so a write is never applied twice."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + hold
    while True:
        try:
            return await agent.rpc_pool.call(target, "http", args, timeout=_timeout(req))
        except DialError as exc:
            if retarget is None or loop.time() >= deadline:
                raise HTTPError(500, str(exc)) from None
            failed = str(exc)
        except RPCError as exc:
            raise HTTPError(500, str(exc)) from None
        await asyncio.sleep(HOLD_STEP)
        try:
            target = retarget() or target
        except (HTTPError, AgentError):  # no leader yet: keep waiting while the hold lasts
            if loop.time() >= deadline:
                raise HTTPError(500, failed) from None


def origin(req: Request, own_node: str) -> tuple[str, str]:
    """(the agent that took the request, its client's address): as the first agent put
    them in the headers of a request it forwarded (or of its own reads of a server), else
    this agent and the connection's peer. The client's address is X-Forwarded-For's first
    entry when a proxy set one (Consul's sourceAddrFromRequest)."""
    node = req.header(AGENT_HEADER) or own_node
    forwarded = req.header(CLIENT_HEADER)
    if forwarded:
        return node, forwarded.split(",")[0].strip()
    client = req.scope.get("client")
    return node, str(client[0]) if client else ""


def session_body_with_node(body: bytes, node: str) -> bytes:
    """A session belongs to the agent it was created on: as Consul's agent fills `Node` before
    its RPC, the first forwarding agent names itself when the body does not name a node."""
    try:
        fields = msgspec.json.decode(body) if body.strip() else {}
    except (msgspec.DecodeError, RecursionError):
        return body  # the server refuses it with Consul's decode error
    if not isinstance(fields, dict):
        return body
    if any(k.lower() == "node" and v for k, v in fields.items()):
        return body
    fields = {k: v for k, v in fields.items() if k.lower() != "node"}
    fields["Node"] = node
    return msgspec.json.encode(fields)


async def serve_forwarded(app: Any, args: dict) -> dict:
    """The server side: run a forwarded request through the local handlers (`app` is the
    agent's `agent.http.dispatch.App`)."""
    body = args.get("body", b"")

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": args["method"],
        "path": args["path"],
        "query_string": args.get("query", b""),
        "headers": [(k, v) for k, v in args.get("headers", [])],
    }
    req = Request(scope, receive, app.acl, app.reads)
    try:
        try:
            methods, rest, _ = app.router.match(req.path)
            response = await app.dispatch(req, methods, rest)
        except AgentError as failed:
            raise as_http(failed) from None
    except HTTPError as exc:
        return {
            "status": exc.status,
            "content_type": b"text/plain; charset=utf-8",
            "headers": exc.headers,
            "body": exc.message.encode(),
        }
    body = response.body
    if response.stream is not None:  # one RPC reply carries the whole answer
        body = b"".join([chunk async for chunk in response.stream])
    return {
        "status": response.status,
        "content_type": response.content_type,
        "headers": response.headers,
        "body": body,
    }
