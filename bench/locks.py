"""Benchmark of KV locks: acquire/release round trips per second and session-expiry detection.

    python bench/locks.py [--seconds 5] [--clients 16] [--ttl 10] [--json FILE]

Starts its own `-dev` agent on 127.0.0.32 (free ports, every other listener off) and measures:

1. Round trips per second of `PUT /v1/kv/<k>?acquire=<session>` + `PUT ...?release=<session>`
   (one round trip = one acquire and one release, each a Raft write), for one client, and for
   N concurrent clients each with its own session and key. Also N clients contending for one
   key: every attempt is a round trip, the figure counts the acquisitions that succeeded.
   Clients are raw asyncio HTTP/1.1 keep-alive connections, cheap next to the agent.
2. Session-expiry detection: a session with `TTL` (default 10s) and `LockDelay` 0 holds a lock
   and is never renewed; a blocking query on the key times the moment the lock is released.
   Consul invalidates a TTL session after 2 x TTL, so we report the delay after the TTL ran
   out and the delay beyond 2 x TTL (the reaper's own lag).

Everything stays on 127.0.0.x; every wait is bounded; the agent is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

HOST = "127.0.0.32"
REPO = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    pass


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class DevAgent:
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    http_port: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def start(self, timeout: float = 30.0) -> None:
        self.http_port = free_port()
        argv = [
            sys.executable, "-m", "gitkv", "agent", "-dev", "-node=lockbench",
            f"-bind={HOST}", f"-client={HOST}", f"-http-port={self.http_port}",
            f"-server-port={free_port()}", f"-serf-lan-port={free_port()}",
            "-serf-wan-port=-1", "-dns-port=-1", "-log-level=warn",
        ]  # fmt: skip
        log = open(self.workdir / "agent.log", "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"agent exited:\n{self.log_tail()}")
            try:
                leader = httpx.get(f"{self.url}/v1/status/leader", timeout=1.0)
                if leader.status_code == 200 and leader.json():
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        raise BenchError(f"agent not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / "agent.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# --------------------------------------------------------------------------- round trips


class RawHTTP:
    """One keep-alive HTTP/1.1 connection with hand-written requests: the load generator must
    cost far less than the agent, or the figure measures the client (httpx is ~10x dearer)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawHTTP:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()

    async def put(self, target: str, body: bytes = b"") -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = f"PUT {target} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n\r\n"
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)


async def _session(http: RawHTTP, body: dict) -> str:
    status, answer = await http.put("/v1/session/create", json.dumps(body).encode())
    if status != 200:
        raise BenchError(f"session create: {status} {answer!r}")
    return json.loads(answer)["ID"]


async def _round_trips(http: RawHTTP, key: str, sid: str, until: float) -> tuple[int, int]:
    """(round trips, acquisitions that succeeded) until the loop clock passes `until`."""
    loop = asyncio.get_running_loop()
    trips = won = 0
    while loop.time() < until:
        status, got = await http.put(f"/v1/kv/{key}?acquire={sid}", b"x")
        if status != 200:
            raise BenchError(f"acquire: {status} {got!r}")
        if got.strip() == b"true":
            won += 1
            status, got = await http.put(f"/v1/kv/{key}?release={sid}")
            if status != 200:
                raise BenchError(f"release: {status} {got!r}")
        trips += 1
    return trips, won


async def measure_round_trips(
    url: str, clients: int, seconds: float, shared: bool
) -> tuple[float, float]:
    """Round trips/s and successful acquisitions/s for `clients` concurrent clients."""
    host, _, port = url.removeprefix("http://").partition(":")
    async with contextlib.AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(RawHTTP(host, int(port))) for _ in range(clients)]
        sids = [
            await _session(c, {"Name": f"bench-{i}", "LockDelay": 0}) for i, c in enumerate(conns)
        ]
        keys = ["bench/lock/shared" if shared else f"bench/lock/{i}" for i in range(clients)]
        work = list(zip(conns, keys, sids, strict=True))
        loop = asyncio.get_running_loop()
        # A short warm-up, so connection set-up is not counted.
        await asyncio.gather(*(_round_trips(c, k, s, loop.time() + 0.3) for c, k, s in work))
        began = loop.time()
        results = await asyncio.gather(
            *(_round_trips(c, k, s, began + seconds) for c, k, s in work)
        )
        elapsed = loop.time() - began
        for conn, sid in zip(conns, sids, strict=True):
            await conn.put(f"/v1/session/destroy/{sid}")
    trips = sum(r[0] for r in results)
    won = sum(r[1] for r in results)
    return trips / elapsed, won / elapsed


# --------------------------------------------------------------------------- expiry


async def measure_expiry(url: str, ttl: float) -> tuple[float, float, float]:
    """(seconds from create to release, delay after TTL, delay beyond 2 x TTL)."""
    key = "bench/expiry"
    async with httpx.AsyncClient(base_url=url, timeout=4 * ttl + 60) as http:
        body = {"Name": "expiry", "TTL": f"{ttl:g}s", "LockDelay": 0, "Checks": []}
        sid = (await http.put("/v1/session/create", json=body)).json()["ID"]
        created = time.monotonic()
        got = (await http.put(f"/v1/kv/{key}", params={"acquire": sid}, content=b"x")).json()
        if got is not True:
            raise BenchError("could not take the expiry lock")
        deadline = created + 2 * ttl + 60
        index = "0"
        while time.monotonic() < deadline:
            params = {"index": index, "wait": f"{max(ttl, 5):g}s"} if index != "0" else {}
            answer = await http.get(f"/v1/kv/{key}", params=params)
            if answer.status_code == 200 and not answer.json()[0].get("Session"):
                released = time.monotonic()
                break
            index = answer.headers.get("X-Consul-Index", "0")
        else:
            raise BenchError("the lock was never released")
    raw = released - created
    return raw, raw - ttl, raw - 2 * ttl


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each throughput run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--ttl", type=float, default=10.0, help="session TTL for the expiry run (>= 10)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser.parse_args(argv)


async def run(url: str, args: argparse.Namespace) -> dict[str, float]:
    figures: dict[str, float] = {}
    rate, _ = await measure_round_trips(url, 1, args.seconds, shared=False)
    figures["single_client_round_trips_per_s"] = rate
    rate, _ = await measure_round_trips(url, args.clients, args.seconds, shared=False)
    figures[f"{args.clients}_clients_own_keys_round_trips_per_s"] = rate
    rate, won = await measure_round_trips(url, args.clients, args.seconds, shared=True)
    figures[f"{args.clients}_clients_one_key_attempts_per_s"] = rate
    figures[f"{args.clients}_clients_one_key_acquisitions_per_s"] = won
    raw, after_ttl, beyond = await measure_expiry(url, args.ttl)
    figures["expiry_create_to_release_s"] = raw
    figures["expiry_delay_after_ttl_s"] = after_ttl
    figures["expiry_delay_beyond_2xttl_s"] = beyond
    return figures


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gitkv-lockbench-") as tmp:
        agent = DevAgent(Path(tmp))
        try:
            agent.start()
            figures = asyncio.run(run(agent.url, args))
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
        finally:
            agent.stop()
    print(f"lock bench: -dev agent on {HOST}, {args.seconds:g} s per run, TTL {args.ttl:g} s")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        unit = "/s" if key.endswith("_per_s") else "s"
        shown = f"{value:,.0f}" if unit == "/s" else f"{value:,.3f}"
        print(f"  {key:<{width}}  {shown} {unit}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
