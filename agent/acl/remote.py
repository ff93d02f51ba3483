"""A client agent's tokens: resolved by a server, kept for `acl.token_ttl`.

A client agent holds no ACL tables (they live in the servers' Raft state), yet it answers
`/v1/agent/*`, its DNS and its own checks itself, and must know who is asking. As Consul's
client-side resolver does, it asks a server (RPC `acl_resolve`) for the token and the roles and
policies it links, compiles them here with the same rules as a server (`Compiler`), and keeps
the answer for `acl.token_ttl` (30 s by default): a changed policy reaches a client agent
within that time, the servers see one request per token and TTL rather than one per call.

Handlers decide synchronously, so the lookup is split: `prefetch(secret)` (awaited once per
request, before the handler; a fresh entry costs a dict lookup) fetches what is missing or
stale, and `resolve(secret)` answers from what is held. Concurrent requests with the same
token share one fetch.

When no server answers, `acl.down_policy` decides, as in Consul: `extend-cache` and
`async-cache` keep using what was fetched before however old (a token never seen is
denied everything), `allow` allows everything, `deny` denies everything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agent.acl.authorizer import Authorizer
from agent.acl.resolve import ACLNotFound, Compiler, Identity, tables_of, token_expired
from agent.acl.rules import ParsedRules
from agent.state.acl import ANONYMOUS_SECRET

log = logging.getLogger("gitkv.acl")

# An unknown secret is asked about again after this long (a token just created through
# another agent works here within a second; a client sending garbage costs one RPC a second).
NOT_FOUND_TTL = 1.0
CACHE_LIMIT = 4096
# During an outage every request with a stale token tries again; one log line per this long.
WARN_EVERY = 10.0

Fetch = Callable[[str], Awaitable[dict[str, Any] | None]]


@dataclass
class _Entry:
    identity: Identity | None  # None: the servers do not know the secret
    fetched: float
    ttl: float


class RemoteTokens:
    def __init__(
        self,
        fetch: Fetch,
        compiler: Compiler,
        token_ttl: float,
        down_policy: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch = fetch
        self.compiler = compiler
        self.token_ttl = token_ttl
        self.down_policy = down_policy
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._down: dict[str, Identity] = {}  # what down_policy answers for a secret
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._warned_at: float | None = None

    def fresh(self, secret: str) -> bool:
        entry = self._entries.get(secret)
        return entry is not None and self.clock() - entry.fetched < entry.ttl

    async def prefetch(self, secret: str) -> None:
        """Make `resolve(secret)` answerable: fetch the token unless a fresh answer is held."""
        if self.fresh(secret):
            return
        pending = self._inflight.get(secret)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[secret] = future
        try:
            await self._refresh(secret)
        finally:
            del self._inflight[secret]
            future.set_result(None)

    async def _refresh(self, secret: str) -> None:
        try:
            bundle = await self.fetch(secret)
        except Exception as exc:  # no server answered: the down policy decides
            now = self.clock()
            if self._warned_at is None or now - self._warned_at >= WARN_EVERY:
                self._warned_at = now
                log.warning(
                    "ACL: cannot resolve a token through the servers (%s); acl.down_policy "
                    "%s applies",
                    exc,
                    self.down_policy,
                )
            # Bounded like _entries: every distinct secret sent during an outage (garbage
            # included) lands here and leaves only if presented again once a server answers.
            if len(self._down) >= CACHE_LIMIT:
                self._down.clear()
            self._down[secret] = self._down_identity(secret)
            return
        self._down.pop(secret, None)
        if len(self._entries) >= CACHE_LIMIT:
            self._entries.clear()
        now = self.clock()
        if bundle is None:
            self._entries[secret] = _Entry(None, now, NOT_FOUND_TTL)
            return
        identity = self.compiler.identity(tables_of(bundle), bundle["Token"])
        self._entries[secret] = _Entry(identity, now, self.token_ttl)

    def _down_identity(self, secret: str) -> Identity:
        if self.down_policy in ("extend-cache", "async-cache"):
            entry = self._entries.get(secret)
            if entry is not None and entry.identity is not None:
                return entry.identity
        allow = self.down_policy == "allow"
        return Identity("", Authorizer(ParsedRules(), default_allow=allow), None)

    def resolve(self, secret: str, now: dt.datetime | None = None) -> Identity:
        """The identity of `secret` from what `prefetch` fetched; ACLNotFound for a secret the
        servers do not know (or one never fetched)."""
        down = self._down.get(secret)
        if down is not None:
            return down
        entry = self._entries.get(secret)
        if entry is None or entry.identity is None:
            if secret == ANONYMOUS_SECRET:
                return self.compiler.anonymous()
            raise ACLNotFound(secret)
        token = entry.identity.token
        if token is not None and token.get("ExpirationTime") and token_expired(token, now):
            raise ACLNotFound(secret)
        return entry.identity
