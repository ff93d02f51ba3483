"""Faults on the seed cluster with real processes: kill -9 the leader under load, restart a
server and let it catch up (by snapshot when it is far behind)."""

from __future__ import annotations

import base64
import random
import threading
import time

import httpx
import pytest

from tests.e2e.seedcluster import SeedCluster, eventually
from tests.harness.linearizability import Op, check

pytestmark = pytest.mark.cluster

WRITERS = 3
READERS = 3
MAX_OPS_PER_CLIENT = 400  # bounded in count ...
RUN_SECONDS = 12.0  # ... and in time


def _urls(cluster: SeedCluster) -> list[str]:
    return [a.url for a in cluster.agents.values()]


def test_kill_9_leader_under_load_is_linearizable_and_loses_nothing() -> None:
    with SeedCluster() as cluster:
        history: list[Op] = []
        lock = threading.Lock()
        stop = threading.Event()
        started = time.monotonic()
        urls = _urls(cluster)
        rng = random.Random(7)

        def record(op: Op) -> None:
            with lock:
                history.append(op)

        def writer(n: int) -> None:
            key = f"lin/{n}"
            with httpx.Client(timeout=5) as http:
                for value in range(1, MAX_OPS_PER_CLIENT + 1):
                    if stop.is_set() or time.monotonic() - started > RUN_SECONDS:
                        return
                    url = rng.choice(urls)
                    t0 = time.monotonic()
                    try:
                        ok = (
                            http.put(f"{url}/v1/kv/{key}", content=str(value).encode()).json()
                            is True
                        )
                    except (httpx.HTTPError, ValueError):
                        ok = False
                    record(Op("w", key, value, t0, time.monotonic(), acked=ok))
                    if not ok:
                        time.sleep(0.05)

        def reader(n: int) -> None:
            with httpx.Client(timeout=5) as http:
                for _ in range(MAX_OPS_PER_CLIENT):
                    if stop.is_set() or time.monotonic() - started > RUN_SECONDS:
                        return
                    key = f"lin/{rng.randrange(WRITERS)}"
                    url = rng.choice(urls)
                    t0 = time.monotonic()
                    try:
                        answer = http.get(f"{url}/v1/kv/{key}")
                    except httpx.HTTPError:
                        continue
                    if answer.status_code == 404:
                        value = 0
                    elif answer.status_code == 200:
                        value = int(base64.b64decode(answer.json()[0]["Value"]))
                    else:
                        continue  # no answer is not a claim about the register
                    record(Op("r", key, value, t0, time.monotonic()))

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        threads += [threading.Thread(target=reader, args=(n,)) for n in range(READERS)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        victim = cluster.leader_agent()
        victim.kill()  # kill -9
        urls[:] = [a.url for a in cluster.agents.values() if a.alive]
        cluster.wait_leader(timeout=30, not_on=victim.ip)
        for t in threads:
            t.join(RUN_SECONDS + 30)
        stop.set()

        final: dict[str, int] = {}
        with httpx.Client(timeout=10) as http:
            for n in range(WRITERS):
                answer = http.get(f"{urls[0]}/v1/kv/lin/{n}", params={"consistent": ""})
                final[f"lin/{n}"] = (
                    int(base64.b64decode(answer.json()[0]["Value"]))
                    if answer.status_code == 200
                    else 0
                )
        acked = [op for op in history if op.kind == "w" and op.acked]
        assert len(acked) > 50, "the load did not run"
        assert check(history, final) == []

        # The killed server restarts from its data dir and catches up.
        restarted = cluster.restart(victim.name)
        with restarted.client() as http:
            for key, value in final.items():
                eventually(
                    lambda key=key, value=value: (
                        (r := http.get(f"/v1/kv/{key}", params={"stale": ""})).status_code == 200
                        and int(base64.b64decode(r.json()[0]["Value"])) == value
                    ),
                    30,
                    f"{victim.name} caught up on {key}",
                )


def test_far_behind_server_catches_up_by_snapshot() -> None:
    extra = ["-hcl=raft_snapshot_threshold = 64", "-hcl=raft_trailing_logs = 8"]
    with SeedCluster(extra=extra, client=False) as cluster:
        leader = cluster.leader_agent()
        follower = next(a for a in cluster.agents.values() if a is not leader)
        follower.kill()
        cluster.agents.pop(follower.name)
        with leader.client() as http:
            for i in range(300):
                assert http.put(f"/v1/kv/bulk/{i:03d}", content=str(i).encode()).json() is True
            expected = http.get("/v1/kv/bulk/", params={"keys": ""}).json()
        cluster.agents[follower.name] = follower
        restarted = cluster.restart(follower.name)
        with restarted.client() as http:
            eventually(
                lambda: (
                    http.get("/v1/kv/bulk/", params={"keys": "", "stale": ""}).json() == expected
                ),
                30,
                "the restarted server has every key",
            )
        assert "installed snapshot" in restarted.output()


def test_member_failure_leave_and_peer_removal() -> None:
    with SeedCluster() as cluster:
        url = cluster.agents["node1"].url
        client = cluster.agents["node4"]
        with client.client() as http:
            http.put("/v1/agent/service/register", json={"Name": "web", "Port": 80})
        eventually(
            lambda: httpx.get(f"{url}/v1/health/service/web", params={"passing": ""}).json(),
            20,
            "web passing",
        )
        client.kill()  # kill -9: the node fails, it does not leave

        def serf(node: str) -> str:
            checks = httpx.get(f"{url}/v1/health/node/{node}").json()
            return next((c["Status"] for c in checks if c["CheckID"] == "serfHealth"), "")

        eventually(lambda: serf("node4") == "critical", 40, "serfHealth critical for node4")
        members = {m["Name"]: m["Status"] for m in httpx.get(f"{url}/v1/agent/members").json()}
        assert members["node4"] == 4  # failed
        assert httpx.get(f"{url}/v1/health/service/web", params={"passing": ""}).json() == []
        assert [e["Node"]["Node"] for e in httpx.get(f"{url}/v1/health/service/web").json()] == [
            "node4"
        ]

        # force-leave turns the failed member into "left": the leader deregisters it.
        assert httpx.put(f"{url}/v1/agent/force-leave/node4").status_code == 200
        eventually(
            lambda: "node4" not in [n["Node"] for n in httpx.get(f"{url}/v1/catalog/nodes").json()],
            30,
            "node4 deregistered",
        )
        assert httpx.get(f"{url}/v1/health/service/web").json() == []
        assert httpx.put(f"{url}/v1/agent/force-leave/nobody").status_code == 500

        # A dead server leaves the Raft configuration through the operator endpoint.
        leader = cluster.leader_agent()
        victim = next(
            a for a in cluster.agents.values() if a.alive and a is not leader and a.name != "node4"
        )
        victim.kill()
        config = httpx.get(f"{leader.url}/v1/operator/raft/configuration").json()
        victim_id = next(s["ID"] for s in config["Servers"] if s["Node"] == victim.name)
        removed = httpx.delete(f"{leader.url}/v1/operator/raft/peer", params={"id": victim_id})
        assert removed.status_code == 200, removed.text
        eventually(
            lambda: len(httpx.get(f"{leader.url}/v1/status/peers").json()) == 2, 20, "two peers"
        )
        with leader.client() as http:
            assert http.put("/v1/kv/after-removal", content=b"ok").json() is True
