#!/usr/bin/env python3
"""Prepared queries and login on a real agent (issue 14). Prints figures; no asserts, never
a test.

    python bench/queries.py            # about 1 min
    python bench/queries.py --quick    # about 25 s: 3 s runs

1. `GET /v1/query/web/execute` req/s (wrk -t2 -c64; target >= 3,000/s): a query with
   OnlyPassing, a tag filter and Failover.NearestN over 5 instances of `web` (4 healthy).
2. `web.query.consul` A queries/s over UDP (dnsperf, 100 outstanding; target >= 5,000/s).
3. `POST /v1/acl/login` req/s (wrk): a JWT signed by a key made here, against a `jwt` auth
   method with that public key and a service binding rule, on a second agent with ACLs on.
   Each login writes a token through Raft. When the agent has no working login endpoint,
   the figure says so.

One `gitkv agent -dev` on 127.0.0.31 (HTTP 8500, DNS 8600), then the ACL agent there; data
in a temp dir removed on exit; every wait is bounded. wrk and dnsperf come from Debian
packages (installed when missing, as bench/agent_kv.py installs wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import agent_kv as kv  # noqa: E402 - the bench helpers (Agent, Report, wrk)

kv.HOST = "127.0.0.31"
kv.PORT = 8500
kv.LUA_SCRIPT = HERE / "lua" / "query.lua"
DNS_PORT = 8600
MGMT = "7e1b2d6c-0b7a-4f7e-9a51-2d3c4b5a6f70"  # the ACL agent's initial management token


class DevAgent(kv.Agent):
    """`gitkv agent -dev` on HOST with DNS on DNS_PORT, and optional extra flags."""

    extra: list[str] = []

    def start(self) -> None:
        argv = [
            *self.command, "-dev", "-node=bench1", f"-bind={kv.HOST}", f"-client={kv.HOST}",
            f"-http-port={kv.PORT}", f"-dns-port={DNS_PORT}", f"-log-level={self.log_level}",
            *self.extra,
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it from here
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.source,
            env={**os.environ, "PYTHONPATH": str(self.source)}, start_new_session=True,
        )  # fmt: skip
        log.close()


def ensure_dnsperf() -> str:
    found = shutil.which("dnsperf")
    if found:
        return found
    print("dnsperf not found; installing it from Debian packages", flush=True)
    apt = ["apt-get", "install", "-y", "-q", "dnsperf"]
    if os.geteuid() != 0:
        apt = ["sudo", "-n", *apt]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(apt, env=env, timeout=600)
    found = shutil.which("dnsperf")
    if not found:
        raise kv.BenchError("could not install dnsperf (apt-get install -y dnsperf)")
    return found


def _json(
    method: str, path: str, body: object | None = None, token: str = ""
) -> tuple[int, object]:
    raw = json.dumps(body).encode() if body is not None else None
    if token:
        path += ("&" if "?" in path else "?") + f"token={token}"
    status, data, _ = kv.request(method, path, raw, timeout=30)
    try:
        return status, (json.loads(data) if data.strip() else None)
    except ValueError:
        return status, data.decode(errors="replace")


def setup_query(instances: int) -> None:
    for i in range(instances):
        status = "critical" if i == instances - 1 else "passing"
        body = {
            "Node": f"node{i}", "Address": f"10.20.0.{i + 1}", "NodeMeta": {"rack": "r1"},
            "Service": {"Service": "web", "Port": 8080, "Tags": ["v1", "primary"]},
            "Check": {"CheckID": "web", "Name": "web", "Status": status, "ServiceID": "web"},
        }  # fmt: skip
        code, answer = _json("PUT", "/v1/catalog/register", body)
        if code != 200:
            raise kv.BenchError(f"register: {code} {answer}")
    query = {
        "Name": "web",
        "Service": {"Service": "web", "OnlyPassing": True, "Tags": ["primary", "!canary"],
                    "Failover": {"NearestN": 1}},
        "DNS": {"TTL": "10s"},
    }  # fmt: skip
    code, answer = _json("POST", "/v1/query", query)
    if code != 200:
        raise kv.BenchError(f"create query: {code} {answer}")
    code, answer = _json("GET", "/v1/query/web/execute")
    if code != 200 or not isinstance(answer, dict) or len(answer["Nodes"]) != instances - 1:
        raise kv.BenchError(f"execute: {code} {str(answer)[:300]}")


def stage_execute(report: kv.Report, wrk: str, seconds: float) -> None:
    url = f"http://{kv.HOST}:{kv.PORT}/v1/query/web/execute"
    kv.run_wrk(wrk, url, max(1.0, seconds / 5), {"BENCH_METHOD": "GET"})
    res = kv.run_wrk(wrk, url, seconds, {"BENCH_METHOD": "GET"})
    report.add(kv.Figure("execute_rps", "GET /v1/query/<name>/execute req/s", res["rps"], "/s",
                         ">= 3,000/s", kv.at_least(res["rps"], 3_000)))  # fmt: skip
    report.add(kv.Figure("execute_p99_ms", "execute latency p99", res["p99_us"] / 1000, "ms"))
    errors = res["errors"] + res["timeouts"]
    report.add(kv.Figure("execute_errors", "execute errors", errors, "", "0", errors == 0))


def run_dnsperf(dnsperf: str, datafile: Path, seconds: float) -> dict[str, float]:
    argv = [
        dnsperf, "-s", kv.HOST, "-p", str(DNS_PORT), "-d", str(datafile),
        "-l", str(max(1, round(seconds))), "-c", "4", "-q", "100", "-t", "5",
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    qps = re.search(r"Queries per second:\s+([\d.]+)", out.stdout)
    completed = re.search(r"Queries completed:\s+(\d+)", out.stdout)
    lost = re.search(r"Queries lost:\s+(\d+)", out.stdout)
    noerror = re.search(r"NOERROR (\d+)", out.stdout)
    if out.returncode != 0 or not qps or not completed:
        raise kv.BenchError(f"dnsperf failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    done = int(completed.group(1))
    return {
        "qps": float(qps.group(1)),
        "completed": done,
        "lost": int(lost.group(1)) if lost else 0,
        "not_noerror": done - (int(noerror.group(1)) if noerror else 0),
    }


def stage_dns(report: kv.Report, dnsperf: str, seconds: float, work: Path) -> None:
    datafile = work / "queries.txt"
    datafile.write_text("web.query.consul A\n")
    run_dnsperf(dnsperf, datafile, max(1.0, seconds / 5))
    res = run_dnsperf(dnsperf, datafile, seconds)
    report.add(kv.Figure("dns_qps", "web.query.consul A queries/s (UDP)", res["qps"], "/s",
                         ">= 5,000/s", kv.at_least(res["qps"], 5_000)))  # fmt: skip
    bad = res["lost"] + res["not_noerror"]
    report.add(kv.Figure("dns_errors", "DNS lost or not NOERROR", bad, "", "0", bad == 0))


def _jwt_setup() -> dict:
    """A jwt auth method with a fresh RSA key's public half, a service binding rule, and
    the login body carrying a JWT signed with the private half."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    method = {
        "Name": "bench-jwt", "Type": "jwt", "MaxTokenTTL": "10m",
        "Config": {"JWTValidationPubKeys": [public.decode()], "BoundAudiences": ["bench"],
                   "ClaimMappings": {"service": "service"}},
    }  # fmt: skip
    code, answer = _json("PUT", "/v1/acl/auth-method", method, MGMT)
    if code != 200:
        return {"absent": f"PUT /v1/acl/auth-method answered {code}: {str(answer)[:120]}"}
    rule = {"AuthMethod": "bench-jwt", "BindType": "service", "BindName": "${value.service}"}
    code, answer = _json("PUT", "/v1/acl/binding-rule", rule, MGMT)
    if code != 200:
        raise kv.BenchError(f"binding rule: {code} {answer}")
    now = int(time.time())
    claims = {"sub": "bench", "aud": "bench", "iat": now, "nbf": now, "exp": now + 3600,
              "service": "web"}  # fmt: skip
    token = jwt.encode(claims, key, algorithm="RS256")
    return {"AuthMethod": "bench-jwt", "BearerToken": token}


def stage_login(report: kv.Report, wrk: str, seconds: float, work: Path) -> None:
    config = work / "acl.json"
    config.write_text(json.dumps({
        "acl": {"enabled": True, "default_policy": "deny",
                "tokens": {"initial_management": MGMT}},
    }))  # fmt: skip
    DevAgent.extra = [f"-config-file={config}"]
    agent = DevAgent(work / "acl-data", work / "acl-agent.log")
    try:
        agent.start()
        agent.wait_ready()
        body = _jwt_setup()
        absent = body.get("absent")
        if not absent:
            code, answer = _json("POST", "/v1/acl/login", body)
            if code != 200 or not isinstance(answer, dict) or not answer.get("SecretID"):
                absent = f"POST /v1/acl/login answered {code}: {str(answer)[:120]}"
        if absent:
            report.note(f"login: absent on this agent ({absent})")
            report.add(kv.Figure("login_rps", "POST /v1/acl/login req/s", None, "/s"))
            return
        url = f"http://{kv.HOST}:{kv.PORT}/v1/acl/login"
        env = {"BENCH_METHOD": "POST", "BENCH_BODY": json.dumps(body)}
        res = kv.run_wrk(wrk, url, seconds, env, connections=16)
        report.add(kv.Figure("login_rps", "POST /v1/acl/login (JWT, RS256) req/s", res["rps"],
                             "/s"))  # fmt: skip
        errors = res["errors"] + res["timeouts"]
        report.add(kv.Figure("login_errors", "login errors", errors, "", "0", errors == 0))
    finally:
        agent.stop()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seconds", type=float)
    p.add_argument("--instances", type=int, default=5)
    p.add_argument("--only", default="execute,dns,login", help="stages to run")
    p.add_argument("--agent-src", type=Path, help="run the agent from another source tree")
    args = p.parse_args(argv)
    if args.agent_src:
        kv.Agent.source = args.agent_src.resolve()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    stages = set(args.only.split(","))
    wrk = kv.ensure_wrk()
    dnsperf = ensure_dnsperf() if "dns" in stages else ""
    kv.raise_nofile(4096)
    report = kv.Report()
    work = Path(tempfile.mkdtemp(prefix="gitkv-queries-bench-"))
    DevAgent.extra = []
    agent = DevAgent(work / "data", work / "agent.log")
    print(f"gitkv prepared-query bench ({'quick' if args.quick else 'full'}, "
          f"{kv.git_head()}); agent on {kv.HOST}:{kv.PORT}, DNS {DNS_PORT}", flush=True)  # fmt: skip
    try:
        if stages & {"execute", "dns"}:
            agent.start()
            agent.wait_ready()
            setup_query(args.instances)
            if "execute" in stages:
                print("\n== execute over HTTP", flush=True)
                stage_execute(report, wrk, seconds)
            if "dns" in stages:
                print("\n== .query.consul over DNS", flush=True)
                stage_dns(report, dnsperf, seconds, work)
            agent.stop()
        if "login" in stages:
            print("\n== login (ACL agent)", flush=True)
            stage_login(report, wrk, seconds, work)
    except kv.BenchError as exc:
        print(f"bench failed: {exc}\n{agent.log_tail()}", file=sys.stderr)
        return 1
    finally:
        agent.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\n" + report.table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
