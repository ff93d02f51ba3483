"""Live `/v1` answers -> the `gitkv.resources` values a spec would produce, or a reason why not.

Each function is pure. Whatever a spec cannot express exactly — a sidecar proxy, a check with
headers, a token made by a login, a token without a description (gitkv finds tokens by it) —
becomes a `Skipped` with the reason, never an approximation: a spec that drops a field would
make the next apply change the cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitkv.ledger import LEDGER_PREFIX
from gitkv.resources import (
    AclPolicy,
    AclRole,
    AclToken,
    ExternalNode,
    KVPair,
    ServiceReg,
    service_key,
)
from gitkv.spec.acl_rules import check_rules
from gitkv.state import (
    BUILTIN_POLICY_IDS,
    BUILTIN_TOKEN_IDS,
    check_from_api,
    external_node_from_api,
    kv_from_api,
    service_from_api,
)

__all__ = [
    "BOOKKEEPING_PREFIX",
    "NAME",
    "Skipped",
    "acl_values",
    "external_values",
    "kv_values",
    "service_values",
    "token_name",
]

# gitkv's own keys (ledger, watcher status and lock): never imported unless asked for.
BOOKKEEPING_PREFIX = "gitkv/"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")  # the spec's node and service names
_NAME = NAME
_ACL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_META_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_SPEC_CHECK_KINDS = {"http", "tcp", "udp", "grpc", "h2ping", "ttl", "script"}
# Check definition fields the spec has no place for (their zero values are fine).
_CHECK_EXTRAS = (
    "Header",
    "Body",
    "TLSServerName",
    "GRPCUseTLS",
    "H2PingUseTLS",
    "DisableRedirects",
    "Shell",
    "DockerContainerID",
    "AliasNode",
    "AliasService",
    "OSService",
    "SuccessBeforePassing",
    "FailuresBeforeWarning",
    "FailuresBeforeCritical",
)
_DEFAULT_OUTPUT_MAX = 4096


@dataclass(frozen=True, order=True)
class Skipped:
    """A live object left out of the spec, and why (printed by `gitkv import`)."""

    kind: str
    id: str
    reason: str


def _empty(value: Any) -> bool:
    """Zero at every depth (Consul prints absent structs as `{"Mode": "", ...}`)."""
    if isinstance(value, Mapping):
        return all(_empty(v) for v in value.values())
    if isinstance(value, list | tuple):
        return not value
    return value in (None, "", 0, False)


def _meta_problem(meta: Mapping[str, Any] | None) -> str:
    """Why a meta map cannot be written in a spec ("" when it can): the spec's own rules."""
    meta = meta or {}
    if len(meta) > 64:
        return f"{len(meta)} meta pairs (a spec allows 64)"
    for key, val in meta.items():
        if not _META_KEY.match(key) or len(key) > 128 or len(str(val)) > 512:
            return f"meta key {key!r} is outside what a spec allows"
        if key.startswith(("consul-", "gitkv-")):
            return f"meta key {key!r} uses a reserved prefix"
    return ""


# -- KV --------------------------------------------------------------------------------------


def kv_values(
    entries: Iterable[Mapping[str, Any]], *, bookkeeping: bool = False
) -> dict[str, KVPair]:
    """`/v1/kv/<prefix>?recurse` entries as pairs; gitkv's own keys only when `bookkeeping`.

    Every KV value is representable: text inline, anything else as a file of its bytes."""
    out: dict[str, KVPair] = {}
    for entry in entries:
        key = str(entry["Key"])
        if key.startswith(LEDGER_PREFIX) or (
            key.startswith(BOOKKEEPING_PREFIX) and not bookkeeping
        ):
            continue
        pair, _ = kv_from_api(entry)
        out[key] = pair
    return out


# -- agent services ----------------------------------------------------------------------


def _auto_tagged(svc: Mapping[str, Any]) -> bool:
    """Whether TaggedAddresses hold only what the agent derives from Address/Port itself."""
    tagged = svc.get("TaggedAddresses") or {}
    for name, addr in tagged.items():
        if name not in ("lan", "wan", "lan_ipv4", "wan_ipv4", "lan_ipv6", "wan_ipv6"):
            return False
        if (addr or {}).get("Address") not in ("", svc.get("Address")) or (addr or {}).get(
            "Port"
        ) not in (0, svc.get("Port")):
            return False
    return True


def _service_problem(svc: Mapping[str, Any]) -> str:
    name, sid = str(svc.get("Service", "")), str(svc.get("ID") or svc.get("Service", ""))
    if svc.get("Kind"):
        return f"a {svc['Kind']} service (the spec has no proxies or gateways)"
    if not _empty(svc.get("Proxy")) or not _empty(svc.get("Connect")):
        return "has Connect settings (the spec has no sidecars)"
    if not _NAME.match(name) or not _NAME.match(sid):
        return f"name or id {sid!r} is outside what a spec allows"
    if svc.get("EnableTagOverride"):
        return "EnableTagOverride is set (the spec has no such field)"
    weights = svc.get("Weights") or {"Passing": 1, "Warning": 1}
    if (weights.get("Passing"), weights.get("Warning")) != (1, 1):
        return f"non-default Weights {weights} (the spec has no such field)"
    if not _auto_tagged(svc):
        return "has TaggedAddresses (the spec has no such field)"
    if svc.get("SocketPath") or svc.get("Locality"):
        return "has a SocketPath or Locality (the spec has no such field)"
    if str(svc.get("Address") or "") in ("0.0.0.0", "::", "[::]"):
        return f"address {svc.get('Address')!r} is not a service address in a spec"
    return _meta_problem(svc.get("Meta"))


def _check_problem(check: Mapping[str, Any]) -> str:
    kind = str(check.get("Type", "")).lower()
    cid = check.get("CheckID")
    if kind not in _SPEC_CHECK_KINDS:
        return f"check {cid!r} is of type {kind or 'unknown'!r} (the spec has no such check)"
    defn = check.get("Definition") or {}
    for name in _CHECK_EXTRAS:
        if not _empty(defn.get(name)) or not _empty(check.get(name)):
            return f"check {cid!r} sets {name} (the spec has no such field)"
    out_max = defn.get("OutputMaxSize") or check.get("OutputMaxSize") or 0
    if out_max not in (0, _DEFAULT_OUTPUT_MAX):
        return f"check {cid!r} sets OutputMaxSize (the spec has no such field)"
    interval = check.get("Interval") or defn.get("Interval")
    if kind == "ttl" and interval:
        return f"ttl check {cid!r} has an interval (a spec refuses that)"
    if kind != "ttl" and not interval:
        return f"check {cid!r} has no interval (a spec needs one)"
    target = check_from_api(check).target
    if kind not in ("ttl", "script") and not target:
        return f"check {cid!r}: its target is not readable from the agent"
    return ""


def service_values(
    agent: str, services: Iterable[Mapping[str, Any]], checks: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, ServiceReg], list[Skipped], dict[str, dict[str, list[str]]]]:
    """An agent's services (`/v1/agent/services`, `/v1/agent/checks`) as `ServiceReg`s, the
    services skipped, and the script arguments of script checks (`{service key: {check id:
    args}}`, which a `CheckDef` keeps only joined)."""
    checks, services = list(checks), list(services)
    out: dict[str, ServiceReg] = {}
    skipped: list[Skipped] = []
    script_args: dict[str, dict[str, list[str]]] = {}
    # A service with a sidecar: registering it again from a spec would lose the sidecar.
    with_sidecar = {
        str((s.get("Proxy") or {}).get("DestinationServiceID") or "")
        for s in services
        if s.get("Kind") == "connect-proxy"
    }
    for svc in services:
        sid = str(svc.get("ID") or svc.get("Service"))
        key = service_key(agent, sid)
        if sid == "consul":
            continue  # the servers' own service: never gitkv's
        mine = [c for c in checks if c.get("ServiceID") == sid]
        problem = _service_problem(svc) or next(filter(None, map(_check_problem, mine)), "")
        if not problem and sid in with_sidecar:
            problem = "it has a sidecar proxy (the spec has no sidecars)"
        if problem:
            skipped.append(Skipped("service", key, problem))
            continue
        # A digest gitkv stored in the meta is bookkeeping: service_from_api takes it out.
        out[key] = service_from_api(agent, svc, mine)
        args = {
            str(c.get("CheckID")): list((c.get("Definition") or {}).get("ScriptArgs") or ())
            for c in mine
            if str(c.get("Type", "")).lower() == "script"
        }
        if args:
            script_args[key] = args
    return out, skipped, script_args


# -- external nodes ----------------------------------------------------------------------


def external_values(
    data: Mapping[str, Any], checks: Iterable[Mapping[str, Any]]
) -> ExternalNode | Skipped:
    """A `/v1/catalog/node/<n>` answer of a node without an agent, or why it is skipped."""
    node = data.get("Node") or {}
    name = str(node.get("Node", ""))

    def skip(reason: str) -> Skipped:
        return Skipped("external_node", name, reason)

    if not _NAME.match(name):
        return skip("its name is outside what a spec allows")
    if not node.get("Address"):
        return skip("it has no address")
    if not _empty(node.get("TaggedAddresses")):
        return skip("it has TaggedAddresses (the spec has no such field)")
    if problem := _meta_problem(node.get("Meta")):
        return skip(problem)
    if list(checks):
        return skip("it has health checks (the spec has none for external nodes)")
    for svc in (data.get("Services") or {}).values():
        sid = str(svc.get("ID") or svc.get("Service"))
        problem = _service_problem({**svc, "TaggedAddresses": svc.get("TaggedAddresses") or {}})
        if problem:
            return skip(f"service {sid!r}: {problem}")
    return external_node_from_api(data)


# -- ACL ---------------------------------------------------------------------------------


def token_name(description: str, taken: set[str]) -> str:
    """A spec name for a token: `<n>` for gitkv's own `gitkv:<n>`, else a slug of its
    description, made unique within `taken` (which it is added to)."""
    base = description.removeprefix("gitkv:") if description.startswith("gitkv:") else ""
    if not _NAME.match(base):
        base = re.sub(r"[^A-Za-z0-9_.\-]+", "-", description.lower()).strip("-.")[:60] or "token"
        if not base[0].isalnum():
            base = "t" + base
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


@dataclass
class AclImport:
    policies: dict[str, AclPolicy] = field(default_factory=dict)
    roles: dict[str, AclRole] = field(default_factory=dict)
    tokens: dict[str, AclToken] = field(default_factory=dict)
    accessors: dict[str, str] = field(default_factory=dict)  # token name -> AccessorID
    skipped: list[Skipped] = field(default_factory=list)


def _identities(obj: Mapping[str, Any]) -> str:
    for name in ("ServiceIdentities", "NodeIdentities", "TemplatedPolicies"):
        if obj.get(name):
            return f"has {name} (the spec has no such field)"
    return ""


def acl_values(
    policies: Iterable[Mapping[str, Any]],
    roles: Iterable[Mapping[str, Any]],
    tokens: Iterable[Mapping[str, Any]],
    kinds: frozenset[str],
) -> AclImport:
    """Full policies (with Rules), roles and token list stubs as spec values.

    Tokens are kept by reference: description, links and `local`, never a SecretID (gitkv
    finds a token by its description, so one without a unique description is skipped). A role
    or token naming a policy or role that is not imported is skipped too: its spec would not
    validate."""
    out = AclImport()
    if "acl_policy" in kinds:
        for p in policies:
            name, pid = str(p.get("Name", "")), str(p.get("ID", ""))
            if pid in BUILTIN_POLICY_IDS or name.startswith("builtin/"):
                continue
            if not _ACL_NAME.match(name):
                out.skipped.append(Skipped("acl_policy", name, "name outside a spec's rule"))
                continue
            problems = check_rules(str(p.get("Rules") or ""))
            if problems:
                reason = f"its rules do not validate as a spec's: {problems[0].message}"
                out.skipped.append(Skipped("acl_policy", name, reason))
                continue
            out.policies[name] = AclPolicy(
                name=name,
                description=str(p.get("Description") or ""),
                rules=str(p.get("Rules") or "").strip(),
                datacenters=tuple(sorted(p.get("Datacenters") or ())),
            )
    known_policies = set(out.policies) | {"global-management", "builtin/global-read-only"}

    def missing(links: Iterable[Mapping[str, Any]], known: set[str], what: str) -> str:
        gone = sorted(str(x.get("Name")) for x in links if str(x.get("Name")) not in known)
        return f"names {what} {', '.join(gone)}, not imported" if gone else ""

    if "acl_role" in kinds:
        for r in roles:
            name = str(r.get("Name", ""))
            links = list(r.get("Policies") or ())
            problem = _identities(r) or missing(links, known_policies, "policy")
            if not problem and not _ACL_NAME.match(name):
                problem = "name outside a spec's rule"
            if problem:
                out.skipped.append(Skipped("acl_role", name, problem))
                continue
            out.roles[name] = AclRole(
                name=name,
                description=str(r.get("Description") or ""),
                policies=tuple(sorted(str(x.get("Name")) for x in links)),
            )
    if "acl_token" not in kinds:
        return out
    stubs = [t for t in tokens if str(t.get("AccessorID")) not in BUILTIN_TOKEN_IDS]
    counts: dict[str, int] = {}
    for t in stubs:
        d = str(t.get("Description") or "")
        counts[d] = counts.get(d, 0) + 1
    taken: set[str] = set()
    for t in sorted(stubs, key=lambda s: (str(s.get("Description")), str(s.get("AccessorID")))):
        accessor, desc = str(t.get("AccessorID")), str(t.get("Description") or "")
        pol, rol = list(t.get("Policies") or ()), list(t.get("Roles") or ())
        problem = (
            (t.get("AuthMethod") and f"made by a login to {t['AuthMethod']!r}")
            or (t.get("ExpirationTime") and "it expires (the spec has no expiry)")
            or _identities(t)
            or (not desc and "no description (gitkv finds tokens by their description)")
            or (counts[desc] > 1 and f"its description {desc!r} is not unique")
            or missing(pol, known_policies, "policy")
            or missing(rol, set(out.roles), "role")
        )
        if problem:
            out.skipped.append(Skipped("acl_token", accessor, str(problem)))
            continue
        name = token_name(desc, taken)
        out.tokens[name] = AclToken(
            name=name,
            description=desc,
            policies=tuple(sorted(str(x.get("Name")) for x in pol)),
            roles=tuple(sorted(str(x.get("Name")) for x in rol)),
            local=bool(t.get("Local")),
        )
        out.accessors[name] = accessor
    return out
