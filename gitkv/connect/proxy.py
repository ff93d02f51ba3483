"""One proxy instance: certificates, authorizer, resolver and listeners, started, changed and
stopped together.

    proxy = Proxy(config, api)
    await proxy.start()             # fetch certificates, bind every listener
    await proxy.reconfigure(new)    # bind what is new, close what went (open connections stay)
    await proxy.wait(stop)          # serve (and follow certificate rotation) until `stop` is set
    await proxy.close()             # stop listening, end open connections, remove key files

`follow_registration` keeps a proxy configured by an agent registration (`-sidecar-for`,
`-proxy-id`) in step with it, as Consul's built-in proxy does: it long-polls the
registration by its content hash and reconfigures on every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gitkv.connect.agentapi import LocalAgent
from gitkv.connect.authz import Authorizer
from gitkv.connect.certs import MAX_BACKOFF, Certificates
from gitkv.connect.config import ProxyConfig, PublicListener, Upstream, from_registration
from gitkv.connect.listeners import Connections, bound_port, serve_public, serve_upstream
from gitkv.connect.resolve import Resolver
from gitkv.connect.tls import KeyDir

__all__ = ["Proxy", "follow_registration"]

log = logging.getLogger("gitkv.connect.proxy")


class Proxy:
    def __init__(self, config: ProxyConfig, api: LocalAgent) -> None:
        self.config = config
        self.api = api
        self.keys = KeyDir()
        self.certs = Certificates(api, config.service, self.keys)
        self.authorizer = Authorizer(api, config.service)
        self.resolver = Resolver(api)
        self.connections = Connections()
        self._public: tuple[PublicListener, asyncio.AbstractServer] | None = None
        self._upstreams: dict[Upstream, asyncio.AbstractServer] = {}
        self._watch: asyncio.Task[None] | None = None

    @property
    def servers(self) -> list[asyncio.AbstractServer]:
        found = [self._public[1]] if self._public else []
        return found + list(self._upstreams.values())

    @property
    def public_port(self) -> int:
        return bound_port(self._public[1]) if self._public else 0

    @property
    def upstream_ports(self) -> dict[str, int]:
        return {up.destination: bound_port(server) for up, server in self._upstreams.items()}

    async def start(self) -> None:
        try:
            await self.certs.load()
            await self._bind(self.config)
        except BaseException:
            await self.close()
            raise
        self._watch = asyncio.ensure_future(self.certs.watch())

    async def _bind(self, config: ProxyConfig) -> None:
        """Make the listeners match `config`: close what it dropped or changed, bind the rest."""
        if self._public is not None and self._public[0] != config.public:
            self._public[1].close()
            self._public = None
        if config.public is not None and self._public is None:
            server = await serve_public(
                config.public, self.certs, self.authorizer, self.connections
            )
            self._public = (config.public, server)
            log.info(
                "public listener on %s:%d => %s:%d",
                config.public.bind_address,
                bound_port(server),
                config.public.local_address,
                config.public.local_port,
            )
        wanted = set(config.upstreams)
        for upstream in [u for u in self._upstreams if u not in wanted]:
            self._upstreams.pop(upstream).close()
            log.info("upstream listener %s closed", upstream)
        for upstream in config.upstreams:
            if upstream not in self._upstreams:
                self._upstreams[upstream] = await serve_upstream(
                    upstream, self.certs, self.resolver, self.connections
                )
                log.info("upstream listener %s", upstream)
        self.config = config

    def _close_listeners(self) -> None:
        for server in self.servers:
            server.close()
        self._public = None
        self._upstreams.clear()

    async def reconfigure(self, config: ProxyConfig) -> None:
        """Apply a new configuration; connections already open are left alone."""
        if config == self.config:
            return
        if config.service != self.config.service:
            # Another identity: new leaf, new authorize target, and listeners that use them.
            certs = Certificates(self.api, config.service, self.keys)
            await certs.load()
            await self._stop_watch()
            self._close_listeners()
            self.certs = certs
            self.authorizer = Authorizer(self.api, config.service)
            self._watch = asyncio.ensure_future(certs.watch())
            log.info("now proxying for service %s", config.service)
        await self._bind(config)

    async def wait(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, or until the certificate watcher fails."""
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                watch = self._watch
                assert watch is not None, "start() first"
                await asyncio.wait({stopped, watch}, return_when=asyncio.FIRST_COMPLETED)
                if watch.done() and watch is self._watch and not watch.cancelled():
                    watch.result()  # its failure ends the proxy, with its message
                    return
        finally:
            stopped.cancel()

    async def _stop_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch

    async def close(self) -> None:
        servers = self.servers
        self._close_listeners()
        await self._stop_watch()
        await self.connections.close_all()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self.keys.close()


async def follow_registration(proxy: Proxy, api: LocalAgent, proxy_id: str, digest: str) -> None:
    """Run until cancelled: reconfigure `proxy` whenever its registration changes.

    `digest` is the ContentHash of the registration the proxy started from. A registration
    that disappears or stops making sense is logged and the proxy keeps its last config."""
    backoff = 1.0
    while True:
        try:
            service, new_digest = await api.agent_service_changed(proxy_id, digest)
            if service is None:
                log.warning(
                    "the proxy's registration %s is gone; keeping the last config", proxy_id
                )
                await asyncio.sleep(MAX_BACKOFF)
                continue
            if new_digest != digest:
                await proxy.reconfigure(from_registration(service))
                digest = new_digest  # only now: a change that failed is tried again
            backoff = 1.0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "following registration %s failed, retrying in %.0fs: %s", proxy_id, backoff, exc
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
