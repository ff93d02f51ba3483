"""Benchmark gitkv plan/apply, import and watch against a real `gitkv agent` it starts itself.

    python bench/plan_apply.py [--keys 100000] [--changed 10000] [--entries 10000]
                               [--commits 20] [--only plan,import,watch]

Prints:
- plan time for KEYS keys (live read with one recursive GET + pure diff; target < 2 s), and
  with ENTRIES service-defaults config entries as well (one list; target < 3 s, <= 600 MiB),
- gitkv's peak memory while planning them (tracemalloc peak and process max RSS; ≤ 500 MiB),
- apply time for CHANGED changed keys through /v1/txn batches with CAS,
- in the same run, a one-PUT-per-key loop over the same keys (what curl loops and
  terraform-provider-consul do) and the ratio (target: apply ≥ 20× faster),
- `gitkv import` of the same cluster, keys and entries (read, write the spec, load it back;
  target < 10 s),
  then a plan of the imported spec (must show no changes),
- commit-to-applied latency of `gitkv watch` on a local repository (a commit in a work tree,
  noticed through its refs; the poll is set to 1 h so it cannot be what applies it; target:
  median < 1 s).

The agent is a durable single server on 127.0.0.35 (a free port) by default (`--dev` for the
in-memory agent).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import git
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gitkv.apply import apply_plan  # noqa: E402
from gitkv.client import ConsulClient, ConsulSettings  # noqa: E402
from gitkv.importer.run import ImportOptions, read_cluster, verify, write  # noqa: E402
from gitkv.kinds.config_entries import CONFIG_ENTRY, entry_object  # noqa: E402
from gitkv.plan import plan  # noqa: E402
from gitkv.resources import KVPair, Resources  # noqa: E402
from gitkv.state import read_live  # noqa: E402

PREFIX = "bench/"
BENCH_IP = "127.0.0.35"
STAGES = ("plan", "import", "watch")


@contextmanager
def agent(dev: bool) -> Iterator[str]:
    """A single-server agent on 127.0.0.35 with free ports; yields its HTTP address.

    Default: a durable server (data dir, fsynced Raft log) as in production; `dev`: the
    in-memory `-dev` agent, where a single PUT is cheapest (the least favourable case for
    batching)."""
    ip = BENCH_IP

    def free() -> int:
        with socket.socket() as s:
            s.bind((ip, 0))
            return int(s.getsockname()[1])

    port = free()
    url = f"http://{ip}:{port}"
    # Every listener on a free port (another bench may hold Consul's defaults on this IP).
    ports = [f"-server-port={free()}", f"-serf-lan-port={free()}", "-serf-wan-port=-1",
             "-dns-port=-1"]  # fmt: skip
    # The log stays behind (in a temp dir) so a failed run can be diagnosed.
    workdir = Path(tempfile.mkdtemp(prefix="gitkv-bench-"))
    log_path = workdir / "agent.log"
    mode = ["-dev"] if dev else ["-server", "-bootstrap", f"-data-dir={workdir / 'data'}"]
    with log_path.open("wb") as log:
        cmd = [sys.executable, "-m", "gitkv", "agent", *mode, "-node=bench", f"-http-port={port}",
               f"-bind={ip}", f"-client={ip}", "-log-level=warn", *ports]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/v1/status/leader", timeout=1).json():
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                if proc.poll() is not None:
                    raise SystemExit(f"agent exited; see {log_path}")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def desired(keys: int, changed: int, round_: int, entries: int = 0) -> Resources:
    """KEYS keys and ENTRIES service-defaults entries; the first CHANGED keys (and a tenth as
    many entries) carry `round_` in their value."""
    kv = {}
    for i in range(keys):
        key = f"{PREFIX}svc-{i % 97:02d}/cfg/k{i:06d}"
        tag = round_ if i < changed else 0
        value = f"value-{i}-{tag}-" + "x" * 40
        kv[key] = KVPair(key, value.encode())
    objs = {}
    for i in range(entries):
        tag = round_ if i < changed // 10 else 0
        body = {"Protocol": "http", "Meta": {"owner": f"team-{i % 13}", "round": str(tag)}}
        obj = entry_object("service-defaults", f"bench-{i:05d}", body)
        objs[obj.id] = obj
    return Resources(
        datacenter="dc1",
        kv=kv,
        objects={CONFIG_ENTRY: objs} if objs else {},
        prefixes=(PREFIX,),
        name="bench",
    )


def timed(fn, *args, **kw):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def bench_plan(client: ConsulClient, url: str, keys: int, changed: int, entries: int) -> None:
    # Plan time: read the live cluster (one recursive GET, one list of entries) and diff.
    want = desired(keys, changed, 1, entries)
    live, t_read = timed(read_live, client, want)
    p, t_diff = timed(plan, want, live)
    assert p.counts["update"] == changed + min(entries, changed // 10), p.counts
    what = f"{keys:,} keys" + (f" + {entries:,} config entries" if entries else "")
    print(
        f"plan {what}: {t_read + t_diff:.2f} s "
        f"(read {t_read:.2f} s + diff {t_diff:.2f} s; {p.counts['update']:,} to change)"
    )

    # Peak memory of the same planning, measured separately (tracemalloc slows it down).
    del live, p
    tracemalloc.start()
    p = plan(want, read_live(client, want))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak memory while planning: {peak / 2**20:.0f} MiB traced, max RSS {rss:.0f} MiB")

    # Apply the CHANGED updates through txn batches with CAS (the entries are left out: the
    # comparison below is about KV batching).
    kv_only = replace(p, changes=tuple(c for c in p.changes if c.kind == "kv"))
    result, t_apply = timed(apply_plan, client, kv_only)
    print(f"apply {changed:,} changed keys: {t_apply:.2f} s in {result.txns} txns")

    # The same keys, one PUT each (fresh values so every PUT is a real write).
    ids = [c.id for c in kv_only.changes]
    with httpx.Client(base_url=url, timeout=60) as http:
        t0 = time.perf_counter()
        for i, key in enumerate(ids):
            http.put(f"/v1/kv/{key}", content=f"loop-{i}".encode()).raise_for_status()
        t_loop = time.perf_counter() - t0
    print(f"one PUT per key for the same {len(ids):,} keys: {t_loop:.2f} s")
    print(f"apply is {t_loop / t_apply:.1f}x faster than the per-key loop")


def bench_import(client: ConsulClient, keys: int, entries: int) -> None:
    """`gitkv import` of the cluster's bench keys and config entries, as the command does it,
    then a plan of what it wrote."""
    out = Path(tempfile.mkdtemp(prefix="gitkv-bench-import-"))
    try:
        opts = ImportOptions(kinds=frozenset({"kv", CONFIG_ENTRY}), kv_prefixes=(PREFIX,))
        imp, t_read = timed(read_cluster, client, opts)
        _, t_write = timed(write, imp, out, inline_max=1024, header="bench")
        res, t_verify = timed(verify, imp, out)
        total = t_read + t_write + t_verify
        n_entries = sum(len(v) for v in imp.objects.entries.values()) if imp.objects else 0
        print(
            f"import of {len(imp.kv):,} keys + {n_entries:,} config entries: {total:.2f} s "
            f"(read {t_read:.2f} s, write {t_write:.2f} s, load back and compare "
            f"{t_verify:.2f} s)"
        )
        assert len(imp.kv) == keys and n_entries >= entries, (len(imp.kv), n_entries)
        p = plan(res, read_live(client, res))
        print(f"plan of the imported spec: {len(p.changes)} changes (must be 0)")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _watch_spec(url: str, value: int) -> str:
    return (
        f"version: 1\nname: bench-watch\ndatacenters:\n  dc1:\n    address: {url}\n"
        f'    kv_prefixes: [bench-watch/]\n    kv:\n      bench-watch/value: "{value}"\n'
    )


def bench_watch(url: str, commits: int) -> None:
    """Commit-to-applied latency of `gitkv watch REPO` for a work tree on this machine."""
    tmp = Path(tempfile.mkdtemp(prefix="gitkv-bench-watch-"))
    work = tmp / "work"
    repo = git.Repo.init(work, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "bench")
        cfg.set_value("user", "email", "bench@example.invalid")

    def commit(value: int) -> None:
        (work / "gitkv.yaml").write_text(_watch_spec(url, value))
        repo.index.add(["gitkv.yaml"])
        repo.index.commit(f"v{value}")

    def wait_value(value: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=url, timeout=5) as http:
            while time.monotonic() < deadline:
                r = http.get("/v1/kv/bench-watch/value", params={"raw": ""})
                if r.status_code == 200 and r.text == str(value):
                    return
                time.sleep(0.005)
        raise SystemExit(f"watch: value {value} not applied within {timeout} s; see {tmp}")

    commit(0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
    cmd = [sys.executable, "-m", "gitkv", "watch", str(work), "--interval", "1h",
           "--cache-dir", str(tmp / "cache")]  # fmt: skip
    with (tmp / "watch.log").open("ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=ROOT)
    try:
        wait_value(0, timeout=60)
        time.sleep(0.5)  # the ref watcher starts in a thread after the first sync
        figures = []
        for value in range(1, commits + 1):
            commit(value)
            started = time.monotonic()
            wait_value(value)
            figures.append(time.monotonic() - started)
        ms = sorted(f * 1000 for f in figures)
        p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
        print(
            f"watch, local repository: commit -> applied: n={len(ms)} min {ms[0]:.0f} ms, "
            f"median {statistics.median(ms):.0f} ms, p90 {p90:.0f} ms, max {ms[-1]:.0f} ms"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--changed", type=int, default=10_000)
    ap.add_argument("--entries", type=int, default=10_000, help="service-defaults entries")
    ap.add_argument("--commits", type=int, default=20, help="commits timed by the watch stage")
    ap.add_argument("--only", default=",".join(STAGES), help=f"stages ({', '.join(STAGES)})")
    ap.add_argument("--dev", action="store_true", help="use an in-memory -dev agent")
    args = ap.parse_args()
    stages = {s.strip() for s in args.only.split(",") if s.strip()}
    if stages - set(STAGES):
        ap.error(f"unknown stage(s) {', '.join(sorted(stages - set(STAGES)))}")

    with agent(args.dev) as url, ConsulClient(ConsulSettings(address=url, timeout=120)) as client:
        kind = "-dev (in memory)" if args.dev else "durable single server (-server -bootstrap)"
        print(f"agent: {kind} at {url}; keys: {args.keys:,}; changed: {args.changed:,}")
        if stages & {"plan", "import"}:
            seed = desired(args.keys, args.changed, 0, args.entries)
            first, t = timed(lambda: plan(seed, read_live(client, seed)))
            result, t_seed = timed(apply_plan, client, first)
            print(
                f"seed apply of {args.keys:,} new keys and {args.entries:,} config entries: "
                f"{t_seed:.2f} s ({result.txns} txns, one PUT per entry)"
            )
        if "plan" in stages:
            bench_plan(client, url, args.keys, args.changed, args.entries)
        if "import" in stages:
            bench_import(client, args.keys, args.entries)
        if "watch" in stages:
            bench_watch(url, args.commits)


if __name__ == "__main__":
    main()
