"""`/debug/pprof/*`: the agent's profiles, with Consul's rules for who may read them.

Consul registers these routes only when `enable_debug` is set or ACLs are enabled; otherwise
the paths are unknown ones (its index handler's 404). Once registered, a request whose token
does not resolve, or lacks `operator:read`, gets a bare 403 (no body), and with ACLs disabled
everyone may read them. The profiles are Python's (agent/profiling.py): Go's protobuf
profiles have no meaning for this process. `/debug/pprof/trace` answers a timeline of sampled
stacks in place of Go's execution trace (the Go client's Debug().Trace only needs a 200 with a
body); `symbol` knows no symbols (a Python process has no program counters to resolve), as
Go's answers when it has none.
"""

from __future__ import annotations

import asyncio
import html
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from agent import profiling
from agent.http.app import TEXT, HTTPError, Request, Response, Router
from agent.http.authz import allowed, enabled

if TYPE_CHECKING:
    from agent.http.app import Handler
    from agent.http.deps import HTTPDeps

DEFAULT_SECONDS = 30  # Go's default for ?seconds
MAX_SECONDS = 60  # beyond this, Go's answer when a profile would outlast the write timeout
SAMPLE_INTERVAL = 0.01
_METHODS = ("GET", "POST")
ROUTES = (
    "/debug/pprof/",
    "/debug/pprof/cmdline",
    "/debug/pprof/profile",
    "/debug/pprof/symbol",
    "/debug/pprof/trace",
)


@dataclass
class _CPU:
    """One CPU profile (or one trace) at a time, as Go's runtime allows."""

    busy: asyncio.Lock = field(default_factory=asyncio.Lock)


def _permitted(req: Request) -> bool:
    if not enabled(req):
        return True
    try:
        return allowed(req, "operator", None, "read")
    except HTTPError:  # a token that does not resolve: Consul's bare 403 too
        return False


def _guarded(handler: Handler) -> Handler:
    async def guarded(req: Request, rest: str) -> Response:
        if enabled(req):
            await req.acl.ensure_initialized()
        if not _permitted(req):
            return Response(b"", 403, TEXT)
        return await handler(req, rest)

    return guarded


def _text(body: str) -> Response:
    return Response(body.encode(), 200, TEXT, [(b"x-content-type-options", b"nosniff")])


async def index(req: Request, name: str) -> Response:
    if not name:
        return Response(_index_page().encode(), 200, b"text/html; charset=utf-8")
    if name not in profiling.PROFILES:
        raise HTTPError(404, "Unknown profile")
    if name in ("heap", "allocs"):
        collect = bool(req.raw_query) and (req.get("gc") or "0") not in ("", "0")
        return _text(await asyncio.to_thread(profiling.heap, collect))
    if name == "goroutine":
        return _text(profiling.goroutines(asyncio.get_running_loop()))
    return _text(profiling.threads())


def _index_page() -> str:
    rows = "".join(
        f'<tr><td><a href="{html.escape(name)}?debug=1">{html.escape(name)}</a></td>'
        f"<td>{html.escape(text)}</td></tr>\n"
        for name, text in sorted(profiling.PROFILES.items())
    )
    return (
        "<html><head><title>/debug/pprof/</title></head><body>\n"
        "<p>/debug/pprof/: profiles of this agent's Python process (plain text, not Go's"
        " pprof format)</p>\n<table>\n"
        f"{rows}"
        '<tr><td><a href="profile?seconds=5">profile</a></td>'
        "<td>Sampling CPU profile, collapsed stacks (?seconds=N, default 30)</td></tr>\n"
        '<tr><td><a href="cmdline">cmdline</a></td>'
        "<td>The command line of this process</td></tr>\n"
        "</table></body></html>\n"
    )


async def cmdline(req: Request, _: str) -> Response:
    return _text(profiling.cmdline())


async def profile(cpu: _CPU, req: Request, _: str) -> Response:
    raw = req.get("seconds") if req.raw_query else None
    try:
        seconds = int(raw or "")
    except ValueError:
        seconds = 0
    if seconds <= 0:
        seconds = DEFAULT_SECONDS
    if seconds > MAX_SECONDS:
        raise HTTPError(400, "profile duration exceeds server's WriteTimeout")
    if cpu.busy.locked():
        raise HTTPError(500, "Could not enable CPU profiling: cpu profiling already in use")
    async with cpu.busy:
        counts = await asyncio.to_thread(profiling.sample_stacks, seconds, SAMPLE_INTERVAL)
    return _text(profiling.render_samples(counts, seconds, SAMPLE_INTERVAL))


async def symbol(req: Request, _: str) -> Response:
    return _text("num_symbols: 0\n")


async def trace(tracer: _CPU, req: Request, _: str) -> Response:
    # Go's trace handler reads ?seconds as a float and falls back to 1 second.
    raw = req.get("seconds") if req.raw_query else None
    try:
        seconds = float(raw or "")
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        seconds = 1.0
    if seconds > MAX_SECONDS:
        raise HTTPError(400, "profile duration exceeds server's WriteTimeout")
    if tracer.busy.locked():
        raise HTTPError(500, "Could not enable tracing: tracing is already enabled")
    async with tracer.busy:
        events = await asyncio.to_thread(profiling.sample_timeline, seconds, SAMPLE_INTERVAL)
    return _text(profiling.render_timeline(events, seconds, SAMPLE_INTERVAL))


def register(router: Router, deps: HTTPDeps) -> None:
    if not (deps.identity.config.enable_debug or deps.acl is not None):
        return
    cpu = _CPU()
    for path, handler, prefix in (
        ("/debug/pprof/", index, True),
        ("/debug/pprof/cmdline", cmdline, False),
        ("/debug/pprof/profile", partial(profile, cpu), False),
        ("/debug/pprof/symbol", symbol, False),
        ("/debug/pprof/trace", partial(trace, _CPU()), False),
    ):
        router.add(path, dict.fromkeys(_METHODS, _guarded(handler)), prefix=prefix)
