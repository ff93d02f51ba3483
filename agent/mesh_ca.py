"""The Connect CA as the agent runs it: the leader creates and rotates the CA, servers sign
certificate requests, every agent caches its services' leaf certificates.

The certificate logic is `agent/connect/ca.py` (pure: time and serials come in as values);
this module decides when it runs and moves its results through the ports: the CA state goes
through Raft (`CASet`, with a CAS on the state it was computed from, so two leaders' writes
can never interleave), a client agent's certificate requests go to a server over RPC
(`Signer`), and the leaf cache answers `/v1/agent/connect/ca/leaf/<service>`, blocking ones
included, renewing a certificate before it expires and as soon as the active root changes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent.connect import ca, csr_limit, spiffe
from agent.connect.errors import CAError
from agent.errors import AgentError
from agent.state.commands import CASet

if TYPE_CHECKING:
    from agent.ports import Writer
    from agent.state.store import Store

log = logging.getLogger(__name__)

# A leaf is renewed once this share of its lifetime has passed (Consul renews between 60 and
# 90 % of it, at random; one fixed point keeps the cache's behaviour testable).
RENEW_AT = 0.75


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _uid() -> str:
    return ca.compact_uid(os.urandom(8))


def new_serial() -> int:
    """A leaf's serial: random, positive, 63 bits (unique without a counter in Raft)."""
    return secrets.randbits(63) | 1


class Signer(Protocol):
    """Signs a certificate request for `service` with the active root: the local store on a
    server, a server over RPC on a client agent."""

    async def sign(self, csr_pem: str, service: str) -> dict[str, Any]: ...

    async def roots(self) -> dict[str, Any]:
        """The CA state as `/v1/connect/ca/roots` answers it (no keys), with its index."""
        ...


class CARuntime:
    """The servers' side: the CA state in the store, its creation, rotation and signing."""

    def __init__(
        self,
        store: Store,
        writer: Writer,
        is_leader: Callable[[], bool],
        datacenter: str,
        user_config: dict[str, Any],
        provider: str = "consul",
        clock: Callable[[], dt.datetime] = _now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.writer = writer
        self.is_leader = is_leader
        self.datacenter = datacenter
        self.user_config = dict(user_config)
        self.provider = provider
        self.clock = clock
        self.monotonic = monotonic
        self._lock = asyncio.Lock()
        # This server's CSR limits (each server limits its own signing, as Consul's do).
        self._bucket = csr_limit.Bucket()
        self._slots = csr_limit.Slots()
        self._slot_change = asyncio.Condition()

    # ------------------------------------------------------------------ the leader's duties

    async def ensure_initialized(self) -> None:
        """Create the CA once, on the leader (a no-op once the store holds one)."""
        if self.store.mesh.ca or not self.is_leader():
            return
        async with self._lock:
            if self.store.mesh.ca:
                return
            try:
                config = ca.initial_config(str(uuid.uuid4()), self.user_config, self.provider)
                cluster_id = config["ClusterID"]
                root = ca.new_root(cluster_id, config, new_serial(), self.clock(), _uid())
            except CAError as exc:
                log.error("connect: cannot create the CA: %s", exc.message)
                return
            try:
                await self.writer.write(
                    CASet(ClusterID=cluster_id, Config=config, Roots=[root], CAS=0)
                )
            except AgentError as exc:
                log.warning("connect: could not store the new CA: %s", exc)
                return
            log.info("connect: initialized the CA (trust domain %s.consul)", cluster_id)

    async def set_config(self, body: dict[str, Any]) -> None:
        """`PUT /v1/connect/ca/configuration`: store the new configuration, rotating to a new
        root (cross-signed by the old one) when the change needs one. A failure leaves the
        old root active: nothing is written until every step has succeeded."""
        async with self._lock:
            state = self.store.mesh.ca
            if not state:
                raise CAError("CA has not finished initializing")
            old_config = state.get("Config") or {}
            config = ca.validate_ca_config(body, old_config)
            if config == old_config:
                return  # same provider and settings: nothing to store (as Consul)
            roots = list(state.get("Roots") or [])
            if ca.root_changes(old_config, config):
                now = self.clock()
                old = self.store.mesh.active_root()
                new_root = ca.new_root(state["ClusterID"], config, new_serial(), now, _uid())
                cross = None
                if old is not None and ca.should_cross_sign(old_config, config):
                    cross = ca.cross_sign(old, new_root, new_serial(), now)
                ttl = ca.provider_config(config).leaf_ttl_seconds
                roots = ca.rotate(ca.prune_roots(roots, now, ttl), new_root, cross, now)
            result = await self.writer.write(
                CASet(
                    ClusterID=state["ClusterID"],
                    Config=config,
                    Roots=roots,
                    CAS=state.get("ModifyIndex", 0),
                )
            )
            if result is False:
                raise CAError("could not atomically update roots and config")

    # ------------------------------------------------------------------ signing

    async def sign(self, csr_pem: str, service: str) -> dict[str, Any]:
        """Sign within the configuration's CSR limits (`agent.connect.csr_limit`): a request
        that cannot have its turn within `LIMIT_WAIT` is refused with Consul's 429."""
        mesh = self.store.mesh
        if mesh.active_root() is None:
            raise CAError("CA has not finished initializing")
        limits = ca.provider_config(mesh.ca.get("Config") or {})
        if limits.csr_max_per_second > 0:
            wait = self._bucket.reserve(limits.csr_max_per_second, self.monotonic())
            if wait is None:
                raise CAError(csr_limit.RATE_LIMITED, 429)
            if wait > 0:
                await asyncio.sleep(wait)
            return await self._sign_in_thread(csr_pem)
        if limits.csr_max_concurrent > 0:
            size = limits.csr_max_concurrent
            async with self._slot_change:
                try:
                    await asyncio.wait_for(
                        self._slot_change.wait_for(lambda: self._slots.take(size)),
                        csr_limit.LIMIT_WAIT,
                    )
                except TimeoutError:
                    raise CAError(csr_limit.RATE_LIMITED, 429) from None
            try:
                return await self._sign_in_thread(csr_pem)
            finally:
                async with self._slot_change:
                    self._slots.give()
                    self._slot_change.notify_all()
        return await self._sign_in_thread(csr_pem)

    async def _sign_in_thread(self, csr_pem: str) -> dict[str, Any]:
        # The inputs are read here, on the loop; the signature (the expensive part, which the
        # limits exist for) runs in a thread so signings in progress really overlap.
        mesh = self.store.mesh
        root = mesh.active_root()
        if root is None:
            raise CAError("CA has not finished initializing")
        ttl = ca.provider_config(mesh.ca.get("Config") or {}).leaf_ttl_seconds
        index = int(mesh.ca.get("ModifyIndex", 0))
        issued = await asyncio.to_thread(
            ca.sign_leaf,
            root,
            csr_pem,
            new_serial(),
            self.clock(),
            ttl,
            self.datacenter,
            mesh.trust_domain,
        )
        return issued | {"CreateIndex": index, "ModifyIndex": index}

    def roots_view(self) -> dict[str, Any]:
        mesh = self.store.mesh
        if not mesh.ca:
            raise CAError("CA has not finished initializing")
        view = ca.render_roots(mesh.ca.get("Roots") or [], mesh.trust_domain)
        return view | {"Index": self.store.table_index("connect-ca")}


class LocalSigner:
    """A server signs with its own copy of the CA (replicated through Raft)."""

    def __init__(self, runtime: CARuntime) -> None:
        self.runtime = runtime

    async def sign(self, csr_pem: str, service: str) -> dict[str, Any]:
        return await self.runtime.sign(csr_pem, service)

    async def roots(self) -> dict[str, Any]:
        return self.runtime.roots_view()


class RemoteSigner:
    """A client agent asks a server (RPC `ca_sign`, `ca_roots`)."""

    def __init__(self, call: Callable[[str, Any], Awaitable[Any]]) -> None:
        self.call = call

    async def sign(self, csr_pem: str, service: str) -> dict[str, Any]:
        return await self.call("ca_sign", {"CSR": csr_pem, "Service": service})

    async def roots(self) -> dict[str, Any]:
        return await self.call("ca_roots", {})


# A renewal the servers refused for their CSR rate limit is retried once per window of this
# length, at a random point in it (Consul's caChangeJitterWindow): the load of a root rotation
# across thousands of leaves spreads out instead of retrying in lockstep.
RETRY_WINDOW = 30.0


def _stagger(window: float) -> float:
    return random.uniform(0.0, window)


@dataclass
class _Leaf:
    cert: dict[str, Any]
    root_id: str
    renew_after: float  # monotonic seconds
    index: int
    retry_at: float = 0.0  # no renewal before this (monotonic), after a rate-limited one
    limited: int = 0  # consecutive rate-limited renewals
    limited_since: float | None = None


class LeafCache:
    """This agent's leaf certificates, one per service name, renewed before they expire and
    whenever the active root changes; blocking readers wait for a renewal."""

    def __init__(
        self,
        signer: Signer,
        datacenter: str,
        monotonic: Callable[[], float],
        poll: float = 1.0,
        stagger: Callable[[float], float] = _stagger,
    ) -> None:
        self.signer = signer
        self.datacenter = datacenter
        self.monotonic = monotonic
        self.poll = poll
        self.stagger = stagger
        self._leaves: dict[str, _Leaf] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._counter = 0

    async def get(self, service: str) -> dict[str, Any]:
        """A valid certificate for `service` (issuing or renewing one when due)."""
        lock = self._locks.setdefault(service, asyncio.Lock())
        async with lock:
            roots = await self.signer.roots()
            active = str(roots.get("ActiveRootID") or "")
            leaf = self._leaves.get(service)
            now = self.monotonic()
            if leaf is None:
                # A first request that is rate limited fails (Consul returns the error
                # rather than block until the limit allows it).
                leaf = await self._issue(service, roots, active)
            elif now >= leaf.retry_at and (leaf.root_id != active or now >= leaf.renew_after):
                try:
                    leaf = await self._issue(service, roots, active)
                except CAError as exc:
                    if exc.status != 429:
                        raise
                    self._back_off(leaf, now)
            return leaf.cert

    def _back_off(self, leaf: _Leaf, now: float) -> None:
        """Keep the current certificate and pick the next try: in the `limited`-th window
        after the first refusal, at a random point of it (Consul's attemptLeafRefresh)."""
        if leaf.limited_since is None:
            leaf.limited_since = now
        leaf.limited += 1
        delay = self.stagger(RETRY_WINDOW)
        leaf.retry_at = leaf.limited_since + leaf.limited * delay + delay
        log.warning(
            "connect: leaf renewal rate limited (%d in a row), retrying in %.1fs",
            leaf.limited,
            leaf.retry_at - now,
        )

    async def wait(self, service: str, index: int, timeout: float) -> dict[str, Any]:
        """`?index=`: return once the certificate's ModifyIndex passes `index` (a renewal or a
        root change), or at `timeout` with the current one."""
        deadline = self.monotonic() + timeout
        while True:
            cert = await self.get(service)
            if cert.get("ModifyIndex", 0) > index or self.monotonic() >= deadline:
                return cert
            await asyncio.sleep(min(self.poll, max(0.0, deadline - self.monotonic())))

    async def _issue(self, service: str, roots: dict[str, Any], active: str) -> _Leaf:
        trust = str(roots.get("TrustDomain") or "")
        uri = spiffe.service_uri(trust, self.datacenter, service)
        key_pem, csr_pem = ca.new_leaf_key_and_csr(uri)
        cert = await self.signer.sign(csr_pem, service)
        # Every certificate this cache hands out gets a new index, so a blocking reader
        # wakes on a renewal even when the CA state did not move.
        self._counter = max(self._counter + 1, int(cert.get("ModifyIndex") or 0))
        cert = ca.render_leaf(cert, key_pem, int(cert.get("CreateIndex") or 0), self._counter)
        lifetime = _lifetime(cert)
        leaf = _Leaf(cert, active, self.monotonic() + lifetime * RENEW_AT, self._counter)
        self._leaves[service] = leaf
        return leaf


def _lifetime(cert: dict[str, Any]) -> float:
    try:
        after = dt.datetime.fromisoformat(str(cert["ValidAfter"]).replace("Z", "+00:00"))
        before = dt.datetime.fromisoformat(str(cert["ValidBefore"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 3600.0
    return max(60.0, (before - after).total_seconds())
