"""HTTP listeners: uvicorn (httptools, answering half-closed clients) on sockets we bind.

Binding first lets a taken port fail the agent at start with the address in the message,
instead of a traceback from inside the server; and uvicorn runs without its own signal
handling, since the agent owns shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
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

    from agent.config_value import AgentConfig, UnixSockets

log = logging.getLogger("agent.http")
UNIX_PREFIX = "unix://"


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


def bind_unix(path: str, perms: UnixSockets) -> socket.socket:
    """A listening unix socket at `path`, as Consul's listenSocket makes it: whatever file is
    there is replaced (with a warning), then `unix_sockets` sets its owner and mode."""
    if os.path.lexists(path):
        log.warning("agent: Replacing socket %r", path)
        try:
            os.remove(path)
        except OSError as exc:
            raise ListenError(f"error removing socket file: {exc.strerror or exc}") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        _set_permissions(path, perms)
    except OSError as exc:
        sock.close()
        raise ListenError(f"listen unix {path}: bind: {exc.strerror or exc}") from None
    except ListenError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _set_permissions(path: str, perms: UnixSockets) -> None:
    """Consul's setFilePermissions: a user by ID or name, a group by ID only, an octal mode."""
    uid, gid = os.getuid(), os.getgid()
    if perms.user:
        if perms.user.isdigit():
            uid = int(perms.user)
        else:
            try:
                uid = pwd.getpwnam(perms.user).pw_uid
            except KeyError:
                raise _socket_error(f"invalid user specified: {perms.user}") from None
    if perms.group:
        if not perms.group.isdigit():
            raise _socket_error(f"invalid group specified: {perms.group}")
        gid = int(perms.group)
    try:
        os.chown(path, uid, gid)
    except OSError as exc:
        why = exc.strerror or exc
        raise _socket_error(f"failed setting ownership to {uid}:{gid} on {path!r}: {why}") from None
    if perms.mode:
        try:
            mode = int(perms.mode, 8)
        except ValueError:
            raise _socket_error(f"invalid mode specified: {perms.mode}") from None
        try:
            os.chmod(path, mode)
        except OSError as exc:
            why = exc.strerror or exc
            raise _socket_error(
                f"failed setting permissions to {mode} on {path!r}: {why}"
            ) from None


def _socket_error(why: str) -> ListenError:
    return ListenError(f"Failed setting up socket: {why}")


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
        self._unix_paths = [s.getsockname() for s in sockets if s.family == socket.AF_UNIX]
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
        for path in self._unix_paths:  # a unix socket's file goes with it, as in Consul
            try:
                os.remove(path)
            except OSError:
                pass


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
            sockets.append(_bind(host, port, config))
        if context is not None:  # HTTPS beside HTTP, as Consul allows (ports.http=-1 for none)
            for host, port in config.https_addrs():
                # Consul wraps only TCP listeners in TLS: a unix socket serves plain HTTP.
                unix = host.startswith(UNIX_PREFIX)
                (sockets if unix else tls_sockets).append(_bind(host, port, config))
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


def _bind(host: str, port: int, config: AgentConfig) -> socket.socket:
    if host.startswith(UNIX_PREFIX):
        return bind_unix(host.removeprefix(UNIX_PREFIX), config.unix_sockets)
    return bind_tcp(host, port)
