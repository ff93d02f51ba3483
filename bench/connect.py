#!/usr/bin/env python3
"""The service mesh's control-plane figures on a real agent (issue C1). Prints figures; no
asserts, never a test.

    python bench/connect.py            # about 1 min
    python bench/connect.py --quick    # about 20 s: 3 s wrk run, 200 services

1. `/v1/agent/connect/authorize` req/s (wrk -t2 -c64; target >= 5,000/s), with 50 intentions
   in place and a matching one for the caller.
2. Leaf certificate issue p50 over N services (each a first GET of
   /v1/agent/connect/ca/leaf/<svc>: key, CSR and signing; target <= 20 ms), with the servers'
   CSR rate limit lifted; first, on 50 services, the p50 at Consul's default limit (50/s).
3. Rotation: after a CA key change, the time until every one of the N services holds a leaf
   signed by the new root (fetched again one by one, as sidecars would).
4. The proxy figures (throughput ratio, connection setup p50) come from bench/connect_proxy.py,
   run after these when it is present.

One `gitkv agent -server -bootstrap-expect=1` on 127.0.0.35:8500 in a temp dir, removed on
exit; every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import agent_kv as kv  # noqa: E402 - the bench helpers (Agent, Report, wrk)

kv.HOST = "127.0.0.35"
kv.PORT = 8500
kv.LUA_SCRIPT = HERE / "lua" / "authorize.lua"


def _json(method: str, path: str, body: object | None = None) -> tuple[int, object]:
    raw = json.dumps(body).encode() if body is not None else None
    status, data, _ = kv.request(method, path, raw, timeout=30)
    return status, (json.loads(data) if data.strip() else None)


def wait_roots(timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = _json("GET", "/v1/connect/ca/roots")
        if status == 200 and isinstance(body, dict) and body.get("ActiveRootID"):
            return body
        time.sleep(0.1)
    raise kv.BenchError("the CA did not initialize")


def stage_authorize(report: kv.Report, wrk: str, seconds: float, trust: str) -> None:
    for i in range(50):
        _json(
            "PUT", f"/v1/connect/intentions/exact?source=src{i}&destination=db", {"Action": "deny"}
        )
    _json("PUT", "/v1/connect/intentions/exact?source=web&destination=db", {"Action": "allow"})
    body = json.dumps(
        {"Target": "db", "ClientCertURI": f"spiffe://{trust}/ns/default/dc/dc1/svc/web"}
    )
    url = f"http://{kv.HOST}:{kv.PORT}/v1/agent/connect/authorize"
    kv.run_wrk(wrk, url, 1.0, {"BENCH_BODY": body})  # warm-up
    res = kv.run_wrk(wrk, url, seconds, {"BENCH_BODY": body})
    report.add(
        kv.Figure(
            "authorize_rps", "POST /v1/agent/connect/authorize req/s", res["rps"], "/s",
            ">= 5,000/s", kv.at_least(res["rps"], 5000),
        )
    )  # fmt: skip
    report.add(kv.Figure("authorize_p50", "authorize latency p50", res["p50_us"] / 1000, "ms"))
    report.add(kv.Figure("authorize_errors", "authorize errors", res["errors"], "", "0",
                         res["errors"] == 0))  # fmt: skip


def _leaf_times(services: list[str]) -> tuple[list[float], list[str]]:
    times, serials = [], []
    for name in services:
        t0 = time.perf_counter()
        status, body = _json("GET", f"/v1/agent/connect/ca/leaf/{name}")
        times.append((time.perf_counter() - t0) * 1000)
        if status != 200 or not isinstance(body, dict):
            raise kv.BenchError(f"leaf {name}: {status} {body}")
        serials.append(str(body["SerialNumber"]))
    return times, serials


def _csr_limit(per_second: float) -> None:
    """Set the servers' CSRMaxPerSecond (a CA configuration field; no rotation)."""
    status, config = _json("GET", "/v1/connect/ca/configuration")
    assert isinstance(config, dict)
    body = {"Provider": "consul", "Config": dict(config.get("Config") or {},
                                                 CSRMaxPerSecond=per_second)}  # fmt: skip
    status, _ = _json("PUT", "/v1/connect/ca/configuration", body)
    if status != 200:
        raise kv.BenchError(f"CSRMaxPerSecond refused: {status}")


def stage_leaves(report: kv.Report, count: int) -> None:
    # At Consul's default CSR limit (50 signings a second, burst 1) one-after-another issues
    # are spaced 20 ms apart whatever signing costs: measured on a few, then the limit is
    # lifted (CSRMaxPerSecond 0, as an operator raises it for a mass rotation) so the figures
    # below are the agent's own cost.
    limited, _ = _leaf_times([f"limited{i}" for i in range(50)])
    report.add(kv.Figure("leaf_p50_limited", "leaf issue p50 at the default 50 CSR/s (50 svcs)",
                         kv.percentile(sorted(limited), 50), "ms"))  # fmt: skip
    _csr_limit(0)
    services = [f"svc{i}" for i in range(count)]
    times, _ = _leaf_times(services)
    times.sort()
    report.add(
        kv.Figure("leaf_p50", f"leaf issue p50 ({count} services)", kv.percentile(times, 50),
                  "ms", "<= 20 ms", kv.at_most(kv.percentile(times, 50), 20))
    )  # fmt: skip
    report.add(kv.Figure("leaf_p99", "leaf issue p99", kv.percentile(times, 99), "ms"))
    status, config = _json("GET", "/v1/connect/ca/configuration")
    assert isinstance(config, dict)
    new_config = dict(config.get("Config") or {}, PrivateKeyType="ec", PrivateKeyBits=384)
    t0 = time.perf_counter()
    status, _ = _json("PUT", "/v1/connect/ca/configuration",
                      {"Provider": "consul", "Config": new_config})  # fmt: skip
    if status != 200:
        raise kv.BenchError(f"rotation refused: {status}")
    put_done = time.perf_counter() - t0
    again, _ = _leaf_times(services)
    total = time.perf_counter() - t0
    report.add(kv.Figure("rotate_put", "rotation: PUT /v1/connect/ca/configuration",
                         put_done * 1000, "ms"))  # fmt: skip
    report.add(kv.Figure("rotate_all", f"rotation until {count} services hold new leaves",
                         total, "s"))  # fmt: skip
    report.add(kv.Figure("rotate_leaf_mean", "re-issue mean during rotation",
                         statistics.fmean(again), "ms"))  # fmt: skip


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--services", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--no-proxy", action="store_true", help="skip bench/connect_proxy.py")
    args = p.parse_args(argv)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    services = args.services or (200 if args.quick else 1000)
    wrk = kv.ensure_wrk()
    kv.raise_nofile(4096)
    report = kv.Report()
    work = Path(tempfile.mkdtemp(prefix="gitkv-connect-bench-"))
    agent = kv.Agent(work / "data", work / "agent.log")
    print(f"gitkv connect bench ({'quick' if args.quick else 'full'}); agent on "
          f"{kv.HOST}:{kv.PORT}", flush=True)  # fmt: skip
    try:
        agent.start()
        agent.wait_ready()
        trust = wait_roots()["TrustDomain"]
        print("\n== authorize", flush=True)
        stage_authorize(report, wrk, seconds, trust)
        print(f"\n== leaf certificates and rotation, {services} services", flush=True)
        stage_leaves(report, services)
    except kv.BenchError as exc:
        print(f"bench failed: {exc}\n{agent.log_tail()}", file=sys.stderr)
        return 1
    finally:
        agent.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\n" + report.table())
    proxy_bench = HERE / "connect_proxy.py"
    if proxy_bench.exists() and not args.no_proxy:
        print("\n== proxy (bench/connect_proxy.py)", flush=True)
        extra = ["--size-mib", "64"] if args.quick else []
        return subprocess.run([sys.executable, str(proxy_bench), *extra], timeout=600).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
