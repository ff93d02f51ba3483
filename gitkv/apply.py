"""Carry out a `Plan` through the `/v1` API, refusing to act on a stale plan.

KV changes go through `PUT /v1/txn` in batches that respect Consul's limits (64 operations,
512 KiB request body). Every KV write is guarded by the ModifyIndex seen at plan time:
`cas` (index 0 for creates: "must not exist") and `delete-cas`. Each batch also checks the
ownership ledger's index (`check-index`), so a concurrent apply makes the batch fail as a
whole. A 409 means nothing in that batch was applied; gitkv stops and names the keys.

Order: KV batches first (so a stale plan is detected before anything else is touched), then
the other changes in the plan's dependency order (`gitkv.ledger.KINDS`: cluster settings,
ACL objects, config entries, agent services, external nodes, prepared queries; each
object kind guarded as `gitkv.apply_objects` says), then the ownership ledger. For KV-only plans the ledger is written in the last KV batch, so a small
apply is one atomic transaction.

An interrupted multi-batch apply leaves the ledger as it was: keys it already created are
adopted by the next apply (they are in the spec), and if the spec dropped them meanwhile they
show as unmanaged — never deleted — which is the safe side.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gitkv.apply_objects import ObjectApplier
from gitkv.client import ConsulClient
from gitkv.errors import ClusterError, StalePlanError
from gitkv.ledger import Ledger, encode_ledger, ledger_key, parts_prefix
from gitkv.plan import CREATE, DELETE, Change, Plan
from gitkv.resources import (
    CHECKS_DIGEST_META,
    AclPolicy,
    AclRole,
    AclToken,
    CheckDef,
    ExternalNode,
    SecretUnavailable,
    ServiceReg,
    checks_digest,
)

__all__ = [
    "MAX_TXN_BYTES",
    "MAX_TXN_OPS",
    "ApplyResult",
    "apply_plan",
    "batches",
    "kv_op",
    "service_body",
]

MAX_TXN_OPS = 64
# Consul's default txn_max_req_len is 512 KiB; stay below it to leave room for JSON framing.
MAX_TXN_BYTES = 480 * 1024

Progress = Callable[[int], None]


@dataclass
class ApplyResult:
    """What an apply did: changes applied, transactions sent, the final ledger index, and
    the AccessorIDs of tokens it created (public ids, not secrets)."""

    applied: int = 0
    txns: int = 0
    ledger_index: int = 0
    ledger_written: bool = False
    created_tokens: dict[str, str] = field(default_factory=dict)


# -- KV transactions (pure parts) ------------------------------------------------------------


def kv_op(change: Change, index: int) -> dict[str, Any]:
    """The txn operation for one KV change, guarded by `index` (0 = must not exist)."""
    if change.action == DELETE:
        return {"KV": {"Verb": "delete-cas", "Key": change.id, "Index": index}}
    pair = change.after
    value = base64.b64encode(pair.value).decode() if pair.value else None
    return {
        "KV": {"Verb": "cas", "Key": pair.key, "Value": value, "Flags": pair.flags, "Index": index}
    }


_OP_OVERHEAD = 96  # {"KV":{"Verb":"delete-cas","Key":"","Value":"","Flags":..,"Index":..}},


def _op_size(op: dict[str, Any]) -> int:
    """An upper bound of the op's JSON size, without encoding it (apply's hot path).

    Values are base64 (ASCII); a key may grow up to 6x when JSON-escaped (`\\u00XX`)."""
    kv = op["KV"]
    key = kv.get("Key", "")
    key_size = len(key) if key.isascii() and '"' not in key and "\\" not in key else 6 * len(key)
    return _OP_OVERHEAD + key_size + len(kv.get("Value") or "")


def batches(
    ops: Sequence[dict[str, Any]],
    *,
    reserve_ops: int = 1,
    reserve_bytes: int = 0,
    max_ops: int = MAX_TXN_OPS,
    max_bytes: int = MAX_TXN_BYTES,
) -> Iterator[list[dict[str, Any]]]:
    """Split `ops` into transactions of at most `max_ops - reserve_ops` operations and
    `max_bytes - reserve_bytes` bytes of JSON (the reserve is for the ledger operation)."""
    limit_ops, limit_bytes = max_ops - reserve_ops, max_bytes - reserve_bytes
    current: list[dict[str, Any]] = []
    size = 2
    for op in ops:
        n = _op_size(op)
        if current and (len(current) >= limit_ops or size + n > limit_bytes):
            yield current
            current, size = [], 2
        current.append(op)
        size += n
    if current:
        yield current


# -- the apply driver -----------------------------------------------------------------------


class _Applier:
    def __init__(self, client: ConsulClient, plan: Plan, progress: Progress | None) -> None:
        self.client = client
        self.plan = plan
        self.progress = progress or (lambda _n: None)
        self.result = ApplyResult(ledger_index=plan.ledger_index)
        self.key = ledger_key(plan.ledger_after.name) if plan.ledger_after else ""
        self.written: Ledger | None = plan.ledger_before
        self.objects = ObjectApplier(client, plan)

    def run(self) -> ApplyResult:
        plan = self.plan
        kv = [c for c in plan.changes if c.kind == "kv"]
        other = [c for c in plan.changes if c.kind != "kv"]
        after = plan.ledger_after
        if after is None or (not plan.changes and not plan.ledger_changed):
            return self.result
        if kv:
            # With KV-only plans the ledger rides in the last batch (one atomic txn for
            # small applies); otherwise it is written once the other changes are done.
            self._apply_kv(kv, None if other else after)
        elif other:
            self._txn([])  # check the ledger before touching anything: a concurrent apply?
        for change in other:
            self._apply_one(change)
            self.result.applied += 1
            self.progress(1)
        final = after
        if self.result.created_tokens:
            accessors = {**after.token_accessors, **self.result.created_tokens}
            final = replace(after, token_accessors=dict(sorted(accessors.items())))
        if self.objects.created_ids:
            ids = {**final.object_ids, **self.objects.created_ids}
            final = replace(final, object_ids=dict(sorted(ids.items())))
        if final is not self.written and final != self.written:
            self._write_ledger(final)
        return self.result

    def _apply_kv(self, changes: list[Change], final: Ledger | None) -> None:
        ops = [kv_op(c, self.plan.kv_indexes.get(c.id, 0)) for c in changes]
        groups = list(batches(ops, reserve_ops=1, reserve_bytes=512))
        for i, batch in enumerate(groups):
            last = i == len(groups) - 1
            if last and final is not None and final != self.written:
                ledger_ops = self._inline_ledger_ops(final, batch)
                if ledger_ops is not None:
                    self._txn(batch, ledger_ops)
                    self.written = final
                else:
                    self._txn(batch)
            else:
                self._txn(batch)
            self.result.applied += len(batch)
            self.progress(len(batch))

    def _guard(self) -> dict[str, Any]:
        """A read-only op that fails the txn if the ledger moved since we last saw it."""
        if self.result.ledger_index == 0:
            return {"KV": {"Verb": "check-not-exists", "Key": self.key}}
        return {"KV": {"Verb": "check-index", "Key": self.key, "Index": self.result.ledger_index}}

    def _header_ops(self, header: bytes, keep: str = "") -> list[dict[str, Any]]:
        """CAS the header, and drop part folders of older generations (except `keep`)."""
        value = base64.b64encode(header).decode()
        ops: list[dict[str, Any]] = [
            {
                "KV": {
                    "Verb": "cas",
                    "Key": self.key,
                    "Value": value,
                    "Index": self.result.ledger_index,
                }
            }
        ]
        ops += [
            {"KV": {"Verb": "delete-tree", "Key": folder}}
            for folder in self.plan.ledger_parts
            if folder != keep
        ]
        return ops

    def _inline_ledger_ops(
        self, ledger: Ledger, batch: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        header, parts = encode_ledger(ledger, uuid.uuid4().hex[:12])
        if parts:
            return None
        ops = self._header_ops(header)
        size = sum(map(_op_size, batch)) + sum(map(_op_size, ops))
        if len(batch) + len(ops) > MAX_TXN_OPS or size > MAX_TXN_BYTES:
            return None
        return ops

    def _write_ledger(self, ledger: Ledger) -> None:
        """Write parts under a new generation (if any), then switch the header with CAS."""
        generation = uuid.uuid4().hex[:12]
        header, parts = encode_ledger(ledger, generation)
        for key, blob in parts:
            value = base64.b64encode(blob).decode()
            self._txn([{"KV": {"Verb": "set", "Key": key, "Value": value}}])
        keep = f"{parts_prefix(ledger.name)}{generation}/"
        ops = self._header_ops(header, keep)
        self._txn([], ops)
        self.written = ledger

    def _txn(
        self, ops: list[dict[str, Any]], ledger_ops: list[dict[str, Any]] | None = None
    ) -> None:
        """One transaction: `ops` plus either the ledger write or a ledger guard."""
        full = [*ops, *(ledger_ops if ledger_ops is not None else [self._guard()])]
        res = self.client.txn(full)
        self.result.txns += 1
        if not res.ok:
            raise self._stale(full, res.errors)
        if ledger_ops is None:
            return
        self.result.ledger_written = True
        for item in res.results:
            entry = item.get("KV") or {}
            if entry.get("Key") == self.key:
                self.result.ledger_index = int(entry.get("ModifyIndex") or 0)

    def _stale(self, ops: list[dict[str, Any]], errors: Sequence[dict[str, Any]]) -> StalePlanError:
        keys, reasons = [], []
        for err in errors:
            i = int(err.get("OpIndex") or 0)
            key = ops[i]["KV"]["Key"] if 0 <= i < len(ops) else "?"
            keys.append(key)
            what = str(err.get("What") or "")
            if key == self.key:
                reasons.append(f"the ownership ledger {key} changed (another gitkv apply?): {what}")
            else:
                reasons.append(f"{key}: {what}")
        done = self.result.applied
        # gitkv only sends guarded writes, so any rollback means something moved under us.
        return StalePlanError(
            "the cluster changed since the plan was made; refusing to apply a stale plan. "
            + "; ".join(reasons)
            + f". Nothing in this batch was applied ({done} earlier changes were). "
            "Run `gitkv plan` again.",
            tuple(keys),
        )

    # -- non-KV resources -------------------------------------------------------------------

    def _apply_one(self, change: Change) -> None:
        if self.objects.handles(change.kind):
            self.objects.apply(change)
            return
        handler = {
            "service": self._service,
            "external_node": self._external,
            "acl_policy": self._policy,
            "acl_role": self._role,
            "acl_token": self._token,
        }[change.kind]
        handler(change)

    def _agent_client(self, agent: str) -> ConsulClient:
        address = self.plan.agent_addresses.get(agent)
        if not address:
            raise ClusterError(
                f"no HTTP address known for agent {agent!r}: give it `bind`/`http_address` "
                "in the spec, or make sure it is a member of the cluster"
            )
        return self.client if address == self.client.address else self.client.for_address(address)

    def _service(self, change: Change) -> None:
        svc: ServiceReg = change.after or change.before
        client = self._agent_client(svc.agent)
        try:
            if change.action == DELETE:
                client.agent_service_deregister(svc.id)
            else:
                client.agent_service_register(service_body(svc))
        finally:
            if client is not self.client:
                client.close()

    def _external(self, change: Change) -> None:
        node: ExternalNode = change.after or change.before
        if change.action == DELETE:
            self.client.catalog_deregister({"Node": node.node})
            return
        if change.before is not None:
            keep = {s.id for s in node.services}
            for old in change.before.services:
                if old.id not in keep:
                    self.client.catalog_deregister({"Node": node.node, "ServiceID": old.id})
        base = {"Node": node.node, "Address": node.address, "NodeMeta": dict(node.meta)}
        self.client.catalog_register(base)
        for s in node.services:
            self.client.catalog_register(
                {
                    **base,
                    "Service": {
                        "ID": s.id,
                        "Service": s.name,
                        "Tags": list(s.tags),
                        "Address": s.address,
                        "Port": s.port,
                        "Meta": dict(s.meta),
                    },
                }
            )

    def _acl_id(self, kind: str, name: str) -> str:
        ident = self.plan.acl_ids.get(f"{kind}/{name}")
        if not ident:
            raise ClusterError(f"the plan has no ID for {kind} {name!r}; run `gitkv plan` again")
        return ident

    def _policy(self, change: Change) -> None:
        if change.action == DELETE:
            self.client.acl_delete("policy", self._acl_id("acl_policy", change.id))
            return
        p: AclPolicy = change.after
        body = {
            "Name": p.name,
            "Description": p.description,
            "Rules": p.rules,
            "Datacenters": list(p.datacenters),
        }
        ident = None if change.action == CREATE else self._acl_id("acl_policy", p.name)
        self.client.acl_write("policy", body, ident)

    def _role(self, change: Change) -> None:
        if change.action == DELETE:
            self.client.acl_delete("role", self._acl_id("acl_role", change.id))
            return
        r: AclRole = change.after
        body = {
            "Name": r.name,
            "Description": r.description,
            "Policies": [{"Name": n} for n in r.policies],
        }
        ident = None if change.action == CREATE else self._acl_id("acl_role", r.name)
        self.client.acl_write("role", body, ident)

    def _token(self, change: Change) -> None:
        if change.action == DELETE:
            self.client.acl_delete("token", self._acl_id("acl_token", change.id))
            return
        t: AclToken = change.after
        body: dict[str, Any] = {
            "Description": t.effective_description,
            "Policies": [{"Name": n} for n in t.policies],
            "Roles": [{"Name": n} for n in t.roles],
            "Local": t.local,
        }
        if change.action == CREATE:
            if t.secret is not None:
                try:
                    body["SecretID"] = t.secret.resolve()
                except SecretUnavailable as exc:
                    raise ClusterError(f"token {t.name!r}: {exc}") from exc
            stored = self.client.acl_write("token", body)
            self.result.created_tokens[t.name] = str(stored.get("AccessorID", ""))
        else:
            accessor = self._acl_id("acl_token", t.name)
            self.client.acl_write("token", {**body, "AccessorID": accessor}, accessor)


def service_body(svc: ServiceReg) -> dict[str, Any]:
    """The `/v1/agent/service/register` body for a service (checks included)."""
    return {
        "ID": svc.id,
        "Name": svc.name,
        "Tags": list(svc.tags),
        "Address": svc.address,
        "Port": svc.port,
        "Meta": {**dict(svc.meta), **_digest_meta(svc)},
        "Checks": [check_body(c) for c in svc.checks],
    }


def _digest_meta(svc: ServiceReg) -> dict[str, str]:
    return {CHECKS_DIGEST_META: checks_digest(svc.checks)} if svc.checks else {}


_TARGET_FIELD = {"http": "HTTP", "tcp": "TCP", "grpc": "GRPC", "udp": "UDP", "h2ping": "H2PING"}


def check_body(check: CheckDef) -> dict[str, Any]:
    """A check definition as the agent API expects it (only the fields that are set)."""
    body: dict[str, Any] = {"CheckID": check.id, "Name": check.name}
    if check.kind == "ttl":
        body["TTL"] = check.ttl
    elif check.kind == "script":
        body["Args"] = check.target.split()
    elif check.kind in _TARGET_FIELD:
        body[_TARGET_FIELD[check.kind]] = check.target
    optional = {
        "Interval": check.interval,
        "Timeout": check.timeout,
        "Method": check.method,
        "DeregisterCriticalServiceAfter": check.deregister_critical_after,
        "Notes": check.notes,
    }
    body.update({k: v for k, v in optional.items() if v})
    if check.tls_skip_verify:
        body["TLSSkipVerify"] = True
    return body


def apply_plan(
    client: ConsulClient, plan: Plan, *, progress: Progress | None = None
) -> ApplyResult:
    """Apply one datacenter's plan through `client` (which talks to `plan.address`).

    :param progress: called with the number of changes done after each step.
    :raises StalePlanError: the cluster changed since the plan; nothing in the failing batch
        was applied.
    :raises ClusterError: any other refusal.
    """
    return _Applier(client, plan, progress).run()
