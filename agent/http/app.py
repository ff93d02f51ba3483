"""A small ASGI application: Consul's routing, method rules, headers and error shapes.

Kept free of a framework on purpose: the KV GET path is the hottest code in the agent, and a
dict lookup plus one handler call is all it should cost. Each API area registers its routes
from its own module (`kv.py`, `catalog.py`, ...); this module knows nothing of their content.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import msgspec

from agent.http.errors import BodyTooLarge, HTTPError  # areas take HTTPError from here too
from agent.http.gojson import parse

__all__ = [
    "JSON_BODY_LIMIT",
    "HTTPError",
    "JSON",
    "TEXT",
    "Handler",
    "Request",
    "Response",
    "Router",
    "json_response",
    "text_response",
]

if TYPE_CHECKING:
    from agent.acl.enforce import ACLRuntime
    from agent.http.reads import Reads


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
        scope: dict,
        receive: Callable,
        acl: ACLRuntime | None = None,
        reads: Reads | None = None,
    ) -> None:
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
