"""The FSM cannot be poisoned: a command of the wrong shape is a refusal, never an exception,
and never changes part of the store."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from agent.state import commands
from agent.state.fsm import FSM, Refusal
from agent.state.store import Store
from tests.harness.entries import apply_entry


def fsm_with_keys() -> FSM:
    fsm = FSM(Store())
    apply_entry(fsm, 1, {"Type": "register", "Node": "n1", "Address": "127.0.0.1"})
    for i in range(3):
        apply_entry(fsm, 2 + i, {"Type": "kv", "Verb": "set", "Key": f"k{i}", "Value": b"v%d" % i})
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
    {"Type": "session", "Op": "create", "Session": {"ID": "s", "LockDelay": 2**63}},
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
    result = apply_entry(fsm, 10, command)
    assert isinstance(result, Refusal)
    assert result.kind == "invalid"
    assert state_of(fsm) == before
    assert fsm.store.last_index == 10  # the entry is applied (as a refusal) like any other


def test_a_txn_with_one_bad_op_among_ten_applies_none_of_them():
    fsm = fsm_with_keys()
    before = state_of(fsm)
    ops: list[dict] = [{"KV": {"Verb": "set", "Key": f"new{i}", "Value": b"x"}} for i in range(10)]
    ops[6] = {"KV": {"Verb": "set", "Key": "new6", "Flags": "not a number"}}
    result = apply_entry(fsm, 10, {"Type": "txn", "Ops": ops})
    assert isinstance(result, Refusal)
    assert "$.Ops[6].KV.Flags" in result.message
    assert state_of(fsm) == before


def test_every_command_type_has_a_schema_and_a_handler():
    fsm = FSM(Store())
    assert set(fsm._handlers) == set(commands.COMMAND_TYPES)


def test_good_commands_pass_and_encode_to_the_maps_logs_have_always_held():
    kv = commands.from_map({"Type": "kv", "Verb": "set", "Key": "a", "Value": b"x"})
    assert kv == commands.KV(Verb="set", Key="a", Value=b"x")
    assert msgspec.msgpack.decode(commands.encode(kv)) == {
        "Type": "kv",
        "Verb": "set",
        "Key": "a",
        "Value": b"x",
    }
    assert commands.decode(commands.encode(commands.Noop())) == commands.Noop()
    txn = {"Type": "txn", "Ops": [{"Node": {"Verb": "get", "Node": {"Node": "n1"}}}]}
    assert isinstance(commands.from_map(txn), commands.Txn)


def test_a_command_built_with_the_wrong_types_never_reaches_the_log():
    # Building a Struct checks nothing; encoding does, as the FSM's decoding will.
    not_a_string: Any = 7
    with pytest.raises(commands.Invalid, match=r"\$\.Key"):
        commands.encode(commands.KV(Verb="set", Key=not_a_string))
    with pytest.raises(commands.Invalid, match="unknown KV verb"):
        commands.encode(commands.KV(Verb="explode", Key="a"))
    with pytest.raises(OverflowError):
        commands.encode(commands.KV(Verb="set", Key="a", Flags=2**64))


def test_a_restore_whose_state_does_not_decode_leaves_the_store_as_it_was():
    fsm = fsm_with_keys()
    before = state_of(fsm)
    result = apply_entry(fsm, 10, {"Type": "restore", "State": b"\x93not a snapshot"})
    assert isinstance(result, Refusal) and result.kind == "invalid"
    assert state_of(fsm) == before
