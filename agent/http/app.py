"""A small ASGI application: Consul's routing, method rules, headers and error shapes.

Kept free of a framework on purpose: the KV GET path is the hottest code in the agent, and a
dict lookup plus one handler call is all it should cost. Each API area registers its routes
from its own module (`kv.py`, `catalog.py`, ...); this module knows nothing of their content.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import msgspec

from agent.errors import AgentError
from agent.http.errors import BodyTooLarge, HTTPError, as_http
from agent.http.gojson import parse
from agent.http.reads import Reads

if TYPE_CHECKING:
    from agent.acl.enforce import ACLRuntime
    from agent.agent import Agent

log = logging.getLogger("agent.http")

_json_encode = msgspec.json.Encoder().encode
TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json"
# No registration, session or ACL body comes near this; without a bound, one request could
# make the agent buffer whatever a client sends.
JSON_BODY_LIMIT = 4 * 1024 * 1024


class Request:
    """One HTTP request as the handlers see it: method, path, query, headers, body, plus the
    two per-request capabilities every area shares: `acl` (the agent's ACL runtime, None
    when ACLs are off; agent/http/authz.py) and `reads` (what read headers and blocking need)."""

    __slots__ = (
        "agent",
        "acl",
        "reads",
        "method",
        "path",
        "raw_query",
        "headers",
        "_receive",
        "_query",
        "scope",
    )

    def __init__(
        self,
        agent: Agent,
        scope: dict,
        receive: Callable,
        acl: ACLRuntime | None = None,
        reads: Any = None,
    ) -> None:
        self.agent = agent
        self.acl = acl
        self.reads = reads
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.raw_query: bytes = scope["query_string"]
        self.headers: dict[bytes, bytes] = dict(scope["headers"])
        self._receive = receive
        self._query: dict[str, list[str]] | None = None

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            raw = self.raw_query.decode("latin-1")
            self._query = parse_qs(raw, keep_blank_values=True) if raw else {}
        return self._query

    def has(self, name: str) -> bool:
        return bool(self.raw_query) and name in self.query

    def get(self, name: str, default: str | None = None) -> str | None:
        if not self.raw_query:
            return default
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None

    async def body(self, limit: int | None = None) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if limit is not None and size > limit:
                raise BodyTooLarge(413, f"Request body too large, max size: {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    async def json(self, limit: int | None = JSON_BODY_LIMIT) -> Any:
        """The body's JSON value (None when blank); malformed or too deep JSON is a 400, a
        body beyond `limit` a 413."""
        return parse(await self.body(limit))


class Response:
    __slots__ = ("status", "body", "content_type", "headers", "stream")

    def __init__(
        self,
        body: bytes = b"",
        status: int = 200,
        content_type: bytes = JSON,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers if headers is not None else []
        # An async iterator of chunks, for endpoints that stream (agent/monitor).
        self.stream: Any = None


def json_response(
    req: Request, value: Any, headers: list | None = None, status: int = 200
) -> Response:
    body = _json_encode(value)
    if req.raw_query and req.has("pretty"):
        body = msgspec.json.format(body, indent=4) + b"\n"
    return Response(body, status, JSON, headers)


def text_response(message: str, status: int = 200) -> Response:
    return Response(message.encode(), status, TEXT)


Handler = Callable[[Request, str], Awaitable[Response]]


class Router:
    """Exact routes by path, prefix routes by longest prefix; each maps method -> handler."""

    def __init__(self) -> None:
        self.exact: dict[str, dict[str, Handler]] = {}
        self.prefixes: list[tuple[str, dict[str, Handler]]] = []

    def add(self, path: str, methods: dict[str, Handler], prefix: bool = False) -> None:
        if prefix:
            self.prefixes.append((path, dict(methods)))
            self.prefixes.sort(key=lambda item: -len(item[0]))
        else:
            self.exact[path] = dict(methods)

    def match(self, path: str) -> tuple[dict[str, Handler] | None, str, str]:
        """(method table, the path after a prefix route, the route's own path)."""
        methods = self.exact.get(path)
        if methods is not None:
            return methods, "", path
        for prefix, methods in self.prefixes:
            if path.startswith(prefix):
                return methods, path[len(prefix) :], prefix
        return None, "", ""


def allow_header(methods: dict[str, Handler]) -> bytes:
    return ("OPTIONS," + ",".join(methods)).encode()


class App:
    """The agent's ASGI callable."""

    def __init__(self, agent: Agent, router: Router) -> None:
        self.agent = agent
        self.router = router
        self._metric_names: dict[tuple[str, str], str] = {}
        acl = agent.config.acl
        self.default_acl_policy = (acl.default_policy if acl.enabled else "allow").encode()
        self.acl = agent.acl_runtime if acl.enabled else None
        self.reads = Reads(agent.store.watches, agent)
        self.extra_headers = [
            (k.lower().encode(), v.encode()) for k, v in agent.config.http_response_headers.items()
        ]

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        req = Request(self.agent, scope, receive, self.acl, self.reads)
        started = time.perf_counter()
        route = ""
        try:
            methods, rest, route = self.router.match(req.path)
            response = await self.dispatch(req, methods, rest)
        except HTTPError as exc:
            response = Response(exc.message.encode(), exc.status, TEXT, exc.headers)
        except AgentError as exc:
            refusal = as_http(exc)
            response = Response(refusal.message.encode(), refusal.status, TEXT)
        except Exception as exc:  # a bug: answer 500 like Consul rather than drop the socket
            log.exception("%s %s failed", req.method, req.path)
            response = Response(str(exc).encode(), 500, TEXT)
        headers = [
            (b"content-type", response.content_type),
            (b"content-length", str(len(response.body)).encode()),
            (b"x-consul-default-acl-policy", self.default_acl_policy),
        ]
        headers.extend(response.headers)
        headers.extend(self.extra_headers)
        if response.stream is not None:
            await self._send_stream(response, headers, send)
        else:
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": response.body})
        if route:
            name = self._metric_names.get((req.method, route))
            if name is None:
                dotted = route.strip("/").replace("/", ".") + ("._" if route.endswith("/") else "")
                name = self._metric_names[(req.method, route)] = (
                    f"consul.http.{req.method}.{dotted}"
                )
            self.agent.metrics.sample(name, (time.perf_counter() - started) * 1000.0)

    async def _send_stream(self, response: Response, headers: list, send: Callable) -> None:
        headers = [h for h in headers if h[0] != b"content-length"]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        try:
            async for chunk in response.stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:
            return  # the client went away
        await send({"type": "http.response.body", "body": b""})

    async def dispatch(
        self, req: Request, methods: dict[str, Handler] | None, rest: str
    ) -> Response:
        path = req.path
        if methods is None:
            return self.not_found(path)
        method = req.method
        handler = methods.get(method)
        if handler is None:
            allow = allow_header(methods)
            if method == "OPTIONS":
                return Response(b"", 200, TEXT, [(b"allow", allow)])
            raise HTTPError(405, f"method {method} not allowed", [(b"allow", allow)])
        if req.raw_query:
            dc = req.get("dc")
            if dc and dc.lower() != self.agent.config.datacenter:
                remote = datacenter_target(self.agent, req, dc.lower())
                if remote is not None:
                    return await forward(self.agent, req, remote.address, remote.cross_dc)
                return await handler(req, rest)
        target = forward_target(self.agent, req)
        if target is not None:
            return await forward(self.agent, req, target)
        return await handler(req, rest)

    def not_found(self, path: str) -> Response:
        if path in ("/", ""):
            if self.agent.config.ui_enabled:
                return Response(b"", 301, TEXT, [(b"location", b"/ui/")])
            return text_response(
                "Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent configuration and restart."
            )
        if "/v1/" in path:
            return text_response("Invalid URL path: not a recognized HTTP API endpoint", 404)
        return text_response(
            f"Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/': {unquote(path)}",
            404,
        )


async def _lifespan(receive: Callable, send: Callable) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# At the bottom: forward.py builds on Request/Response defined above.
from agent.http.forward import datacenter_target, forward, forward_target  # noqa: E402
