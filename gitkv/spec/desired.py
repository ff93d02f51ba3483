"""A validated spec -> the plain `Resources` values that plan compares with the live cluster.

The conversion puts every value in the canonical form `gitkv.resources` defines (sorted tags,
frozen maps, Consul-style durations, Consul's default check ids and names), so a spec and the
cluster it was applied to compare equal. The only I/O is reading KV value files; secrets stay
references (`SecretRef`) until apply resolves them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gitkv.errors import GitkvError
from gitkv.resources import (
    AclPolicy,
    AclRole,
    AclToken,
    AgentSpec,
    CheckDef,
    ExternalNode,
    ExternalService,
    KVPair,
    Resources,
    ServiceReg,
    canonical_duration,
    frozen_map,
)
from gitkv.spec.desired_objects import desired_objects, secret_ref
from gitkv.spec.load import LoadedSpec
from gitkv.spec.model import (
    Agent,
    Check,
    Datacenter,
    KVFile,
    KVJson,
    KVValue,
    Policy,
    Role,
    Service,
    Spec,
    Token,
    check_ids,
    http_url,
)
from gitkv.spec.model import (
    ExternalNode as SpecExternalNode,
)

__all__ = ["Desired", "desired", "desired_datacenter", "kv_bytes"]

Desired = dict[str, Resources]
"""The desired state of each datacenter of a spec, by datacenter name."""


def desired(spec: Spec, base_dir: Path, *, digest: str = "", revision: str = "") -> Desired:
    """Every datacenter of `spec` as `Resources`.

    `base_dir` is where relative file references resolve (`LoadedSpec.base_dir`). `kv_dir`
    trees are not read here: the loader has already expanded them into `kv`.

    :raises GitkvError: when a KV value file cannot be read.
    """
    return {
        name: _resources(spec, name, dc, Path(base_dir), digest, revision)
        for name, dc in spec.datacenters.items()
    }


def desired_datacenter(
    loaded: LoadedSpec, datacenter: str | None = None, *, revision: str = ""
) -> Resources:
    """One datacenter of a loaded spec; `datacenter` may be omitted when there is only one."""
    names = list(loaded.spec.datacenters)
    if datacenter is None:
        if len(names) != 1:
            raise GitkvError(f"the spec has several datacenters ({', '.join(names)}); choose one")
        datacenter = names[0]
    if datacenter not in loaded.spec.datacenters:
        raise GitkvError(f"datacenter {datacenter!r} is not in the spec ({', '.join(names)})")
    dc = loaded.spec.datacenters[datacenter]
    return _resources(loaded.spec, datacenter, dc, loaded.base_dir, loaded.digest, revision)


def _resources(
    spec: Spec, name: str, dc: Datacenter, base_dir: Path, digest: str, revision: str
) -> Resources:
    services = [_service(s) for s in dc.services]
    acl = dc.acl
    return Resources(
        datacenter=name,
        address=http_url(dc.address) if dc.address else None,
        kv={key: KVPair(key, *kv_bytes(entry, base_dir)) for key, entry in dc.kv.items()},
        services={s.key: s for s in services},
        external_nodes={n.node: _external(n) for n in dc.external_services},
        policies={n: _policy(n, p) for n, p in acl.policies.items()},
        roles={n: _role(n, r) for n, r in acl.roles.items()},
        tokens={n: _token(n, t, base_dir) for n, t in acl.tokens.items()},
        agents={n: _agent(n, a) for n, a in dc.agents.items()},
        objects=desired_objects(dc, base_dir),
        prefixes=tuple(dc.kv_prefixes),
        prune=spec.prune,
        name=spec.name or "",
        digest=digest,
        revision=revision,
    )


def kv_bytes(entry: str | KVValue | KVFile | KVJson, base_dir: Path) -> tuple[bytes, int]:
    """The stored bytes and flags of one KV entry of the spec."""
    if isinstance(entry, str):
        return entry.encode(), 0
    if isinstance(entry, KVValue):
        return entry.value.encode(), entry.flags
    if isinstance(entry, KVJson):
        text = json.dumps(entry.json_value, indent=2, ensure_ascii=False)
        return text.encode(), entry.flags
    path = os.path.join(base_dir, entry.file)  # not pathlib: this runs once per key
    try:
        with open(path, "rb") as f:
            return f.read(), entry.flags
    except OSError as exc:
        raise GitkvError(f"cannot read KV value file {path}: {exc.strerror}") from exc


def _service(svc: Service) -> ServiceReg:
    ids = check_ids(svc.service_id, [c.id for c in svc.checks])
    checks = sorted(
        (_check(cid, c, svc.name) for cid, c in zip(ids, svc.checks, strict=True)),
        key=lambda c: c.id,
    )
    return ServiceReg(
        agent=svc.agent,
        id=svc.service_id,
        name=svc.name,
        tags=tuple(sorted(svc.tags)),
        address=svc.address,
        port=svc.port,
        meta=frozen_map(svc.meta),
        checks=tuple(checks),
    )


def _check(check_id: str, check: Check, service_name: str) -> CheckDef:
    kind = check.kind
    target = " ".join(check.args or ()) if kind == "args" else getattr(check, kind) or ""
    return CheckDef(
        id=check_id,
        name=check.name or f"Service '{service_name}' check",
        kind="script" if kind == "args" else kind,
        target="" if kind == "ttl" else target,
        interval=canonical_duration(check.interval),
        timeout=canonical_duration(check.timeout),
        ttl=canonical_duration(check.ttl),
        method=check.method or "",
        tls_skip_verify=check.tls_skip_verify,
        deregister_critical_after=canonical_duration(check.deregister_critical_service_after),
        notes=check.notes,
    )


def _external(node: SpecExternalNode) -> ExternalNode:
    services = sorted(
        (
            ExternalService(
                id=s.service_id,
                name=s.name,
                tags=tuple(sorted(s.tags)),
                address=s.address,
                port=s.port,
                meta=frozen_map(s.meta),
            )
            for s in node.services
        ),
        key=lambda s: s.id,
    )
    return ExternalNode(
        node=node.node, address=node.address, meta=frozen_map(node.meta), services=tuple(services)
    )


def _policy(name: str, policy: Policy) -> AclPolicy:
    return AclPolicy(
        name=name,
        description=policy.description,
        rules=policy.rules.strip(),
        datacenters=tuple(sorted(policy.datacenters)),
    )


def _role(name: str, role: Role) -> AclRole:
    return AclRole(name=name, description=role.description, policies=tuple(sorted(role.policies)))


def _token(name: str, token: Token, base_dir: Path) -> AclToken:
    secret = secret_ref(token.secret, base_dir) if token.secret is not None else None
    return AclToken(
        name=name,
        description=token.description if token.description is not None else f"gitkv:{name}",
        policies=tuple(sorted(token.policies)),
        roles=tuple(sorted(token.roles)),
        local=token.local,
        secret=secret,
    )


def _agent(name: str, agent: Agent) -> AgentSpec:
    return AgentSpec(
        name=name, server=agent.server, bind=agent.bind, http_address=agent.http_address
    )
