"""Sessions and KV locks in the FSM: pure apply sequences, invalidation, lock-delay, timers."""

from __future__ import annotations

import asyncio

import pytest

from agent.http.app import HTTPError
from agent.http.session import session_from_body
from agent.sessions_reaper import SessionReaper, TTLTimers
from agent.state.fsm import FSM, Refusal, TxnResult
from agent.state.sessions import LockDelays, lock_delay_refusal
from agent.state.store import Store
from agent.state.structs import Session
from tests.harness.entries import apply_entry, typed_command
from tests.harness.twins import MemoryWriter

S1 = "11111111-1111-1111-1111-111111111111"
S2 = "22222222-2222-2222-2222-222222222222"
SECOND = 1_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fsm(clock: FakeClock) -> FSM:
    store = Store()
    store.sessions.lock_delay = LockDelays(clock)
    machine = FSM(store)
    apply_entry(machine, 1, register("n1", check("serfHealth", "passing")))
    return machine


def register(node: str, *checks: dict) -> dict:
    return {"Type": "register", "Node": node, "Address": "10.0.0.1", "Checks": list(checks)}


def check(check_id: str, status: str) -> dict:
    return {"CheckID": check_id, "Name": check_id, "Status": status}


def create(session_id: str, **fields) -> dict:
    body = {"ID": session_id, "Node": "n1", "NodeChecks": ["serfHealth"], "LockDelay": 0}
    return {"Type": "session", "Op": "create", "Session": body | fields}


def destroy(session_id: str) -> dict:
    return {"Type": "session", "Op": "destroy", "ID": session_id}


def kv(verb: str, key: str, value: bytes = b"", **extra) -> dict:
    return {"Type": "kv", "Verb": verb, "Key": key, "Value": value} | extra


def entry(fsm: FSM, key: str):
    return fsm.store.kv_get(key)


# ---------------------------------------------------------------------- create / destroy


def test_create_stores_session_with_indexes(fsm: FSM) -> None:
    assert apply_entry(fsm, 2, create(S1, Name="web", TTL="10s")) == S1
    session = fsm.store.sessions.get(S1)
    assert (session.Name, session.CreateIndex, session.ModifyIndex, session.Behavior) == (
        "web",
        2,
        2,
        "release",
    )
    assert fsm.store.table_index("sessions") == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"Node": "ghost"}, "Missing node registration"),
        ({"NodeChecks": ["nope"]}, "Missing check 'nope' registration"),
        ({"Behavior": "explode"}, "Invalid session behavior: explode"),
        ({"ServiceChecks": [{"ID": "svc-check", "Namespace": ""}]}, "Missing check 'svc-check'"),
    ],
)
def test_create_refusals_change_nothing(fsm: FSM, fields: dict, message: str) -> None:
    result = apply_entry(fsm, 2, create(S1, **fields))
    assert isinstance(result, Refusal)
    assert result.message.startswith(message)
    assert fsm.store.sessions.get(S1) is None
    assert fsm.store.table_index("sessions") == 0


def test_create_refused_on_a_critical_check(fsm: FSM) -> None:
    apply_entry(fsm, 2, register("n1", check("disk", "critical")))
    result = apply_entry(fsm, 3, create(S1, NodeChecks=["disk"]))
    assert isinstance(result, Refusal)
    assert result.message == "Check 'disk' is in critical state"


def test_destroy_unknown_session_is_a_noop(fsm: FSM) -> None:
    assert apply_entry(fsm, 2, destroy(S1)) is True
    assert fsm.store.table_index("sessions") == 0


# ---------------------------------------------------------------------- locks


def test_lock_index_counts_new_acquisitions_only(fsm: FSM) -> None:
    apply_entry(fsm, 2, create(S1))
    apply_entry(fsm, 3, create(S2))
    assert apply_entry(fsm, 4, kv("lock", "l", b"a", Session=S1)) is True
    assert (entry(fsm, "l").LockIndex, entry(fsm, "l").Session) == (1, S1)
    # the holder re-acquires: value updated, LockIndex unchanged
    assert apply_entry(fsm, 5, kv("lock", "l", b"b", Session=S1)) is True
    assert (entry(fsm, "l").LockIndex, entry(fsm, "l").Value) == (1, b"b")
    # another session is refused and changes nothing
    assert apply_entry(fsm, 6, kv("lock", "l", b"c", Session=S2)) is False
    assert (entry(fsm, "l").Value, entry(fsm, "l").ModifyIndex) == (b"b", 5)
    # release by the holder keeps LockIndex, clears Session
    assert apply_entry(fsm, 7, kv("unlock", "l", b"d", Session=S2)) is False
    assert apply_entry(fsm, 8, kv("unlock", "l", b"d", Session=S1)) is True
    assert (entry(fsm, "l").LockIndex, entry(fsm, "l").Session, entry(fsm, "l").Value) == (
        1,
        "",
        b"d",
    )
    assert apply_entry(fsm, 9, kv("lock", "l", Session=S2)) is True
    assert entry(fsm, "l").LockIndex == 2


def test_plain_set_keeps_the_lock_and_delete_drops_it(fsm: FSM) -> None:
    apply_entry(fsm, 2, create(S1))
    apply_entry(fsm, 3, kv("lock", "l", Session=S1))
    apply_entry(fsm, 4, kv("set", "l", b"x"))
    assert entry(fsm, "l").Session == S1
    apply_entry(fsm, 5, kv("delete", "l"))
    assert entry(fsm, "l") is None
    assert fsm.store.sessions.held.get(S1) is None


def test_lock_with_unknown_or_missing_session_is_an_error(fsm: FSM) -> None:
    result = apply_entry(fsm, 2, kv("lock", "l", Session="nope"))
    assert isinstance(result, Refusal)
    assert result.message == 'invalid session "nope"'
    assert isinstance(apply_entry(fsm, 3, kv("lock", "l", Session="")), Refusal)
    assert entry(fsm, "l") is None


# ---------------------------------------------------------------------- invalidation


def test_destroy_releases_keys_and_sets_lock_delay(fsm: FSM, clock: FakeClock) -> None:
    apply_entry(fsm, 2, create(S1, LockDelay=5 * SECOND))
    apply_entry(fsm, 3, kv("lock", "a", b"1", Session=S1))
    apply_entry(fsm, 4, kv("lock", "b", b"2", Session=S1))
    apply_entry(fsm, 5, destroy(S1))
    for key in ("a", "b"):
        assert (entry(fsm, key).Session, entry(fsm, key).LockIndex) == ("", 1)
        assert entry(fsm, key).ModifyIndex == 5
    assert fsm.store.sessions.get(S1) is None
    assert fsm.store.table_index("sessions") == 5
    store = fsm.store
    assert lock_delay_refusal(store, typed_command(kv("lock", "a", Session=S2))) is False
    assert lock_delay_refusal(store, typed_command(kv("set", "a"))) is None
    txn = lock_delay_refusal(
        store,
        typed_command(
            {"Type": "txn", "Ops": [{"KV": {"Verb": "lock", "Key": "b", "Session": S2}}]}
        ),
    )
    assert isinstance(txn, TxnResult)
    assert txn.errors == [{"OpIndex": 0, "What": 'failed to lock key "b" due to lock delay'}]
    clock.now += 5.1
    assert lock_delay_refusal(store, typed_command(kv("lock", "a", Session=S2))) is None


def test_lock_delay_is_capped_at_a_minute(fsm: FSM, clock: FakeClock) -> None:
    apply_entry(fsm, 2, create(S1, LockDelay=3600 * SECOND))
    apply_entry(fsm, 3, kv("lock", "a", Session=S1))
    apply_entry(fsm, 4, destroy(S1))
    assert fsm.store.sessions.lock_delay.remaining("a") == pytest.approx(60.0)


def test_behavior_delete_removes_held_keys(fsm: FSM) -> None:
    apply_entry(fsm, 2, create(S1, Behavior="delete"))
    apply_entry(fsm, 3, kv("lock", "svc/leader", Session=S1))
    apply_entry(fsm, 4, kv("set", "svc/other"))
    apply_entry(fsm, 5, destroy(S1))
    assert entry(fsm, "svc/leader") is None
    assert entry(fsm, "svc/other") is not None
    assert fsm.store.kv_key_index("svc/leader") == 5


def test_a_check_going_critical_invalidates_its_sessions(fsm: FSM) -> None:
    apply_entry(fsm, 2, register("n1", check("disk", "passing")))
    apply_entry(fsm, 3, create(S1, NodeChecks=["serfHealth", "disk"]))
    apply_entry(fsm, 4, create(S2))
    apply_entry(fsm, 5, kv("lock", "a", Session=S1))
    apply_entry(fsm, 6, register("n1", check("disk", "warning")))
    assert fsm.store.sessions.get(S1) is not None
    apply_entry(fsm, 7, register("n1", check("disk", "critical")))
    assert fsm.store.sessions.get(S1) is None
    assert fsm.store.sessions.get(S2) is not None
    assert entry(fsm, "a").Session == ""


def test_service_check_critical_and_check_removal_invalidate(fsm: FSM) -> None:
    apply_entry(
        fsm,
        2,
        {
            "Type": "register",
            "Node": "n1",
            "Address": "10.0.0.1",
            "Service": {"ID": "web1", "Service": "web"},
            "Checks": [{"CheckID": "web-alive", "Status": "passing", "ServiceID": "web1"}],
        },
    )
    apply_entry(fsm, 3, create(S1, NodeChecks=[], ServiceChecks=[{"ID": "web-alive"}]))
    apply_entry(fsm, 4, create(S2, NodeChecks=["serfHealth"]))
    apply_entry(fsm, 5, {"Type": "deregister", "Node": "n1", "ServiceID": "web1"})
    assert fsm.store.sessions.get(S1) is None
    assert fsm.store.sessions.get(S2) is not None


def test_node_deregistration_invalidates_its_sessions(fsm: FSM) -> None:
    apply_entry(fsm, 2, register("n2", check("serfHealth", "passing")))
    apply_entry(fsm, 3, create(S1))
    apply_entry(fsm, 4, create(S2, Node="n2"))
    apply_entry(fsm, 5, kv("lock", "a", Session=S2))
    apply_entry(fsm, 6, {"Type": "deregister", "Node": "n2"})
    assert [s.ID for s in fsm.store.sessions.all()] == [S1]
    assert entry(fsm, "a").Session == ""


@pytest.mark.parametrize(
    ("command", "survivors"),
    [
        ({"Type": "deregister", "Node": "n1", "CheckID": "disk"}, [S2]),
        (
            {
                "Type": "txn",
                "Ops": [{"Check": {"Verb": "delete", "Check": {"Node": "n1", "CheckID": "disk"}}}],
            },
            [S2],
        ),
        (
            {
                "Type": "txn",
                "Ops": [
                    {
                        "Check": {
                            "Verb": "set",
                            "Check": {"Node": "n1", "CheckID": "disk", "Status": "critical"},
                        }
                    }
                ],
            },
            [S2],
        ),
        (
            {
                "Type": "txn",
                "Ops": [{"Service": {"Verb": "delete", "Node": "n1", "Service": {"ID": "web1"}}}],
            },
            [S2],
        ),
        ({"Type": "txn", "Ops": [{"Node": {"Verb": "delete", "Node": {"Node": "n1"}}}]}, []),
    ],
    ids=[
        "deregister-check",
        "txn-check-delete",
        "txn-check-critical",
        "txn-service-delete",
        "txn-node-delete",
    ],
)
def test_every_catalog_write_that_fails_a_check_invalidates(
    fsm: FSM, command: dict, survivors: list[str]
) -> None:
    apply_entry(
        fsm,
        2,
        {
            "Type": "register",
            "Node": "n1",
            "Address": "10.0.0.1",
            "Service": {"ID": "web1", "Service": "web"},
            "Checks": [
                check("disk", "passing"),
                {"CheckID": "web-alive", "Status": "passing", "ServiceID": "web1"},
            ],
        },
    )
    apply_entry(
        fsm, 3, create(S1, NodeChecks=["serfHealth", "disk"], ServiceChecks=[{"ID": "web-alive"}])
    )
    apply_entry(fsm, 4, create(S2))
    apply_entry(fsm, 5, kv("lock", "a", Session=S1))
    result = apply_entry(fsm, 6, command)
    assert not isinstance(result, Refusal) and getattr(result, "errors", None) is None
    assert [s.ID for s in fsm.store.sessions.all()] == survivors
    assert entry(fsm, "a").Session == ""
    assert fsm.store.table_index("sessions") == 6


# ---------------------------------------------------------------------- txn verbs


def txn(*ops: dict) -> dict:
    return {"Type": "txn", "Ops": [{"KV": op} for op in ops]}


def test_txn_lock_unlock_check_session(fsm: FSM) -> None:
    apply_entry(fsm, 2, create(S1))
    apply_entry(fsm, 3, create(S2))
    result = apply_entry(
        fsm,
        4,
        txn(
            {"Verb": "lock", "Key": "l", "Value": b"v", "Session": S1},
            {"Verb": "check-session", "Key": "l", "Session": S1},
        ),
    )
    assert result.errors is None
    assert result.results[0]["KV"]["Session"] == S1
    assert result.results[0]["KV"]["LockIndex"] == 1
    refused = apply_entry(fsm, 5, txn({"Verb": "lock", "Key": "l", "Session": S2}))
    assert refused.errors == [
        {"OpIndex": 0, "What": 'failed to lock key "l", lock is already held'}
    ]
    refused = apply_entry(fsm, 6, txn({"Verb": "check-session", "Key": "l", "Session": S2}))
    assert refused.errors[0]["What"] == (
        f'failed session check for key "l", current session "{S1}" != "{S2}"'
    )
    refused = apply_entry(fsm, 7, txn({"Verb": "check-session", "Key": "zz", "Session": S2}))
    assert refused.errors[0]["What"] == 'failed to check session, key "zz" doesn\'t exist'
    refused = apply_entry(fsm, 8, txn({"Verb": "lock", "Key": "m", "Session": "nope"}))
    assert refused.errors[0]["What"] == 'invalid session "nope"'
    # unlock then lock by another session inside one txn
    result = apply_entry(
        fsm,
        9,
        txn(
            {"Verb": "unlock", "Key": "l", "Session": S1},
            {"Verb": "lock", "Key": "l", "Session": S2},
            {"Verb": "check-session", "Key": "l", "Session": S2},
        ),
    )
    assert result.errors is None
    assert (entry(fsm, "l").Session, entry(fsm, "l").LockIndex) == (S2, 2)


def test_semaphore_pattern(fsm: FSM) -> None:
    """Contenders each hold their own key under a prefix; the limit lives in a CAS'd lock key."""
    apply_entry(fsm, 2, create(S1))
    apply_entry(fsm, 3, create(S2))
    assert apply_entry(fsm, 4, kv("lock", "sem/" + S1, Session=S1)) is True
    assert apply_entry(fsm, 5, kv("lock", "sem/" + S2, Session=S2)) is True
    holders = [e.Session for e in fsm.store.kv_range("sem/") if e.Session]
    assert sorted(holders) == [S1, S2]
    assert (
        apply_entry(fsm, 6, kv("cas", "sem/.lock", b'{"Limit":1,"Holders":["a"]}', Index=0)) is True
    )
    # a second writer with the stale index loses
    assert apply_entry(fsm, 7, kv("cas", "sem/.lock", b"x", Index=0)) is False
    apply_entry(fsm, 8, destroy(S1))
    assert entry(fsm, "sem/" + S1).Session == ""


# ---------------------------------------------------------------------- snapshots


def test_snapshot_restore_keeps_sessions_and_held_keys(fsm: FSM) -> None:
    apply_entry(fsm, 2, create(S1, TTL="15s", LockDelay=0))
    apply_entry(fsm, 3, kv("lock", "a", Session=S1))
    data = fsm.store.snapshot()
    other = FSM(Store())
    other.store.restore(data)
    assert other.store.sessions.get(S1) == fsm.store.sessions.get(S1)
    assert other.store.table_index("sessions") == 2
    apply_entry(other, 4, destroy(S1))
    assert other.store.kv_get("a").Session == ""


# ---------------------------------------------------------------------- HTTP body and timers


def test_session_body_defaults() -> None:
    session = session_from_body(None, "me", 10.0)
    assert session == {
        "Name": "",
        "Node": "me",
        "LockDelay": 15 * SECOND,
        "Behavior": "release",
        "TTL": "",
        "NodeChecks": ["serfHealth"],
        "ServiceChecks": None,
    }


@pytest.mark.parametrize(
    ("raw", "ns"),
    [("1s", SECOND), (5, 5 * SECOND), (2_000_000_000, 2 * SECOND), ("0s", 0), (0, 0)],
)
def test_lock_delay_forms(raw, ns: int) -> None:
    assert session_from_body({"lockdelay": raw}, "me", 10.0)["LockDelay"] == ns


def test_session_body_checks() -> None:
    assert session_from_body({"Checks": []}, "me", 10.0)["NodeChecks"] == []
    assert session_from_body({"NodeChecks": ["a"], "Checks": ["b", "a"]}, "me", 10.0)[
        "NodeChecks"
    ] == ["a", "b"]
    only_service = session_from_body({"ServiceChecks": [{"ID": "x"}]}, "me", 10.0)
    assert only_service["NodeChecks"] == ["serfHealth"]
    assert only_service["ServiceChecks"] == [{"ID": "x", "Namespace": ""}]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"Behavior": "x"}, 500, "Invalid Behavior setting 'x'"),
        ({"TTL": "5s"}, 500, "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"),
        ({"TTL": "86401s"}, 500, "Invalid Session TTL '86401000000000'"),
        ({"TTL": "soon"}, 500, "Session TTL 'soon' invalid: time: invalid duration \"soon\""),
        ({"LockDelay": "soon"}, 400, "Request decode failed: time: invalid duration"),
        ([1], 400, "Request decode failed"),
    ],
)
def test_session_body_refusals(body, status: int, message: str) -> None:
    with pytest.raises(HTTPError) as caught:
        session_from_body(body, "me", 10.0)
    assert caught.value.status == status
    assert caught.value.message.startswith(message)


def test_ttl_zero_means_no_ttl() -> None:
    assert session_from_body({"TTL": "0s"}, "me", 10.0)["TTL"] == "0s"


def test_ttl_timers() -> None:
    timers = TTLTimers()
    a = Session(ID="a", TTL="10s")
    b = Session(ID="b", TTL="30s")
    untimed = Session(ID="c")
    timers.rebuild([a, b, untimed], now=0.0)
    assert timers.deadlines == {"a": 20.0, "b": 60.0}
    assert timers.expired(19.9) == []
    timers.reset(a, now=15.0)  # a renew restarts the full 2 x TTL window
    assert timers.expired(21.0) == []
    assert timers.expired(35.0) == ["a"]
    assert timers.next_deadline() == 35.0
    d = Session(ID="d", TTL="10s")
    timers.reconcile([b, d], now=40.0)
    assert timers.deadlines == {"b": 60.0, "d": 60.0}


# ---------------------------------------------------------------------- the reaper's driver


def test_reaper_expires_only_unrenewed_sessions_and_restarts_on_leadership(fsm: FSM) -> None:
    clock = FakeClock()
    leading = [True]
    reaper = SessionReaper(fsm.store, MemoryWriter(fsm), lambda: leading[0], clock=clock)
    apply_entry(fsm, 2, create(S1, TTL="10s"))
    apply_entry(fsm, 3, create(S2, TTL="10s"))
    apply_entry(fsm, 4, kv("lock", "l", Session=S1))

    async def run() -> None:
        await reaper._step()  # becomes leader: fresh 20 s windows
        clock.now += 15
        reaper.renew(fsm.store.sessions.get(S2))
        await reaper._step()
        assert fsm.store.sessions.get(S1) is not None
        clock.now += 6  # S1 is past 2 x TTL, S2 was renewed 6 s ago
        await reaper._step()
        assert fsm.store.sessions.get(S1) is None
        assert fsm.store.kv_get("l").Session == ""
        assert fsm.store.sessions.get(S2) is not None
        # leadership lost and regained: S2 gets a whole new window, never an early expiry
        leading[0] = False
        await reaper._step()
        clock.now += 100
        leading[0] = True
        await reaper._step()
        assert fsm.store.sessions.get(S2) is not None
        clock.now += 20
        await reaper._step()
        assert fsm.store.sessions.get(S2) is None

    asyncio.run(run())
