"""Pure tests of `gitkv.plan`: the diff, ownership, guards, convergence and plan files."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gitkv.errors import GitkvError, GuardError
from gitkv.ledger import Ledger
from gitkv.plan import (
    CREATE,
    DELETE,
    UPDATE,
    Change,
    Plan,
    check_guards,
    plan,
    plans_from_json,
    plans_to_json,
)
from gitkv.resources import (
    AclPolicy,
    AclToken,
    AgentSpec,
    CheckDef,
    ExternalNode,
    ExternalService,
    KVPair,
    Resources,
    SecretRef,
    ServiceReg,
    checks_digest,
)
from gitkv.state import LiveState, Member


def kv(**pairs: str) -> dict[str, KVPair]:
    return {
        k.replace("__", "/"): KVPair(k.replace("__", "/"), v.encode()) for k, v in pairs.items()
    }


WEB = ServiceReg(
    agent="node1",
    id="web",
    name="web",
    tags=("v1",),
    port=8080,
    checks=(CheckDef("service:web", "Service 'web' check", "http", "http://x/", "10s"),),
)


def desired_of(pairs: dict[str, KVPair]) -> Resources:
    """The spec side of a test: `pairs` under `app/`; other kinds via `replace`."""
    return Resources(datacenter="dc1", kv=pairs, prefixes=("app/",), name="t")


def live_of(pairs: dict[str, KVPair], ledger: Ledger | None = None) -> LiveState:
    """The cluster side: `pairs` with made-up indexes; other kinds via `replace`."""
    index = {k: i + 100 for i, k in enumerate(sorted(pairs))}
    return LiveState(
        address="http://127.0.0.1:8500",
        prefixes=("app/",),
        kv=pairs,
        kv_index=index,
        ledger=ledger,
        ledger_index=7 if ledger else 0,
        acl_enabled=True,
    )


def test_kv_diff_by_bytes_and_flags() -> None:
    want = {
        **kv(app__a="1", app__b="2", app__new="n"),
        "app/f": KVPair("app/f", b"x", flags=42),
    }
    have = {**kv(app__a="1", app__b="old"), "app/f": KVPair("app/f", b"x", flags=0)}
    p = plan(desired_of(want), live_of(have))
    got = {(c.action, c.id) for c in p.changes}
    assert got == {(UPDATE, "app/b"), (CREATE, "app/new"), (UPDATE, "app/f")}
    assert p.kv_indexes["app/new"] == 0
    assert p.kv_indexes["app/b"] == live_of(have).kv_index["app/b"]
    assert p.unchanged == 1
    assert p.counts == {"create": 1, "update": 2, "delete": 0}


def test_unmanaged_live_keys_are_listed_never_deleted() -> None:
    have = kv(app__a="1", app__stranger="s")
    p = plan(desired_of(kv(app__a="1")), live_of(have), prune=True)
    assert not p.changes
    assert p.unmanaged == (("kv", "app/stranger"),)


def test_prune_only_with_flag_and_only_managed() -> None:
    ledger = Ledger.build("t", {"kv": ["app/a", "app/gone"]})
    have = kv(app__a="1", app__gone="g", app__stranger="s")
    no_prune = plan(desired_of(kv(app__a="1")), live_of(have, ledger))
    assert not no_prune.changes
    assert no_prune.orphans == (("kv", "app/gone"),)
    # Kept orphans stay managed so a later --prune can still delete them.
    assert no_prune.ledger_after.manages("kv", "app/gone")

    pruned = plan(desired_of(kv(app__a="1")), live_of(have, ledger), prune=True)
    assert [(c.action, c.id) for c in pruned.changes] == [(DELETE, "app/gone")]
    assert not pruned.ledger_after.manages("kv", "app/gone")
    assert ("kv", "app/stranger") in pruned.unmanaged

    spec_prune = plan(replace(desired_of(kv(app__a="1")), prune=True), live_of(have, ledger))
    assert spec_prune.changes == pruned.changes


def test_managed_ids_that_vanished_are_forgotten() -> None:
    ledger = Ledger.build("t", {"kv": ["app/a", "app/vanished"]})
    p = plan(desired_of(kv(app__a="1")), live_of(kv(app__a="1"), ledger))
    assert not p.changes
    assert p.ledger_after.ids("kv") == ("app/a",)
    assert p.ledger_changed


def test_delete_budget_and_empty_prefix_guard() -> None:
    ledger = Ledger.build("t", {"kv": ["app/a", "app/b", "app/c"]})
    have = kv(app__a="1", app__b="2", app__c="3")
    p = plan(desired_of({}), live_of(have, ledger), prune=True)
    assert p.counts["delete"] == 3
    with pytest.raises(GuardError, match="max-deletes 2"):
        check_guards(p, max_deletes=2)
    with pytest.raises(GuardError, match="allow-empty-prefix"):
        check_guards(p, max_deletes=5)
    check_guards(p, max_deletes=5, allow_empty_prefix=True)
    # Deleting some but not all keys of a prefix is fine.
    partial = plan(desired_of(kv(app__a="1")), live_of(have, ledger), prune=True)
    check_guards(partial)


def test_unmanaged_key_keeps_prefix_non_empty() -> None:
    ledger = Ledger.build("t", {"kv": ["app/a"]})
    p = plan(desired_of({}), live_of(kv(app__a="1", app__other="x"), ledger), prune=True)
    check_guards(p)  # app/other stays, so the prefix is not emptied


def test_agent_drift_is_reported() -> None:
    agents = {n: AgentSpec(n, server=True) for n in ("node1", "node2", "node3")}
    members = (
        Member("node1", "127.0.0.11", "alive", True),
        Member("node2", "127.0.0.12", "failed", True),
        Member("node9", "127.0.0.19", "alive", False),
    )
    p = plan(replace(desired_of({}), agents=agents), replace(live_of({}), members=members))
    assert {(d.agent, d.problem) for d in p.drift} == {
        ("node2", "failed"),
        ("node3", "missing"),
        ("node9", "unexpected"),
    }
    assert not p.changes


def test_acl_disabled_skips_acl_and_keeps_ledger() -> None:
    ledger = Ledger.build("t", {"acl_policy": ["p"]})
    want = replace(desired_of({}), policies={"q": AclPolicy("q", rules="x")})
    live = replace(live_of({}, ledger), acl_enabled=False)
    p = plan(want, live)
    assert not p.changes
    assert p.ledger_after.ids("acl_policy") == ("p",)
    assert any("ACLs disabled" in n for n in p.notes)


def test_token_secret_is_not_diffed() -> None:
    want = AclToken("web", policies=("p",), secret=SecretRef(env="WEB_TOKEN"))
    have = AclToken("web", description="gitkv:web", policies=("p",))
    p = plan(
        replace(desired_of({}), tokens={"web": want}), replace(live_of({}), tokens={"web": have})
    )
    assert not p.changes


# -- convergence: apply every prefix of the change list, re-plan -----------------------------


def _apply_change(live: LiveState, c: Change) -> LiveState:
    """What a successful apply of `c` does to the cluster, expressed on a LiveState."""
    maps = {
        "kv": "kv",
        "service": "services",
        "external_node": "external_nodes",
        "acl_policy": "policies",
        "acl_role": "roles",
        "acl_token": "tokens",
    }
    attr = maps[c.kind]
    current = dict(getattr(live, attr))
    index = dict(live.kv_index)
    if c.action == DELETE:
        current.pop(c.id)
        index.pop(c.id, None)
    else:
        after = c.after
        if c.kind == "acl_token":
            after = replace(after, secret=None, description=after.effective_description)
        if c.kind == "service":
            after = replace(after, checks_digest=checks_digest(after.checks))
        current[c.id] = after
        if c.kind == "kv":
            index[c.id] = max(index.values(), default=0) + 1
    return replace(live, **{attr: current, "kv_index": index})


def _scenario() -> tuple[Resources, LiveState]:
    ledger = Ledger.build(
        "t",
        {
            "kv": ["app/a", "app/gone1", "app/gone2"],
            "service": ["node1/old"],
            "acl_policy": ["oldpol"],
            "external_node": ["legacy-old"],
        },
    )
    want = replace(
        desired_of(kv(app__a="new", app__b="2", app__c="3")),
        services={WEB.key: WEB},
        external_nodes={
            "legacy-db": ExternalNode(
                "legacy-db", "127.0.0.50", services=(ExternalService("db", "db", port=5432),)
            )
        },
        policies={"p": AclPolicy("p", rules='key_prefix "app/" { policy = "read" }')},
        tokens={"web": AclToken("web", policies=("p",), secret=SecretRef(env="WEB"))},
        prune=True,
    )
    live = replace(
        live_of(kv(app__a="old", app__gone1="x", app__gone2="y", app__keep="unmanaged"), ledger),
        services={"node1/old": replace(WEB, id="old", name="old")},
        external_nodes={"legacy-old": ExternalNode("legacy-old", "127.0.0.51")},
        catalog_nodes=("legacy-old", "node1"),
        members=(Member("node1", "127.0.0.1", "alive", True),),
        policies={"oldpol": AclPolicy("oldpol")},
        policy_ids={"oldpol": "id-old"},
    )
    return want, live


def test_replan_after_every_prefix_converges() -> None:
    want, live = _scenario()
    first = plan(want, live)
    assert len(first.changes) == 12
    # Dependency order: policies before tokens on the way up, tokens first on the way down.
    kinds = [c.kind for c in first.changes]
    assert kinds.index("acl_policy") < kinds.index("acl_token")
    for k in range(len(first.changes) + 1):
        state = live
        for change in first.changes[:k]:
            state = _apply_change(state, change)
        # Mid-apply the cluster holds the interim ledger (union), as `apply` writes it.
        done = k == len(first.changes)
        interim = first.ledger_before.union(first.ledger_after)
        state = replace(state, ledger=first.ledger_after if done else interim)
        again = plan(want, state)
        assert [(c.action, c.kind, c.id) for c in again.changes] == [
            (c.action, c.kind, c.id) for c in first.changes[k:]
        ]
    assert not again.changes
    assert not again.ledger_changed
    assert ("kv", "app/keep") in again.unmanaged


def test_plan_file_round_trip_has_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB", "s3cr3t-value")
    want, live = _scenario()
    p = plan(want, live)
    text = plans_to_json([p])
    assert "s3cr3t-value" not in text
    assert '"env": "WEB"' in text
    (back,) = plans_from_json(text)
    assert back == p


def test_plan_file_rejects_other_json() -> None:
    with pytest.raises(GitkvError, match="not a gitkv plan"):
        plans_from_json('{"a": 1}')
    with pytest.raises(GitkvError, match="not a gitkv plan"):
        plans_from_json("nope")


def test_plan_is_frozen_value() -> None:
    p = Plan("dc1", "http://x")
    frozen: Any = p  # typed loosely: the assignment below is the mistake under test
    with pytest.raises(AttributeError):
        frozen.datacenter = "other"
