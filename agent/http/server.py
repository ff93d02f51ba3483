"""HTTP listeners: uvicorn (httptools) on sockets we bind ourselves.

Binding first lets a taken port fail the agent at start with the address in the message,
instead of a traceback from inside the server; and uvicorn runs without its own signal
handling, since the agent owns shutdown.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

import uvicorn

from agent.http.routes import build_router
from agent.tls import TLSConfigError, https_context

if TYPE_CHECKING:
    import ssl

    from agent.agent import Agent


class ListenError(Exception):
    pass


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


class HTTPServer:
    def __init__(
        self, app, sockets: list[socket.socket], ssl: ssl.SSLContext | None = None
    ) -> None:
        config = uvicorn.Config(
            app,
            http="httptools",
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


async def start_http(agent: Agent) -> list[HTTPServer]:
    from agent.http.app import App

    try:
        context = https_context(agent.config)
    except TLSConfigError as exc:
        raise ListenError(str(exc)) from None
    sockets: list[socket.socket] = []
    tls_sockets: list[socket.socket] = []
    try:
        for host, port in agent.config.http_addrs():
            sockets.append(bind_tcp(host, port))
        if context is not None:  # HTTPS beside HTTP, as Consul allows (ports.http=-1 for none)
            for host, port in agent.config.https_addrs():
                tls_sockets.append(bind_tcp(host, port))
    except ListenError:
        for sock in sockets + tls_sockets:
            sock.close()
        raise
    if not sockets and not tls_sockets:
        return []
    app = App(agent, build_router(agent))
    agent.app = app
    servers = []
    if sockets:
        servers.append(HTTPServer(app, sockets))
    if tls_sockets:
        servers.append(HTTPServer(app, tls_sockets, ssl=context))
    for server in servers:
        await server.start()
    return servers
