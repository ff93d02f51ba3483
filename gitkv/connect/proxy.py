"""One proxy instance: certificates, authorizer, resolver and listeners, started and stopped
together.

    proxy = Proxy(config, api)
    await proxy.start()      # fetch certificates, bind every listener
    await proxy.wait(stop)   # serve (and follow certificate rotation) until `stop` is set
    await proxy.close()      # stop listening, end open connections, remove key files
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gitkv.connect.agentapi import AgentAPI
from gitkv.connect.authz import Authorizer
from gitkv.connect.certs import Certificates
from gitkv.connect.config import ProxyConfig
from gitkv.connect.listeners import Connections, bound_port, serve_public, serve_upstream
from gitkv.connect.resolve import Resolver
from gitkv.connect.tls import KeyDir

__all__ = ["Proxy"]

log = logging.getLogger("gitkv.connect.proxy")


class Proxy:
    def __init__(self, config: ProxyConfig, api: AgentAPI) -> None:
        self.config = config
        self.api = api
        self.keys = KeyDir()
        self.certs = Certificates(api, config.service, self.keys)
        self.authorizer = Authorizer(api, config.service)
        self.resolver = Resolver(api)
        self.connections = Connections()
        self.servers: list[asyncio.AbstractServer] = []
        self.public_port = 0
        self.upstream_ports: dict[str, int] = {}
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.certs.load()
            if self.config.public is not None:
                server = await serve_public(
                    self.config.public, self.certs, self.authorizer, self.connections
                )
                self.servers.append(server)
                self.public_port = bound_port(server)
                log.info(
                    "public listener on %s:%d => %s:%d",
                    self.config.public.bind_address,
                    self.public_port,
                    self.config.public.local_address,
                    self.config.public.local_port,
                )
            for upstream in self.config.upstreams:
                server = await serve_upstream(upstream, self.certs, self.resolver, self.connections)
                self.servers.append(server)
                self.upstream_ports[upstream.destination] = bound_port(server)
                log.info("upstream listener %s", upstream)
        except BaseException:
            await self.close()
            raise
        self._watch = asyncio.ensure_future(self.certs.watch())

    async def wait(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, or until the certificate watcher dies."""
        assert self._watch is not None, "start() first"
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({stopped, self._watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if self._watch.done() and not self._watch.cancelled():
            self._watch.result()  # its failure ends the proxy, with its message

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
        await self.connections.close_all()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self.servers.clear()
        self.keys.close()
