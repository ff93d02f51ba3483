"""`/v1/internal/ui/metrics-proxy/*`: the UI's read-only window onto one metrics backend
(`ui_config.metrics_proxy.base_url`), as Consul's UIMetricsProxy.

Off unless the UI is enabled (404 `UI is not enabled`) and a base URL is set (404 `Metrics
proxy is not enabled`). The token is taken from the headers only (a metrics backend may use
`?token` for its own purposes) and removed before the request goes on; it must read every
node and every service. The path after the prefix is appended to the base URL and cleaned;
with `path_allowlist` set, any other path is a bare 403; a path that escapes the base URL is a
400 `Invalid path.`. The query string passes through; `add_headers` are set (`Host` sets the
host). This handler checks its own permissions (the guard table marks it so).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import httpx

from agent.acl.enforce import decide, denied_message, resolve_secret
from agent.acl.resolve import ACLNotFound, token_from_request
from agent.http.app import TEXT, HTTPError, Request, Response, Router

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.ports import AgentIdentity

PREFIX = "/v1/internal/ui/metrics-proxy"
_DROPPED = {b"x-consul-token", b"authorization", b"host", b"content-length", b"connection"}
_TIMEOUT = 30.0


@dataclass(frozen=True)
class ProxyPorts:
    identity: AgentIdentity


async def _authorize(req: Request) -> None:
    rt = req.acl
    if rt is None:
        return
    await rt.ensure_initialized()
    try:
        ident = resolve_secret(rt, token_from_request({}, req.headers))
    except ACLNotFound:
        raise HTTPError(403, "ACL not found") from None
    for resource in ("node", "service"):
        if not decide(ident, resource, "", "read"):
            raise HTTPError(403, denied_message(ident, resource, "", "read"))


def target_url(base_url: str, sub_path: str, allowlist: list[str]) -> str | None:
    """The backend URL for `sub_path` (None: not on the allowlist); 400 if it escapes."""
    parts = urlsplit(base_url + sub_path)
    path = posixpath.normpath(parts.path) if parts.path else "/"
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    if allowlist and path not in allowlist:
        return None
    url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    if not parts.scheme or not parts.netloc or not url.startswith(base_url.rstrip("/")):
        raise HTTPError(400, "Invalid path.")
    return url


async def metrics_proxy(ports: ProxyPorts, req: Request, _: str) -> Response:
    config = ports.identity.config
    if not config.ui_enabled:
        raise HTTPError(404, "UI is not enabled")
    settings = config.ui_metrics_proxy
    base_url = str(settings.get("base_url") or "")
    if not base_url:
        raise HTTPError(404, "Metrics proxy is not enabled")
    await _authorize(req)
    url = target_url(base_url, req.path[len(PREFIX) :], list(settings.get("path_allowlist") or []))
    if url is None:
        return Response(b"", 403, TEXT)
    # Kept as bytes end to end: a header value need not be UTF-8 (nor ASCII, which httpx
    # assumes for text), and the backend should get the bytes the client sent.
    headers = {k: v for k, v in req.headers.items() if k not in _DROPPED}
    for header in settings.get("add_headers") or ():
        headers[str(header.get("name")).lower().encode()] = str(header.get("value")).encode()
    query = req.raw_query.decode("latin-1")
    try:
        async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
            reply = await client.request(
                req.method, url, params=query or None, headers=headers, content=await req.body()
            )
    except httpx.HTTPError:
        return Response(b"", 502, TEXT)  # Go's ReverseProxy answers a failed backend so
    content_type = reply.headers.get("content-type", "text/plain").encode()
    return Response(reply.content, reply.status_code, content_type)


def register(router: Router, deps: HTTPDeps) -> None:
    ports = ProxyPorts(deps.identity)
    router.add(PREFIX + "/", {"GET": partial(metrics_proxy, ports)}, prefix=True)
