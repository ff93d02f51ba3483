"""Auth methods and binding rules in the FSM: the cascade on delete, login tokens' checks,
snapshots, and the leader's reaping of expired tokens (agent/token_reaper.py)."""

from __future__ import annotations

import asyncio
import datetime as dt

from agent.state import commands as c
from agent.state.fsm import FSM
from agent.state.results import Refusal
from agent.state.store import Store
from agent.token_reaper import TokenReaper, expired_tokens


def method(name: str = "m") -> c.ACLAuthMethodSet:
    record = {"Name": name, "Type": "jwt", "Config": {"JWKSURL": "http://h"}}
    return c.ACLAuthMethodSet(AuthMethod=c.typed(c.AuthMethodRecord, record))


def rule(ident: str, name: str = "m") -> c.ACLBindingRuleSet:
    record = {"ID": ident, "AuthMethod": name, "BindType": "service", "BindName": "x"}
    return c.ACLBindingRuleSet(BindingRule=c.typed(c.BindingRuleRecord, record))


def token(accessor: str, method_name: str = "", expires: str = "", **extra) -> c.ACLTokenSet:
    record = {
        "AccessorID": accessor,
        "SecretID": f"secret-{accessor}",
        "AuthMethod": method_name,
        "ExpirationTime": expires,
        "ServiceIdentities": [{"ServiceName": "x"}],
        **extra,
    }
    return c.ACLTokenSet(Token=c.typed(c.TokenRecord, record), Login=bool(method_name))


def apply(fsm: FSM, index: int, cmd: c.Command):
    return fsm.apply(index, c.encode(cmd))


def test_deleting_a_method_deletes_its_rules_and_tokens() -> None:
    fsm = FSM(Store())
    acl = fsm.store.acl
    assert apply(fsm, 1, method())["CreateIndex"] == 1
    assert apply(fsm, 2, method("other"))["Name"] == "other"
    apply(fsm, 3, rule("r1"))
    apply(fsm, 4, rule("r2", "other"))
    apply(fsm, 5, token("t1", "m"))
    apply(fsm, 6, token("t2", "other"))
    apply(fsm, 7, token("t3"))
    again = apply(fsm, 8, method())
    assert (again["CreateIndex"], again["ModifyIndex"]) == (1, 8)
    assert apply(fsm, 9, c.ACLAuthMethodDelete(Name="m")) is True
    assert set(acl.auth_methods) == {"other"}
    assert set(acl.binding_rules) == {"r2"}
    assert set(acl.tokens) == {"t2", "t3"} and "secret-t1" not in acl.by_secret
    assert fsm.store.table_index("acl-tokens", "acl-binding-rules", "acl-auth-methods") == 9


def test_state_checks_at_apply_time() -> None:
    fsm = FSM(Store())
    # A rule or login token for a method that is gone (deleted meanwhile) is refused.
    assert isinstance(apply(fsm, 1, rule("r1")), Refusal)
    assert isinstance(apply(fsm, 2, token("t1", "m")), Refusal)
    apply(fsm, 3, method())
    kube = {"Name": "m", "Type": "kubernetes", "Config": {}}
    changed = c.ACLAuthMethodSet(AuthMethod=c.typed(c.AuthMethodRecord, kube))
    assert apply(fsm, 4, changed).message == "the Type field of an Auth Method is immutable"
    # A login token whose only binding (a role) vanished would grant nothing: refused.
    bare = token("t2", "m", ServiceIdentities=[], Roles=[{"ID": "gone"}])
    refusal = apply(fsm, 5, bare)
    assert isinstance(refusal, Refusal) and refusal.kind == "denied"
    assert fsm.store.acl.tokens == {}


def test_snapshot_round_trip() -> None:
    fsm = FSM(Store())
    apply(fsm, 1, method())
    apply(fsm, 2, rule("r1"))
    restored = Store()
    restored.restore(fsm.store.snapshot())
    assert restored.acl.auth_methods == fsm.store.acl.auth_methods
    assert restored.acl.binding_rules == fsm.store.acl.binding_rules
    assert restored.acl.rules_of("m")[0]["ID"] == "r1"


def test_expired_tokens_are_reaped_by_the_leader() -> None:
    fsm = FSM(Store())
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    apply(fsm, 1, token("old", expires="2029-12-31T23:59:00Z"))
    apply(fsm, 2, token("older", expires="2029-12-31T23:00:00Z"))
    apply(fsm, 3, token("fresh", expires="2030-01-01T00:10:00Z"))
    apply(fsm, 4, token("forever"))
    assert expired_tokens(fsm.store.acl.tokens.values(), now) == ["older", "old"]

    class Writer:
        def __init__(self) -> None:
            self.index = 10

        async def write(self, cmd: c.Command):
            self.index += 1
            return apply(fsm, self.index, cmd)

    leading = [False]
    reaper = TokenReaper(fsm.store, Writer(), lambda: leading[0], clock=lambda: now)
    assert asyncio.run(reaper.reap_once()) == 0  # only the leader reaps
    leading[0] = True
    assert asyncio.run(reaper.reap_once()) == 2
    assert set(fsm.store.acl.tokens) == {"fresh", "forever"}
    assert asyncio.run(reaper.reap_once()) == 0
