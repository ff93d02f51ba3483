"""Driving one HTTP area on in-memory twins: register it on its own Router, build a Request
from an ASGI scope (no Agent; ACLs as the deps have them) and call the matched handler directly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent.config import load_config
from agent.http.app import Request, Response, Router
from agent.http.deps import HTTPDeps
from agent.http.reads import Reads
from tests.harness.twins import http_deps


def dev_deps() -> HTTPDeps:
    """The twins, configured as `consul agent -dev` would be."""
    return http_deps(load_config(["-dev"], environ={}))


def call(
    register: Callable[[Router, HTTPDeps], None],
    deps: HTTPDeps,
    method: str,
    path: str,
    query: bytes = b"",
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Response:
    router = Router()
    register(router, deps)
    methods, rest, _ = router.match(path)
    assert methods is not None, path
    scope = {"method": method, "path": path, "query_string": query, "headers": headers or []}

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    req = Request(scope, receive, deps.acl, Reads(deps.store.watches, deps.leadership))
    return asyncio.run(methods[method](req, rest))


def header(response: Response, name: bytes) -> bytes | None:
    return next((v for k, v in response.headers if k == name), None)
