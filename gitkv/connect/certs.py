"""The proxy's TLS material, kept current by long-polling the agent.

`Certificates.load()` fetches the service's leaf and the CA roots once; `watch()` then
long-polls both (`?index=`) and, whenever either changes, builds a new pair of
`ssl.SSLContext`s and swaps them in. New handshakes use the new certificates; connections
already open keep the `SSLObject` they were made with and are never interrupted.

The upstream side reads `client` when it dials. The public listener's server socket keeps
the context it was created with, so every server context carries an SNI callback (OpenSSL
calls it for each ClientHello, with or without a server name) that moves the handshake onto
the current context: its certificate, key and trust store.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from gitkv.connect.agentapi import LocalAgent
from gitkv.connect.tls import KeyDir, Leaf, client_context, roots_bundle, server_context

__all__ = ["Certificates"]

log = logging.getLogger("gitkv.connect.proxy")

# A poll that comes back sooner than this with nothing new is not a long-poll (an agent that
# ignores ?index=); wait out the rest of it before asking again.
MIN_POLL = 1.0
MAX_BACKOFF = 30.0


class Certificates:
    def __init__(
        self,
        api: LocalAgent,
        service: str,
        keys: KeyDir,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.service = service
        self.keys = keys
        self._clock = clock
        self.leaf: Leaf | None = None
        self.roots_pem = ""
        self.trust_domain = ""
        self.leaf_index = 0
        self.roots_index = 0
        self._server: ssl.SSLContext | None = None
        self._client: ssl.SSLContext | None = None
        self.rotations = 0  # how many times the contexts were rebuilt after the first load

    @property
    def server(self) -> ssl.SSLContext:
        assert self._server is not None, "Certificates.load() not awaited"
        return self._server

    @property
    def client(self) -> ssl.SSLContext:
        assert self._client is not None, "Certificates.load() not awaited"
        return self._client

    async def load(self) -> None:
        roots, self.roots_index = await self.api.roots()
        leaf, self.leaf_index = await self.api.leaf(self.service)
        self._install(Leaf.from_api(leaf), roots_bundle(roots.get("Roots") or ()), roots)

    def _install(self, leaf: Leaf, roots_pem: str, roots: dict[str, Any] | None) -> None:
        """Build both contexts from `leaf` and `roots_pem`; keep them only if both build."""
        server = server_context(leaf, roots_pem, self.keys)
        server.sni_callback = self._use_current
        client = client_context(leaf, roots_pem, self.keys)
        self.leaf, self.roots_pem = leaf, roots_pem
        if roots is not None:
            self.trust_domain = str(roots.get("TrustDomain") or self.trust_domain)
        self._server, self._client = server, client  # swapped together, between handshakes

    def _use_current(self, sslobj: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        current = self._server
        if current is not None and sslobj.context is not current:
            sslobj.context = current

    async def watch(self) -> None:
        """Run until cancelled: follow leaf and roots, each in its own long-poll."""
        await asyncio.gather(self._follow("leaf"), self._follow("roots"))

    async def _follow(self, what: str) -> None:
        backoff = 1.0
        while True:
            started = self._clock()
            index = self.leaf_index if what == "leaf" else self.roots_index
            try:
                if what == "leaf":
                    body, new_index = await self.api.leaf(self.service, index)
                    changed = self._take_leaf(body)
                else:
                    body, new_index = await self.api.roots(index)
                    changed = self._take_roots(body)
                if changed:
                    self.rotations += 1
                    log.info("rotated TLS certificates (%s changed, index %d)", what, new_index)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "watching the %s certificate failed, retrying in %.0fs: %s", what, backoff, exc
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 1.0
            # An index that goes backwards means the agent's state was reset: start over.
            new_index = 0 if new_index < index else new_index
            if what == "leaf":
                self.leaf_index = new_index
            else:
                self.roots_index = new_index
            elapsed = self._clock() - started
            if not changed and elapsed < MIN_POLL:
                await asyncio.sleep(MIN_POLL - elapsed)

    def _take_leaf(self, body: dict[str, Any]) -> bool:
        leaf = Leaf.from_api(body)
        assert self.leaf is not None
        if (leaf.cert_pem, leaf.key_pem) == (self.leaf.cert_pem, self.leaf.key_pem):
            return False
        self._install(leaf, self.roots_pem, None)
        return True

    def _take_roots(self, body: dict[str, Any]) -> bool:
        roots_pem = roots_bundle(body.get("Roots") or ())
        trust_domain = str(body.get("TrustDomain") or "")
        if (roots_pem, trust_domain) == (self.roots_pem, self.trust_domain):
            return False
        assert self.leaf is not None
        self._install(self.leaf, roots_pem, body)
        return True
