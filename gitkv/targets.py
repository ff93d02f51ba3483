"""Partial plans, as `terraform plan -target`: keep only the changes to chosen resources.

A target is `KIND/NAME`: `kv/app/web/replicas`, `service/node1/web`, `acl_token/ci`,
`config_entry/service-defaults/web`. NAME is everything after the first `/` (ids hold
slashes); a NAME ending in `/` names a KV folder and matches every key under it. A targeted
change pulls in the changes it needs to succeed (a token's new policies and roles, a role's
policies, a binding rule's auth method), as Terraform pulls in dependencies.

`target_plan(plan, targets)` is pure. The ownership ledger of a partial plan moves only for
the targeted resources, and it keeps the revision and digest it had: a partial apply has not
applied the commit, so a watcher must not take it as done.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from gitkv.errors import GitkvError
from gitkv.ledger import KINDS, Ledger
from gitkv.plan import DELETE, Change, Plan

__all__ = ["Target", "parse_targets", "partial_note", "target_plan"]


@dataclass(frozen=True)
class Target:
    """One `--target`: a kind and a resource id (or a KV folder, ending in `/`)."""

    kind: str
    name: str

    def matches(self, kind: str, ident: str) -> bool:
        if kind != self.kind:
            return False
        if self.name.endswith("/") and kind == "kv":
            return ident.startswith(self.name)
        return ident == self.name

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def parse_targets(texts: Iterable[str]) -> tuple[Target, ...]:
    """`--target` values as `Target`s.

    :raises GitkvError: for a value without `KIND/NAME` or with an unknown kind.
    """
    out: list[Target] = []
    for text in texts:
        kind, sep, name = text.strip().partition("/")
        if not sep or not kind or not name:
            raise GitkvError(
                f"invalid --target {text!r}: expected KIND/NAME, e.g. kv/app/web/replicas "
                "or acl_policy/web-read"
            )
        if kind not in KINDS:
            known = ", ".join(KINDS)
            raise GitkvError(f"invalid --target {text!r}: unknown kind {kind!r} ({known})")
        target = Target(kind, name)
        if target not in out:
            out.append(target)
    return tuple(out)


def partial_note(targets: Sequence[Target]) -> str:
    shown = ", ".join(str(t) for t in targets)
    return (
        f"partial plan (--target {shown}): changes to other resources are not planned and "
        "will not be applied; run a full plan to see everything"
    )


def _needs(change: Change) -> set[tuple[str, str]]:
    """The resources a created or updated resource names (so they must exist first)."""
    after = change.after
    if after is None:
        return set()
    needs: set[tuple[str, str]] = set()
    if change.kind in ("acl_token", "acl_role"):
        needs |= {("acl_policy", p) for p in getattr(after, "policies", ())}
    if change.kind == "acl_token":
        needs |= {("acl_role", r) for r in getattr(after, "roles", ())}
    if change.kind == "acl_binding_rule":
        method = (getattr(after, "body", None) or {}).get("AuthMethod")
        if method:
            needs.add(("acl_auth_method", str(method)))
    return needs


def _closure(changes: Sequence[Change], targets: Sequence[Target]) -> list[Change]:
    by_key = {(c.kind, c.id): c for c in changes}
    chosen = {(c.kind, c.id) for c in changes if any(t.matches(c.kind, c.id) for t in targets)}
    todo = list(chosen)
    while todo:
        for dep in _needs(by_key[todo.pop()]):
            if dep in by_key and dep not in chosen and by_key[dep].action != DELETE:
                chosen.add(dep)
                todo.append(dep)
    return [c for c in changes if (c.kind, c.id) in chosen]


def _ledger(plan: Plan, kept: Sequence[Change]) -> Ledger | None:
    after = plan.ledger_after
    if after is None or not kept:
        return plan.ledger_before  # nothing targeted changes: the ledger stays as it is
    before = plan.ledger_before or Ledger(after.name)
    managed = {k: set(before.ids(k)) for k in KINDS}
    accessors = dict(before.token_accessors)
    for c in kept:
        if c.action == DELETE:
            managed[c.kind].discard(c.id)
            accessors.pop(c.id, None)
        else:
            managed[c.kind].add(c.id)
            if c.kind == "acl_token" and c.id in after.token_accessors:
                accessors[c.id] = after.token_accessors[c.id]
    return replace(
        after,
        managed={k: tuple(sorted(v)) for k, v in managed.items() if v},
        token_accessors=dict(sorted(accessors.items())),
        digest=before.digest,
        revision=before.revision,
    )


def target_plan(plan: Plan, targets: Sequence[Target]) -> Plan:
    """`plan` cut down to the changes of `targets` (and what they need)."""
    if not targets:
        return plan
    kept = _closure(plan.changes, targets)
    ids = {c.id for c in kept if c.kind == "kv"}

    def targeted(pair: tuple[str, str]) -> bool:
        return any(t.matches(*pair) for t in targets)

    return replace(
        plan,
        changes=tuple(kept),
        kv_indexes={k: v for k, v in plan.kv_indexes.items() if k in ids},
        ledger_after=_ledger(plan, kept),
        unmanaged=tuple(u for u in plan.unmanaged if targeted(u)),
        orphans=tuple(o for o in plan.orphans if targeted(o)),
        notes=(*plan.notes, partial_note(targets)),
        targets=tuple(str(t) for t in targets),
    )
