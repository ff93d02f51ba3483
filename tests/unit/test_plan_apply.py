"""read_live -> plan -> apply_plan -> read_live against the in-memory Consul double."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from gitkv.apply import MAX_TXN_BYTES, ApplyResult, apply_plan, batches, kv_op
from gitkv.errors import StalePlanError
from gitkv.ledger import Ledger, ledger_key
from gitkv.plan import CREATE, Change, Plan, plan
from gitkv.resources import (
    AclPolicy,
    AclToken,
    CheckDef,
    ExternalNode,
    ExternalService,
    KVPair,
    Resources,
    SecretRef,
    ServiceReg,
)
from gitkv.state import read_live
from tests.unit.test_plan_fake_consul import FakeConsul


def spec(n: int = 3) -> Resources:
    """`n` keys under `app/`, owned by the ledger `t`; other kinds and fields via `replace`."""
    pairs = {f"app/k{i:05d}": KVPair(f"app/k{i:05d}", f"v{i}".encode()) for i in range(n)}
    return Resources(datacenter="dc1", kv=pairs, name="t", digest="d1")


def roundtrip(
    fake: FakeConsul, desired: Resources, *, prune: bool | None = None
) -> tuple[Plan, ApplyResult, Plan]:
    """Plan and apply `desired`, then plan again: the plan, the apply's result, the re-plan."""
    with fake.client() as c:
        p = plan(desired, read_live(c, desired), prune=prune)
        result = apply_plan(c, p)
        again = plan(desired, read_live(c, desired), prune=prune)
    return p, result, again


def test_apply_then_plan_is_empty_and_second_apply_is_noop() -> None:
    fake = FakeConsul()
    p, result, again = roundtrip(fake, spec(3))
    assert p.counts["create"] == 3
    assert result.txns == 1
    assert fake.value("app/k00001") == b"v1"
    ledger = Ledger.from_bytes(fake.value(ledger_key("t")) or b"")
    assert ledger.ids("kv") == ("app/k00000", "app/k00001", "app/k00002")
    assert ledger.digest == "d1"
    assert not again.changes and not again.ledger_changed
    writes_before = sum(1 for m, _ in fake.calls if m == "PUT")
    with fake.client() as c:
        assert apply_plan(c, again).txns == 0
    assert sum(1 for m, _ in fake.calls if m == "PUT") == writes_before


def test_reading_is_one_recursive_get_per_prefix() -> None:
    fake = FakeConsul()
    roundtrip(fake, spec(200))
    fake.calls.clear()
    with fake.client() as c:
        read_live(c, spec(200))
    kv_reads = [path for m, path in fake.calls if m == "GET" and path.startswith("/v1/kv/")]
    assert kv_reads == ["/v1/kv/gitkv/state/t", "/v1/kv/app/"]


def test_large_apply_is_batched_within_txn_limits() -> None:
    fake = FakeConsul()
    p, result, again = roundtrip(fake, spec(300))
    assert result.txns == 5  # 63 KV ops + the ledger per transaction
    assert not again.changes
    assert fake.value("app/k00299") == b"v299"


def test_batches_respect_byte_limit() -> None:
    big = KVPair("app/big", b"x" * 100_000)
    ops = [kv_op(Change(CREATE, "kv", f"k{i}", None, big), 0) for i in range(5)]
    sizes = [len(json.dumps(b)) for b in batches(ops)]
    assert all(s <= MAX_TXN_BYTES for s in sizes)
    assert len(sizes) == 2  # three ~133 KiB ops fit, four would not


def test_stale_plan_is_refused_naming_the_key_and_changes_nothing() -> None:
    fake = FakeConsul()
    roundtrip(fake, spec(3))
    changed = replace(spec(3), kv={k: KVPair(k, b"new") for k in ("app/k00000", "app/k00001")})
    with fake.client() as c:
        p = plan(changed, read_live(c, changed))
        fake.put("app/k00001", b"concurrent")
        with pytest.raises(StalePlanError, match="app/k00001") as err:
            apply_plan(c, p)
    assert err.value.keys == ("app/k00001",)
    assert fake.value("app/k00000") == b"v0"  # same batch: untouched
    assert fake.value("app/k00001") == b"concurrent"


def test_create_refused_when_key_appeared_since_plan() -> None:
    fake = FakeConsul()
    with fake.client() as c:
        p = plan(spec(1), read_live(c, spec(1)))
        fake.put("app/k00000", b"someone else")
        with pytest.raises(StalePlanError, match="app/k00000"):
            apply_plan(c, p)


def test_concurrent_apply_conflicts_on_the_ledger() -> None:
    fake = FakeConsul()
    with fake.client() as c:
        p1 = plan(spec(1), read_live(c, spec(1)))
        p2 = plan(spec(2), read_live(c, spec(2)))
        apply_plan(c, p1)
        with pytest.raises(StalePlanError, match="ownership ledger"):
            apply_plan(c, p2)


def test_prune_deletes_only_managed_keys() -> None:
    fake = FakeConsul()
    roundtrip(fake, spec(3))
    fake.put("app/stranger", b"mine")
    smaller = spec(2)
    p, _, again = roundtrip(fake, smaller)
    assert not p.changes and p.orphans == (("kv", "app/k00002"),)
    p, _, again = roundtrip(fake, smaller, prune=True)
    assert [(c.action, c.id) for c in p.changes] == [("delete", "app/k00002")]
    assert fake.value("app/k00002") is None
    assert fake.value("app/stranger") == b"mine"
    assert ("kv", "app/stranger") in again.unmanaged
    assert not again.changes


WEB = ServiceReg(
    agent="node1",
    id="web",
    name="web",
    tags=("v1",),
    port=8080,
    meta=(("team", "a"),),
    checks=(CheckDef("service:web", "Service 'web' check", "http", "http://127.0.0.1:1/", "10s"),),
)


def test_services_external_nodes_and_acl_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_TOKEN", "5ecret-5ecret")
    fake = FakeConsul(acl_enabled=True)
    desired = replace(
        spec(1),
        services={WEB.key: WEB},
        external_nodes={
            "legacy-db": ExternalNode(
                "legacy-db", "127.0.0.50", services=(ExternalService("db", "db", port=5432),)
            )
        },
        policies={"p": AclPolicy("p", rules='key_prefix "app/" { policy = "read" }')},
        tokens={"web": AclToken("web", policies=("p",), secret=SecretRef(env="WEB_TOKEN"))},
    )
    p, result, again = roundtrip(fake, desired)
    assert p.counts["create"] == 5
    assert not again.changes, again.changes
    assert fake.services["web"]["Port"] == 8080
    assert fake.nodes["legacy-db"]["Services"]["db"]["Port"] == 5432
    (tok,) = fake.acl["token"].values()
    assert tok["SecretID"] == "5ecret-5ecret"
    ledger = Ledger.from_bytes(fake.value(ledger_key("t")) or b"")
    assert ledger.token_accessors["web"] == tok["AccessorID"]
    assert "5ecret" not in json.dumps(ledger.to_dict())

    # Change a service port and a policy; then drop everything with prune.
    moved = replace(spec(1), services={WEB.key: ServiceReg(**{**WEB.__dict__, "port": 9090})})
    p, _, again = roundtrip(fake, moved, prune=True)
    actions = {(c.action, c.kind) for c in p.changes}
    assert ("update", "service") in actions
    assert ("delete", "acl_token") in actions and ("delete", "external_node") in actions
    assert fake.services["web"]["Port"] == 9090
    assert not fake.acl["token"] and "legacy-db" not in fake.nodes
    assert not again.changes


def test_acl_disabled_cluster_skips_acl_with_a_note() -> None:
    fake = FakeConsul(acl_enabled=False)
    desired = replace(spec(1), policies={"p": AclPolicy("p")})
    p, _, again = roundtrip(fake, desired)
    assert all(c.kind == "kv" for c in p.changes)
    assert any("ACL" in n for n in p.notes)
    assert not again.changes


def test_kv_values_keep_exact_bytes_and_flags() -> None:
    fake = FakeConsul()
    raw = bytes(range(256))
    desired = replace(
        spec(0), kv={"app/bin": KVPair("app/bin", raw, 7), "app/empty": KVPair("app/empty", b"")}
    )
    _, _, again = roundtrip(fake, desired)
    assert base64.b64decode(fake.kv["app/bin"]["Value"]) == raw
    assert fake.kv["app/bin"]["Flags"] == 7
    assert not again.changes


def test_check_target_change_is_detected_through_the_digest() -> None:
    fake = FakeConsul()
    _, _, again = roundtrip(fake, replace(spec(0), services={WEB.key: WEB}))
    assert not again.changes
    assert fake.services["web"]["Meta"]["gitkv-checks"]  # the digest gitkv stored
    moved_check = (CheckDef("service:web", "Service 'web' check", "http", "http://other/", "10s"),)
    changed = ServiceReg(**{**WEB.__dict__, "checks": moved_check})
    p, _, again = roundtrip(fake, replace(spec(0), services={WEB.key: changed}))
    assert [(c.action, c.kind) for c in p.changes] == [("update", "service")]
    assert not again.changes


def test_large_ledger_is_stored_in_parts_and_switched_atomically() -> None:
    fake = FakeConsul()
    fake.max_ops = 64
    big = spec(12_000)  # ~12k managed keys: JSON well above the inline limit
    p, result, again = roundtrip(fake, big)
    assert not again.changes and not again.ledger_changed
    header = json.loads(fake.value(ledger_key("t")) or b"{}")
    assert header["parts"] and all(k.startswith("gitkv/state/t/") for k in header["parts"])
    assert all(len(v["Value"]) < 512 * 1024 for v in fake.kv.values())
    first_generation = {k.split("/")[3] for k in header["parts"]}

    # A new spec digest rewrites the ledger under a new generation; the old one is removed.
    _, _, again = roundtrip(fake, replace(spec(12_000), digest="d2"))
    assert not again.ledger_changed
    header2 = json.loads(fake.value(ledger_key("t")) or b"{}")
    parts_now = {k.split("/")[3] for k in fake.kv if k.startswith("gitkv/state/t/")}
    assert parts_now == {k.split("/")[3] for k in header2["parts"]}
    assert not parts_now & first_generation


def test_ledger_codec_detects_damage() -> None:
    from gitkv.ledger import decode_ledger, encode_ledger

    ledger = Ledger.build("x", {"kv": [f"k/{i:07d}/{i * 7919 % 10007}" for i in range(20_000)]})
    header, parts = encode_ledger(ledger, "g1")
    assert parts
    stored = dict(parts)
    assert decode_ledger(header, stored) == ledger
    with pytest.raises(ValueError, match="missing"):
        decode_ledger(header, {})
    damaged = {**stored, parts[0][0]: b"x" + parts[0][1][1:]}
    with pytest.raises(ValueError, match="digest"):
        decode_ledger(header, damaged)
