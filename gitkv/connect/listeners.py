"""The proxy's two kinds of listener.

Public (inbound): a TLS server (client certificate required, verified against the CA roots;
each handshake moves onto the context current at that moment, see `certs`); once the
handshake is done the client's SPIFFE URI goes to the authorizer; denied connections are closed, allowed ones are
piped to the local application.

Upstream (outbound): plain TCP on a local port; each connection resolves the destination's
instances, dials one over TLS with the proxy's leaf as client certificate, checks that the
server certificate names the destination service, then pipes.
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
from gitkv.connect.pipe import BUFFER, close, splice
from gitkv.connect.resolve import Resolver
from gitkv.connect.spiffe import peer_serial, peer_uri, service_sni, verify_service

__all__ = ["Connections", "serve_public", "serve_upstream"]

log = logging.getLogger("gitkv.connect.proxy")

# An upstream connection tries at most this many instances before giving up.
DIAL_ATTEMPTS = 3
_Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Connections:
    """The handler tasks of open connections, so shutdown can end them."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.refused = 0

    def track(self, handler: _Handler) -> _Handler:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.tasks.add(task)
            self.accepted += 1
            try:
                await handler(reader, writer)
            except asyncio.CancelledError:
                # Shutdown ends the connection; the task stops here (asyncio's stream
                # callback would log a cancelled handler as an error).
                close(writer, abort=True)
            except Exception as exc:
                self.refused += 1
                log.debug("connection ended with an error: %r", exc)
                close(writer, abort=True)
            finally:
                self.tasks.discard(task)

        return tracked

    async def close_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


async def _listen(handler: _Handler, host: str, port: int, **tls: Any) -> asyncio.AbstractServer:
    # reuse_address so a restarted proxy can take its port back while old sockets linger.
    return await asyncio.start_server(
        handler, host or None, port, limit=BUFFER, reuse_address=True, backlog=1024, **tls
    )


async def serve_public(
    listener: PublicListener,
    certs: Certificates,
    authorizer: Authorizer,
    connections: Connections,
) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        try:
            uri = peer_uri(peer)
        except PeerError as exc:
            log.warning("inbound connection refused: %s", exc)
            close(writer, abort=True)
            return
        decision = await authorizer.decide(uri, peer_serial(peer))
        if not decision.authorized:
            log.info("inbound connection from %s denied: %s", uri, decision.reason)
            close(writer, abort=True)
            return
        try:
            local_reader, local_writer = await asyncio.wait_for(
                asyncio.open_connection(listener.local_address, listener.local_port, limit=BUFFER),
                listener.local_connect_timeout,
            )
        except OSError as exc:  # TimeoutError and ssl.SSLError are OSErrors
            log.error(
                "cannot reach the local service at %s:%d: %s",
                listener.local_address,
                listener.local_port,
                exc or type(exc).__name__,
            )
            close(writer, abort=True)
            return
        await splice(reader, writer, local_reader, local_writer)

    return await _listen(
        connections.track(handle),
        listener.bind_address,
        listener.bind_port,
        ssl=certs.server,
        ssl_handshake_timeout=listener.handshake_timeout,
    )


async def _dial(
    upstream: Upstream, certs: Certificates, resolver: Resolver
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    instances = await resolver.instances(upstream.destination, upstream.datacenter)
    if not instances:
        log.error("upstream %s: no connect-capable instance of %r", upstream, upstream.destination)
        return None
    candidates = random.sample(instances, min(DIAL_ATTEMPTS, len(instances)))
    for instance in candidates:
        sni = None
        if certs.trust_domain and instance.datacenter:
            sni = service_sni(
                upstream.destination, instance.datacenter, certs.trust_domain, upstream.namespace
            )
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    instance.address,
                    instance.port,
                    ssl=certs.client,
                    server_hostname=sni or "",
                    limit=BUFFER,
                ),
                upstream.connect_timeout,
            )
        except OSError as exc:  # TimeoutError and ssl.SSLError are OSErrors
            log.warning(
                "upstream %s: dialing %s:%d failed: %r",
                upstream,
                instance.address,
                instance.port,
                exc or type(exc).__name__,
            )
            continue
        try:
            verify_service(
                writer.get_extra_info("peercert") or {},
                upstream.destination,
                namespace=upstream.namespace,
                datacenter=instance.datacenter,
            )
        except PeerError as exc:
            log.error(
                "upstream %s: %s:%d refused: %s", upstream, instance.address, instance.port, exc
            )
            close(writer, abort=True)
            continue
        return reader, writer
    return None


async def serve_upstream(
    upstream: Upstream,
    certs: Certificates,
    resolver: Resolver,
    connections: Connections,
) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        remote = await _dial(upstream, certs, resolver)
        if remote is None:
            close(writer, abort=True)
            return
        await splice(reader, writer, *remote)

    return await _listen(connections.track(handle), upstream.bind_address, upstream.bind_port)


def bound_port(server: asyncio.AbstractServer) -> int:
    """The port a server listens on (for `-listen :0` style ephemeral ports)."""
    for sock in server.sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return int(sock.getsockname()[1])
    return 0
