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

if TYPE_CHECKING:
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
    def __init__(self, app, sockets: list[socket.socket]) -> None:
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

    addrs = agent.config.http_addrs()
    sockets = []
    try:
        for host, port in addrs:
            sockets.append(bind_tcp(host, port))
    except ListenError:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        return []
    app = App(agent, build_router(agent))
    agent.app = app
    server = HTTPServer(app, sockets)
    await server.start()
    return [server]
