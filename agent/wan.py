"""The WAN pool: servers of every datacenter gossiping with each other on the serf WAN port.

Only servers take part (Consul's rule). Each server runs a second gossip driver, with
memberlist's WAN timings, on `ports.serf_wan` (8302). Its member name is `<node>.<dc>` and it
carries the same tags as on the LAN (`dc` among them), so every server knows, per
datacenter, which servers are alive and where their RPC port is. That is all the agent needs
to answer `?dc=<other>`: the request is handed to a server of that datacenter, which answers
it as its own.

Servers of one datacenter find each other on the LAN; as Consul's "flood join" does, every
server WAN-joins the servers it sees on the LAN, so `-join-wan` on one server is enough to
federate whole datacenters.

The decisions (names, which datacenters exist and in what order, which servers to join or ask)
are the pure functions at the top; `WanPool` does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from agent.aio import wait_event
from agent.errors import JoinFailed
from agent.gossip.config import wan_config
from agent.gossip.coordinate import Coordinate
from agent.gossip.driver import GossipDriver
from agent.gossip.errors import BindError, JoinError
from agent.membership import (
    ALIVE,
    LEFT,
    MemberLike,
    ServerInfo,
    retry_join,
    serf_tags,
    server_of,
)
from agent.ports import AgentIdentity

if TYPE_CHECKING:
    from agent.tls import RPCTLS

log = logging.getLogger("agent.wan")

DEFAULT_WAN_PORT = 8302
FLOOD_INTERVAL = 10.0


class WanJoinFailed(JoinFailed):
    """No address of a `-join-wan` / `join?wan` request could be joined (a `JoinFailed`, so
    the agent's start-up and `/v1/agent/join` treat both pools alike)."""


# ---------------------------------------------------------------------------- pure decisions


def wan_name(node: str, datacenter: str) -> str:
    """A server's member name in the WAN pool."""
    return f"{node}.{datacenter}"


def split_wan_name(name: str) -> tuple[str, str] | None:
    """`node.dc` -> (node, dc); None when the name has no datacenter part.

    The datacenter is the last label: node names may contain dots, datacenter names may not.
    """
    node, dot, dc = name.rpartition(".")
    if not dot or not node or not dc:
        return None
    return node, dc


def with_wan_port(address: str, default: int = DEFAULT_WAN_PORT) -> str:
    """`ip`, `ip:port`, `[v6]:port`, bare IPv6 or a hostname -> `host:port`."""
    if address.startswith("["):
        return address if "]:" in address else f"{address}:{default}"
    if address.count(":") == 1:
        return address
    if address.count(":") > 1:
        return f"[{address}]:{default}"
    return f"{address}:{default}"


def servers_by_dc(members: Iterable[MemberLike]) -> dict[str, list[ServerInfo]]:
    """Alive servers of the WAN pool per datacenter (from their `dc` tag), sorted by name."""
    found: dict[str, list[ServerInfo]] = {}
    for member in members:
        info = server_of(member)
        if info is None or info.status != ALIVE or not info.datacenter:
            continue
        found.setdefault(info.datacenter, []).append(info)
    for servers in found.values():
        servers.sort(key=lambda s: s.name)
    return found


def known_datacenters(members: Iterable[MemberLike]) -> set[str]:
    """Every datacenter the pool has heard of, whatever its servers' state (Consul lists a
    datacenter whose servers all failed too; requests to it then fail)."""
    return {
        dc
        for m in members
        if m.tags.get("role") == "consul" and int(m.status) != LEFT and (dc := m.tags.get("dc"))
    }


def coordinate_maps(
    members: Iterable[MemberLike],
    self_name: str,
    local: Coordinate,
    peers: Mapping[str, Coordinate],
) -> list[dict]:
    """`/v1/coordinate/datacenters`: per datacenter (by name), its servers' WAN coordinates,
    ours included. A server whose coordinate we have not heard yet is left out, and so is a
    datacenter with none, as Consul's router does (GetDatacenterMaps). Nodes go by their
    name without the `.<dc>` the WAN pool adds."""
    areas: dict[str, list[dict]] = {}
    for member in sorted(members, key=lambda m: m.name):
        dc = member.tags.get("dc", "")
        if not dc or member.tags.get("role") != "consul" or int(member.status) == LEFT:
            continue
        coord = local if member.name == self_name else peers.get(member.name)
        if coord is None:
            continue
        node = member.name.removesuffix(f".{dc}")
        areas.setdefault(dc, []).append({"Node": node, "Coord": coord.api_dict()})
    return [{"Datacenter": dc, "AreaID": "wan", "Coordinates": areas[dc]} for dc in sorted(areas)]


def order_datacenters(
    local_dc: str, datacenters: Iterable[str], rtt: Mapping[str, float] | None = None
) -> list[str]:
    """Ours first, then the nearest (median RTT to its servers) first; unknown RTT last; ties
    and unknowns by name, so the answer is stable."""
    rtt = rtt or {}
    others = {dc for dc in datacenters if dc != local_dc}
    return [local_dc] + sorted(
        others, key=lambda dc: (0, rtt[dc], dc) if dc in rtt else (1, 0.0, dc)
    )


def rtt_by_dc(
    local: Coordinate | None,
    peers: Mapping[str, Coordinate],
    members: Iterable[MemberLike],
) -> dict[str, float]:
    """Median estimated RTT (seconds) from us to each datacenter's servers we have coordinates
    for."""
    if local is None:
        return {}
    samples: dict[str, list[float]] = {}
    for member in members:
        coord = peers.get(member.name)
        dc = member.tags.get("dc")
        if coord is None or not dc:
            continue
        try:
            samples.setdefault(dc, []).append(local.distance(coord))
        except (ValueError, TypeError):  # coordinates of a different dimensionality
            continue
    return {dc: statistics.median(values) for dc, values in samples.items()}


def flood_targets(
    lan_members: Iterable[MemberLike],
    wan_members: Iterable[MemberLike],
    local_dc: str,
    self_name: str,
    self_addr: str = "",
) -> list[str]:
    """`ip:wan_port` of the LAN servers of our datacenter missing from the WAN pool.

    `self_addr` (our WAN `ip:port`) is never a target: servers sharing one IP (test clusters
    on 127.0.0.1) advertise the same WAN port, which only one of them could bind."""
    present = {m.name for m in wan_members if int(m.status) != LEFT}
    targets = []
    for member in lan_members:
        info = server_of(member)
        if info is None or info.status != ALIVE or info.datacenter != local_dc:
            continue
        if member.name == self_name or wan_name(member.name, local_dc) in present:
            continue
        try:
            port = int(member.tags.get("wan_join_port", "") or DEFAULT_WAN_PORT)
        except ValueError:
            continue
        if port <= 0:
            continue  # that server runs no WAN pool
        target = with_wan_port(member.addr, port)
        if target != self_addr:
            targets.append(target)
    return sorted(targets)


# ---------------------------------------------------------------------------- the pool


class WanHost(AgentIdentity, Protocol):
    """What the WAN pool needs of its server: who it is, its LAN pool (whose gossip keys the
    WAN shares), whether its RPC speaks TLS (a gossiped tag), and a way to give up."""

    rpc_tls: RPCTLS

    def request_stop(self, exit_code: int = 0, leave: bool = False) -> None: ...


class LanPool(Protocol):
    cipher: Any
    gossip: GossipDriver | None


class WanPool:
    """One per server agent: `await start()`, then `join`, `members`, `datacenters`,
    `server_for`; `leave` and `stop` at the end."""

    def __init__(self, agent: WanHost, lan: LanPool) -> None:
        self.lan = lan
        self.agent = agent
        self.gossip: GossipDriver | None = None
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def port(self) -> int:
        port = self.agent.config.ports.serf_wan
        return port if port > 0 else DEFAULT_WAN_PORT

    def _explicit(self) -> bool:
        """True when the operator asked for WAN federation, so a WAN pool that cannot bind
        must stop the agent rather than be skipped."""
        cfg = self.agent.config
        return bool(
            cfg.start_join_wan or cfg.retry_join_wan or cfg.advertise_addr_wan or cfg.serf_wan_bind
        )

    async def start(self) -> bool:
        """Bind and start gossiping; join `-join-wan`. False when the port could not be bound
        and nothing asked for the WAN (test clusters share 127.0.0.1: only one agent there
        can own 8302, and the others must still start)."""
        agent, cfg = self.agent, self.agent.config
        bind = cfg.serf_wan_bind or cfg.bind_addr
        if bind in ("0.0.0.0", "::", ""):
            bind = agent.address
        advertise = cfg.advertise_addr_wan or agent.address
        try:
            self.gossip = await GossipDriver.create(
                wan_name(agent.node_name, agent.datacenter),
                bind,
                self.port,
                self._tags(),
                wan_config(),
                advertise_addr=f"{advertise}:{self.port}",
                cipher=self.lan.cipher,
            )
        except BindError as exc:
            if self._explicit():
                raise
            log.warning("agent: WAN pool disabled: %s", exc)
            return False
        if cfg.start_join_wan:
            await self.join(list(cfg.start_join_wan))
        self._tasks.append(asyncio.create_task(self._flood_loop(), name="wan-flood"))
        if cfg.retry_join_wan:
            self._tasks.append(asyncio.create_task(self._retry_join(), name="wan-retry-join"))
        return True

    def _tags(self) -> dict[str, str]:
        tags = serf_tags(self.agent, self.agent.rpc_tls.enabled)
        tags["dc"] = self.agent.datacenter
        return tags

    async def leave(self) -> None:
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
        if self.gossip is not None:
            await self.gossip.close()

    def kick(self) -> None:
        """LAN membership changed: look for servers to flood-join."""
        self._wakeup.set()

    # ------------------------------------------------------------------ joining

    async def join(self, addresses: list[str]) -> int:
        if self.gossip is None:
            raise WanJoinFailed(
                f"Failed to join {', '.join(addresses)}: this agent runs no WAN pool"
            )
        targets = [with_wan_port(a, self.port) for a in addresses]
        try:
            joined = await self.gossip.join(targets)
        except JoinError as exc:
            raise WanJoinFailed(f"Failed to join {', '.join(addresses)}: {exc}") from None
        log.info("agent: (WAN) joined %d of %d address(es)", joined, len(targets))
        return joined

    async def _retry_join(self) -> None:
        cfg = self.agent.config
        await retry_join(
            lambda: self.agent.request_stop(exit_code=1),
            self.join,
            list(cfg.retry_join_wan),
            cfg.retry_max_wan,
            cfg.retry_interval_wan,
            "WAN",
        )

    async def _flood_loop(self) -> None:
        while not self._stopping:
            try:
                await self._flood()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # tried again at the next event or interval
                log.debug("agent: WAN flood join failed: %s", exc)
            await wait_event(self._wakeup, FLOOD_INTERVAL)
            self._wakeup.clear()

    async def _flood(self) -> None:
        lan = self.lan.gossip
        if self.gossip is None or lan is None:
            return
        targets = flood_targets(
            lan.members(),
            self.gossip.members(),
            self.agent.datacenter,
            self.agent.node_name,
            self.gossip.local_addr,
        )
        for target in targets:
            try:
                await self.gossip.join([target], timeout=5.0)
            except JoinError as exc:
                log.debug("agent: (WAN) flood join %s failed: %s", target, exc)

    # ------------------------------------------------------------------ views

    def members(self) -> list[dict]:
        if self.gossip is None:
            return []
        return [m.api_dict() for m in self.gossip.members()]

    def datacenters(self) -> list[str]:
        """Every known datacenter, ours first, then nearest first."""
        local = self.agent.datacenter
        if self.gossip is None:
            return [local]
        members = self.gossip.members()
        try:
            rtt = rtt_by_dc(self.gossip.coordinate(), self.gossip.core.peer_coordinates(), members)
        except Exception:  # coordinates are an ordering nicety, never a reason to fail
            rtt = {}
        return order_datacenters(local, known_datacenters(members), rtt)

    def coordinate_maps(self) -> list[dict] | None:
        """The WAN coordinates per datacenter; None without a WAN pool (a client agent, or
        serf_wan disabled)."""
        if self.gossip is None:
            return None
        gossip = self.gossip
        return coordinate_maps(
            gossip.members(),
            gossip.local_member().name,
            gossip.coordinate(),
            gossip.core.peer_coordinates(),
        )

    def knows(self, datacenter: str) -> bool:
        return datacenter == self.agent.datacenter or datacenter in self.datacenters()

    def server_for(self, datacenter: str) -> str | None:
        """RPC address of an alive server of `datacenter`, or None when there is none."""
        if self.gossip is None:
            return None
        servers = servers_by_dc(self.gossip.members()).get(datacenter)
        return random.choice(servers).rpc_address if servers else None
