"""Snapshot save -> wipe -> restore on the seed's 3 servers + 1 client: KV and catalog come back
with their indexes on every server, and what was written after the save is gone."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.seedcluster import SeedCluster, eventually

pytestmark = pytest.mark.timeout(180)

NODE = {
    "Node": "ext-db",
    "Address": "10.1.2.3",
    "Service": {"ID": "pg-1", "Service": "pg", "Tags": ["primary"], "Port": 5432},
}


def _state(url: str) -> tuple[object, object, object]:
    """(KV listing, catalog service, catalog node) read from one server's own copy."""
    stale = {"stale": ""}
    kv = httpx.get(f"{url}/v1/kv/snap/", params={"recurse": "", **stale}, timeout=5)
    service = httpx.get(f"{url}/v1/catalog/service/pg", params=stale, timeout=5)
    node = httpx.get(f"{url}/v1/catalog/node/ext-db", params=stale, timeout=5)
    return (
        kv.json() if kv.status_code == 200 else None,
        service.json(),
        node.json(),
    )


def test_snapshot_save_wipe_restore_across_the_cluster() -> None:
    with SeedCluster() as cluster:
        client = cluster.agents["node4"].client()
        for i in range(5):
            assert client.put(f"/v1/kv/snap/k{i}", content=f"v{i}".encode()).json() is True
        assert client.put("/v1/kv/snap/flagged", params={"flags": "42"}, content=b"f").json()
        assert client.put("/v1/catalog/register", json=NODE).status_code == 200
        servers = [cluster.agents[n] for n in ("node1", "node2", "node3")]
        before = _state(cluster.leader_agent().url)
        assert before[0] is not None and len(before[0]) == 6 and before[1]
        # Every server holds the same state before the save.
        for server in servers:
            eventually(lambda s=server: _state(s.url) == before, 20, f"{server.name} in step")

        saved = client.get("/v1/snapshot")  # through the client agent, answered by a server
        assert saved.status_code == 200 and saved.content[:2] == b"\x1f\x8b"
        assert int(saved.headers["X-Consul-Index"]) >= max(e["ModifyIndex"] for e in before[0])

        # Wipe, and write something the snapshot does not know.
        assert client.delete("/v1/kv/snap/", params={"recurse": ""}).status_code == 200
        assert client.put("/v1/catalog/deregister", json={"Node": "ext-db"}).json() is True
        assert client.put("/v1/kv/snap/later", content=b"x").json() is True
        wiped = _state(cluster.leader_agent().url)
        assert [e["Key"] for e in wiped[0]] == ["snap/later"] and wiped[1] == []

        # Restore through a follower (forwarded to the leader), then read every server's copy.
        follower = next(s for s in servers if s is not cluster.leader_agent())
        restored = httpx.put(f"{follower.url}/v1/snapshot", content=saved.content, timeout=30)
        assert restored.status_code == 200, restored.text
        for server in servers:
            eventually(lambda s=server: _state(s.url) == before, 30, f"{server.name} restored")
        later = httpx.get(f"{follower.url}/v1/kv/snap/later", timeout=5)
        assert later.status_code == 404

        # The cluster keeps working on top of the restored state.
        assert client.put("/v1/kv/snap/after", content=b"y").json() is True
        after = httpx.get(f"{cluster.leader_agent().url}/v1/kv/snap/after", timeout=5).json()
        assert after[0]["ModifyIndex"] > max(e["ModifyIndex"] for e in before[0])
        client.close()
