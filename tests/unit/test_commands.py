"""The FSM cannot be poisoned: a command of the wrong shape is a refusal, never an exception,
and never changes part of the store."""

from __future__ import annotations

import msgspec
import pytest

from agent.state import commands
from agent.state.fsm import FSM, Refusal
from agent.state.store import Store


def fsm_with_keys() -> FSM:
    fsm = FSM(Store())
    fsm.apply(1, {"Type": "register", "Node": "n1", "Address": "127.0.0.1"})
    for i in range(3):
        fsm.apply(2 + i, {"Type": "kv", "Verb": "set", "Key": f"k{i}", "Value": b"v%d" % i})
    return fsm


def state_of(fsm: FSM) -> bytes:
    store = fsm.store
    return msgspec.msgpack.encode(
        [list(store.kv.values()), store.nodes, store.services, store.checks, store.indexes]
    )


BAD = [
    {"Type": "txn", "Ops": [{"KV": {"Verb": "delete-tree", "Key": ["a/"]}}]},
    {"Type": "txn", "Ops": [{"Check": {"Verb": "set", "Check": "x"}}]},
    {"Type": "txn", "Ops": [{"Node": {"Verb": "set", "Node": {"Node": 5, "Address": "x"}}}]},
    {"Type": "txn", "Ops": [{"KV": {"Verb": "set", "Key": "a"}, "Node": {"Verb": "get"}}]},
    {"Type": "txn", "Ops": [{"KV": {"Verb": "explode", "Key": "a"}}]},
    {"Type": "kv", "Verb": "set", "Key": 7},
    {"Type": "kv", "Verb": "set", "Key": "a", "Flags": -1},
    {"Type": "register", "Node": ["n"], "Address": "x"},
    {"Type": "register", "Node": "n2", "Service": {"Service": "s", "Port": "80"}},
    {"Type": "deregister"},
    {"Type": "session", "Op": "create", "Session": {"ID": "s", "LockDelay": 2**70}},
    {"Type": "session", "Op": "destroy"},
    {"Type": "acl-token-set", "Token": {"AccessorID": 1, "SecretID": "x"}},
    {"Type": "coordinate", "Updates": [{"Node": None}]},
    {"Type": "restore"},
    {"Type": "no-such-command"},
    {"Type": None},
    {},
]


@pytest.mark.parametrize("command", BAD, ids=lambda c: str(c)[:60])
def test_malformed_commands_are_refused_and_change_nothing(command):
    fsm = fsm_with_keys()
    before = state_of(fsm)
    result = fsm.apply(10, command)
    assert isinstance(result, Refusal)
    assert result.kind == "invalid"
    assert state_of(fsm) == before
    assert fsm.store.last_index == 10  # the entry is applied (as a refusal) like any other


def test_a_txn_with_one_bad_op_among_ten_applies_none_of_them():
    fsm = fsm_with_keys()
    before = state_of(fsm)
    ops: list[dict] = [{"KV": {"Verb": "set", "Key": f"new{i}", "Value": b"x"}} for i in range(10)]
    ops[6] = {"KV": {"Verb": "set", "Key": "new6", "Flags": "not a number"}}
    result = fsm.apply(10, {"Type": "txn", "Ops": ops})
    assert isinstance(result, Refusal)
    assert "$.Ops[6].KV.Flags" in result.message
    assert state_of(fsm) == before


def test_every_command_type_has_a_schema_and_a_handler():
    fsm = FSM(Store())
    assert set(fsm._handlers) == commands.TYPES


def test_good_commands_pass():
    assert commands.problem({"Type": "kv", "Verb": "set", "Key": "a", "Value": b"x"}) is None
    assert commands.problem({"Type": "noop"}) is None
    txn = {"Type": "txn", "Ops": [{"Node": {"Verb": "get", "Node": {"Node": "n1"}}}]}
    assert commands.problem(txn) is None


def test_a_restore_whose_state_does_not_decode_leaves_the_store_as_it_was():
    fsm = fsm_with_keys()
    before = state_of(fsm)
    result = fsm.apply(10, {"Type": "restore", "State": b"\x93not a snapshot"})
    assert isinstance(result, Refusal) and result.kind == "invalid"
    assert state_of(fsm) == before
