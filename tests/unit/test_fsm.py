"""The FSM and store: Consul's index semantics, CAS, txn atomicity, catalog upserts."""

from __future__ import annotations

import pytest

from agent.state.fsm import FSM, Refusal
from agent.state.store import Store
from tests.harness.entries import apply_entry


@pytest.fixture
def fsm() -> FSM:
    return FSM(Store())


def kv(verb: str, key: str, value: bytes = b"", **extra) -> dict:
    return {"Type": "kv", "Verb": verb, "Key": key, "Value": value} | extra


def test_set_keeps_create_index_and_bumps_modify_index(fsm: FSM) -> None:
    assert apply_entry(fsm, 1, kv("set", "a", b"1")) is True
    assert apply_entry(fsm, 2, kv("set", "a", b"2")) is True
    entry = fsm.store.kv_get("a")
    assert (entry.Value, entry.CreateIndex, entry.ModifyIndex) == (b"2", 1, 2)
    assert fsm.store.indexes["kvs"] == 2


def test_cas_zero_creates_only_when_absent(fsm: FSM) -> None:
    assert apply_entry(fsm, 1, kv("cas", "a", b"x", Index=0)) is True
    assert apply_entry(fsm, 2, kv("cas", "a", b"y", Index=0)) is False
    assert apply_entry(fsm, 3, kv("cas", "a", b"y", Index=1)) is True
    assert fsm.store.kv_get("a").Value == b"y"
    # a refused CAS changes no index
    assert fsm.store.indexes["kvs"] == 3


def test_delete_leaves_tombstone_index_for_blocking_queries(fsm: FSM) -> None:
    apply_entry(fsm, 1, kv("set", "p/a"))
    apply_entry(fsm, 2, kv("set", "other"))
    apply_entry(fsm, 3, kv("delete", "p/a"))
    assert fsm.store.kv_get("p/a") is None
    assert fsm.store.kv_key_index("p/a") == 3
    assert fsm.store.kv_prefix_index("p/") == 3


def test_delete_cas(fsm: FSM) -> None:
    apply_entry(fsm, 1, kv("set", "a"))
    assert apply_entry(fsm, 2, kv("delete-cas", "a", Index=7)) is False
    assert apply_entry(fsm, 3, kv("delete-cas", "a", Index=1)) is True
    assert fsm.store.kv_get("a") is None


def test_delete_tree_and_keys_with_separator(fsm: FSM) -> None:
    for i, key in enumerate(["a/b/c", "a/b/d", "a/e", "b"], start=1):
        apply_entry(fsm, i, kv("set", key))
    assert fsm.store.kv_keys("a/", "/") == ["a/b/", "a/e"]
    assert fsm.store.kv_keys("", "") == ["a/b/c", "a/b/d", "a/e", "b"]
    apply_entry(fsm, 10, kv("delete-tree", "a/"))
    assert fsm.store.kv_keys("", "") == ["b"]


def test_txn_is_all_or_nothing(fsm: FSM) -> None:
    apply_entry(fsm, 1, kv("set", "x", b"old"))
    result = apply_entry(
        fsm,
        2,
        {
            "Type": "txn",
            "Ops": [
                {
                    "KV": {
                        "Verb": "set",
                        "Key": "y",
                        "Value": b"new",
                        "Flags": 0,
                        "Index": 0,
                        "Session": "",
                    }
                },
                {
                    "KV": {
                        "Verb": "cas",
                        "Key": "x",
                        "Value": b"new",
                        "Flags": 0,
                        "Index": 99,
                        "Session": "",
                    }
                },
            ],
        },
    )
    assert result.results is None
    assert result.errors == [{"OpIndex": 1, "What": 'failed to set key "x", index is stale'}]
    assert fsm.store.kv_get("y") is None
    assert fsm.store.kv_get("x").Value == b"old"


def test_txn_later_op_sees_earlier_op(fsm: FSM) -> None:
    ops = [
        {"KV": {"Verb": "set", "Key": "k", "Value": b"v", "Flags": 0, "Index": 0, "Session": ""}},
        {
            "KV": {
                "Verb": "check-not-exists",
                "Key": "k",
                "Value": b"",
                "Flags": 0,
                "Index": 0,
                "Session": "",
            }
        },
    ]
    result = apply_entry(fsm, 1, {"Type": "txn", "Ops": ops})
    assert result.errors == [{"OpIndex": 1, "What": 'key "k" exists'}]
    assert fsm.store.kv_get("k") is None


def test_txn_results_shape(fsm: FSM) -> None:
    ops = [
        {"KV": {"Verb": "set", "Key": "k", "Value": b"v", "Flags": 3, "Index": 0, "Session": ""}},
        {"KV": {"Verb": "get", "Key": "k", "Value": b"", "Flags": 0, "Index": 0, "Session": ""}},
        {
            "KV": {
                "Verb": "delete",
                "Key": "gone",
                "Value": b"",
                "Flags": 0,
                "Index": 0,
                "Session": "",
            }
        },
    ]
    result = apply_entry(fsm, 5, {"Type": "txn", "Ops": ops})
    assert result.errors is None
    assert [r["KV"]["Value"] for r in result.results] == [None, b"v"]
    assert result.results[0]["KV"]["ModifyIndex"] == 5


def register(node: str, service: dict | None = None, checks: list | None = None) -> dict:
    cmd = {"Type": "register", "Node": node, "Address": "127.0.0.5"}
    if service:
        cmd["Service"] = service
    if checks:
        cmd["Checks"] = checks
    return cmd


def test_identical_register_does_not_bump_indexes(fsm: FSM) -> None:
    apply_entry(fsm, 1, register("n1", {"Service": "web", "Port": 80}))
    apply_entry(fsm, 2, register("n1", {"Service": "web", "Port": 80}))
    assert fsm.store.indexes["nodes"] == 1
    assert fsm.store.indexes["services"] == 1
    apply_entry(fsm, 3, register("n1", {"Service": "web", "Port": 81}))
    assert fsm.store.services["n1"]["web"].ModifyIndex == 3
    assert fsm.store.services["n1"]["web"].CreateIndex == 1
    assert fsm.store.service_name_index("web") == 3


def test_check_for_unknown_service_is_refused(fsm: FSM) -> None:
    result = apply_entry(fsm, 1, register("n1", checks=[{"CheckID": "c", "ServiceID": "nope"}]))
    assert isinstance(result, Refusal)
    assert "nope" in result.message
    assert "n1" not in fsm.store.nodes


def test_deregister_node_removes_services_and_checks(fsm: FSM) -> None:
    apply_entry(
        fsm,
        1,
        register(
            "n1", {"Service": "web"}, [{"CheckID": "c", "ServiceID": "web", "Status": "passing"}]
        ),
    )
    apply_entry(fsm, 2, {"Type": "deregister", "Node": "n1"})
    assert fsm.store.nodes == {} and fsm.store.services == {} and fsm.store.checks == {}
    assert fsm.store.service_name_index("web") == 2


def test_snapshot_round_trip_keeps_indexes(fsm: FSM) -> None:
    apply_entry(fsm, 1, kv("set", "a", b"1", Flags=9))
    apply_entry(
        fsm,
        2,
        register("n1", {"Service": "web", "Tags": ["x"]}, [{"CheckID": "c", "ServiceID": "web"}]),
    )
    apply_entry(fsm, 3, kv("delete", "a"))
    copy = Store()
    copy.restore(fsm.store.snapshot())
    assert copy.last_index == 3
    assert copy.indexes == fsm.store.indexes
    assert copy.kv_key_index("a") == 3
    assert copy.services["n1"]["web"].Tags == ["x"]
    assert copy.checks["n1"]["c"].ServiceName == "web"
