"""Anti-entropy: making the catalog's records of this node equal to the agent's local state.

Consul's model: the agent owns the services and checks registered through it, and the catalog's
view of its node is brought to match (what is missing added, what differs updated, services and
checks of this node the agent does not know removed). `AntiEntropy.sync` does one pass, given
what the local state wants; the local state (`agent.local`) decides when. Every write goes
through consensus, like every other write; with ACLs on it goes through the catalog API with
the agent's token, so the servers judge it as they judge any client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

import msgspec

from agent.ports import AgentIdentity, APICaller, RemoteReader, Writer
from agent.state.commands import CheckRecord, Deregister, Register, ServiceRecord, typed
from agent.state.fsm import check_from, service_from
from agent.state.store import without_indexes
from agent.state.structs import HealthCheck, Node, Service

if TYPE_CHECKING:
    from agent.state.store import Store

log = logging.getLogger("agent.local")

SERF_CHECK = "serfHealth"
CONSUL_SERVICE = "consul"


class LocalHost(AgentIdentity, Writer, APICaller, RemoteReader, Protocol):
    """What the local state needs of the agent it serves: who this node is, and its ways to
    the catalog: a write through consensus, the HTTP API with a token (anti-entropy under
    ACLs), a server's answer (client agents hold no state), and the store on a server."""

    def agent_tokens(self) -> dict[str, str]:
        """The agent's ACL token slots (`agent`, `default`, ...)."""
        ...

    def local_store(self) -> Store | None:
        """This server's store; None on a client agent."""
        ...


@dataclass
class CatalogView:
    node: Node | None
    services: dict[str, Service]
    checks: dict[str, HealthCheck]


# A service as the local state wants it in the catalog: its NodeService fields and its checks
# (HealthCheck JSON without indexes).
Wanted = tuple[dict, list[dict]]


# Tagged addresses the servers add to a registration (the virtual IP, `consul-virtual`): the
# agent takes them into its own view of the service instead of seeing a difference to undo.
SERVER_TAGGED_PREFIX = "consul-"


@dataclass
class SyncTokens:
    """The token each local service and check is synced with (see `AntiEntropy.sync`)."""

    services: dict[str, str]
    checks: dict[str, str]
    fallback: str = ""  # the default token
    config_fallback: str = ""  # config_file_service_registration
    config_services: frozenset[str] = frozenset()
    config_checks: frozenset[str] = frozenset()

    def service(self, sid: str) -> str:
        own = self.services.get(sid)
        if own:
            return own
        if sid in self.config_services and self.config_fallback:
            return self.config_fallback
        return self.fallback

    def check(self, cid: str) -> str:
        own = self.checks.get(cid)
        if own:
            return own
        if cid in self.config_checks and self.config_fallback:
            return self.config_fallback
        return self.fallback


def _what(body: dict) -> str:
    service = body.get("ServiceID") or (body.get("Service") or {}).get("ID")
    if service:
        return f"service {service!r}"
    check = body.get("CheckID") or [c.get("CheckID") for c in body.get("Checks") or ()]
    return f"check {check!r}" if check else f"node {body.get('Node', '')!r}"


class AntiEntropy:
    def __init__(self, agent: LocalHost) -> None:
        self.agent = agent
        # service ID -> the server-set tagged addresses last seen in the catalog
        self.server_addresses: dict[str, dict[str, dict]] = {}

    def node_registration(self) -> Register:
        agent = self.agent
        addr = agent.address
        return Register(
            ID=agent.node_id,
            Node=agent.node_name,
            Address=addr,
            Datacenter=agent.datacenter,
            TaggedAddresses={"lan": addr, "lan_ipv4": addr, "wan": addr, "wan_ipv4": addr},
            NodeMeta={"consul-network-segment": "", "consul-version": agent.version}
            | dict(agent.config.node_meta),
            # serfHealth is the leader's to set, from gossip (agent.membership.reconcile).
        )

    def _node_in_sync(self, view: CatalogView) -> bool:
        """The catalog's record of this node matches what this agent would register."""
        current = view.node
        if current is None:
            return False
        wanted = self.node_registration()
        return (
            current.Address == wanted.Address
            and wanted.ID == current.ID
            and current.Meta == wanted.NodeMeta
            and current.TaggedAddresses == wanted.TaggedAddresses
        )

    def node_token(self) -> str:
        """The token of the node's own records and of every deregistration: acl.tokens.agent,
        else default (Consul's AgentToken(): node:write for this node covers removing what is
        registered on it, even once a service's own token is gone)."""
        tokens = self.agent.agent_tokens()
        return tokens.get("agent") or tokens.get("default") or ""

    async def catalog_write(self, command: Register | Deregister, token: str | None = None) -> None:
        """A catalog write of anti-entropy. With ACLs on it goes through the catalog API with
        `token` (default: the node token), so the servers enforce what that token may do, as
        Consul's agent does; a refusal is logged and skipped."""
        agent = self.agent
        if not agent.config.acl.enabled:
            await agent.write(command)
            return
        if token is None:
            token = self.node_token()
        path = "/v1/catalog/register" if isinstance(command, Register) else "/v1/catalog/deregister"
        body = {k: v for k, v in msgspec.to_builtins(command).items() if k != "Type"}
        status, text = await agent.api_call("PUT", path, body, token)
        if status == 403:
            log.warning("anti-entropy: sync blocked by ACLs: %s %s: %s", path, _what(body), text)
        elif status != 200:
            raise RuntimeError(f"{path} answered {status}: {text}")

    async def sync(
        self,
        services: dict[str, Wanted],
        check_ids: Iterable[str],
        node_checks: list[dict],
        tokens: SyncTokens | None = None,
    ) -> None:
        """One pass: the catalog's entries for this node made equal to `services` (by ID),
        `node_checks` and the known `check_ids`. `tokens`: the token each service and check
        is written with (as Consul's local state: the one it was registered with, else
        config_file_service_registration for config-file definitions, else default); without
        it every write carries the node token."""
        agent = self.agent
        node = agent.node_name
        known_checks = set(check_ids)
        view = await self.catalog_view(node)
        if not self._node_in_sync(view):
            await self.catalog_write(self.node_registration())
        for sid in list(view.services):
            # "consul" is the servers' own service, kept by the leader (as in Consul).
            if sid not in services and sid != CONSUL_SERVICE:
                await self.catalog_write(Deregister(Node=node, ServiceID=sid))
        for cid in list(view.checks):
            if cid not in known_checks and cid != SERF_CHECK:
                await self.catalog_write(Deregister(Node=node, CheckID=cid))
        self.server_addresses = {
            sid: added
            for sid, svc in view.services.items()
            if sid in services and (added := server_tagged(svc.TaggedAddresses))
        }
        for sid, (record, checks) in services.items():
            if added := self.server_addresses.get(sid):
                # As Consul's updateSyncState: the servers' addresses join the local copy.
                record = record | {"TaggedAddresses": dict(record["TaggedAddresses"]) | added}
            if self._in_sync(view, record, checks):
                continue
            log.info("synced service %r", sid)
            token = tokens.service(sid) if tokens is not None else None
            # Checks ride with their service only when they carry the same token, so a check
            # gains no privilege from its service's token (and the other way round).
            riding = [c for c in checks if tokens is None or tokens.check(c["CheckID"]) == token]
            service = typed(ServiceRecord, record)
            await self.catalog_write(
                Register(
                    Node=node,
                    Address=agent.address,
                    SkipNodeUpdate=True,
                    Service=service,
                    Checks=typed(list[CheckRecord], riding),
                ),
                token,
            )
            for check in checks:
                if tokens is not None and check not in riding:
                    await self.catalog_write(
                        Register(
                            Node=node,
                            Address=agent.address,
                            SkipNodeUpdate=True,
                            Service=service,
                            Checks=typed(list[CheckRecord], [check]),
                        ),
                        tokens.check(check["CheckID"]),
                    )
        if node_checks and not self._in_sync(view, None, node_checks):
            if tokens is None:
                groups = {None: node_checks}
            else:
                groups = {}
                for check in node_checks:
                    groups.setdefault(tokens.check(check["CheckID"]), []).append(check)
            for token, group in groups.items():
                await self.catalog_write(
                    Register(
                        Node=node,
                        Address=agent.address,
                        SkipNodeUpdate=True,
                        Checks=typed(list[CheckRecord], group),
                    ),
                    token,
                )

    async def catalog_view(self, node: str, token: str | None = None) -> CatalogView:
        """A node's records in the catalog: the local store on a server, a server's answer
        (over RPC) on a client agent, which holds no state of its own, read with `token`
        (None: the agent's own)."""
        agent = self.agent
        store = agent.local_store()
        if store is not None:
            return CatalogView(
                store.nodes.get(node),
                dict(store.services.get(node, {})),
                dict(store.checks.get(node, {})),
            )
        catalog = await agent.read_remote(f"/v1/catalog/node/{quote(node)}", token=token)
        health = await agent.read_remote(f"/v1/health/node/{quote(node)}", token=token) or []
        if not catalog:
            return CatalogView(None, {}, {})
        raw_node = catalog["Node"]
        services = {
            sid: service_from(typed(ServiceRecord, raw))
            for sid, raw in (catalog.get("Services") or {}).items()
        }
        checks = {c["CheckID"]: check_from(typed(CheckRecord, c), node, services) for c in health}
        node_record = Node(
            Node=raw_node["Node"],
            Address=raw_node.get("Address", ""),
            ID=raw_node.get("ID", ""),
            Datacenter=raw_node.get("Datacenter", ""),
            TaggedAddresses=raw_node.get("TaggedAddresses") or {},
            Meta=raw_node.get("Meta") or {},
        )
        return CatalogView(node_record, services, checks)

    def _in_sync(self, view: CatalogView, svc: dict | None, checks: list[dict]) -> bool:
        """Whether the catalog already holds exactly these records (so no write is needed)."""
        node = self.agent.node_name
        if svc is not None:
            current = view.services.get(svc["ID"])
            wanted = service_from(typed(ServiceRecord, svc))
            if current is None or without_indexes(current) != without_indexes(wanted):
                return False
        services = view.services
        for raw in checks:
            current = view.checks.get(raw["CheckID"])
            wanted = check_from(typed(CheckRecord, raw), node, services)
            if current is None or without_indexes(current) != without_indexes(wanted):
                return False
        return True


def server_tagged(tagged: dict[str, dict]) -> dict[str, dict]:
    return {k: v for k, v in tagged.items() if k.startswith(SERVER_TAGGED_PREFIX)}
