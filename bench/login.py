"""Benchmark of `POST /v1/acl/login` with a `jwt` auth method: logins per second.

    python bench/login.py [--seconds N] [--clients N] [--jwks]

Starts one `gitkv agent -server -bootstrap-expect=1` with ACLs on (127.0.0.1, free ports,
data in a temp dir), creates a `jwt` auth method that trusts an RSA key made here (or, with
`--jwks`, reads it from a JWKS this script serves on 127.0.0.1) and a binding rule binding a
service identity from a claim, then runs `--clients` concurrent clients that each log in with
a fresh RS256 JWT and log out again, for `--seconds`. Each login verifies the signature and
the claims, evaluates the rule and writes a token through Raft; each logout deletes it.
Prints logins/s (and logouts/s) and the latency percentiles of a login. Everything stays on
127.0.0.1; the agent and the temp dir are removed on exit. Figures are noisy on a shared box.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
MGMT = str(uuid.uuid4())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_agent(tmp: Path) -> tuple[subprocess.Popen, str]:
    config = tmp / "acl.json"
    acl = {"enabled": True, "default_policy": "deny"}
    acl["tokens"] = {"initial_management": MGMT, "agent": MGMT}
    config.write_text(json.dumps({"acl": acl}))
    http_port = free_port()
    args = [
        sys.executable,
        "-m",
        "gitkv",
        "agent",
        "-server",
        "-bootstrap-expect=1",
        f"-data-dir={tmp / 'data'}",
        "-node=bench-login",
        f"-bind={HOST}",
        f"-client={HOST}",
        f"-http-port={http_port}",
        f"-server-port={free_port()}",
        f"-serf-lan-port={free_port()}",
        "-serf-wan-port=-1",
        "-dns-port=-1",
        f"-config-file={config}",
    ]
    log = open(tmp / "agent.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{http_port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/v1/acl/token/self", headers={"X-Consul-Token": MGMT}, timeout=2)
            if r.status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the agent did not start; see {tmp / 'agent.log'}")


def serve_jwks(key: rsa.RSAPrivateKey) -> tuple[ThreadingHTTPServer, str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "bench", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{HOST}:{server.server_address[1]}/jwks"


def setup(url: str, key: rsa.RSAPrivateKey, jwks_url: str | None) -> None:
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    keys = {"JWKSURL": jwks_url} if jwks_url else {"JWTValidationPubKeys": [pem]}
    headers = {"X-Consul-Token": MGMT}
    method = {
        "Name": "bench",
        "Type": "jwt",
        "MaxTokenTTL": "10m",
        "Config": {**keys, "BoundAudiences": ["bench"], "ClaimMappings": {"svc": "svc"}},
    }
    r = httpx.put(f"{url}/v1/acl/auth-method", json=method, headers=headers, timeout=10)
    r.raise_for_status()
    rule = {"AuthMethod": "bench", "BindType": "service", "BindName": "${value.svc}"}
    r = httpx.put(f"{url}/v1/acl/binding-rule", json=rule, headers=headers, timeout=10)
    r.raise_for_status()


async def client(
    url: str, key: rsa.RSAPrivateKey, until: float, latencies: list[float], counts: list[int]
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        n = 0
        while time.monotonic() < until:
            now = int(time.time())
            claims = {"aud": "bench", "svc": f"svc-{n % 50}", "iat": now, "exp": now + 60}
            bearer = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench"})
            started = time.perf_counter()
            r = await http.post(
                "/v1/acl/login", json={"AuthMethod": "bench", "BearerToken": bearer}
            )
            latencies.append(time.perf_counter() - started)
            if r.status_code != 200:
                raise SystemExit(f"login failed: {r.status_code} {r.text}")
            counts[0] += 1
            secret = r.json()["SecretID"]
            r = await http.post("/v1/acl/logout", headers={"X-Consul-Token": secret})
            if r.status_code != 200:
                raise SystemExit(f"logout failed: {r.status_code} {r.text}")
            counts[1] += 1
            n += 1


async def run(url: str, key: rsa.RSAPrivateKey, seconds: float, clients: int) -> None:
    latencies: list[float] = []
    counts = [0, 0]
    started = time.monotonic()
    until = started + seconds
    await asyncio.gather(*(client(url, key, until, latencies, counts) for _ in range(clients)))
    elapsed = time.monotonic() - started
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"logins:  {counts[0] / elapsed:8.1f}/s  ({counts[0]} in {elapsed:.1f} s, {clients} clients)"
    )
    print(f"logouts: {counts[1] / elapsed:8.1f}/s")
    print(f"login latency: p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--jwks", action="store_true", help="keys from a local JWKS URL")
    options = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gitkv-bench-login-"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = None
    proc = None
    try:
        proc, url = start_agent(tmp)
        jwks_url = None
        if options.jwks:
            server, jwks_url = serve_jwks(key)
        setup(url, key, jwks_url)
        asyncio.run(run(url, key, options.seconds, options.clients))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if server is not None:
            server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
