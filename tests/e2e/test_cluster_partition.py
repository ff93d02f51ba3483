"""Partition the Raft leader from the other servers with iptables, then heal.

Each agent owns a loopback address and every connection between agents leaves from it, so
dropping packets between addresses cuts one "host" off the others while the test (talking
from 127.0.0.1) still reaches everyone. Needs root and iptables; skipped otherwise.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess

import httpx
import pytest

from tests.e2e.seedcluster import SERVERS, SeedCluster, eventually

pytestmark = pytest.mark.cluster
CHAIN = "GITKV-TEST"


def _iptables(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", *args], capture_output=True, text=True, timeout=10)


def _can_partition() -> str | None:
    if shutil.which("iptables") is None:
        return "iptables is not installed"
    if os.geteuid() != 0:
        return "needs root for iptables"
    probe = _iptables("-L", "INPUT", "-n")
    return None if probe.returncode == 0 else f"iptables unusable: {probe.stderr.strip()}"


class Partition:
    def __init__(self) -> None:
        _iptables("-N", CHAIN)
        _iptables("-F", CHAIN)
        if _iptables("-C", "INPUT", "-j", CHAIN).returncode != 0:
            _iptables("-I", "INPUT", "-j", CHAIN)

    def isolate(self, ip: str, peers: list[str]) -> None:
        for peer in peers:
            for src, dst in ((ip, peer), (peer, ip)):
                result = _iptables("-A", CHAIN, "-s", src, "-d", dst, "-j", "DROP")
                assert result.returncode == 0, result.stderr

    def heal(self) -> None:
        _iptables("-F", CHAIN)

    def remove(self) -> None:
        self.heal()
        _iptables("-D", "INPUT", "-j", CHAIN)
        _iptables("-X", CHAIN)


def value(http: httpx.Client, key: str, **params: str) -> str | None:
    answer = http.get(f"/v1/kv/{key}", params=params)
    if answer.status_code != 200:
        return None
    return base64.b64decode(answer.json()[0]["Value"]).decode()


@pytest.mark.skipif(_can_partition() is not None, reason=str(_can_partition()))
def test_partitioned_leader_steps_down_and_rejoins_after_heal() -> None:
    partition = Partition()
    try:
        with SeedCluster(client=False) as cluster:
            old = cluster.leader_agent()
            others = [a for a in cluster.agents.values() if a is not old]
            with old.client() as http:
                assert http.put("/v1/kv/part/k", content=b"before").json() is True
            partition.isolate(old.ip, [ip for ip in SERVERS.values() if ip != old.ip])

            # The majority side elects a new leader and keeps taking writes.
            def majority_leader() -> str:
                leaders = {a.leader() for a in others}
                leader = leaders.pop() if len(leaders) == 1 else ""
                return leader if leader and not leader.startswith(f"{old.ip}:") else ""

            eventually(majority_leader, 30, "a leader on the majority side")
            with others[0].client() as http:
                assert http.put("/v1/kv/part/k", content=b"during").json() is True
            # The cut-off old leader must not serve the old value as current, nor accept writes.
            with old.client(timeout=15) as http:
                eventually(
                    lambda: http.put("/v1/kv/part/x", content=b"no").status_code != 200,
                    30,
                    "the isolated server refusing writes",
                )
                answer = http.get("/v1/kv/part/k")
                assert answer.status_code != 200 or value(http, "part/k") == "during"
            partition.heal()
            leader = cluster.wait_leader(timeout=30)
            assert leader == majority_leader() or leader
            with old.client() as http:
                eventually(
                    lambda: value(http, "part/k", stale="") == "during",
                    30,
                    "the healed server caught up",
                )
                assert http.get("/v1/kv/part/x", params={"stale": ""}).status_code == 404
    finally:
        partition.remove()
