"""The agent's cluster life: gossip membership, Raft bootstrap and membership, catalog upkeep.

One `ClusterManager` per agent. It owns the LAN gossip driver, joins the addresses from
`-join`/`-retry-join`, and — on servers — turns the gossip view into Raft decisions
(bootstrap once `bootstrap_expect` servers are alive; the leader adds servers that join and
removes servers that leave) and into catalog changes (`agent.membership.reconcile`).
All decisions come from the pure functions in `agent.membership`; this module does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING, Any, Protocol

from agent.aio import wait_event
from agent.errors import JoinFailed
from agent.gossip.config import lan_config
from agent.gossip.crypto import GossipCipher, build_cipher
from agent.gossip.driver import GossipDriver
from agent.gossip.errors import JoinError
from agent.gossip.events import (
    MemberConflict,
    MemberFailed,
    MemberJoin,
    MemberLeave,
    MemberReap,
    MemberUpdate,
    UserEvent,
)
from agent.membership import (
    DEFAULT_SERF_PORT,
    LEFT,
    alive_servers,
    bootstrap_set,
    reconcile,
    retry_join,
    serf_tags,
    server_of,
    with_port,
)
from agent.ports import AgentIdentity, Writer
from agent.state.commands import Autopilot, Coordinate, CoordinateUpdate
from agent.wan import WanPool

if TYPE_CHECKING:
    from agent.rpc import RPCPool
    from agent.state.store import Store
    from agent.tls import RPCTLS

log = logging.getLogger("agent.cluster")

RECONCILE_INTERVAL = 5.0
COORDINATE_FIRST_DELAY = 2.0
COORDINATE_INTERVAL = 15.0


class ClusterHost(AgentIdentity, Writer, Protocol):
    """What the cluster manager needs of its agent: who it is, a writer (the catalog follows
    gossip), the consensus it feeds (servers), the RPC pool and TLS, the ACL runtime (the
    leader writes the built-ins) and a way to stop when joins are exhausted."""

    consensus: Any  # agent.raft.node.RaftNode on servers, None on client agents
    store: Store
    rpc_pool: RPCPool
    rpc_tls: RPCTLS
    acl_runtime: Any  # agent.acl.enforce.ACLRuntime
    mesh_ca: Any  # agent.mesh_ca.CARuntime on servers, None on client agents
    bootstrap_entries: Any  # agent.mesh_bootstrap.BootstrapEntries on servers

    def request_stop(self, exit_code: int = 0, leave: bool = False) -> None: ...


class ClusterManager:
    def __init__(self, agent: ClusterHost) -> None:
        self.agent = agent
        self.gossip: GossipDriver | None = None
        self.cipher: GossipCipher | None = None  # the keyring lives here (/v1/operator/keyring)
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.user_event_handler: Any = None
        self._stopping = False
        self.wan: Any = None  # agent.wan.WanPool on servers with a serf WAN port

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        agent, cfg = self.agent, self.agent.config
        port = cfg.ports.serf_lan if cfg.ports.serf_lan > 0 else DEFAULT_SERF_PORT
        bind = cfg.serf_lan_bind or cfg.bind_addr
        if bind in ("0.0.0.0", "::"):
            bind = agent.address
        self.cipher, warning = build_cipher(
            cfg.encrypt,
            verify_incoming=cfg.encrypt_verify_incoming,
            verify_outgoing=cfg.encrypt_verify_outgoing,
            data_dir=agent.data_dir,
        )
        if warning:
            log.warning("agent: %s", warning)
        self.gossip = await GossipDriver.create(
            agent.node_name,
            bind,
            port,
            serf_tags(agent, agent.rpc_tls.enabled),
            lan_config(),
            advertise_addr=f"{agent.address}:{port}",
            on_event=self._on_event,
            cipher=self.cipher,
        )
        if cfg.start_join:
            await self.join(list(cfg.start_join))
        await self._start_wan()
        self._tasks.append(asyncio.create_task(self._membership_loop(), name="membership"))
        if not self.agent.config.disable_coordinates:
            self._tasks.append(asyncio.create_task(self._coordinate_loop(), name="coordinates"))
        self.kick()
        if cfg.retry_join:
            self._tasks.append(asyncio.create_task(self._retry_join(), name="retry-join"))

    async def _start_wan(self) -> None:
        cfg = self.agent.config
        if not cfg.server:
            if cfg.start_join_wan or cfg.retry_join_wan:
                log.warning(
                    "agent: -join-wan/-retry-join-wan are ignored: only servers join the WAN"
                )
            return
        if cfg.ports.serf_wan <= 0:
            return
        pool = WanPool(self.agent, self)
        if await pool.start():
            self.wan = pool

    async def leave(self) -> None:
        if self.wan is not None:
            await self.wan.leave()
        if self.gossip is not None:
            await self.gossip.leave(timeout=5.0)

    async def stop(self) -> None:
        self._stopping = True
        self.kick()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self.wan is not None:
            await self.wan.stop()
        if self.gossip is not None:
            await self.gossip.close()

    # ------------------------------------------------------------------ joining

    async def join(self, addresses: list[str]) -> int:
        assert self.gossip is not None
        targets = [with_port(a) for a in addresses]
        try:
            joined = await self.gossip.join(targets)
        except JoinError as exc:
            raise JoinFailed(f"Failed to join {', '.join(addresses)}: {exc}") from None
        log.info("agent: joined %d of %d address(es)", joined, len(targets))
        self.kick()
        return joined

    async def _retry_join(self) -> None:
        cfg = self.agent.config
        await retry_join(
            lambda: self.agent.request_stop(exit_code=1),
            self.join,
            list(cfg.retry_join),
            cfg.retry_max,
            cfg.retry_interval,
            "LAN",
        )

    # ------------------------------------------------------------------ views

    def members(self) -> list[dict]:
        if self.gossip is None:
            return []
        return [m.api_dict() for m in self.gossip.members()]

    def pick_server(self) -> str | None:
        if self.gossip is None:
            return None
        servers = alive_servers(self.gossip.members(), self.agent.datacenter)
        return random.choice(servers).rpc_address if servers else None

    def kick(self) -> None:
        self._wakeup.set()

    # ------------------------------------------------------------------ events

    def _on_event(self, ev: Any) -> None:
        if isinstance(ev, UserEvent):
            if self.user_event_handler is not None:
                self.user_event_handler(ev)
            return
        if isinstance(ev, MemberConflict):
            log.error(
                "serf: Name conflict for '%s' both %s and %s are claiming",
                ev.existing.name,
                ev.existing.address,
                ev.other_addr,
            )
            return
        if isinstance(ev, MemberJoin | MemberUpdate | MemberLeave | MemberFailed | MemberReap):
            info = server_of(ev.member)
            consensus = self.agent.consensus
            if info is not None and consensus is not None and info.id:
                consensus.names[info.id] = info.name
            if info is not None and self.wan is not None:
                self.wan.kick()  # a server to flood-join into the WAN pool
        self.kick()

    async def _coordinate_loop(self) -> None:
        """Report this agent's Vivaldi coordinate to the catalog now and then (Consul's agents
        do it every 15 s or more), for /v1/coordinate and `?near` sorting."""
        await asyncio.sleep(COORDINATE_FIRST_DELAY)
        while not self._stopping:
            gossip = self.gossip
            if gossip is not None:
                coord = gossip.coordinate()
                update = CoordinateUpdate(
                    Node=self.agent.node_name,
                    Segment="",
                    Coord={
                        "Vec": list(coord.vec),
                        "Error": coord.error,
                        "Adjustment": coord.adjustment,
                        "Height": coord.height,
                    },
                )
                try:
                    await self.agent.write(Coordinate(Updates=[update]))
                except Exception as exc:  # no leader yet, or shutting down: next round
                    log.debug("agent: coordinate update failed: %s", exc)
            await asyncio.sleep(COORDINATE_INTERVAL)

    # ------------------------------------------------------------------ server duties

    async def _membership_loop(self) -> None:
        while not self._stopping:
            await wait_event(self._wakeup, RECONCILE_INTERVAL)
            self._wakeup.clear()
            if self._stopping:
                return
            try:
                await self._membership_step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # retried at the next event or interval
                log.warning("agent: membership reconcile failed: %s", exc)

    async def _membership_step(self) -> None:
        agent = self.agent
        consensus = agent.consensus
        if consensus is None or self.gossip is None:
            return
        members = self.gossip.members()
        if not consensus.has_state():
            await self._maybe_bootstrap(members)
            return
        if not consensus.is_leader:
            return
        if agent.config.acl.enabled:
            # The built-in ACL records (global-management, anonymous, initial management
            # token) are written by whichever server leads, as soon as it leads.
            await agent.acl_runtime.ensure_initialized()
        if agent.mesh_ca is not None and agent.config.connect_enabled:
            await agent.mesh_ca.ensure_initialized()  # the leader creates the Connect CA
        if agent.bootstrap_entries is not None:
            await agent.bootstrap_entries.ensure_written()
        if not agent.store.autopilot:
            # Consul's leader stores the agent's `autopilot` settings when the datacenter has
            # no autopilot configuration yet (getOrCreateAutopilotConfig); PUTs replace it.
            await agent.write(Autopilot(Config=dict(agent.config.autopilot)))
        voters = set(consensus.voter_ids())
        by_id = {}
        for m in members:
            info = server_of(m)
            if info is not None and info.datacenter == agent.datacenter and info.id:
                by_id[info.id] = (m, info)
        for info in alive_servers(members, agent.datacenter):
            if info.id and info.id not in voters:
                log.info(
                    "agent: adding server %s (%s) to the Raft configuration",
                    info.name,
                    info.rpc_address,
                )
                await consensus.add_voter(info.id, info.rpc_address)
                return  # one membership change at a time
        for voter in voters:
            found = by_id.get(voter)
            if voter != consensus.id and (found is None or int(found[0].status) == LEFT):
                log.info("agent: removing server %s from the Raft configuration", voter)
                await consensus.remove_peer(peer_id=voter)
                return
        for command in reconcile(members, agent.store, agent.datacenter):
            await agent.write(command)

    async def _maybe_bootstrap(self, members: list) -> None:
        agent = self.agent
        expect = agent.config.bootstrap_expect
        voters = bootstrap_set(members, agent.datacenter, expect)
        if voters is None or agent.node_id not in voters:
            return
        # A server that already belongs to a cluster means this one must be added by that
        # cluster's leader, not bootstrap a second cluster (Consul asks the same question).
        for server_id, address in voters.items():
            if server_id == agent.node_id:
                continue
            try:
                peers = await agent.rpc_pool.call(address, "raft_peers", None, timeout=5)
            except Exception as exc:
                log.info("agent: waiting for server %s before bootstrapping: %s", address, exc)
                return
            if peers and set(peers) != set(voters.values()):
                log.info("agent: existing Raft peers reported by %s; not bootstrapping", address)
                return
            # The same voter set is the same bootstrap: that server just got there first.
        agent.consensus.bootstrap(voters)
