"""What Consul's HTTP server does to a request before any handler sees it.

It sits between uvicorn and `App`, as Go's `http.ServeMux` sits outside Consul's handlers:

* **Clean paths.** A path with `.` or `..` segments or repeated slashes is answered with a 301
  to its cleaned form (Go's `path.Clean`, keeping a trailing slash) and the query string, so
  `PUT /v1/kv/a/../b` stores nothing under a key with `..` in it. Like Go since 1.22, the
  path is cleaned as it arrived, still percent-encoded: `%2F` and `%2E%2E` are key bytes, not
  separators, and keys that need them keep working. The answer carries only what Go's
  redirect carries (no Consul headers: those are written by the handlers it never reaches).
* **No truncated bodies.** A client that goes away before its body is complete makes the
  body read fail (`IncompleteBody`) instead of ending early, so a handler never applies the
  part that arrived (a `PUT` of 2 bytes out of 10 used to store the 2 bytes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.http.app import HTTPError

__all__ = ["CleanPathsAndBodies", "IncompleteBody", "clean_path", "redirect_location"]


class IncompleteBody(HTTPError):
    """The connection closed before the body's declared end; the answer goes nowhere, but the
    handler stops before it writes anything."""

    def __init__(self) -> None:
        super().__init__(400, "Request body incomplete: the client closed the connection")


def _clean(path: str) -> str:
    # Go's path.Clean for a rooted path: no empty or "." segments, ".." removes its parent
    # (and nothing above the root). posixpath.normpath differs: it keeps a leading "//".
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def clean_path(path: str) -> str:
    """Go's `cleanPath` (net/http): rooted, cleaned, and the trailing slash kept."""
    if not path:
        return "/"
    if path[0] != "/":
        path = "/" + path
    cleaned = _clean(path)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def redirect_location(raw_path: bytes, query: bytes) -> bytes | None:
    """Where Go's ServeMux would send this request, or None when its path is already clean.

    `raw_path` is the path as it arrived (percent-encoded); the answer keeps the query string.
    """
    if b"//" not in raw_path and b"/." not in raw_path:
        return None  # fast path: nothing to clean (every unclean rooted path has one of these)
    text = raw_path.decode("latin-1")
    cleaned = clean_path(text)
    if cleaned == text:
        return None
    # Go hex-escapes non-ASCII bytes in a Location; the rest of the path is already encoded.
    location = "".join(ch if ord(ch) < 0x80 else f"%{ord(ch):02X}" for ch in cleaned)
    if query:
        location += "?" + query.decode("latin-1")
    return location.encode("latin-1")


def _html_escape(text: str) -> str:
    # The five replacements Go's http.Redirect makes in its short HTML body.
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


async def _redirect(method: str, location: bytes, send: Callable) -> None:
    # As http.Redirect writes it: a body (and its type) for GET, the type alone for HEAD.
    headers = [(b"location", location)]
    body = b""
    if method in ("GET", "HEAD"):
        headers.append((b"content-type", b"text/html; charset=utf-8"))
    if method == "GET":
        href = _html_escape(location.decode("latin-1"))
        body = f'<a href="{href}">Moved Permanently</a>.\n\n'.encode()
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 301, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _guarded(receive: Callable) -> Callable:
    done = False

    async def receive_body() -> dict[str, Any]:
        nonlocal done
        message = await receive()
        if message["type"] == "http.request":
            done = done or not message.get("more_body", False)
        elif message["type"] == "http.disconnect" and not done:
            raise IncompleteBody()
        return message

    return receive_body


class CleanPathsAndBodies:
    """ASGI wrapper around the agent's `App` (see the module docstring)."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if method != "CONNECT" and raw_path[:1] == b"/":  # CONNECT and "*" are not paths
            location = redirect_location(raw_path, scope.get("query_string", b""))
            if location is not None:
                await _redirect(method, location, send)
                return
        await self.app(scope, _guarded(receive), send)
