"""Read the live cluster into the same plain values the spec produces (`gitkv.resources`).

Reading is cheap by construction: one recursive KV read per managed prefix, two agent reads per
agent that holds managed services, one catalog read per external node, and ACL reads only when
ACL objects are managed. The ModifyIndex of every KV pair is kept for CAS at apply time.
Token SecretIDs are never read into a `LiveState`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gitkv.client import ConsulClient
from gitkv.errors import ClusterError, GitkvError
from gitkv.ledger import (
    LEDGER_PREFIX,
    Ledger,
    decode_ledger,
    generation_of,
    ledger_key,
    parts_prefix,
)
from gitkv.objects import ApiObject
from gitkv.resources import (
    CHECKS_DIGEST_META,
    AclPolicy,
    AclRole,
    AclToken,
    CheckDef,
    ExternalNode,
    ExternalService,
    KVPair,
    Resources,
    ServiceReg,
    canonical_duration,
    derive_prefixes,
    frozen_map,
    service_key,
)
from gitkv.state_objects import read_objects

__all__ = [
    "BUILTIN_POLICY_IDS",
    "BUILTIN_TOKEN_IDS",
    "LiveState",
    "Member",
    "check_from_api",
    "external_node_from_api",
    "kv_from_api",
    "minimal_prefixes",
    "read_live",
    "service_from_api",
]

# Objects every ACL-enabled cluster has and that gitkv never reports or touches.
BUILTIN_POLICY_IDS = frozenset({"00000000-0000-0000-0000-000000000001"})
BUILTIN_TOKEN_IDS = frozenset({"00000000-0000-0000-0000-000000000002"})
MEMBER_STATUS = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}


@dataclass(frozen=True)
class Member:
    """One `/v1/agent/members` entry: name, gossip address, status text, server or not."""

    name: str
    addr: str
    status: str
    server: bool


@dataclass(frozen=True)
class LiveState:
    """What the cluster holds, as far as gitkv looked.

    `kv_index` maps each key read to its ModifyIndex; a key absent from it did not exist.
    `ledger_index` is the ModifyIndex of the ledger key (0: no ledger yet); `ledger_parts` the
    part folders of a chunked ledger (removed when a new ledger is written). `*_ids` map ACL
    names to the cluster's IDs (AccessorIDs for tokens). `acl_enabled` is None when ACLs were
    not looked at. `agent_addresses` are the HTTP addresses gitkv will use per agent name.
    `objects` holds config entries, queries, auth methods, ... (`gitkv.state_objects`), with
    their ModifyIndex and server ID by `<kind>/<id>` in `object_indexes` and `object_ids`;
    `catalog_services` the service names of the catalog (read when intentions are managed).
    """

    address: str
    prefixes: tuple[str, ...] = ()
    kv: Mapping[str, KVPair] = field(default_factory=dict)
    kv_index: Mapping[str, int] = field(default_factory=dict)
    ledger: Ledger | None = None
    ledger_index: int = 0
    ledger_parts: tuple[str, ...] = ()
    services: Mapping[str, ServiceReg] = field(default_factory=dict)
    agents_read: tuple[str, ...] = ()
    external_nodes: Mapping[str, ExternalNode] = field(default_factory=dict)
    catalog_nodes: tuple[str, ...] = ()
    policies: Mapping[str, AclPolicy] = field(default_factory=dict)
    policy_ids: Mapping[str, str] = field(default_factory=dict)
    roles: Mapping[str, AclRole] = field(default_factory=dict)
    role_ids: Mapping[str, str] = field(default_factory=dict)
    tokens: Mapping[str, AclToken] = field(default_factory=dict)
    token_ids: Mapping[str, str] = field(default_factory=dict)
    unmanaged_acl: tuple[tuple[str, str], ...] = ()
    acl_enabled: bool | None = None
    members: tuple[Member, ...] = ()
    agent_addresses: Mapping[str, str] = field(default_factory=dict)
    objects: Mapping[str, Mapping[str, ApiObject]] = field(default_factory=dict)
    object_indexes: Mapping[str, int] = field(default_factory=dict)
    object_ids: Mapping[str, str] = field(default_factory=dict)
    unmanaged_objects: tuple[tuple[str, str], ...] = ()
    catalog_services: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()


# -- API shapes -> values (pure) -------------------------------------------------------------


def kv_from_api(entry: Mapping[str, Any]) -> tuple[KVPair, int]:
    """A `DirEntry` (`Value` base64 or null) as a `KVPair` and its ModifyIndex."""
    raw = entry.get("Value")
    value = base64.b64decode(raw) if raw else b""
    return KVPair(entry["Key"], value, int(entry.get("Flags") or 0)), int(entry["ModifyIndex"])


def _target(defn: Mapping[str, Any], check: Mapping[str, Any]) -> str:
    for name in ("HTTP", "TCP", "GRPC", "UDP", "H2PING", "OSService", "DockerContainerID"):
        if defn.get(name) or check.get(name):
            return str(defn.get(name) or check.get(name))
    args = defn.get("ScriptArgs") or check.get("ScriptArgs") or check.get("Args")
    if args:
        return " ".join(args)
    alias = defn.get("AliasService") or defn.get("AliasNode")
    return str(alias or "")


def check_from_api(check: Mapping[str, Any]) -> CheckDef:
    """A `HealthCheck` (agent or health endpoint) as a canonical `CheckDef`.

    Durations are read from the top-level fields, falling back to `Definition`, because
    servers differ in which of the two they fill.
    """
    defn = check.get("Definition") or {}
    return CheckDef(
        id=str(check.get("CheckID", "")),
        name=str(check.get("Name", "")),
        kind=str(check.get("Type", "")).lower(),
        target=_target(defn, check),
        interval=canonical_duration(check.get("Interval") or defn.get("Interval")),
        timeout=canonical_duration(check.get("Timeout") or defn.get("Timeout")),
        ttl=canonical_duration(check.get("TTL") or defn.get("TTL")),
        method=str(defn.get("Method") or check.get("Method") or ""),
        tls_skip_verify=bool(defn.get("TLSSkipVerify") or check.get("TLSSkipVerify")),
        deregister_critical_after=canonical_duration(
            defn.get("DeregisterCriticalServiceAfter")
            or check.get("DeregisterCriticalServiceAfter")
        ),
        notes=str(check.get("Notes") or ""),
    )


def service_from_api(
    agent: str, svc: Mapping[str, Any], checks: Iterable[Mapping[str, Any]]
) -> ServiceReg:
    """An `AgentService` plus the checks whose ServiceID is its ID."""
    sid = str(svc.get("ID") or svc.get("Service"))
    mine = [check_from_api(c) for c in checks if c.get("ServiceID") == sid]
    meta = dict(svc.get("Meta") or {})
    digest = meta.pop(CHECKS_DIGEST_META, None)
    return ServiceReg(
        agent=agent,
        id=sid,
        name=str(svc.get("Service", "")),
        tags=tuple(sorted(svc.get("Tags") or ())),
        address=str(svc.get("Address") or ""),
        port=int(svc.get("Port") or 0),
        meta=frozen_map(meta),
        checks=tuple(sorted(mine, key=lambda c: c.id)),
        checks_digest=digest,
    )


def external_node_from_api(data: Mapping[str, Any]) -> ExternalNode:
    """A `/v1/catalog/node/<n>` answer as an `ExternalNode`."""
    node = data.get("Node") or {}
    services = (data.get("Services") or {}).values()
    return ExternalNode(
        node=str(node.get("Node", "")),
        address=str(node.get("Address", "")),
        meta=frozen_map(node.get("Meta")),
        services=tuple(
            sorted(
                (
                    ExternalService(
                        id=str(s.get("ID") or s.get("Service")),
                        name=str(s.get("Service", "")),
                        tags=tuple(sorted(s.get("Tags") or ())),
                        address=str(s.get("Address") or ""),
                        port=int(s.get("Port") or 0),
                        meta=frozen_map(s.get("Meta")),
                    )
                    for s in services
                ),
                key=lambda s: s.id,
            )
        ),
    )


def minimal_prefixes(prefixes: Iterable[str]) -> tuple[str, ...]:
    """Drop prefixes another prefix already covers (a recursive read is a string prefix)."""
    kept: list[str] = []
    for p in sorted(set(prefixes)):
        if not any(p.startswith(k) for k in kept):
            kept.append(p)
    return tuple(kept)


# -- reading ---------------------------------------------------------------------------------


def read_live(client: ConsulClient, desired: Resources) -> LiveState:
    """Everything `plan` needs about the cluster `client` talks to, for `desired`."""
    notes: list[str] = []
    ledger, ledger_index, ledger_parts = _read_ledger(client, desired.ledger_name)
    managed = ledger or Ledger(desired.ledger_name)
    prefixes = minimal_prefixes([*desired.kv_prefixes, *derive_prefixes(managed.ids("kv"))])
    kv, kv_index = _read_kv(client, prefixes)
    svc_agents = {s.agent for s in desired.services.values()}
    svc_agents |= {k.split("/", 1)[0] for k in managed.ids("service")}
    ext_names = set(desired.external_nodes) | set(managed.ids("external_node"))
    # Members serve drift checks, agent addresses and telling agent nodes from external
    # ones; skip them when none of that is needed.
    members: tuple[Member, ...] = ()
    if desired.agents or svc_agents or ext_names:
        members = _read_members(client, notes if desired.agents else [])
    addresses = _agent_addresses(client, desired, members) if svc_agents else {}
    services, agents_read = _read_services(client, sorted(svc_agents), addresses, notes)

    catalog_nodes, externals = _read_external(client, ext_names)

    acl = _read_acl(client, desired, managed, notes)
    objects = read_objects(client, desired, managed, acl.get("acl_enabled"))
    return LiveState(
        address=client.address,
        prefixes=prefixes,
        kv=kv,
        kv_index=kv_index,
        ledger=ledger,
        ledger_index=ledger_index,
        ledger_parts=ledger_parts,
        services=services,
        agents_read=tuple(agents_read),
        external_nodes=externals,
        catalog_nodes=catalog_nodes,
        members=members,
        agent_addresses=addresses,
        objects=objects.objects,
        object_indexes=objects.indexes,
        object_ids=objects.ids,
        unmanaged_objects=tuple(objects.unmanaged),
        catalog_services=objects.catalog_services,
        notes=tuple(notes + acl.pop("notes") + objects.notes),
        **acl,
    )


def _read_ledger(client: ConsulClient, name: str) -> tuple[Ledger | None, int, tuple[str, ...]]:
    """The ledger, its header's ModifyIndex, and the part folders present (to clean up)."""
    entry = client.kv_get(ledger_key(name))
    if entry is None:
        return None, 0, ()
    header, index = kv_from_api(entry)
    parts: dict[str, bytes] = {}
    if b'"parts"' in header.value:
        # One recursive read fetches every part of every generation.
        parts = {p.key: p.value for p, _ in map(kv_from_api, client.kv_list(parts_prefix(name)))}
    folders = sorted({f"{parts_prefix(name)}{g}/" for k in parts if (g := generation_of(k, name))})
    try:
        return decode_ledger(header.value, parts), index, tuple(folders)
    except ValueError as exc:
        raise GitkvError(
            f"{header.key} exists but is not a readable gitkv ownership ledger ({exc}); "
            "move that key away or give the spec another name"
        ) from exc


def _read_kv(
    client: ConsulClient, prefixes: Iterable[str]
) -> tuple[dict[str, KVPair], dict[str, int]]:
    kv: dict[str, KVPair] = {}
    index: dict[str, int] = {}
    for prefix in prefixes:
        for entry in client.kv_list(prefix):
            if entry["Key"].startswith(LEDGER_PREFIX):
                continue  # gitkv's own bookkeeping is never a resource
            pair, idx = kv_from_api(entry)
            kv[pair.key] = pair
            index[pair.key] = idx
    return kv, index


def _read_members(client: ConsulClient, notes: list[str]) -> tuple[Member, ...]:
    try:
        raw = client.agent_members()
    except ClusterError as exc:
        notes.append(f"agent members not read: {exc}")
        return ()
    return tuple(
        sorted(
            (
                Member(
                    name=str(m.get("Name", "")),
                    addr=str(m.get("Addr", "")),
                    status=MEMBER_STATUS.get(int(m.get("Status") or 0), "none"),
                    server=(m.get("Tags") or {}).get("role") == "consul",
                )
                for m in raw
            ),
            key=lambda m: m.name,
        )
    )


def _agent_addresses(
    client: ConsulClient, desired: Resources, members: tuple[Member, ...]
) -> dict[str, str]:
    """HTTP address per agent name: the spec's, the one we talk to, else bind/gossip IP with
    the port of the address we talk to (agents of one cluster usually share a port)."""
    main = urlsplit(client.address)
    port = main.port or (443 if main.scheme == "https" else 8500)
    out: dict[str, str] = {}
    for m in members:
        if m.addr:
            out[m.name] = f"{main.scheme}://{m.addr}:{port}"
    for name, agent in desired.agents.items():
        if agent.bind:
            out[name] = f"{main.scheme}://{agent.bind}:{port}"
    try:
        self_name = (client.agent_self().get("Config") or {}).get("NodeName")
    except ClusterError:
        self_name = None
    if self_name:
        out[str(self_name)] = client.address
    for name, agent in desired.agents.items():
        if agent.http_address:
            out[name] = agent.http_address
    return out


def _read_services(
    client: ConsulClient, agents: list[str], addresses: Mapping[str, str], notes: list[str]
) -> tuple[dict[str, ServiceReg], list[str]]:
    services: dict[str, ServiceReg] = {}
    for agent in agents:
        raw_services, raw_checks = _agent_view(client, agent, addresses.get(agent), notes)
        for svc in raw_services:
            reg = service_from_api(agent, svc, raw_checks)
            services[service_key(agent, reg.id)] = reg
    return services, agents


def _agent_view(
    client: ConsulClient, agent: str, address: str | None, notes: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An agent's services and checks from the agent itself, else from the catalog."""
    if address:
        sub = client if address == client.address else client.for_address(address)
        try:
            return list(sub.agent_services().values()), list(sub.agent_checks().values())
        except ClusterError as exc:
            if exc.status is not None:
                raise
            notes.append(
                f"agent {agent} unreachable at {address}; read its services from the catalog"
            )
        finally:
            if sub is not client:
                sub.close()
    node = client.catalog_node(agent)
    if not node:
        return [], []
    return list((node.get("Services") or {}).values()), client.health_node(agent)


def _read_external(
    client: ConsulClient, names: Iterable[str]
) -> tuple[tuple[str, ...], dict[str, ExternalNode]]:
    names = set(names)
    if not names:
        # No external nodes in the spec or the ledger: nothing to diff, nothing to read.
        return (), {}
    catalog = tuple(sorted(str(n.get("Node")) for n in client.catalog_nodes()))
    present = set(catalog)
    out: dict[str, ExternalNode] = {}
    for name in sorted(names):
        if name not in present:
            continue
        data = client.catalog_node(name)
        if data:
            out[name] = external_node_from_api(data)
    return catalog, out


def _read_acl(
    client: ConsulClient, desired: Resources, managed: Ledger, notes: list[str]
) -> dict[str, Any]:
    empty: dict[str, Any] = {"notes": []}
    wanted_kinds = ("acl_policy", "acl_role", "acl_token", "acl_auth_method", "acl_binding_rule")
    if not desired.has_acl and not any(managed.ids(k) for k in wanted_kinds):
        return empty
    policies_raw = client.acl_list("policies")
    if policies_raw is None:
        return {
            "acl_enabled": False,
            "notes": [
                "ACLs are disabled on the cluster (401 ACL support disabled); ACL resources skipped"
            ],
        }
    roles_raw = client.acl_list("roles") or []
    tokens_raw = client.acl_list("tokens") or []
    unmanaged: list[tuple[str, str]] = []

    want_pol = set(desired.policies) | set(managed.ids("acl_policy"))
    policies: dict[str, AclPolicy] = {}
    policy_ids: dict[str, str] = {}
    for stub in policies_raw:
        name, pid = str(stub.get("Name")), str(stub.get("ID"))
        if pid in BUILTIN_POLICY_IDS or name.startswith("builtin/"):
            continue
        if name not in want_pol:
            unmanaged.append(("acl_policy", name))
            continue
        full = client.acl_read("policy", pid) or stub  # list stubs carry no Rules
        policies[name] = AclPolicy(
            name=name,
            description=str(full.get("Description") or ""),
            rules=str(full.get("Rules") or "").strip(),
            datacenters=tuple(sorted(full.get("Datacenters") or ())),
        )
        policy_ids[name] = pid

    want_role = set(desired.roles) | set(managed.ids("acl_role"))
    roles: dict[str, AclRole] = {}
    role_ids: dict[str, str] = {}
    for r in roles_raw:
        name = str(r.get("Name"))
        if name not in want_role:
            unmanaged.append(("acl_role", name))
            continue
        roles[name] = AclRole(
            name=name,
            description=str(r.get("Description") or ""),
            policies=tuple(sorted(str(p.get("Name")) for p in r.get("Policies") or ())),
        )
        role_ids[name] = str(r.get("ID"))

    tokens, token_ids, other = _match_tokens(desired, managed, tokens_raw)
    unmanaged.extend(("acl_token", d) for d in other)
    return {
        "acl_enabled": True,
        "policies": policies,
        "policy_ids": policy_ids,
        "roles": roles,
        "role_ids": role_ids,
        "tokens": tokens,
        "token_ids": token_ids,
        "unmanaged_acl": tuple(sorted(unmanaged)),
        "notes": [],
    }


def _match_tokens(
    desired: Resources, managed: Ledger, stubs: list[dict[str, Any]]
) -> tuple[dict[str, AclToken], dict[str, str], list[str]]:
    """Find gitkv's tokens among the live ones: by the AccessorID the ledger remembers, else
    by description. Only public fields are kept (older servers list SecretIDs; dropped)."""
    by_accessor = {str(s.get("AccessorID")): s for s in stubs}
    names = set(desired.tokens) | set(managed.ids("acl_token"))
    tokens: dict[str, AclToken] = {}
    ids: dict[str, str] = {}
    claimed: set[str] = set()
    for name in sorted(names):
        stub = by_accessor.get(managed.token_accessors.get(name, ""))
        if stub is None and name in desired.tokens:
            want = desired.tokens[name].effective_description
            hits = [s for s in stubs if s.get("Description") == want]
            stub = hits[0] if len(hits) == 1 else None
        if stub is None:
            continue
        accessor = str(stub.get("AccessorID"))
        claimed.add(accessor)
        ids[name] = accessor
        tokens[name] = AclToken(
            name=name,
            description=str(stub.get("Description") or ""),
            policies=tuple(sorted(str(p.get("Name")) for p in stub.get("Policies") or ())),
            roles=tuple(sorted(str(r.get("Name")) for r in stub.get("Roles") or ())),
            local=bool(stub.get("Local")),
        )
    other = [
        str(s.get("Description") or s.get("AccessorID"))
        for s in stubs
        if str(s.get("AccessorID")) not in claimed | BUILTIN_TOKEN_IDS
    ]
    return tokens, ids, other
