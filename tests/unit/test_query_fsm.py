"""Prepared queries in the FSM: sets and deletes as log entries, the state store's checks at
apply time, the session cascade, and snapshots."""

from __future__ import annotations

import msgspec
import pytest

from agent.state.fsm import FSM, Refusal
from agent.state.queries import QueryTable
from agent.state.snapshot import SnapshotInvalid
from agent.state.store import Store
from tests.harness.entries import apply_entry

Q1 = "0c6a2ed2-cd6d-4a36-a4c5-1f6b7e5b3d51"
Q2 = "7b0e7c0a-5a4e-4f55-9d9b-3c2f6f1b2a10"
S1 = "11111111-1111-1111-1111-111111111111"
S2 = "22222222-2222-2222-2222-222222222222"


@pytest.fixture
def fsm() -> FSM:
    machine = FSM(Store())
    register = {
        "Type": "register",
        "Node": "n1",
        "Address": "10.0.0.1",
        "Checks": [{"CheckID": "serfHealth", "Name": "serfHealth", "Status": "passing"}],
    }
    apply_entry(machine, 1, register)
    for n, session in enumerate((S1, S2), start=2):
        body = {"ID": session, "Node": "n1", "NodeChecks": ["serfHealth"], "LockDelay": 0}
        assert (
            apply_entry(machine, n, {"Type": "session", "Op": "create", "Session": body}) == session
        )
    return machine


def put(query_id: str, name: str = "", **fields) -> dict:
    query = {"ID": query_id, "Name": name, "Service": {"Service": "db"}} | fields
    return {"Type": "prepared-query-set", "Query": query}


def template(query_id: str, name: str, **fields) -> dict:
    return put(query_id, name, Template={"Type": "name_prefix_match"}, **fields)


def test_set_stores_every_field_with_indexes(fsm: FSM) -> None:
    assert apply_entry(fsm, 10, put(Q1, "geo", Service={"Service": "db", "Tags": ["a"]})) is True
    stored = fsm.store.queries.get(Q1)
    assert stored["Service"]["Tags"] == ["a"] and stored["Service"]["Failover"]["NearestN"] == 0
    assert stored["Template"] == {"Type": "", "Regexp": "", "RemoveEmptyTags": False}
    assert (stored["CreateIndex"], stored["ModifyIndex"]) == (10, 10)
    assert fsm.store.table_index("prepared-queries") == 10
    assert apply_entry(fsm, 11, put(Q1, "geo2")) is True
    updated = fsm.store.queries.get(Q1)
    assert (updated["CreateIndex"], updated["ModifyIndex"], updated["Name"]) == (10, 11, "geo2")
    assert fsm.store.queries.by_name("GEO") is None and fsm.store.queries.by_name("Geo2") is updated
    assert apply_entry(fsm, 12, put(Q1.upper(), "geo3")) is True  # the same UUID, as hex
    assert [q["ID"] for q in fsm.store.queries.all()] == [Q1]
    assert fsm.store.queries.get(Q1)["Name"] == "geo3"


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (put(Q1, "geo"), put(Q2, "GEO"), "name 'GEO' aliases an existing query name"),
        (
            template(Q1, ""),
            template(Q2, ""),
            "a query template with an empty name already exists",
        ),
        (put(Q1, "geo"), put(Q2, Q1.upper()), f"name '{Q1.upper()}' aliases an existing query ID"),
    ],
)
def test_state_checks_refuse_and_change_nothing(
    fsm: FSM, first: dict, second: dict, message: str
) -> None:
    assert apply_entry(fsm, 10, first) is True
    before = [dict(q) for q in fsm.store.queries.all()]
    assert apply_entry(fsm, 11, second) == Refusal(message, "failed")
    assert fsm.store.queries.all() == before
    assert fsm.store.table_index("prepared-queries") == 10


def test_a_query_may_keep_its_own_name_and_an_unnamed_template_its_place(fsm: FSM) -> None:
    assert apply_entry(fsm, 10, template(Q1, "")) is True
    assert apply_entry(fsm, 11, template(Q1, "", Service={"Service": "${name.full}"})) is True
    assert apply_entry(fsm, 12, put(Q2, "geo")) is True
    assert apply_entry(fsm, 13, put(Q2, "geo")) is True


def test_the_session_must_exist(fsm: FSM) -> None:
    missing = "33333333-3333-3333-3333-333333333333"
    assert apply_entry(fsm, 10, put(Q1, Session=missing)) == Refusal(
        f'invalid session "{missing}"', "failed"
    )
    assert apply_entry(fsm, 11, put(Q1, Session="nope")) == Refusal(
        "invalid session: UUID must be 36 characters", "failed"
    )
    assert apply_entry(fsm, 12, put(Q1, Session=S1)) is True


def test_a_template_must_compile_at_apply_time(fsm: FSM) -> None:
    bad = put(Q1, "geo-", Template={"Type": "name_prefix_match", "Regexp": "^(x"})
    assert apply_entry(fsm, 10, bad) == Refusal(
        "failed compiling template: Bad Regexp: error parsing regexp: missing closing ): `^(x`",
        "failed",
    )
    assert len(fsm.store.queries) == 0


def test_delete_and_delete_of_an_unknown_id(fsm: FSM) -> None:
    apply_entry(fsm, 10, put(Q1, "geo"))
    assert apply_entry(fsm, 11, {"Type": "prepared-query-delete", "ID": Q2}) is True
    assert fsm.store.table_index("prepared-queries") == 10  # nothing changed
    assert apply_entry(fsm, 12, {"Type": "prepared-query-delete", "ID": Q1}) is True
    assert fsm.store.queries.get(Q1) is None and fsm.store.queries.by_name("geo") is None
    assert fsm.store.table_index("prepared-queries") == 12


def test_destroying_a_session_deletes_the_queries_bound_to_it(fsm: FSM) -> None:
    apply_entry(fsm, 10, put(Q1, Session=S1))
    apply_entry(fsm, 11, put(Q2, "kept", Session=S2))
    assert apply_entry(fsm, 12, {"Type": "session", "Op": "destroy", "ID": S1}) is True
    assert fsm.store.queries.get(Q1) is None and fsm.store.queries.get(Q2) is not None
    assert fsm.store.table_index("prepared-queries") == 12
    # Invalidation (the session's node leaving the catalog) goes the same way.
    apply_entry(fsm, 13, {"Type": "deregister", "Node": "n1"})
    assert fsm.store.queries.get(Q2) is None


def test_a_malformed_entry_is_refused_before_apply(fsm: FSM) -> None:
    result = apply_entry(fsm, 10, {"Type": "prepared-query-set", "Query": {"Name": "x"}})
    assert isinstance(result, Refusal) and result.kind == "invalid"
    assert "ID" in result.message and len(fsm.store.queries) == 0


def test_snapshots_carry_queries_and_refuse_a_damaged_one(fsm: FSM) -> None:
    apply_entry(fsm, 10, put(Q1, "geo", DNS={"TTL": "5s"}))
    apply_entry(fsm, 11, template(Q2, "geo-", Service={"Service": "${name.suffix}"}))
    copy = Store()
    copy.restore(fsm.store.snapshot())
    assert copy.queries.all() == fsm.store.queries.all()
    assert copy.queries.by_name("GEO-")["ID"] == Q2
    assert copy.table_index("prepared-queries") == 11

    header = fsm.store.capture()
    raw = msgspec.msgpack.decode(header.header)
    raw["queries"][0]["Service"] = "db"  # a string where the structure belongs
    body = msgspec.msgpack.encode(raw)
    damaged = len(body).to_bytes(4, "big") + body
    with pytest.raises(SnapshotInvalid, match=r"queries\[0\]"):
        copy.restore(damaged)
    assert copy.queries.all() == fsm.store.queries.all()  # the store is as it was

    raw = msgspec.msgpack.decode(header.header)
    raw["queries"][1]["Template"]["Regexp"] = "^(x"  # a template that no longer compiles
    body = msgspec.msgpack.encode(raw)
    with pytest.raises(
        SnapshotInvalid, match=r"queries\[1\]: failed compiling template: Bad Regexp"
    ):
        copy.restore(len(body).to_bytes(4, "big") + body)
    assert copy.queries.all() == fsm.store.queries.all()


def test_the_table_indexes_follow_every_write() -> None:
    table = QueryTable()
    table.put({"ID": Q2, "Name": "b", "Session": ""})
    table.put({"ID": Q1, "Name": "A", "Session": S1})
    assert [q["ID"] for q in table.all()] == [Q1, Q2]
    listed = table.all()
    listed.clear()  # a caller's list is its own
    assert len(table.all()) == 2
    assert table.lookup(Q1.upper())["ID"] == Q1 and table.by_name("a")["ID"] == Q1
    assert [q["ID"] for q in table.bound_to(S1)] == [Q1]
    table.put({"ID": Q1, "Name": "renamed", "Session": ""})
    assert table.by_name("a") is None and table.by_name("RENAMED")["ID"] == Q1
    assert table.delete(Q1) and not table.delete(Q1)
    assert table.lookup(Q1.upper()) is None and table.by_name("renamed") is None
    assert [q["ID"] for q in table.all()] == [Q2]
