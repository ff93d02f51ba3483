"""HTTP listeners: uvicorn (httptools, answering half-closed clients) on sockets we bind.

Binding first lets a taken port fail the agent at start with the address in the message,
instead of a traceback from inside the server; and uvicorn runs without its own signal
handling, since the agent owns shutdown.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from agent.errors import ListenError
from agent.http.dispatch import App
from agent.http.edge import CleanPathsAndBodies
from agent.tls import TLSConfigError, https_context

if TYPE_CHECKING:
    import ssl

    from agent.config_value import AgentConfig


def bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(f"listen tcp {host}:{port}: bind: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class HalfCloseProtocol(HttpToolsProtocol):
    """httptools, except that a client which half-closes after a complete request still gets
    its answer.

    asyncio closes a transport when `eof_received` returns a false value, and uvicorn's returns
    None: the request runs (a PUT is applied) but its answer goes nowhere. A client that sends
    its request and then shuts down its write side (`shutdown(SHUT_WR)`, `curl` fed from a
    pipe, some load balancers) expects the answer, as Go's server sends it. So while a request
    is complete and its answer pending, the write side stays open; the connection closes once
    every answer is sent. A half-close in the middle of a body, or on an idle connection, still
    closes at once: no answer can follow. (TLS transports close on EOF whatever this returns.)
    """

    _peer_done = False

    def eof_received(self) -> bool | None:
        cycle = self.cycle
        if cycle is None or cycle.response_complete or cycle.more_body:
            return None
        self._peer_done = True
        return True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._peer_done and not self.pipeline and self.cycle.response_complete:
            self.transport.close()


class HTTPServer:
    def __init__(
        self, app, sockets: list[socket.socket], ssl: ssl.SSLContext | None = None
    ) -> None:
        config = uvicorn.Config(
            app,
            http=HalfCloseProtocol,
            lifespan="off",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
            backlog=2048,
            server_header=False,
        )
        config.load()
        if ssl is not None:  # our own context (agent.tls), not uvicorn's file-based options
            config.ssl = ssl
        self.server = uvicorn.Server(config)
        self.server.lifespan = config.lifespan_class(config)
        self.sockets = sockets
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.server.startup(sockets=self.sockets)
        self._task = asyncio.create_task(self.server.main_loop(), name="http-main")

    @property
    def should_exit(self) -> bool:
        return self.server.should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self.server.should_exit = value

    async def shutdown_and_wait(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task
        await self.server.shutdown(sockets=self.sockets)


async def start_http(config: AgentConfig, app: App) -> list[HTTPServer]:
    """Listen on the configured HTTP (and HTTPS) addresses and serve `app` behind the edge
    checks; a taken port raises ListenError with the address."""
    try:
        context = https_context(config)
    except TLSConfigError as exc:
        raise ListenError(str(exc)) from None
    sockets: list[socket.socket] = []
    tls_sockets: list[socket.socket] = []
    try:
        for host, port in config.http_addrs():
            sockets.append(bind_tcp(host, port))
        if context is not None:  # HTTPS beside HTTP, as Consul allows (ports.http=-1 for none)
            for host, port in config.https_addrs():
                tls_sockets.append(bind_tcp(host, port))
    except ListenError:
        for sock in sockets + tls_sockets:
            sock.close()
        raise
    if not sockets and not tls_sockets:
        return []
    edge = CleanPathsAndBodies(app)
    servers = []
    if sockets:
        servers.append(HTTPServer(edge, sockets))
    if tls_sockets:
        servers.append(HTTPServer(edge, tls_sockets, ssl=context))
    for server in servers:
        await server.start()
    return servers
