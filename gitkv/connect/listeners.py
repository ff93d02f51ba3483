"""The proxy's two kinds of listener.

Public (inbound): a TLS server (client certificate required, verified against the CA roots;
each handshake moves onto the context current at that moment, see `certs`); once the
handshake is done the client's SPIFFE URI goes to the authorizer; denied connections are
closed, allowed ones are piped to the local application.

Upstream (outbound): plain TCP on a local port; each connection resolves the destination's
instances, dials one over TLS with the proxy's leaf as client certificate, checks that the
server certificate names the destination service, then pipes.

Every accepted connection gets a handler task (registered in `Connections`, so shutdown can
end it) that does the setup and then waits on the pipe; the bytes themselves never pass
through the task (see `pipe`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from gitkv.connect.authz import Authorizer
from gitkv.connect.certs import Certificates
from gitkv.connect.config import PublicListener, Upstream
from gitkv.connect.errors import PeerError
from gitkv.connect.pipe import Side, join
from gitkv.connect.resolve import Resolver
from gitkv.connect.spiffe import peer_serial, peer_uri, service_sni, verify_service

__all__ = ["Connections", "bound_port", "serve_public", "serve_upstream"]

log = logging.getLogger("gitkv.connect.proxy")

# An upstream connection tries at most this many instances before giving up.
DIAL_ATTEMPTS = 3
_Handler = Callable[[Side], Awaitable[None]]


class Connections:
    """The handler tasks of open connections, so shutdown can end them."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.failed = 0

    def protocol_factory(self, handler: _Handler) -> Callable[[], Side]:
        """A factory for `create_server`: each connection's `Side` starts `handler`."""
        connections = self

        class Accepted(Side):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                connections.start(handler, self)

        return Accepted

    def start(self, handler: _Handler, side: Side) -> None:
        self.accepted += 1
        task = asyncio.ensure_future(self._run(handler, side))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, handler: _Handler, side: Side) -> None:
        try:
            await handler(side)
        except asyncio.CancelledError:
            side.abort()  # shutdown: the task ends here, quietly
        except Exception as exc:
            self.failed += 1
            log.debug("connection ended with an error: %r", exc)
            side.abort()

    async def close_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


async def _listen(
    factory: Callable[[], Side], host: str, port: int, **tls: Any
) -> asyncio.AbstractServer:
    # reuse_address so a restarted proxy can take its port back while old sockets linger.
    return await asyncio.get_running_loop().create_server(
        factory, host or None, port, reuse_address=True, backlog=1024, **tls
    )


async def serve_public(
    listener: PublicListener,
    certs: Certificates,
    authorizer: Authorizer,
    connections: Connections,
) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()

    async def handle(inbound: Side) -> None:
        assert inbound.transport is not None
        peer = inbound.transport.get_extra_info("peercert") or {}
        try:
            uri = peer_uri(peer)
        except PeerError as exc:
            log.warning("inbound connection refused: %s", exc)
            inbound.abort()
            return
        decision = await authorizer.decide(uri, peer_serial(peer))
        if not decision.authorized:
            log.info("inbound connection from %s denied: %s", uri, decision.reason)
            inbound.abort()
            return
        try:
            _, local = await asyncio.wait_for(
                loop.create_connection(Side, listener.local_address, listener.local_port),
                listener.local_connect_timeout,
            )
        except OSError as exc:  # TimeoutError is one
            log.error(
                "cannot reach the local service at %s:%d: %r",
                listener.local_address,
                listener.local_port,
                exc,
            )
            inbound.abort()
            return
        await join(inbound, local)

    return await _listen(
        connections.protocol_factory(handle),
        listener.bind_address,
        listener.bind_port,
        ssl=certs.server,
        ssl_handshake_timeout=listener.handshake_timeout,
    )


async def _dial(upstream: Upstream, certs: Certificates, resolver: Resolver) -> Side | None:
    loop = asyncio.get_running_loop()
    instances = await resolver.instances(upstream.destination, upstream.datacenter)
    if not instances:
        log.error("upstream %s: no connect-capable instance of %r", upstream, upstream.destination)
        return None
    for instance in random.sample(instances, min(DIAL_ATTEMPTS, len(instances))):
        sni = ""
        if certs.trust_domain and instance.datacenter:
            sni = service_sni(
                upstream.destination, instance.datacenter, certs.trust_domain, upstream.namespace
            )
        try:
            _, remote = await asyncio.wait_for(
                loop.create_connection(
                    Side, instance.address, instance.port, ssl=certs.client, server_hostname=sni
                ),
                upstream.connect_timeout,
            )
        except OSError as exc:  # TimeoutError and ssl.SSLError are OSErrors
            log.warning(
                "upstream %s: dialing %s:%d failed: %r",
                upstream,
                instance.address,
                instance.port,
                exc,
            )
            continue
        assert remote.transport is not None
        try:
            verify_service(
                remote.transport.get_extra_info("peercert") or {},
                upstream.destination,
                namespace=upstream.namespace,
                datacenter=instance.datacenter,
            )
        except PeerError as exc:
            log.error(
                "upstream %s: %s:%d refused: %s", upstream, instance.address, instance.port, exc
            )
            remote.abort()
            continue
        return remote
    return None


async def serve_upstream(
    upstream: Upstream,
    certs: Certificates,
    resolver: Resolver,
    connections: Connections,
) -> asyncio.AbstractServer:
    async def handle(local: Side) -> None:
        remote = await _dial(upstream, certs, resolver)
        if remote is None:
            local.abort()
            return
        await join(local, remote)

    return await _listen(
        connections.protocol_factory(handle), upstream.bind_address, upstream.bind_port
    )


def bound_port(server: asyncio.AbstractServer) -> int:
    """The port a server listens on (for `-listen :0` style ephemeral ports)."""
    for sock in server.sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return int(sock.getsockname()[1])
    return 0
