"""The agent's ASGI callable: one route lookup, the method rules, forwarding to the server that
must answer, and Consul's headers and error shapes around every handler's answer.

Kept apart from `app.py` (Request, Response, Router), which every area imports: forwarding
builds on those, and this module builds on forwarding.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import unquote

from agent.acl.resolve import token_from_request
from agent.errors import AgentError
from agent.http.app import TEXT, Handler, HTTPError, Request, Response, Router, text_response
from agent.http.errors import as_http
from agent.http.forward import ForwardHost, datacenter_target, forward, forward_target
from agent.http.webui import ui_route

if TYPE_CHECKING:
    from agent.acl.enforce import ACLRuntime
    from agent.config_value import AgentConfig
    from agent.http.reads import Reads
    from agent.metrics import Metrics

log = logging.getLogger("agent.http")


def allow_header(methods: dict[str, Handler]) -> bytes:
    return ("OPTIONS," + ",".join(methods)).encode()


class App:
    """The agent's ASGI callable: routing, method rules, forwarding, Consul's headers and
    error shapes. It gets the router, the settings it renders (ACL default policy, extra
    headers, datacenter, UI), the per-request capabilities (acl, reads), the forwarding
    host, and where to record timings; never the Agent."""

    def __init__(
        self,
        router: Router,
        config: AgentConfig,
        acl: ACLRuntime | None,
        reads: Reads,
        host: ForwardHost,
        metrics: Metrics,
    ) -> None:
        self.router = router
        self.config = config
        self.acl = acl
        self.reads = reads
        self.host = host
        self.metrics = metrics
        self._metric_names: dict[tuple[str, str], str] = {}
        acl_cfg = config.acl
        self.default_acl_policy = (acl_cfg.default_policy if acl_cfg.enabled else "allow").encode()
        self.extra_headers = [
            (k.lower().encode(), v.encode()) for k, v in config.http_response_headers.items()
        ]

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        req = Request(scope, receive, self.acl, self.reads)
        started = time.perf_counter()
        route = ""
        try:
            methods, rest, route = self.router.match(req.path)
            if self.acl is not None and self.acl.remote is not None:
                # A client agent: the servers know the token; ask before any handler decides.
                query = req.query if req.raw_query else {}
                await self.acl.prefetch(token_from_request(query, req.headers))
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
            self.metrics.sample(name, (time.perf_counter() - started) * 1000.0)

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
            if dc and dc.lower() != self.config.datacenter:
                remote = datacenter_target(self.host, req, dc.lower())
                if remote is not None:
                    return await forward(self.host, req, remote.address, remote.cross_dc)
                return await handler(req, rest)
        target = forward_target(self.host, req)
        if target is not None:
            return await forward(
                self.host,
                req,
                target,
                hold=self.config.rpc_hold_timeout,
                retarget=partial(self._retarget, req),
            )
        return await handler(req, rest)

    def _retarget(self, req: Request) -> str | None:
        """Where a forwarded request goes now that its target could not be dialed: the new
        leader (or a server, from a client agent); this server itself if it now leads."""
        return forward_target(self.host, req) or self.host.rpc_address

    def not_found(self, path: str) -> Response:
        if path in ("/", ""):
            if self.config.ui_enabled:
                location = ui_route(self.config).encode()
                return Response(b"", 301, TEXT, [(b"location", location)])
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
