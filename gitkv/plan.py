"""A plan is a value: what would change, computed purely from desired and live state.

`plan(desired, live)` does no I/O. The result lists the changes (in apply order), the live
ModifyIndex of every KV key it touches (apply's CAS guard: 0 means "must not exist"), the
ownership ledger before and after, unmanaged resources (reported, never touched), managed
resources that left the spec while prune is off ("orphans"), and agent drift (read-only).

Invariant (tested): applying any prefix of `plan.changes` and planning again yields exactly
the remaining changes, and applying all of them yields an empty plan.

A plan serializes to JSON (`-out FILE`) without any secret: token secrets are `SecretRef`s.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from gitkv.errors import GitkvError, GuardError
from gitkv.ledger import KINDS, Ledger
from gitkv.plan_objects import (
    OBJECT_KINDS,
    decode_object,
    intention_warnings,
    object_maps,
    sub_rank,
)
from gitkv.resources import (
    AclPolicy,
    AclRole,
    AclToken,
    CheckDef,
    ExternalNode,
    ExternalService,
    KVPair,
    Resources,
    SecretRef,
    ServiceReg,
    checks_digest,
)
from gitkv.state import LiveState

__all__ = [
    "AgentDrift",
    "Change",
    "Plan",
    "check_guards",
    "plan",
    "plans_from_json",
    "plans_to_json",
    "summary",
]

CREATE, UPDATE, DELETE, NOOP = "create", "update", "delete", "noop"
PLAN_FORMAT = "gitkv-plan"


@dataclass(frozen=True)
class Change:
    """One resource change. `before` is the live value (None for create), `after` the
    desired one (None for delete); both are `gitkv.resources` values."""

    action: str
    kind: str
    id: str
    before: Any = None
    after: Any = None


@dataclass(frozen=True)
class AgentDrift:
    """An agent that differs from the spec: `missing`, `failed`, `left`, `leaving` or
    `unexpected` (a member the spec does not list). Reported only; gitkv never acts on it."""

    agent: str
    problem: str


@dataclass(frozen=True)
class Plan:
    """The changes for one datacenter plus everything apply needs to do them safely."""

    datacenter: str
    address: str
    changes: tuple[Change, ...] = ()
    kv_indexes: Mapping[str, int] = field(default_factory=dict)
    ledger_before: Ledger | None = None
    ledger_index: int = 0
    ledger_parts: tuple[str, ...] = ()
    ledger_after: Ledger | None = None
    acl_ids: Mapping[str, str] = field(default_factory=dict)
    object_indexes: Mapping[str, int] = field(default_factory=dict)
    object_ids: Mapping[str, str] = field(default_factory=dict)
    agent_addresses: Mapping[str, str] = field(default_factory=dict)
    prefixes: tuple[str, ...] = ()
    prefix_counts: Mapping[str, int] = field(default_factory=dict)
    unmanaged: tuple[tuple[str, str], ...] = ()
    orphans: tuple[tuple[str, str], ...] = ()
    drift: tuple[AgentDrift, ...] = ()
    notes: tuple[str, ...] = ()
    prune: bool = False
    unchanged: int = 0
    targets: tuple[str, ...] = ()  # `--target`s of a partial plan (`gitkv.targets`)

    @property
    def counts(self) -> dict[str, int]:
        out = {CREATE: 0, UPDATE: 0, DELETE: 0}
        for c in self.changes:
            out[c.action] += 1
        return out

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    @property
    def ledger_changed(self) -> bool:
        return self.ledger_after is not None and self.ledger_after != self.ledger_before

    def to_dict(self) -> dict[str, Any]:
        return {
            "datacenter": self.datacenter,
            "address": self.address,
            "changes": [_change_to_dict(c) for c in self.changes],
            "kv_indexes": dict(self.kv_indexes),
            "ledger_before": self.ledger_before.to_dict() if self.ledger_before else None,
            "ledger_index": self.ledger_index,
            "ledger_parts": list(self.ledger_parts),
            "ledger_after": self.ledger_after.to_dict() if self.ledger_after else None,
            "acl_ids": dict(self.acl_ids),
            "object_indexes": dict(self.object_indexes),
            "object_ids": dict(self.object_ids),
            "agent_addresses": dict(self.agent_addresses),
            "prefixes": list(self.prefixes),
            "prefix_counts": dict(self.prefix_counts),
            "unmanaged": [list(u) for u in self.unmanaged],
            "orphans": [list(o) for o in self.orphans],
            "drift": [{"agent": d.agent, "problem": d.problem} for d in self.drift],
            "notes": list(self.notes),
            "prune": self.prune,
            "unchanged": self.unchanged,
            "targets": list(self.targets),
            "summary": self.counts,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Plan:
        def ledger(x: Any) -> Ledger | None:
            return Ledger.from_dict(x) if x else None

        return cls(
            datacenter=d["datacenter"],
            address=d["address"],
            changes=tuple(_change_from_dict(c) for c in d.get("changes", ())),
            kv_indexes={str(k): int(v) for k, v in d.get("kv_indexes", {}).items()},
            ledger_before=ledger(d.get("ledger_before")),
            ledger_index=int(d.get("ledger_index", 0)),
            ledger_parts=tuple(d.get("ledger_parts", ())),
            ledger_after=ledger(d.get("ledger_after")),
            acl_ids=dict(d.get("acl_ids", {})),
            object_indexes={str(k): int(v) for k, v in d.get("object_indexes", {}).items()},
            object_ids=dict(d.get("object_ids", {})),
            agent_addresses=dict(d.get("agent_addresses", {})),
            prefixes=tuple(d.get("prefixes", ())),
            prefix_counts={str(k): int(v) for k, v in d.get("prefix_counts", {}).items()},
            unmanaged=tuple((str(a), str(b)) for a, b in d.get("unmanaged", ())),
            orphans=tuple((str(a), str(b)) for a, b in d.get("orphans", ())),
            drift=tuple(AgentDrift(x["agent"], x["problem"]) for x in d.get("drift", ())),
            notes=tuple(d.get("notes", ())),
            prune=bool(d.get("prune", False)),
            unchanged=int(d.get("unchanged", 0)),
            targets=tuple(str(t) for t in d.get("targets", ())),
        )


# -- computing a plan (pure) -----------------------------------------------------------------


def _token_eq(a: AclToken, b: AclToken) -> bool:
    # SecretIDs are immutable in Consul and never read back: compare everything else.
    def norm(t: AclToken) -> AclToken:
        return replace(t, secret=None, description=t.effective_description)

    return norm(a) == norm(b)


def observable_checks(checks: tuple[CheckDef, ...]) -> tuple[CheckDef, ...]:
    """The part of check definitions Consul's agent API shows back (no target, TTL, ...)."""
    return tuple(
        replace(
            c, target="", ttl="", method="", tls_skip_verify=False, deregister_critical_after=""
        )
        for c in checks
    )


def _service_eq(live: ServiceReg, want: ServiceReg) -> bool:
    # What the API shows must match, and the rest is vouched for by the digest gitkv stored
    # in the service's meta when it registered it.
    if replace(live, checks=observable_checks(live.checks)) != replace(
        want, checks=observable_checks(want.checks)
    ):
        return False
    if not want.checks or live.checks_digest == checks_digest(want.checks):
        return True
    # Registered without gitkv (no digest, e.g. adopted by `gitkv import`): equal when the
    # agent shows the full definitions (Consul's check `Definition`) and they match.
    return live.checks_digest is None and live.checks == want.checks


def _kind_maps(desired: Resources, live: LiveState) -> dict[str, tuple[Mapping, Mapping]]:
    return {
        "acl_policy": (desired.policies, live.policies),
        "acl_role": (desired.roles, live.roles),
        "acl_token": (desired.tokens, live.tokens),
        "kv": (desired.kv, live.kv),
        "service": (desired.services, live.services),
        "external_node": (desired.external_nodes, live.external_nodes),
        **object_maps(desired, live),
    }


@dataclass
class _Diff:
    ups: list[Change] = field(default_factory=list)
    deletes: list[Change] = field(default_factory=list)
    unmanaged: list[tuple[str, str]] = field(default_factory=list)
    orphans: list[tuple[str, str]] = field(default_factory=list)
    managed_after: dict[str, set[str]] = field(default_factory=dict)
    unchanged: int = 0


def _diff_kind(
    kind: str,
    want: Mapping[str, Any],
    have: Mapping[str, Any],
    managed: Ledger,
    prune: bool,
    out: _Diff,
    ignore: Callable[[str], bool] = lambda _id: False,
) -> None:
    eqs: dict[str, Callable[[Any, Any], bool]] = {"acl_token": _token_eq, "service": _service_eq}
    eq = eqs.get(kind, lambda a, b: a == b)
    keep = out.managed_after.setdefault(kind, set(want))
    for ident in sorted(want):
        after, before = want[ident], have.get(ident)
        if before is None:
            out.ups.append(Change(CREATE, kind, ident, None, after))
        elif not eq(before, after):
            out.ups.append(Change(UPDATE, kind, ident, before, after))
        else:
            out.unchanged += 1
    owned = set(managed.ids(kind))
    for ident in sorted(set(have) - set(want)):
        if ident in owned:
            if prune:
                out.deletes.append(Change(DELETE, kind, ident, have[ident], None))
            else:
                out.orphans.append((kind, ident))
                keep.add(ident)
        elif not ignore(ident):
            out.unmanaged.append((kind, ident))
    # Managed ids that are neither wanted nor live are simply forgotten.


def plan(
    desired: Resources,
    live: LiveState,
    ledger: Ledger | None = None,
    *,
    prune: bool | None = None,
) -> Plan:
    """The changes that make `live` match `desired`.

    :param ledger: the ownership record (default: the one read with `live`).
    :param prune: delete managed resources that left the spec; default `desired.prune`,
        and `True` here cannot be overridden by the spec saying False.
    """
    ledger = ledger if ledger is not None else live.ledger
    managed = ledger or Ledger(desired.ledger_name)
    prune = bool(desired.prune or prune)
    out = _Diff()
    notes = list(live.notes)
    members = {m.name for m in live.members}
    catalog_only = set(live.catalog_nodes) - members

    for kind, (want, have) in _kind_maps(desired, live).items():
        if kind.startswith("acl_") and live.acl_enabled is False:
            # Cannot be read or written: keep whatever the ledger said.
            out.managed_after[kind] = set(managed.ids(kind))
            continue
        ignore = (lambda i: i.split("/", 1)[-1] == "consul") if kind == "service" else None
        _diff_kind(kind, want, have, managed, prune, out, ignore or (lambda _i: False))
        if kind == "external_node":
            # Catalog nodes without an agent that gitkv does not manage.
            out.unmanaged.extend(
                ("external_node", n)
                for n in sorted(catalog_only - set(want) - set(have) - set(managed.ids(kind)))
            )

    out.unmanaged.extend(live.unmanaged_acl)
    out.unmanaged.extend(live.unmanaged_objects)
    changes = tuple(_ordered(out.ups, out.deletes))
    kv_indexes = {
        c.id: (live.kv_index.get(c.id, 0) if c.action != CREATE else 0)
        for c in changes
        if c.kind == "kv"
    }
    # Live AccessorIDs win; the ledger's are kept when tokens could not be read (ACLs off).
    accessors = {
        n: live.token_ids.get(n) or managed.token_accessors.get(n, "")
        for n in out.managed_after["acl_token"]
    }
    accessors = {n: a for n, a in accessors.items() if a}
    managed_after = {k: out.managed_after.get(k, set()) - _deleted(changes, k) for k in KINDS}
    ledger_after = Ledger.build(
        desired.ledger_name,
        managed_after,
        accessors,
        desired.digest,
        desired.revision,
        _kept_ids(managed, live, managed_after),
    )
    if live.acl_enabled is False and desired.has_acl:
        notes.append("the spec has ACL resources but the cluster has ACLs disabled")
    notes.extend(intention_warnings(desired, live))
    acl_ids = {
        **{f"acl_policy/{n}": i for n, i in live.policy_ids.items()},
        **{f"acl_role/{n}": i for n, i in live.role_ids.items()},
        **{f"acl_token/{n}": i for n, i in live.token_ids.items()},
    }
    return Plan(
        datacenter=desired.datacenter,
        address=live.address,
        changes=changes,
        kv_indexes=kv_indexes,
        ledger_before=ledger,
        ledger_index=live.ledger_index,
        ledger_parts=live.ledger_parts,
        ledger_after=ledger_after,
        acl_ids=acl_ids,
        object_indexes=_touched(changes, live.object_indexes),
        object_ids=_touched(changes, live.object_ids),
        agent_addresses=dict(live.agent_addresses),
        prefixes=live.prefixes,
        prefix_counts=_prefix_counts(live.prefixes, live.kv),
        unmanaged=tuple(sorted(set(out.unmanaged))),
        orphans=tuple(out.orphans),
        drift=agent_drift(desired, live),
        notes=tuple(notes),
        prune=prune,
        unchanged=out.unchanged,
    )


def _kept_ids(managed: Ledger, live: LiveState, after: Mapping[str, set[str]]) -> dict[str, str]:
    """Server IDs the ledger keeps (binding rules): live ones win, else the old record."""
    out = {}
    for ident in after.get("acl_binding_rule", ()):
        key = f"acl_binding_rule/{ident}"
        found = live.object_ids.get(key) or managed.object_ids.get(key)
        if found:
            out[key] = found
    return out


def _touched(changes: Iterable[Change], values: Mapping[str, Any]) -> dict[str, Any]:
    """The `<kind>/<id>` entries of `values` that the plan's changes need at apply time."""
    keys = (f"{c.kind}/{c.id}" for c in changes)
    return {k: values[k] for k in keys if k in values}


def _deleted(changes: Iterable[Change], kind: str) -> set[str]:
    return {c.id for c in changes if c.kind == kind and c.action == DELETE}


def _ordered(ups: list[Change], deletes: list[Change]) -> list[Change]:
    """Apply order: creates/updates in dependency order (policies before roles before
    tokens, service-defaults before the routers that need their protocol), then deletes in
    the reverse order (tokens before the policies they use, routers before defaults)."""
    rank = {k: i for i, k in enumerate(KINDS)}

    def key(c: Change) -> tuple[int, int]:
        return rank[c.kind], sub_rank(c.kind, c.id)

    return sorted(ups, key=key) + sorted(deletes, key=key, reverse=True)


def _prefix_counts(prefixes: Sequence[str], kv: Mapping[str, KVPair]) -> dict[str, int]:
    counts = dict.fromkeys(prefixes, 0)
    for key in kv:
        for p in prefixes:
            if key.startswith(p):
                counts[p] += 1
    return counts


def agent_drift(desired: Resources, live: LiveState) -> tuple[AgentDrift, ...]:
    """Spec agents versus `/v1/agent/members` (only when the spec lists agents)."""
    if not desired.agents:
        return ()
    seen = {m.name: m for m in live.members}
    out = []
    for name in sorted(desired.agents):
        m = seen.get(name)
        if m is None:
            out.append(AgentDrift(name, "missing"))
        elif m.status != "alive":
            out.append(AgentDrift(name, m.status))
    out.extend(AgentDrift(n, "unexpected") for n in sorted(set(seen) - set(desired.agents)))
    return tuple(out)


# -- guards ---------------------------------------------------------------------------------


def check_guards(
    plan: Plan, *, max_deletes: int | None = None, allow_empty_prefix: bool = False
) -> None:
    """Refuse plans that look like mistakes.

    :raises GuardError: more deletes than `max_deletes`, or a plan that would leave a KV
        prefix that has keys today with none at all (unless `allow_empty_prefix`).
    """
    deletes = [c for c in plan.changes if c.action == DELETE]
    if max_deletes is not None and len(deletes) > max_deletes:
        raise GuardError(
            f"the plan deletes {len(deletes)} resources, more than --max-deletes {max_deletes}; "
            "check the spec, or raise --max-deletes if this is intended"
        )
    if allow_empty_prefix:
        return
    for prefix in plan.prefixes:
        live = plan.prefix_counts.get(prefix, 0)
        gone = sum(1 for c in deletes if c.kind == "kv" and c.id.startswith(prefix))
        added = sum(
            1
            for c in plan.changes
            if c.kind == "kv" and c.action == CREATE and c.id.startswith(prefix)
        )
        if gone and live - gone + added <= 0:
            raise GuardError(
                f"the plan deletes all {live} keys under {prefix!r}, leaving it empty; "
                "pass --allow-empty-prefix if that is really intended"
            )


def summary(plans: Iterable[Plan]) -> dict[str, int]:
    """Totals over several datacenters' plans: `{"create": n, "update": m, "delete": k}`."""
    total = {CREATE: 0, UPDATE: 0, DELETE: 0}
    for p in plans:
        for k, v in p.counts.items():
            total[k] += v
    return total


# -- JSON (plan files) -----------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, KVPair):
        return {
            "key": value.key,
            "flags": value.flags,
            "value": base64.b64encode(value.value).decode(),
        }
    if isinstance(value, SecretRef):
        return {"env": value.env} if value.env is not None else {"file": value.file}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def _pairs(x: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(a), str(b)) for a, b in x or ())


def _decode(kind: str, d: Mapping[str, Any] | None) -> Any:
    if d is None:
        return None
    if kind == "kv":
        return KVPair(d["key"], base64.b64decode(d["value"]), int(d.get("flags", 0)))
    if kind == "service":
        return ServiceReg(
            agent=d["agent"],
            id=d["id"],
            name=d["name"],
            tags=tuple(d.get("tags", ())),
            address=d.get("address", ""),
            port=int(d.get("port", 0)),
            meta=_pairs(d.get("meta")),
            checks=tuple(CheckDef(**c) for c in d.get("checks", ())),
        )
    if kind == "external_node":
        return ExternalNode(
            node=d["node"],
            address=d["address"],
            meta=_pairs(d.get("meta")),
            services=tuple(
                ExternalService(
                    **{**s, "tags": tuple(s.get("tags", ())), "meta": _pairs(s.get("meta"))}
                )
                for s in d.get("services", ())
            ),
        )
    if kind == "acl_policy":
        return AclPolicy(**{**d, "datacenters": tuple(d.get("datacenters", ()))})
    if kind == "acl_role":
        return AclRole(**{**d, "policies": tuple(d.get("policies", ()))})
    if kind == "acl_token":
        secret = d.get("secret")
        return AclToken(
            **{
                **d,
                "policies": tuple(d.get("policies", ())),
                "roles": tuple(d.get("roles", ())),
                "secret": SecretRef(**secret) if secret else None,
            }
        )
    if kind in OBJECT_KINDS:
        return decode_object(kind, d)
    raise GitkvError(f"plan file names an unknown resource kind {kind!r}")


def _change_to_dict(c: Change) -> dict[str, Any]:
    return {
        "action": c.action,
        "kind": c.kind,
        "id": c.id,
        "before": _encode(c.before),
        "after": _encode(c.after),
    }


def _change_from_dict(d: Mapping[str, Any]) -> Change:
    return Change(
        d["action"],
        d["kind"],
        d["id"],
        _decode(d["kind"], d["before"]),
        _decode(d["kind"], d["after"]),
    )


def plans_to_json(plans: Sequence[Plan], *, indent: int | None = 2) -> str:
    """A plan file: `{"format": "gitkv-plan", "version": 1, "plans": [...]}`."""
    doc = {
        "format": PLAN_FORMAT,
        "version": 1,
        "summary": summary(plans),
        "plans": [p.to_dict() for p in plans],
    }
    return json.dumps(doc, indent=indent, sort_keys=False)


def plans_from_json(text: str) -> tuple[Plan, ...]:
    """Parse a plan file.

    :raises GitkvError: when the text is not a gitkv plan.
    """
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GitkvError(f"not a gitkv plan file: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != PLAN_FORMAT:
        raise GitkvError('not a gitkv plan file (missing "format": "gitkv-plan")')
    if doc.get("version") != 1:
        raise GitkvError(f"unsupported plan file version {doc.get('version')!r}")
    return tuple(Plan.from_dict(p) for p in doc.get("plans", ()))
