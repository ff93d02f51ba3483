"""Benchmark of the seed's 3-server cluster, with a 3-member etcd 3.4 cluster as the yardstick.

    python bench/cluster.py [--quick] [--json FILE] [--only etcd,put,get,failover,catchup]

Stages (everything on 127.0.0.x loopback addresses, data in one temp dir):

1. etcd: three `etcd` members on 127.0.0.41-43 (client 2379, peer 2380, fsync on), loaded by
   `wrk -t2 -c64` through the v3 JSON gateway (`POST /v3/kv/put`, lua/etcd_put.lua), then
   stopped, so it does not share the CPUs with our cluster.
2. Our cluster: `gitkv agent -server -bootstrap-expect=3` on 127.0.0.31-33 with the standard
   ports, `raft_multiplier = 1`. PUT/s and p50/p99 at 64 connections against the leader and a
   follower (which forwards to the leader), PUT p50 with 1 connection, GET/s on the leader
   (default mode, leader lease) and `?stale` on a follower.
3. Failover, repeated: kill -9 the leader, time until a surviving server accepts a write,
   restart the killed server from its data dir, wait for one leader known to all.
4. Catch-up: load N keys of 1 KiB through /v1/txn (64 ops each, concurrent), start a fourth
   server with an empty data dir, time until a `?stale` GET of the last key on it is right.

Every agent, etcd member and temp dir is removed on exit, Ctrl-C and SIGTERM included; every
wait has a bound. Figures are noisy on a shared 2-core box.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

from agent_kv import (
    TXN_OPS,
    BenchError,
    Figure,
    Report,
    at_least,
    ensure_wrk,
    git_head,
    mem_key,
    mem_value,
    raise_nofile,
    txn_body,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
KV_LUA = HERE / "lua" / "kv.lua"
ETCD_LUA = HERE / "lua" / "etcd_put.lua"

SERVER_IPS = {"node1": "127.0.0.31", "node2": "127.0.0.32", "node3": "127.0.0.33"}
NEW_SERVER = ("node4", "127.0.0.34")
ETCD_IPS = {"etcd1": "127.0.0.41", "etcd2": "127.0.0.42", "etcd3": "127.0.0.43"}
HTTP_PORT = 8500
CATCHUP_BOUND = 120.0  # seconds; four times the 30 s target
FAST = "-hcl=performance { raft_multiplier = 1 }"
GET_KEY = "bench/get"
PUT_ENV = {"BENCH_KEYS": "10000", "BENCH_BODY_BYTES": "100"}

# Every child process we start, so that cleanup can reach each one by its own pid.
CHILDREN: list[subprocess.Popen[bytes]] = []


# --------------------------------------------------------------------------- processes


def spawn(argv: list[str], log_path: Path, cwd: Path | None = None,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
    with open(log_path, "ab") as log:
        # A session of its own: Ctrl-C reaches only us, and we stop the children in order.
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
            env=env, start_new_session=True,
        )  # fmt: skip
    CHILDREN.append(proc)
    return proc


def kill_all_children() -> None:
    for proc in CHILDREN:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
    for proc in CHILDREN:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def rss_of(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def request(host: str, method: str, path: str, body: bytes | None = None,
            timeout: float = 10.0, port: int = HTTP_PORT) -> tuple[int, bytes]:  # fmt: skip
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def bounded_wait(probe, timeout: float, what: str, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Call probe() until it returns something truthy; BenchError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise BenchError(f"{what} not reached in {timeout:.0f}s (last: {last!r})")


class Server:
    """One `gitkv agent -server` of the cluster, started with the seed's flags."""

    command: list[str] = [sys.executable, "-m", "gitkv", "agent"]
    source: Path = REPO  # --agent-src

    def __init__(self, name: str, ip: str, root: Path) -> None:
        self.name, self.ip = name, ip
        self.data_dir = root / name
        self.log_path = root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self, join: list[str]) -> Server:
        argv = [
            *self.command, "-server", "-bootstrap-expect=3", *(f"-join={j}" for j in join),
            f"-data-dir={self.data_dir}", f"-node={self.name}", f"-bind={self.ip}",
            f"-client={self.ip}", "-datacenter=shenzhen", FAST, "-log-level=info",
        ]  # fmt: skip
        self.started_at = time.monotonic()
        self.proc = spawn(argv, self.log_path, cwd=self.source,
                          env={**os.environ, "PYTHONPATH": str(self.source)})  # fmt: skip
        return self

    def wait_http(self, timeout: float = 30.0) -> None:
        def up() -> bool:
            if not self.alive:
                raise BenchError(f"{self.name} exited:\n{self.log_tail()}")
            return request(self.ip, "GET", "/v1/agent/self", timeout=1)[0] == 200

        bounded_wait(up, timeout, f"{self.name} HTTP API")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def leader(self) -> str:
        status, body = request(self.ip, "GET", "/v1/status/leader", timeout=1)
        return json.loads(body) if status == 200 else ""

    def rss(self) -> int:
        return rss_of(self.proc.pid) if self.alive else 0  # type: ignore[union-attr]

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


RSS_LIMIT = 6 << 30  # per server: far above the 2 GiB target, well below the box's RAM
MIN_AVAILABLE = 3 << 30  # the box is shared: stop before the kernel's OOM killer acts


def check_memory(servers: list[Server]) -> None:
    """BenchError when a server grows past RSS_LIMIT or the box runs short of memory.

    A first full run had a leader retrying a 1 GB InstallSnapshot until it was OOM-killed
    at 9 GB; the bench must stop that itself."""
    for server in servers:
        if server.rss() > RSS_LIMIT:
            raise BenchError(f"{server.name} RSS {server.rss() >> 20} MiB > {RSS_LIMIT >> 20} MiB")
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                if available < MIN_AVAILABLE:
                    raise BenchError(f"only {available >> 20} MiB of RAM left on the box")


def count_lines(server: Server, text: str) -> int:
    try:
        return server.log_path.read_text(errors="replace").count(text)
    except OSError:
        return 0


def one_leader(servers: list[Server], timeout: float = 60.0) -> Server:
    """Until every live server names the same leader; returns that server."""

    def agreed() -> str:
        names = {s.leader() for s in servers if s.alive}
        return names.pop() if len(names) == 1 and "" not in names else ""

    address = bounded_wait(agreed, timeout, "one leader known to every server")
    ip = address.rsplit(":", 1)[0]
    return next(s for s in servers if s.ip == ip)


# --------------------------------------------------------------------------- wrk


def run_wrk(wrk: str, url: str, seconds: float, script: Path, env_extra: dict[str, str],
            connections: int = 64) -> dict[str, float]:  # fmt: skip
    threads = min(2, connections)
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "-s", str(script), url]  # fmt: skip
    out = subprocess.run(argv, env={**os.environ, **env_extra}, capture_output=True, text=True,
                         timeout=seconds + 60)  # fmt: skip
    match = re.search(r"^BENCH_RESULT (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or not match:
        raise BenchError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    res = json.loads(match.group(1))
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    res["errors"] = sum(res[k] for k in ("connect_errors", "read_errors", "write_errors",
                                         "status_errors", "timeouts"))  # fmt: skip
    return res


def wrk_figures(report: Report, key: str, label: str, res: dict[str, float],
                target: float | None = None) -> None:  # fmt: skip
    tgt = f">= {target:,.0f}/s" if target else ""
    report.add(Figure(f"{key}_rps", f"{label} req/s", res["rps"], "/s", tgt,
                      at_least(res["rps"], target) if target else None))  # fmt: skip
    report.add(Figure(f"{key}_p50_ms", f"{label} p50", res["p50_us"] / 1000, "ms"))
    report.add(Figure(f"{key}_p99_ms", f"{label} p99", res["p99_us"] / 1000, "ms"))
    if res["errors"]:
        report.add(Figure(f"{key}_errors", f"{label} errors", res["errors"], "", "0", False))


# --------------------------------------------------------------------------- etcd


def stage_etcd(report: Report, wrk: str, root: Path, seconds: float, warm: float) -> float:
    etcd = shutil.which("etcd")
    if etcd is None:
        install_etcd()
        etcd = shutil.which("etcd")
        if etcd is None:
            raise BenchError("etcd missing: apt-get install -y etcd-server etcd-client")
    version = subprocess.run([etcd, "--version"], capture_output=True, text=True, timeout=10)
    print(f"\n== etcd: 3 members on 127.0.0.41-43 ({version.stdout.splitlines()[0]})", flush=True)
    cluster = ",".join(f"{n}=http://{ip}:2380" for n, ip in ETCD_IPS.items())
    procs = []
    for name, ip in ETCD_IPS.items():
        argv = [etcd, "--name", name, "--data-dir", str(root / name),
                "--listen-client-urls", f"http://{ip}:2379",
                "--advertise-client-urls", f"http://{ip}:2379",
                "--listen-peer-urls", f"http://{ip}:2380",
                "--initial-advertise-peer-urls", f"http://{ip}:2380",
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", "gitkv-bench", "--log-level", "warn"]  # fmt: skip
        procs.append(spawn(argv, root / f"{name}.log"))
    try:
        leader_ip = bounded_wait(etcd_leader, 60, "an etcd leader", interval=0.2)
        base = f"http://{leader_ip}:2379"
        env = {**PUT_ENV, "BENCH_PREFIX": "bench/put/"}
        run_wrk(wrk, base, warm, ETCD_LUA, env)
        res = run_wrk(wrk, base, seconds, ETCD_LUA, env)
        wrk_figures(report, "etcd_put", "etcd PUT, 64 conns, leader", res)
        one = run_wrk(wrk, base, seconds / 2, ETCD_LUA, env, connections=1)
        report.add(Figure("etcd_put1_p50_ms", "etcd PUT p50, 1 conn", one["p50_us"] / 1000, "ms"))
        follower = next(ip for ip in ETCD_IPS.values() if ip != leader_ip)
        fres = run_wrk(wrk, f"http://{follower}:2379", seconds, ETCD_LUA, env)
        wrk_figures(report, "etcd_put_follower", "etcd PUT, 64 conns, follower", fres)
        report.add(Figure("etcd_rss_mib", "etcd RSS per member after the run",
                          max(rss_of(p.pid) for p in procs) / 2**20, "MiB"))  # fmt: skip
        return res["rps"]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def etcd_leader() -> str:
    """The client address of the member that is the leader, or "" while there is none."""
    for ip in ETCD_IPS.values():
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError, KeyError):
            status, body = request(ip, "POST", "/v3/maintenance/status", b"{}", 2, 2379)
            if status != 200:
                continue
            doc = json.loads(body)
            if doc.get("leader") and doc["header"]["member_id"] == doc["leader"]:
                return ip
    return ""


def install_etcd() -> None:
    print("etcd not found; apt-get install -y etcd-server etcd-client", flush=True)
    apt = ["apt-get", "install", "-y", "-q", "etcd-server", "etcd-client"]
    if os.geteuid() != 0:
        apt = ["sudo", "-n", *apt]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(apt, env=env, timeout=600).returncode != 0:
        subprocess.run([*apt[: apt.index("install")], "update", "-q"], env=env, timeout=600)
        subprocess.run(apt, env=env, timeout=600)


# --------------------------------------------------------------------------- our cluster


def start_cluster(root: Path) -> list[Server]:
    servers = []
    for index, (name, ip) in enumerate(SERVER_IPS.items()):
        join = [] if index == 0 else [SERVER_IPS["node1"]]
        server = Server(name, ip, root).start(join)
        server.wait_http()  # node2 and node3 join node1's gossip, which must be up first
        servers.append(server)
    return servers


def stage_throughput(report: Report, wrk: str, servers: list[Server], seconds: float,
                     warm: float, stages: set[str]) -> float | None:  # fmt: skip
    leader = one_leader(servers)
    follower = next(s for s in servers if s is not leader)
    print(f"\n== Cluster throughput: leader {leader.name}, follower {follower.name}; "
          f"wrk -t2 -c64, {seconds:.0f} s per run", flush=True)  # fmt: skip
    put_rps = None
    if "put" in stages:
        env = {**PUT_ENV, "BENCH_METHOD": "PUT", "BENCH_PREFIX": "bench/put/"}
        lead_url = f"http://{leader.ip}:{HTTP_PORT}/"
        run_wrk(wrk, lead_url, warm, KV_LUA, env)
        res = run_wrk(wrk, lead_url, seconds, KV_LUA, env)
        wrk_figures(report, "put_leader", "PUT, 64 conns, leader", res, 3000)
        put_rps = res["rps"]
        res = run_wrk(wrk, f"http://{follower.ip}:{HTTP_PORT}/", seconds, KV_LUA, env)
        wrk_figures(report, "put_follower", "PUT, 64 conns, follower (forwarded)", res, 3000)
        one = run_wrk(wrk, lead_url, seconds / 2, KV_LUA, env, connections=1)
        report.add(Figure("put1_p50_ms", "PUT p50, 1 conn, leader", one["p50_us"] / 1000, "ms"))
        report.add(Figure("put1_rps", "PUT req/s, 1 conn, leader", one["rps"], "/s"))
    if "get" in stages:
        status, body = request(leader.ip, "PUT", f"/v1/kv/{GET_KEY}", b"g" * 100)
        if status != 200:
            raise BenchError(f"PUT {GET_KEY}: {status} {body[:200]!r}")
        env = {"BENCH_METHOD": "GET"}
        url = f"http://{leader.ip}:{HTTP_PORT}/v1/kv/{GET_KEY}"
        run_wrk(wrk, url, warm, KV_LUA, env)
        wrk_figures(report, "get_leader", "GET default (lease), leader",
                    run_wrk(wrk, url, seconds, KV_LUA, env))  # fmt: skip
        # The follower must have applied the key before its stale reads mean anything.
        furl = f"/v1/kv/{GET_KEY}?stale&raw"
        bounded_wait(lambda: request(follower.ip, "GET", furl, timeout=1)[1] == b"g" * 100,
                     10, "the GET key on the follower")  # fmt: skip
        url = f"http://{follower.ip}:{HTTP_PORT}/v1/kv/{GET_KEY}?stale"
        wrk_figures(report, "get_stale", "GET ?stale, follower",
                    run_wrk(wrk, url, seconds, KV_LUA, env))  # fmt: skip
    return put_rps


def first_accepted_write(survivors: list[Server], key: str, t0: float,
                         timeout: float = 30.0) -> tuple[float, str]:  # fmt: skip
    """Each survivor retries one PUT until one is accepted; (seconds since t0, server name)."""
    done = threading.Event()
    lock = threading.Lock()
    winner: list[tuple[float, str]] = []

    def writer(server: Server) -> None:
        deadline = t0 + timeout
        attempt = 0
        while not done.is_set() and time.monotonic() < deadline:
            attempt += 1
            try:
                status, body = request(server.ip, "PUT", f"/v1/kv/{key}",
                                       str(attempt).encode(), timeout=3)  # fmt: skip
            except (OSError, http.client.HTTPException):
                status, body = 0, b""
            if status == 200 and body.strip() == b"true":
                with lock:
                    winner.append((time.monotonic() - t0, server.name))
                done.set()
                return
            time.sleep(0.005)

    threads = [threading.Thread(target=writer, args=(s,), daemon=True) for s in survivors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 5)
    if not winner:
        raise BenchError(f"no write accepted within {timeout:.0f}s of killing the leader")
    return min(winner)


def stage_failover(report: Report, servers: list[Server], repeats: int) -> None:
    print(f"\n== Failover: kill -9 the leader, {repeats} times", flush=True)
    times = []
    for rep in range(repeats):
        leader = one_leader(servers)
        survivors = [s for s in servers if s is not leader]
        t0 = time.monotonic()
        leader.kill9()
        took, where = first_accepted_write(survivors, f"bench/failover/{rep}", t0)
        new_leader = one_leader(survivors, 30)
        elected = time.monotonic() - t0
        times.append(took)
        report.add(Figure(f"failover_{rep + 1}_s",
                          f"failover {rep + 1}: killed {leader.name}, write on {where}",
                          took, "s", "< 2 s", took < 2))  # fmt: skip
        report.note(f"failover {rep + 1}: new leader {new_leader.name}, known to both "
                    f"survivors {elected:.2f} s after the kill")  # fmt: skip
        # Back to three servers from the old data dir before the next round.
        leader.start([s.ip for s in survivors])
        leader.wait_http()
        back = leader
        bounded_wait(lambda s=back: s.leader() != "", 60, f"{back.name} sees a leader")
        one_leader(servers)
    report.add(Figure("failover_max_s", "failover, worst of the runs", max(times), "s",
                      "< 2 s", max(times) < 2))  # fmt: skip


def report_rss(report: Report, servers: list[Server], when: str, key: str) -> None:
    for server in servers:
        report.add(Figure(f"rss_{key}_{server.name}", f"RSS {server.name} {when}",
                          server.rss() / 2**20, "MiB"))  # fmt: skip


class LoadStats:
    """What the loader had to retry: txns refused while the cluster had no leader."""

    def __init__(self) -> None:
        self.retries = 0
        self.errors: dict[str, int] = {}


async def _txn_worker(host: str, batches, deadline: float, stats: LoadStats) -> int:  # type: ignore[no-untyped-def]
    reader, writer = await asyncio.open_connection(host, HTTP_PORT)
    done = 0
    try:
        for first, last in batches:
            body = txn_body(first, last)
            # A txn refused during an election is retried (set ops are idempotent), a bounded
            # number of times; the retries are reported, since they are a finding.
            for _attempt in range(100):
                if time.monotonic() > deadline:
                    raise BenchError("load took too long")
                writer.write(
                    b"PUT /v1/txn HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (host.encode(), len(body), body)
                )
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
                found = re.search(rb"(?i)content-length:\s*(\d+)", head)
                answer = await reader.readexactly(int(found.group(1)) if found else 0)
                if head.startswith(b"HTTP/1.1 200"):
                    break
                stats.retries += 1
                why = f"{head.splitlines()[0].decode(errors='replace')} {answer[:80]!r}"
                stats.errors[why] = stats.errors.get(why, 0) + 1
                await asyncio.sleep(0.1)
            else:
                raise BenchError(f"txn failed 100 times: {head.splitlines()[0]!r} {answer[:300]!r}")
            done += last - first
    finally:
        writer.close()
    return done


async def load_keys(
    host: str,
    total: int,
    connections: int,
    timeout: float,
    stats: LoadStats,
    servers: list[Server],
) -> int:
    batches = iter([(i, min(i + TXN_OPS, total)) for i in range(0, total, TXN_OPS)])
    deadline = time.monotonic() + timeout
    workers = [_txn_worker(host, batches, deadline, stats) for _ in range(connections)]
    load = asyncio.gather(*workers)
    watch = asyncio.ensure_future(_watch_memory(servers))
    try:
        done, _ = await asyncio.wait([load, watch], return_when=asyncio.FIRST_COMPLETED)
        if watch in done:
            load.cancel()
            watch.result()  # raises the memory guard's BenchError
        return sum(load.result())
    finally:
        watch.cancel()


async def _watch_memory(servers: list[Server]) -> None:
    while True:
        check_memory(servers)
        await asyncio.sleep(0.5)


def stage_catchup(report: Report, servers: list[Server], root: Path, total: int,
                  connections: int) -> Server:  # fmt: skip
    leader = one_leader(servers)
    print(f"\n== Catch-up: {total:,} keys of 1 KiB via /v1/txn to {leader.name}, "
          f"then a new server {NEW_SERVER[0]} with an empty data dir", flush=True)  # fmt: skip
    t0 = time.monotonic()
    stats = LoadStats()
    leaderships = {s.name: count_lines(s, "this server is now the leader") for s in servers}
    loaded = asyncio.run(load_keys(leader.ip, total, connections, 1800, stats, servers))
    elapsed = time.monotonic() - t0
    elections = sum(count_lines(s, "this server is now the leader") - leaderships[s.name]
                    for s in servers)  # fmt: skip
    report.add(Figure("load_elections", "leader elections during the load", elections, "",
                      "0", elections == 0))  # fmt: skip
    report.add(Figure("load_retries", "txns refused and retried during the load",
                      stats.retries))  # fmt: skip
    for why, n in stats.errors.items():
        report.note(f"load: {n} x {why}")
    report.add(Figure("load_rate", f"load rate ({TXN_OPS} ops/txn, {connections} conns)",
                      loaded / elapsed, "keys/s"))  # fmt: skip
    report_rss(report, servers, f"with {total:,} keys", "loaded")
    last = total - 1
    name, ip = NEW_SERVER
    new = Server(name, ip, root)
    new.start([s.ip for s in servers])
    raw = f"/v1/kv/{mem_key(last)}?stale&raw"

    peak = dict.fromkeys((s.name for s in [*servers, new]), 0)

    def caught_up() -> bool:
        if not new.alive:
            raise BenchError(f"{name} exited:\n{new.log_tail()}")
        for server in [*servers, new]:
            peak[server.name] = max(peak[server.name], server.rss())
            if not server.alive:
                raise BenchError(f"{server.name} died during the catch-up:\n{server.log_tail()}")
        check_memory([*servers, new])
        status, body = request(ip, "GET", raw, timeout=2)
        return status == 200 and body == mem_value(last)

    sends = {s.name: count_lines(s, "sending snapshot to") for s in servers}
    try:
        bounded_wait(caught_up, CATCHUP_BOUND, f"{name} has the last key", interval=0.05)
    except BenchError as exc:
        # A failed catch-up is a figure (missed), not the end of the run.
        report.add(Figure("catchup_s", f"new server until last of {total:,} keys reads (stale)",
                          None, "s", "< 30 s", False))  # fmt: skip
        report.note(f"catch-up failed: {str(exc).splitlines()[0]}")
        return new
    finally:
        failed = sum(count_lines(s, "sending snapshot to") - sends[s.name] for s in servers)
        report.add(Figure("catchup_snapshot_failures", "InstallSnapshot sends that failed",
                          failed, "", "0", failed == 0))  # fmt: skip
        for server_name, value in peak.items():
            report.add(Figure(f"rss_catchup_peak_{server_name}",
                              f"RSS {server_name} peak while catching up (0.05 s samples)",
                              value / 2**20, "MiB"))  # fmt: skip
    took = time.monotonic() - new.started_at
    report.add(Figure("catchup_s", f"new server until last of {total:,} keys reads (stale)",
                      took, "s", "< 30 s", took < 30))  # fmt: skip
    for i in (0, total // 2):
        status, body = request(ip, "GET", f"/v1/kv/{mem_key(i)}?stale&raw")
        if status != 200 or body != mem_value(i):
            raise BenchError(f"{mem_key(i)} wrong on {name}: {status}")
    text = new.log_path.read_text(errors="replace")
    found = re.search(r"installed snapshot at index (\d+)", text)
    report.note(
        f"{name} caught up "
        + (
            f"by a snapshot at index {found.group(1)}"
            if found
            else "from the log alone (no 'installed snapshot' line in its log)"
        )
    )
    return new


# --------------------------------------------------------------------------- main


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 s wrk runs, 100,000 keys")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--only", default="etcd,put,get,failover,catchup",
                   help="comma list of stages: etcd,put,get,failover,catchup")  # fmt: skip
    p.add_argument("--seconds", type=float, help="seconds per wrk run (default 10, quick 3)")
    p.add_argument("--keys", type=int, help="keys for the catch-up stage (1M, quick 100k)")
    p.add_argument("--failovers", type=int, default=3)
    p.add_argument("--load-connections", type=int, default=8)
    p.add_argument(
        "--agent-src",
        metavar="DIR",
        help="run the agent from this source tree (a `git archive HEAD` export)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (data, logs)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    stages = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = stages - {"etcd", "put", "get", "failover", "catchup"}
    if unknown:
        print(f"unknown stage(s) in --only: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    warm = max(1.0, seconds / 5)
    keys = args.keys or (100_000 if args.quick else 1_000_000)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if args.agent_src:
        Server.source = Path(args.agent_src).resolve()
    raise_nofile(65536)
    report = Report()
    root = Path(tempfile.mkdtemp(prefix="gitkv-cluster-bench-"))
    servers: list[Server] = []
    started = time.time()
    print(f"gitkv cluster bench ({'quick' if args.quick else 'full'}); {os.cpu_count()} CPUs; "
          f"temp dir {root}", flush=True)  # fmt: skip
    try:
        wrk = ensure_wrk() if stages & {"etcd", "put", "get"} else ""
        etcd_rps = stage_etcd(report, wrk, root, seconds, warm) if "etcd" in stages else None
        if stages - {"etcd"}:
            print("\n== Starting the 3-server cluster on 127.0.0.31-33", flush=True)
            t0 = time.monotonic()
            servers = start_cluster(root)
            leader = one_leader(servers)
            report.add(Figure("cluster_up_s", f"cluster up, leader {leader.name} known to all",
                              time.monotonic() - t0, "s"))  # fmt: skip
            put_rps = None
            if stages & {"put", "get"}:
                put_rps = stage_throughput(report, wrk, servers, seconds, warm, stages)
            if put_rps and etcd_rps:
                ratio = put_rps / etcd_rps
                report.add(Figure("put_ratio", "our leader PUT/s / etcd's", ratio, "",
                                  ">= 0.5", at_least(ratio, 0.5)))  # fmt: skip
            if "failover" in stages:
                stage_failover(report, servers, args.failovers)
            report_rss(report, servers, "after the run", "after")
            if "catchup" in stages:
                servers.append(stage_catchup(report, servers, root, keys,
                                             args.load_connections))  # fmt: skip
                report_rss(report, servers, "at the end", "end")
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"\nbench error: {exc}", file=sys.stderr)
        for server in servers:
            print(f"--- {server.name} log tail:\n{server.log_tail()}", file=sys.stderr)
        return 1
    finally:
        kill_all_children()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
        if report.figures:
            print("\n" + report.table())
        if args.json and report.figures:
            out = {
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "mode": "quick" if args.quick else "full",
                "cpus": os.cpu_count(),
                "agent_source": str(Server.source),
                "repo_head": git_head(),
                "figures": {f.key: asdict(f) for f in report.figures},
                "notes": report.notes,
            }
            Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    missed = [f.label for f in report.figures if f.ok is False]
    if missed:
        print("targets missed: " + "; ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
