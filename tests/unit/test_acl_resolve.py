"""Token resolution: request precedence, default token, anonymous, unknown, cache."""

from __future__ import annotations

import pytest

from agent.acl.enforce import new_token
from agent.acl.resolve import ACLNotFound, Resolver, token_from_request
from agent.state.acl import ANONYMOUS_ACCESSOR, MANAGEMENT_POLICY_ID
from agent.state.fsm import FSM, Refusal
from agent.state.store import Store
from tests.harness.entries import apply_entry


def test_request_token_order() -> None:
    both = {b"x-consul-token": b"hdr", b"authorization": b"Bearer bear"}
    assert token_from_request({"token": ["q"]}, both) == "q"
    assert token_from_request({"token": [""]}, both) == "hdr"
    assert token_from_request({}, {b"authorization": b"bearer bear extra"}) == "bear"
    assert token_from_request({}, {b"authorization": b"Basic abc"}) == ""
    assert token_from_request({}, {}) == ""


def _store() -> tuple[Store, FSM]:
    store = Store()
    fsm = FSM(store)
    apply_entry(
        fsm,
        1,
        {
            "Type": "acl-init",
            "Policies": [
                {"ID": MANAGEMENT_POLICY_ID, "Name": "global-management", "Rules": ""},
            ],
            "Tokens": [new_token(ANONYMOUS_ACCESSOR, "anonymous", "Anonymous Token", [], "t")],
            "InitialManagement": "",
        },
    )
    return store, fsm


def test_resolve_and_cache_invalidation() -> None:
    store, fsm = _store()
    apply_entry(
        fsm,
        2,
        {
            "Type": "acl-policy-set",
            "Policy": {"ID": "p1", "Name": "ro", "Rules": 'key_prefix "" { policy = "read" }'},
        },
    )
    apply_entry(
        fsm, 3, {"Type": "acl-token-set", "Token": new_token("a1", "s1", "", [{"ID": "p1"}], "t")}
    )
    r = Resolver(store, "deny")
    ident = r.resolve("s1")
    assert ident.accessor == "a1" and not ident.anonymous
    assert ident.authz.allowed("key", "x", "read") and not ident.authz.allowed("key", "x", "write")
    # a policy change is seen on the next resolve
    apply_entry(
        fsm,
        4,
        {
            "Type": "acl-policy-set",
            "Policy": {"ID": "p1", "Name": "ro", "Rules": 'key_prefix "" { policy = "write" }'},
        },
    )
    assert r.resolve("s1").authz.allowed("key", "x", "write")
    assert r.resolve("anonymous").anonymous
    with pytest.raises(ACLNotFound):
        r.resolve("nope")
    apply_entry(fsm, 5, {"Type": "acl-token-delete", "AccessorID": "a1"})
    with pytest.raises(ACLNotFound):
        r.resolve("s1")


def test_roles_and_management() -> None:
    store, fsm = _store()
    apply_entry(
        fsm,
        2,
        {
            "Type": "acl-policy-set",
            "Policy": {"ID": "p1", "Name": "svc", "Rules": 'service "web" { policy = "write" }'},
        },
    )
    apply_entry(
        fsm,
        3,
        {"Type": "acl-role-set", "Role": {"ID": "r1", "Name": "web", "Policies": [{"ID": "p1"}]}},
    )
    token = new_token("a1", "s1", "", [], "t")
    token["Roles"] = [{"ID": "r1"}]
    token["NodeIdentities"] = [{"NodeName": "n1", "Datacenter": "dc1"}]
    apply_entry(fsm, 4, {"Type": "acl-token-set", "Token": token})
    apply_entry(
        fsm,
        5,
        {
            "Type": "acl-token-set",
            "Token": new_token("a2", "s2", "", [{"ID": MANAGEMENT_POLICY_ID}], "t"),
        },
    )
    r = Resolver(store, "deny")
    a = r.resolve("s1").authz
    assert a.allowed("service", "web", "write") and a.allowed("node", "n1", "write")
    assert a.allowed("service", "db", "read") and not a.allowed("node", "n2", "read")
    assert r.resolve("s2").authz.allowed_single("acl", "write")


def test_fsm_refusals_change_nothing() -> None:
    store, fsm = _store()
    apply_entry(
        fsm, 2, {"Type": "acl-policy-set", "Policy": {"ID": "p1", "Name": "a", "Rules": ""}}
    )
    before = store.acl.dump()
    assert isinstance(
        apply_entry(
            fsm, 3, {"Type": "acl-policy-set", "Policy": {"ID": "p2", "Name": "a", "Rules": ""}}
        ),
        Refusal,
    )
    assert isinstance(
        apply_entry(
            fsm,
            4,
            {"Type": "acl-token-set", "Token": new_token("a", "s", "", [{"ID": "missing"}], "t")},
        ),
        Refusal,
    )
    assert isinstance(
        apply_entry(fsm, 5, {"Type": "acl-policy-delete", "ID": MANAGEMENT_POLICY_ID}), Refusal
    )
    assert store.acl.dump() == before


def test_bootstrap_once_and_reset() -> None:
    store, fsm = _store()
    assert (
        apply_entry(
            fsm,
            2,
            {
                "Type": "acl-bootstrap",
                "Token": new_token("b1", "bs1", "", [], "t"),
                "ResetIndex": 0,
            },
        )["CreateIndex"]
        == 2
    )
    refused = apply_entry(
        fsm,
        3,
        {"Type": "acl-bootstrap", "Token": new_token("b2", "bs2", "", [], "t"), "ResetIndex": 0},
    )
    assert isinstance(refused, Refusal) and refused.kind == "denied"
    assert refused.message == "Permission denied: ACL bootstrap no longer allowed (reset index: 2)"
    wrong = apply_entry(
        fsm,
        3,
        {"Type": "acl-bootstrap", "Token": new_token("b2", "bs2", "", [], "t"), "ResetIndex": 9},
    )
    assert isinstance(wrong, Refusal) and wrong.message == "Invalid ACL bootstrap reset index"
    assert (
        apply_entry(
            fsm,
            4,
            {
                "Type": "acl-bootstrap",
                "Token": new_token("b3", "bs3", "", [], "t"),
                "ResetIndex": 2,
            },
        )["AccessorID"]
        == "b3"
    )
    assert "b2" not in store.acl.tokens and "b3" in store.acl.tokens


def test_snapshot_round_trip() -> None:
    store, fsm = _store()
    apply_entry(fsm, 2, {"Type": "acl-token-set", "Token": new_token("a1", "s1", "", [], "t")})
    copy = Store()
    copy.restore(store.snapshot())
    assert copy.acl.dump() == store.acl.dump()
    assert copy.table_index("acl-tokens") == 2


def test_agent_recovery_identity() -> None:
    from agent.acl.enforce import agent_recovery_identity

    ident = agent_recovery_identity("n1")
    assert ident.authz.allowed("agent", "n1", "write") and not ident.authz.allowed(
        "agent", "n2", "read"
    )
    assert ident.authz.allowed("node", "n2", "read") and not ident.authz.allowed("key", "k", "read")


def test_an_expiring_token_is_cached_until_it_expires() -> None:
    import datetime as dt

    store, fsm = _store()
    token = new_token("acc-exp", "sec-exp", "expiring", [], "t")
    token["ExpirationTime"] = "2030-01-01T00:00:00Z"
    apply_entry(fsm, 2, {"Type": "acl-token-set", "Token": token})
    resolver = Resolver(store, "deny")
    before = dt.datetime(2029, 12, 31, 23, 59, tzinfo=dt.UTC)
    first = resolver.resolve("sec-exp", before)
    assert resolver.resolve("sec-exp", before) is first  # kept, not rebuilt
    with pytest.raises(ACLNotFound):
        resolver.resolve("sec-exp", dt.datetime(2030, 1, 1, 0, 0, 1, tzinfo=dt.UTC))
