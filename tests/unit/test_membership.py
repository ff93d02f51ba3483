"""Gossip view -> servers, bootstrap sets and catalog reconciliation (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.membership import ALIVE, FAILED, LEFT, bootstrap_set, reconcile
from agent.state.commands import Command, Deregister
from agent.state.fsm import FSM
from agent.state.store import Store
from tests.harness.entries import apply_entry


@dataclass
class M:
    name: str
    addr: str
    status: int = ALIVE
    port: int = 8301
    tags: dict = field(default_factory=dict)


def server(name: str, addr: str, expect: int = 3, status: int = ALIVE) -> M:
    return M(
        name,
        addr,
        status,
        tags={
            "role": "consul",
            "dc": "dc1",
            "id": f"id-{name}",
            "port": "8300",
            "expect": str(expect),
        },
    )


def client(name: str, addr: str, status: int = ALIVE) -> M:
    return M(name, addr, status, tags={"role": "node", "dc": "dc1", "id": f"id-{name}"})


def test_bootstrap_waits_for_expect_servers() -> None:
    two = [server("s1", "127.0.0.11"), server("s2", "127.0.0.12"), client("c", "127.0.0.14")]
    assert bootstrap_set(two, "dc1", 3) is None
    three = two + [server("s3", "127.0.0.13")]
    assert bootstrap_set(three, "dc1", 3) == {
        "id-s1": "127.0.0.11:8300",
        "id-s2": "127.0.0.12:8300",
        "id-s3": "127.0.0.13:8300",
    }
    mixed = three[:-1] + [server("s3", "127.0.0.13", expect=5)]
    assert bootstrap_set(mixed, "dc1", 3) is None


def apply_all(fsm: FSM, commands: list[Command], start: int) -> int:
    for command in commands:
        start += 1
        fsm.apply(start, command)
    return start


def test_reconcile_alive_failed_left() -> None:
    fsm = FSM(Store())
    members = [server("s1", "127.0.0.11"), client("c1", "127.0.0.14")]
    index = apply_all(fsm, reconcile(members, fsm.store, "dc1"), 0)
    store = fsm.store
    assert set(store.nodes) == {"s1", "c1"}
    assert store.checks["c1"]["serfHealth"].Status == "passing"
    assert "consul" in store.services["s1"] and "consul" not in store.services.get("c1", {})
    assert reconcile(members, store, "dc1") == []  # converged: nothing more to do

    apply_entry(
        fsm,
        index + 1,
        {
            "Type": "register",
            "Node": "c1",
            "Address": "127.0.0.14",
            "SkipNodeUpdate": True,
            "Service": {"Service": "web"},
        },
    )
    members[1] = client("c1", "127.0.0.14", FAILED)
    index = apply_all(fsm, reconcile(members, store, "dc1"), index + 1)
    assert store.checks["c1"]["serfHealth"].Status == "critical"
    assert "web" in store.services["c1"]  # a failed node keeps its services (they fail health)

    members[1] = client("c1", "127.0.0.14", LEFT)
    apply_all(fsm, reconcile(members, store, "dc1"), index)
    assert "c1" not in store.nodes and "c1" not in store.services


def test_reconcile_leaves_catalog_only_nodes_alone() -> None:
    fsm = FSM(Store())
    apply_entry(
        fsm,
        1,
        {
            "Type": "register",
            "Node": "legacy-db",
            "Address": "127.0.0.50",
            "Service": {"Service": "db", "Port": 5432},
        },
    )
    apply_entry(
        fsm,
        2,
        {
            "Type": "register",
            "Node": "gone",
            "Address": "127.0.0.51",
            "Check": {"CheckID": "serfHealth", "Status": "passing"},
        },
    )
    commands = reconcile([server("s1", "127.0.0.11")], fsm.store, "dc1")
    assert Deregister(Node="gone") in commands
    assert not any(c.Node == "legacy-db" for c in commands)
