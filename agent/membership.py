"""From gossip members to servers, bootstrap decisions and catalog changes. Pure, but for
`retry_join`, which both pools (agent/cluster.py, agent/wan.py) share.

The leader keeps the catalog's view of agent nodes equal to gossip's view (Consul's
`leader.reconcile`): an alive member has its node registered with a passing `serfHealth`; a
failed member keeps its node, with `serfHealth` critical, so its services fail health queries;
a member that left, or was reaped, is deregistered with its services and checks. Nodes that
never had a `serfHealth` check (registered through the catalog API) are not gossip's business.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent.errors import JoinFailed
from agent.state.commands import CheckRecord, Deregister, Register, ServiceRecord

if TYPE_CHECKING:
    from agent.ports import AgentIdentity

log = logging.getLogger("agent.cluster")
DEFAULT_SERF_PORT = 8301

ALIVE, LEAVING, LEFT, FAILED = 1, 2, 3, 4
SERF_CHECK = "serfHealth"
ALIVE_OUTPUT = "Agent alive and reachable"
FAILED_OUTPUT = "Agent not live or unreachable"


class MemberLike(Protocol):
    name: str
    addr: str
    port: int
    tags: dict[str, str]
    status: Any  # int-like


@dataclass(frozen=True, slots=True)
class ServerInfo:
    name: str
    id: str
    rpc_address: str
    datacenter: str
    expect: int
    status: int


def server_of(member: MemberLike) -> ServerInfo | None:
    tags = member.tags
    if tags.get("role") != "consul":
        return None
    try:
        port = int(tags.get("port", "8300"))
        expect = int(tags.get("expect", "0") or 0)
    except ValueError:
        return None
    return ServerInfo(
        name=member.name,
        id=tags.get("id", ""),
        rpc_address=f"{member.addr}:{port}",
        datacenter=tags.get("dc", ""),
        expect=expect,
        status=int(member.status),
    )


def alive_servers(members: list[MemberLike], datacenter: str) -> list[ServerInfo]:
    found = [server_of(m) for m in members]
    return sorted(
        (s for s in found if s and s.datacenter == datacenter and s.status == ALIVE),
        key=lambda s: s.name,
    )


def bootstrap_set(members: list[MemberLike], datacenter: str, expect: int) -> dict[str, str] | None:
    """The voters to bootstrap with once `expect` servers are alive, else None.

    Every server computes the same set from the same gossip view, so all of them bootstrap
    the same configuration. Servers that disagree on `expect` do not bootstrap together
    (Consul refuses that mix too).
    """
    servers = alive_servers(members, datacenter)
    if expect <= 1 or len(servers) < expect:
        return None
    if any(s.expect not in (0, expect) for s in servers):
        return None
    return {s.id: s.rpc_address for s in servers}


def _serf_check(store: Any, node: str) -> Any:
    return store.checks.get(node, {}).get(SERF_CHECK)


def reconcile(
    members: list[MemberLike], store: Any, datacenter: str
) -> list[Register | Deregister]:
    """FSM commands that bring the catalog in line with the gossip view."""
    commands: list[dict] = []
    seen: set[str] = set()
    for member in members:
        if member.tags.get("dc", datacenter) != datacenter:
            continue
        seen.add(member.name)
        status = int(member.status)
        node = store.nodes.get(member.name)
        check = _serf_check(store, member.name)
        if status in (ALIVE, LEAVING):
            is_server = member.tags.get("role") == "consul"
            has_service = "consul" in store.services.get(member.name, {})
            if (
                node is not None
                and node.Address == member.addr
                and check is not None
                and check.Status == "passing"
                and has_service == is_server
            ):
                continue
            commands.append(
                _register(
                    member,
                    node is not None and node.Address == member.addr,
                    "passing",
                    ALIVE_OUTPUT,
                )
            )
        elif status == FAILED:
            if node is None or (check is not None and check.Status == "critical"):
                continue
            commands.append(_register(member, True, "critical", FAILED_OUTPUT))
        elif status == LEFT and node is not None:
            commands.append(Deregister(Node=member.name))
    for name in list(store.nodes):
        if name not in seen and _serf_check(store, name) is not None:
            commands.append(Deregister(Node=name))
    return commands


def _register(member: MemberLike, skip_node_update: bool, status: str, output: str) -> Register:
    command = Register(
        Node=member.name,
        Address=member.addr,
        ID=member.tags.get("id", ""),
        SkipNodeUpdate=skip_node_update,
        Check=CheckRecord(
            CheckID=SERF_CHECK, Name="Serf Health Status", Status=status, Output=output
        ),
    )
    if member.tags.get("role") == "consul" and status == "passing":
        # Servers appear in the catalog as the "consul" service (Consul's leader does this).
        command.Service = ServiceRecord(
            ID="consul", Service="consul", Port=int(member.tags.get("port", "8300") or 8300)
        )
    if not skip_node_update:
        command.TaggedAddresses = {
            "lan": member.addr,
            "lan_ipv4": member.addr,
            "wan": member.tags.get("wan_addr", member.addr),
            "wan_ipv4": member.tags.get("wan_addr", member.addr),
        }
    return command


# ---------------------------------------------------------------------- both pools


async def retry_join(
    give_up: Callable[[], None],
    join: Any,
    addresses: list[str],
    retry_max: int,
    interval: float,
    pool: str,
) -> None:
    """`-retry-join` for either gossip pool: try every `interval` until one join works; after
    `retry_max` failed attempts (0 = forever) the agent exits (`give_up`), as Consul's does."""
    attempts = 0
    while True:
        attempts += 1
        try:
            await join(addresses)
            return
        except JoinFailed as exc:
            log.warning("agent: retry join %s failed (attempt %d): %s", pool, attempts, exc)
        if retry_max and attempts >= retry_max:
            log.error("agent: max join %s retry exhausted, exiting", pool)
            give_up()
            return
        await asyncio.sleep(interval or 30.0)


def with_port(address: str, default: int = DEFAULT_SERF_PORT) -> str:
    """`ip`, `ip:port`, `[v6]:port` or a hostname -> `host:port`."""
    if address.startswith("["):
        return address if "]:" in address else f"{address}:{default}"
    if address.count(":") == 1:
        return address
    if address.count(":") > 1:  # bare IPv6
        return f"[{address}]:{default}"
    return f"{address}:{default}"


def serf_tags(agent: AgentIdentity, rpc_tls_enabled: bool = False) -> dict[str, str]:
    """The tags this agent gossips about itself (role, datacenter, ports, versions)."""
    cfg = agent.config
    tags = {
        "acls": "1" if cfg.acl.enabled else "0",
        "build": f"{agent.version}:gitkv",
        "dc": agent.datacenter,
        "id": agent.node_id,
        "role": "consul" if cfg.server else "node",
        "segment": "",
        "vsn": "2",
        "vsn_max": "3",
        "vsn_min": "2",
        "ft_fs": "1",
        "ft_si": "1",
    }
    if cfg.server:
        tags.update(
            {
                "port": str(cfg.ports.server),
                "raft_vsn": "3",
                "expect": str(cfg.bootstrap_expect),
                "wan_join_port": str(cfg.ports.serf_wan),
                "use_tls": "1" if rpc_tls_enabled else "0",
            }
        )
        if cfg.bootstrap or cfg.dev:
            tags["bootstrap"] = "1"
        if cfg.ports.grpc > 0:
            tags["grpc_port"] = str(cfg.ports.grpc)
    return tags
