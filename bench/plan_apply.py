"""Benchmark gitkv plan/apply against a real `gitkv agent -dev` it starts itself.

    python bench/plan_apply.py [--keys 100000] [--changed 10000]

Prints:
- plan time for KEYS keys (live read with one recursive GET + pure diff; target < 2 s),
- gitkv's peak memory while planning them (tracemalloc peak and process max RSS; ≤ 500 MiB),
- apply time for CHANGED changed keys through /v1/txn batches with CAS,
- in the same run, a one-PUT-per-key loop over the same keys (what curl loops and
  terraform-provider-consul do) and the ratio (target: apply ≥ 20× faster).

The agent is a durable single server by default (`--dev` for the in-memory agent).
"""

from __future__ import annotations

import argparse
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from gitkv.apply import apply_plan
from gitkv.client import ConsulClient, ConsulSettings
from gitkv.plan import plan
from gitkv.resources import KVPair, Resources
from gitkv.state import read_live

PREFIX = "bench/"


@contextmanager
def agent(dev: bool) -> Iterator[str]:
    """A single-server agent on a free 127.0.0.x port; yields its HTTP address.

    Default: a durable server (data dir, fsynced Raft log) as in production; `dev`: the
    in-memory `-dev` agent, where a single PUT is cheapest (the least favourable case for
    batching)."""
    ip = f"127.0.0.{random.randint(100, 250)}"
    with socket.socket() as s:
        s.bind((ip, 0))
        port = s.getsockname()[1]
    url = f"http://{ip}:{port}"
    # The log stays behind (in a temp dir) so a failed run can be diagnosed.
    workdir = Path(tempfile.mkdtemp(prefix="gitkv-bench-"))
    log_path = workdir / "agent.log"
    mode = ["-dev"] if dev else ["-server", "-bootstrap", f"-data-dir={workdir / 'data'}"]
    with log_path.open("wb") as log:
        cmd = [sys.executable, "-m", "gitkv", "agent", *mode, "-node=bench", f"-http-port={port}",
               f"-bind={ip}", f"-client={ip}", "-log-level=warn"]  # fmt: skip
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


def desired(keys: int, changed: int, round_: int) -> Resources:
    """KEYS keys; the first CHANGED of them carry `round_` in their value."""
    kv = {}
    for i in range(keys):
        key = f"{PREFIX}svc-{i % 97:02d}/cfg/k{i:06d}"
        tag = round_ if i < changed else 0
        value = f"value-{i}-{tag}-" + "x" * 40
        kv[key] = KVPair(key, value.encode())
    return Resources(datacenter="dc1", kv=kv, prefixes=(PREFIX,), name="bench")


def timed(fn, *args, **kw):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--changed", type=int, default=10_000)
    ap.add_argument("--dev", action="store_true", help="use an in-memory -dev agent")
    args = ap.parse_args()

    with agent(args.dev) as url, ConsulClient(ConsulSettings(address=url, timeout=120)) as client:
        kind = "-dev (in memory)" if args.dev else "durable single server (-server -bootstrap)"
        print(f"agent: {kind} at {url}; keys: {args.keys:,}; changed: {args.changed:,}")
        seed = desired(args.keys, args.changed, 0)
        first, t = timed(lambda: plan(seed, read_live(client, seed)))
        result, t_seed = timed(apply_plan, client, first)
        print(f"seed apply of {args.keys:,} new keys: {t_seed:.2f} s in {result.txns} txns")

        # Plan time: read the live cluster (one recursive GET) and diff 100k keys.
        want = desired(args.keys, args.changed, 1)
        live, t_read = timed(read_live, client, want)
        p, t_diff = timed(plan, want, live)
        assert p.counts["update"] == args.changed, p.counts
        print(
            f"plan {args.keys:,} keys: {t_read + t_diff:.2f} s "
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

        # Apply the CHANGED updates through txn batches with CAS.
        result, t_apply = timed(apply_plan, client, p)
        print(f"apply {args.changed:,} changed keys: {t_apply:.2f} s in {result.txns} txns")

        # The same keys, one PUT each (fresh values so every PUT is a real write).
        keys = [c.id for c in p.changes]
        with httpx.Client(base_url=url, timeout=60) as http:
            t0 = time.perf_counter()
            for i, key in enumerate(keys):
                http.put(f"/v1/kv/{key}", content=f"loop-{i}".encode()).raise_for_status()
            t_loop = time.perf_counter() - t0
        print(f"one PUT per key for the same {len(keys):,} keys: {t_loop:.2f} s")
        print(f"apply is {t_loop / t_apply:.1f}x faster than the per-key loop")


if __name__ == "__main__":
    main()
