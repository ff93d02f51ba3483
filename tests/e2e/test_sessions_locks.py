"""Sessions and KV locks against a real agent, with httpx and py-consul: acquire/release,
invalidation (destroy, TTL expiry, a check going critical) with lock-delay, Behavior delete,
Consul's refusals, blocking reads, the semaphore and leader-election recipes."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import consul
import httpx
import pytest

from tests.e2e.agentproc import AgentProc, free_port


def eventually(probe: Callable[[], Any], timeout: float = 15.0, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(step)
    raise AssertionError("condition not reached in time")


@pytest.fixture(scope="module")
def http(dev_agent_module: AgentProc):
    with dev_agent_module.client() as client:
        yield client


@pytest.fixture(scope="module")
def py(dev_agent_module: AgentProc) -> consul.Consul:
    return consul.Consul(host=dev_agent_module.ip, port=dev_agent_module.http_port)


def new_session(http: httpx.Client, **body: Any) -> str:
    answer = http.put("/v1/session/create", json={"LockDelay": "1s"} | body)
    assert answer.status_code == 200, answer.text
    return answer.json()["ID"]


def acquire(http: httpx.Client, key: str, session: str, value: bytes = b"") -> bool:
    answer = http.put(f"/v1/kv/{key}", params={"acquire": session}, content=value)
    assert answer.status_code == 200, answer.text
    return answer.json()


def entry(http: httpx.Client, key: str) -> dict | None:
    answer = http.get(f"/v1/kv/{key}")
    return answer.json()[0] if answer.status_code == 200 else None


# ---------------------------------------------------------------------- sessions


def test_create_info_node_list_renew_destroy(http: httpx.Client) -> None:
    sid = new_session(http, Name="web-lock", TTL="30s", Behavior="delete")
    info = http.get(f"/v1/session/info/{sid}")
    assert info.status_code == 200
    [session] = info.json()
    assert session["ID"] == sid
    assert session["Name"] == "web-lock"
    assert session["LockDelay"] == 1_000_000_000
    assert session["Behavior"] == "delete"
    assert session["TTL"] == "30s"
    assert session["NodeChecks"] == ["serfHealth"]
    assert session["CreateIndex"] == session["ModifyIndex"] > 0
    assert int(info.headers["X-Consul-Index"]) >= session["CreateIndex"]
    node = session["Node"]
    assert sid in [s["ID"] for s in http.get(f"/v1/session/node/{node}").json()]
    assert sid in [s["ID"] for s in http.get("/v1/session/list").json()]
    filtered = http.get("/v1/session/list", params={"filter": 'Name == "web-lock"'}).json()
    assert [s["ID"] for s in filtered] == [sid]
    renewed = http.put(f"/v1/session/renew/{sid}")
    assert renewed.status_code == 200
    assert renewed.json()[0]["ID"] == sid
    assert http.put(f"/v1/session/destroy/{sid}").json() is True
    assert http.get(f"/v1/session/info/{sid}").json() == []
    assert http.put(f"/v1/session/destroy/{sid}").json() is True  # unknown: still true


def test_default_session_and_methods(http: httpx.Client) -> None:
    answer = http.put("/v1/session/create")
    assert answer.status_code == 200
    sid = answer.json()["ID"]
    [session] = http.get(f"/v1/session/info/{sid}").json()
    assert session["LockDelay"] == 15_000_000_000
    assert session["Behavior"] == "release"
    assert session["TTL"] == ""
    http.put(f"/v1/session/destroy/{sid}")
    assert http.get("/v1/session/create").status_code == 405
    assert http.get("/v1/session/create").headers["Allow"] == "OPTIONS,PUT"
    assert http.put("/v1/session/list").status_code == 405


def test_bad_inputs_get_consuls_errors_and_change_nothing(http: httpx.Client) -> None:
    before = http.get("/v1/session/list")
    index = before.headers["X-Consul-Index"]
    cases = [
        ({"Behavior": "explode"}, 500, "Invalid Behavior setting 'explode'"),
        ({"TTL": "5s"}, 500, "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"),
        (
            {"TTL": "25h"},
            500,
            "Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]",
        ),
        ({"TTL": "soon"}, 500, "Session TTL 'soon' invalid: time: invalid duration \"soon\""),
        ({"Node": "no-such-node"}, 500, "Missing node registration"),
        ({"NodeChecks": ["ghost"]}, 500, "Missing check 'ghost' registration"),
    ]
    for body, status, message in cases:
        answer = http.put("/v1/session/create", json=body)
        assert (answer.status_code, answer.text) == (status, message), body
    missing = http.put("/v1/kv/bad/lock", params={"acquire": "not-a-session"})
    assert (missing.status_code, missing.text) == (500, 'invalid session "not-a-session"')
    assert http.get("/v1/kv/bad/lock").status_code == 404
    renew = http.put("/v1/session/renew/not-a-session")
    assert (renew.status_code, renew.text) == (404, "Session id 'not-a-session' not found")
    assert http.put("/v1/session/destroy/").status_code == 400
    assert http.get("/v1/session/info/").text == "Missing session"
    after = http.get("/v1/session/list")
    assert after.json() == before.json()
    assert after.headers["X-Consul-Index"] == index


# ---------------------------------------------------------------------- locks


def test_lock_is_refused_to_another_session_until_released(http: httpx.Client) -> None:
    s1, s2 = new_session(http), new_session(http)
    assert acquire(http, "locks/a", s1, b"one") is True
    assert acquire(http, "locks/a", s2, b"two") is False
    held = entry(http, "locks/a")
    assert (held["Session"], held["LockIndex"]) == (s1, 1)
    assert base64.b64decode(held["Value"]) == b"one"
    assert acquire(http, "locks/a", s1, b"again") is True  # the holder: no new acquisition
    assert entry(http, "locks/a")["LockIndex"] == 1
    release = http.put("/v1/kv/locks/a", params={"release": s2})
    assert release.json() is False
    assert http.put("/v1/kv/locks/a", params={"release": s1}, content=b"free").json() is True
    freed = entry(http, "locks/a")
    assert "Session" not in freed
    assert freed["LockIndex"] == 1
    # a release is not an invalidation: no lock-delay
    assert acquire(http, "locks/a", s2) is True
    assert entry(http, "locks/a")["LockIndex"] == 2
    for sid in (s1, s2):
        http.put(f"/v1/session/destroy/{sid}")


def test_destroy_frees_the_lock_after_lock_delay(http: httpx.Client) -> None:
    s1 = new_session(http, LockDelay="5s")
    s2 = new_session(http)
    assert acquire(http, "locks/b", s1) is True
    assert http.put(f"/v1/session/destroy/{s1}").json() is True
    released = entry(http, "locks/b")
    assert "Session" not in released
    assert released["LockIndex"] == 1
    assert acquire(http, "locks/b", s2) is False  # within the 5 s lock-delay
    eventually(lambda: acquire(http, "locks/b", s2), timeout=20, step=0.25)
    assert entry(http, "locks/b")["Session"] == s2
    http.put(f"/v1/session/destroy/{s2}")


def test_behavior_delete_removes_the_keys(http: httpx.Client) -> None:
    sid = new_session(http, Behavior="delete")
    assert acquire(http, "eph/one", sid, b"1") is True
    assert acquire(http, "eph/two", sid, b"2") is True
    http.put("/v1/kv/eph/kept", content=b"3")
    http.put(f"/v1/session/destroy/{sid}")
    assert http.get("/v1/kv/eph/one").status_code == 404
    assert http.get("/v1/kv/eph/two").status_code == 404
    assert http.get("/v1/kv/eph/kept").status_code == 200


def test_txn_lock_unlock_check_session(http: httpx.Client) -> None:
    s1, s2 = new_session(http), new_session(http)
    ops = [
        {"KV": {"Verb": "lock", "Key": "txn/l", "Value": "dg==", "Session": s1}},
        {"KV": {"Verb": "check-session", "Key": "txn/l", "Session": s1}},
    ]
    answer = http.put("/v1/txn", json=ops)
    assert answer.status_code == 200, answer.text
    assert answer.json()["Results"][0]["KV"]["Session"] == s1
    refused = http.put("/v1/txn", json=[{"KV": {"Verb": "lock", "Key": "txn/l", "Session": s2}}])
    assert refused.status_code == 409
    assert refused.json()["Errors"] == [
        {"OpIndex": 0, "What": 'failed to lock key "txn/l", lock is already held'}
    ]
    ops = [{"KV": {"Verb": "unlock", "Key": "txn/l", "Session": s1}}]
    assert http.put("/v1/txn", json=ops).status_code == 200
    assert "Session" not in entry(http, "txn/l")
    for sid in (s1, s2):
        http.put(f"/v1/session/destroy/{sid}")


def test_semaphore_pattern(http: httpx.Client) -> None:
    """Consul's semaphore recipe: each contender holds its own key under the prefix, and the
    holder list lives in one `.lock` key updated with CAS."""
    prefix, limit = "sem/db", 2
    sessions = [new_session(http) for _ in range(3)]
    for sid in sessions:
        assert acquire(http, f"{prefix}/{sid}", sid) is True

    def try_enter(sid: str) -> bool:
        current = http.get(f"/v1/kv/{prefix}/.lock")
        if current.status_code == 404:
            index, holders = 0, []
        else:
            raw = current.json()[0]
            index = raw["ModifyIndex"]
            holders = json.loads(base64.b64decode(raw["Value"]))["Holders"]
        live = {
            e["Session"] for e in http.get(f"/v1/kv/{prefix}/?recurse").json() if "Session" in e
        }
        holders = [h for h in holders if h in live]
        if len(holders) >= limit:
            return False
        body = json.dumps({"Limit": limit, "Holders": [*holders, sid]}).encode()
        return http.put(f"/v1/kv/{prefix}/.lock", params={"cas": index}, content=body).json()

    assert try_enter(sessions[0]) is True
    assert try_enter(sessions[1]) is True
    assert try_enter(sessions[2]) is False
    # a holder's session dies: its contender key is released, so its slot frees up
    http.put(f"/v1/session/destroy/{sessions[0]}")
    assert try_enter(sessions[2]) is True
    for sid in sessions[1:]:
        http.put(f"/v1/session/destroy/{sid}")


# ---------------------------------------------------------------------- invalidation


def test_check_going_critical_invalidates_and_frees_the_lock(http: httpx.Client) -> None:
    http.put("/v1/agent/check/register", json={"Name": "lease", "TTL": "1s", "Status": "passing"})

    def create_while_passing() -> str | None:
        http.put("/v1/agent/check/pass/lease")
        answer = http.put(
            "/v1/session/create", json={"LockDelay": "1s", "NodeChecks": ["serfHealth", "lease"]}
        )
        return answer.json()["ID"] if answer.status_code == 200 else None

    sid = eventually(create_while_passing)
    other = new_session(http)
    assert acquire(http, "locks/c", sid) is True
    index = http.get(f"/v1/session/info/{sid}").headers["X-Consul-Index"]
    # nobody passes the TTL check any more: it goes critical, the session goes with it
    woke = http.get(f"/v1/session/info/{sid}", params={"index": index, "wait": "30s"})
    assert woke.status_code == 200
    eventually(lambda: http.get(f"/v1/session/info/{sid}").json() == [])
    assert "Session" not in entry(http, "locks/c")
    eventually(lambda: acquire(http, "locks/c", other), step=0.25)
    http.put(f"/v1/session/destroy/{other}")
    http.put("/v1/agent/check/deregister/lease")


def register_node(http: httpx.Client, node: str, serf_status: str) -> None:
    body = {
        "Node": node,
        "Address": "10.9.9.9",
        "Check": {"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": serf_status},
    }
    assert http.put("/v1/catalog/register", json=body).json() is True


def test_node_failure_and_removal_invalidate_its_sessions(http: httpx.Client) -> None:
    """A node's serfHealth going critical (what the leader records when gossip declares the
    node failed) or the node leaving the catalog invalidates the sessions on it."""
    register_node(http, "ext-a", "passing")
    register_node(http, "ext-b", "passing")
    on_a = new_session(http, Node="ext-a")
    on_b = new_session(http, Node="ext-b", Behavior="delete")
    assert acquire(http, "nodes/a", on_a) is True
    assert acquire(http, "nodes/b", on_b) is True
    assert [s["ID"] for s in http.get("/v1/session/node/ext-a").json()] == [on_a]
    register_node(http, "ext-a", "critical")
    assert http.get(f"/v1/session/info/{on_a}").json() == []
    assert "Session" not in entry(http, "nodes/a")
    assert http.get("/v1/session/node/ext-a").json() == []
    refused = http.put("/v1/session/create", json={"Node": "ext-a"})
    assert (refused.status_code, refused.text) == (500, "Check 'serfHealth' is in critical state")
    assert http.put("/v1/catalog/deregister", json={"Node": "ext-b"}).json() is True
    assert http.get(f"/v1/session/info/{on_b}").json() == []
    assert http.get("/v1/kv/nodes/b").status_code == 404
    http.put("/v1/catalog/deregister", json={"Node": "ext-a"})


def test_ttl_expiry_invalidates_the_session_and_renew_prevents_it(http: httpx.Client) -> None:
    """TTL 10 s (Consul's minimum) is invalidated after 2 x TTL without a renew; a session
    renewed every few seconds outlives it."""
    lapsed = new_session(http, TTL="10s")
    renewed = new_session(http, TTL="10s")
    assert acquire(http, "locks/ttl", lapsed) is True
    index = entry(http, "locks/ttl")["ModifyIndex"]
    deadline = time.monotonic() + 40
    while True:  # block on the key; renew the other session each time the wait runs out
        assert time.monotonic() < deadline, "the lapsed session was never invalidated"
        woke = http.get("/v1/kv/locks/ttl", params={"index": index, "wait": "5s"}, timeout=30)
        assert http.put(f"/v1/session/renew/{renewed}").status_code == 200
        if int(woke.headers["X-Consul-Index"]) > index:
            break
    assert "Session" not in woke.json()[0]
    assert http.get(f"/v1/session/info/{lapsed}").json() == []
    assert http.put(f"/v1/session/renew/{lapsed}").status_code == 404
    assert http.get(f"/v1/session/info/{renewed}").json() != []
    http.put(f"/v1/session/destroy/{renewed}")


def test_blocking_session_list_wakes_on_create(http: httpx.Client) -> None:
    index = int(http.get("/v1/session/list").headers["X-Consul-Index"])
    result: dict = {}

    def block() -> None:
        result["answer"] = http.get("/v1/session/list", params={"index": index, "wait": "30s"})

    thread = threading.Thread(target=block)
    thread.start()
    time.sleep(0.3)
    sid = new_session(http)
    thread.join(35)
    answer = result["answer"]
    assert int(answer.headers["X-Consul-Index"]) > index
    assert sid in [s["ID"] for s in answer.json()]
    http.put(f"/v1/session/destroy/{sid}")


# ---------------------------------------------------------------------- py-consul


def test_py_consul_sessions_and_locks(py: consul.Consul) -> None:
    s1 = py.session.create(name="py-a", lock_delay=1, ttl=20)
    s2 = py.session.create(name="py-b", lock_delay=1)
    assert py.kv.put("py/lock", "a", acquire=s1) is True
    assert py.kv.put("py/lock", "b", acquire=s2) is False
    _, data = py.kv.get("py/lock")
    assert data["Session"] == s1
    assert py.session.info(s1)[1]["Name"] == "py-a"
    assert py.session.renew(s1)["ID"] == s1
    assert {s1, s2} <= {s["ID"] for s in py.session.list()[1]}
    assert py.kv.put("py/lock", "a2", release=s1) is True
    assert py.kv.put("py/lock", "b", acquire=s2) is True
    py.session.destroy(s1)
    py.session.destroy(s2)
    assert py.session.info(s1)[1] is None


def test_py_consul_leader_election(py: consul.Consul) -> None:
    """Two contenders; one wins; the other watches the key and takes over when the first
    one's session is destroyed (after the 1 s lock-delay)."""
    key = "service/app/leader"
    first = py.session.create(name="contender-1", lock_delay=1)
    second = py.session.create(name="contender-2", lock_delay=1)
    assert py.kv.put(key, "contender-1", acquire=first) is True
    assert py.kv.put(key, "contender-2", acquire=second) is False
    index, data = py.kv.get(key)
    assert data["Session"] == first

    watched: dict = {}

    def watch() -> None:
        watched["result"] = py.kv.get(key, index=index, wait="30s")

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.3)
    py.session.destroy(first)  # the leader steps down (or dies)
    thread.join(35)
    _, seen = watched["result"]
    assert "Session" not in seen  # the watcher learns the lock is free
    eventually(lambda: py.kv.put(key, "contender-2", acquire=second), step=0.25)
    _, data = py.kv.get(key)
    assert data["Session"] == second
    assert data["Value"] == b"contender-2"
    assert data["LockIndex"] == 2
    py.session.destroy(second)


# ---------------------------------------------------------------------- restart


def test_sessions_and_locks_survive_a_restart(tmp_path) -> None:
    ip = "127.0.0.1"
    args = [
        "-server",
        "-bootstrap-expect=1",
        f"-data-dir={tmp_path / 'd'}",
        "-node=sess1",
        f"-bind={ip}",
        f"-client={ip}",
        f"-server-port={free_port(ip)}",
        "-dns-port=-1",
        f"-serf-lan-port={free_port(ip)}",
        "-serf-wan-port=-1",
    ]
    port = free_port()
    with AgentProc(*args, http_port=port).start() as agent, agent.client() as http:
        sid = new_session(http, TTL="60s", Name="keeper")
        assert acquire(http, "restart/lock", sid, b"v") is True
        before = http.get(f"/v1/session/info/{sid}").json()
        assert agent.stop() == 0
    with AgentProc(*args, http_port=port).start() as agent, agent.client() as http:
        assert http.get(f"/v1/session/info/{sid}").json() == before
        assert entry(http, "restart/lock")["Session"] == sid
        other = new_session(http)
        assert acquire(http, "restart/lock", other) is False
        assert http.put(f"/v1/session/renew/{sid}").status_code == 200
        http.put(f"/v1/session/destroy/{sid}")
        assert "Session" not in entry(http, "restart/lock")
