"""Persistence: restart from the data dir keeps data and indexes; kill -9 loses no
acknowledged write; snapshots compact the log and still restore."""

from __future__ import annotations

import concurrent.futures
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.e2e.agentproc import AgentProc, free_port


def server_args(data_dir: Path, ip: str = "127.0.0.1", *extra: str) -> list[str]:
    return [
        "-server",
        "-bootstrap-expect=1",
        f"-data-dir={data_dir}",
        "-node=dur1",
        f"-bind={ip}",
        f"-client={ip}",
        f"-server-port={free_port(ip)}",
        "-dns-port=-1",
        f"-serf-lan-port={free_port(ip)}",
        "-serf-wan-port=-1",
        *extra,
    ]


def test_restart_restores_data_and_indexes(tmp_path: Path) -> None:
    args = server_args(tmp_path / "d")
    port = free_port()
    with AgentProc(*args, http_port=port).start() as agent, agent.client() as http:
        http.put("/v1/kv/keep/a", content=b"1", params={"flags": "3"})
        http.put("/v1/kv/keep/b", content=b"2")
        http.delete("/v1/kv/keep/b")
        http.put(
            "/v1/agent/service/register", json={"Name": "web", "Port": 80, "Check": {"TTL": "30s"}}
        )
        before = http.get("/v1/kv/keep/a").json()
        before_index = http.get("/v1/kv/keep/", params={"recurse": ""}).headers["x-consul-index"]
        assert agent.stop() == 0  # SIGTERM: clean shutdown, exit 0
    with AgentProc(*args, http_port=port).start() as agent, agent.client() as http:
        assert http.get("/v1/kv/keep/a").json() == before
        assert (
            http.get("/v1/kv/keep/", params={"recurse": ""}).headers["x-consul-index"]
            == before_index
        )
        assert http.get("/v1/kv/keep/b").status_code == 404
        assert "web" in http.get("/v1/agent/services").json()
        # new writes continue after the restored index
        http.put("/v1/kv/keep/c", content=b"3")
        assert http.get("/v1/kv/keep/c").json()[0]["CreateIndex"] > before[0]["ModifyIndex"]


def test_kill_9_loses_no_acknowledged_write(tmp_path: Path) -> None:
    args = server_args(tmp_path / "d")
    port = free_port()
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    agent = AgentProc(*args, http_port=port).start()

    def writer(n: int) -> None:
        with agent.client(timeout=5) as http:
            for i in range(2000):  # bounded
                if stop.is_set():
                    return
                key = f"acked/{n}/{i}"
                try:
                    ok = http.put(f"/v1/kv/{key}", content=key.encode()).json()
                except (httpx.HTTPError, ValueError):
                    return
                if ok is True:
                    with lock:
                        acked.append(key)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(writer, n) for n in range(8)]
        deadline = time.monotonic() + 20
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        agent.stop(sig=signal.SIGKILL)
        stop.set()
        for f in futures:
            f.result()
    agent.cleanup()
    assert len(acked) >= 300
    with AgentProc(*args, http_port=port).start() as again, again.client() as http:
        stored = set(http.get("/v1/kv/acked/", params={"keys": ""}).json())
    missing = [k for k in acked if k not in stored]
    assert missing == []


def test_snapshots_compact_the_log_and_restore(tmp_path: Path) -> None:
    data = tmp_path / "d"
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"raft_snapshot_threshold": 50}')
    args = server_args(data, "127.0.0.1", f"-config-file={cfg}")
    port = free_port()
    with AgentProc(*args, http_port=port).start() as agent, agent.client() as http:
        for i in range(300):
            http.put(f"/v1/kv/snap/{i:03d}", content=str(i).encode())
        listing = http.get("/v1/kv/snap/", params={"recurse": ""})
        agent.stop()
    snapshots = list((data / "raft" / "snapshots").glob("*.snap"))
    segments = list((data / "raft" / "log").glob("*.seg"))
    assert snapshots, "no snapshot was taken"
    first_kept = min(int(p.stem) for p in segments)
    assert first_kept > 1, "the log was not compacted"
    with AgentProc(*args, http_port=port).start() as agent, agent.client() as http:
        again = http.get("/v1/kv/snap/", params={"recurse": ""})
        assert again.json() == listing.json()
        assert again.headers["x-consul-index"] == listing.headers["x-consul-index"]


def test_snapshot_endpoint_save_wipe_restore(dev_agent: AgentProc) -> None:
    with dev_agent.client() as http:
        http.put("/v1/kv/s/a", content=b"1")
        http.put("/v1/kv/s/b", content=b"2")
        before = http.get("/v1/kv/s/", params={"recurse": ""}).json()
        saved = http.get("/v1/snapshot")
        assert saved.status_code == 200 and saved.content[:2] == b"\x1f\x8b"
        http.delete("/v1/kv/s/", params={"recurse": ""})
        assert http.put("/v1/snapshot", content=saved.content).status_code == 200
        assert http.get("/v1/kv/s/", params={"recurse": ""}).json() == before
        bad = http.put("/v1/snapshot", content=b"not a snapshot")
        assert bad.status_code == 400
        assert http.get("/v1/kv/s/", params={"recurse": ""}).json() == before
