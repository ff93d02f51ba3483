"""Benchmark of the built-in Connect proxy: throughput and connection setup through a proxy pair.

    python bench/connect_proxy.py [--size-mib 256] [--rounds 3] [--connections 500]
                                  [--fake-agent] [--json FILE] [--keep]

The path measured, every hop a real process on 127.0.0.41:

    client -> web's proxy (upstream listener, plain TCP) -> mTLS -> db's proxy (public
    listener) -> app

against the same client talking to the same app directly, in the same run (rounds
alternate, so both see the same machine load). The client and the app are blocking-socket
loops whose copying happens in C (`sendall`, `recv_into`), cheap next to what they measure.

1. Throughput: the client sends an 8-byte length and then that many bytes (256 MiB by
   default); the app reads them all and answers one byte. MB/s = bytes / (first byte sent ->
   answer received). Median of the rounds, per path, and their ratio (target >= 0.3).
2. Connection setup: a new connection, 1 byte there and 1 byte back, repeated
   (500 by default); p50 / p99 in ms (target p50 <= 10 ms through the pair). Every proxied
   connection crosses two proxies: a TCP accept, a TLS handshake with client certificates,
   the authorize decision (cached for 0.5 s) and a TCP connect to the app.

The agent is a `-dev` `gitkv agent` on free ports; the proxies are `python -m gitkv connect
proxy` processes configured by flags. If the agent has no Connect CA endpoints yet (404), or
with `--fake-agent`, a small in-process stand-in serves the few endpoints the proxies call
(roots, leaf, authorize, discovery) with certificates from the agent's own CA code; the
output says which one ran. Every wait is bounded; processes and the temp dir are removed on
exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

HOST = "127.0.0.41"
REPO = Path(__file__).resolve().parent.parent
CHUNK = 1 << 20
TARGET_RATIO = 0.3
TARGET_SETUP_MS = 10.0


class BenchError(Exception):
    pass


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------- the app (child)


def _serve_one(conn: socket.socket) -> None:
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = bytearray()
        while len(head) < 8:
            part = conn.recv(8 - len(head))
            if not part:
                return
            head += part
        left = int.from_bytes(head, "big")
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while left > 0:
            got = conn.recv_into(view, min(left, CHUNK))
            if not got:
                return
            left -= got
        conn.sendall(b"k")


def serve_app(host: str) -> None:
    """The measured application: read the announced bytes, answer one byte."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1024)
        print(listener.getsockname()[1], flush=True)
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=_serve_one, args=(conn,), daemon=True).start()


# ------------------------------------------------------------------------- the client


def transfer(port: int, size: int, timeout: float = 120.0) -> float:
    """Seconds to send `size` bytes to `port` and get the app's answer."""
    payload = memoryview(os.urandom(CHUNK))
    start = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(size.to_bytes(8, "big"))
        left = size
        while left > 0:
            piece = payload[: min(left, CHUNK)]
            sock.sendall(piece)
            left -= len(piece)
        if sock.recv(1) != b"k":
            raise BenchError(f"no answer after {size} bytes through port {port}")
    return time.perf_counter() - start


def setup_times(port: int, count: int) -> list[float]:
    """Milliseconds for each of `count` fresh connections carrying 1 byte each way."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        with socket.create_connection((HOST, port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall((1).to_bytes(8, "big") + b"x")
            if sock.recv(1) != b"k":
                raise BenchError(f"connection through port {port} was refused")
        times.append((time.perf_counter() - start) * 1000)
    return times


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------------- processes


class Procs:
    """Children of this run, each with its log in the work dir; all stopped on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            argv, stdout=kw.pop("stdout", log), stderr=log, stdin=subprocess.DEVNULL,
            cwd=REPO, start_new_session=True, **kw,
        )  # fmt: skip
        log.close()
        self.children.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop_all(self) -> None:
        for _, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in reversed(self.children):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wait_listening(procs: Procs, name: str, proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode}:\n{procs.log_tail(name)}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise BenchError(f"{name} is not listening on {HOST}:{port}:\n{procs.log_tail(name)}")


def start_agent(procs: Procs) -> str:
    port = free_port()
    argv = [
        sys.executable, "-m", "gitkv", "agent", "-dev", "-node=proxybench",
        f"-bind={HOST}", f"-client={HOST}", f"-http-port={port}",
        f"-server-port={free_port()}", f"-serf-lan-port={free_port()}",
        "-serf-wan-port=-1", "-dns-port=-1", "-log-level=warn",
    ]  # fmt: skip
    proc = procs.start("agent", argv)
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"agent exited:\n{procs.log_tail('agent')}")
        try:
            leader = httpx.get(f"{url}/v1/status/leader", timeout=1.0)
            if leader.status_code == 200 and leader.json():
                return url
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.05)
    raise BenchError(f"agent not ready:\n{procs.log_tail('agent')}")


def register(url: str, app_port: int, db_public: int, upstream: int) -> None:
    """db and web with sidecar registrations, as Consul's sidecar_service expands them."""
    with httpx.Client(base_url=url, timeout=10) as http:
        for service, port, public, upstreams in (
            ("db", app_port, db_public, []),
            (
                "web",
                free_port(),
                free_port(),
                [{"DestinationName": "db", "LocalBindPort": upstream}],
            ),
        ):
            http.put(
                "/v1/agent/service/register", json={"ID": service, "Name": service, "Port": port}
            ).raise_for_status()
            http.put(
                "/v1/agent/service/register",
                json={
                    "Kind": "connect-proxy", "ID": f"{service}-sidecar-proxy",
                    "Name": f"{service}-sidecar-proxy", "Address": HOST, "Port": public,
                    "Proxy": {
                        "DestinationServiceName": service, "DestinationServiceID": service,
                        "LocalServiceAddress": HOST, "LocalServicePort": port,
                        "Upstreams": upstreams,
                    },
                },
            ).raise_for_status()  # fmt: skip


# ------------------------------------------------------------------------- the stand-in agent


class FakeAgent:
    """The endpoints a proxy calls, served from this process (uvicorn in a thread), with
    certificates made by the agent's CA code; authorize always allows."""

    def __init__(self, instances: dict[str, list[tuple[str, int]]]) -> None:
        from agent.connect import ca

        self.ca = ca
        self.cluster = "11111111-2222-3333-4444-555555555555"
        self.trust_domain = f"{self.cluster}.consul"
        now = dt.datetime.now(dt.UTC)
        self.root = ca.new_root(
            self.cluster, {"Provider": "consul", "Config": {}}, 1, now, "bench000"
        )
        self.leaves: dict[str, dict[str, Any]] = {}
        self.serial = 1
        self.instances = instances
        self.port = free_port()
        self.server: Any = None
        self.thread: threading.Thread | None = None
        self.stopping = False

    def leaf(self, service: str) -> dict[str, Any]:
        from agent.connect.spiffe import service_uri

        if service not in self.leaves:
            self.serial += 1
            key, csr = self.ca.new_leaf_key_and_csr(service_uri(self.trust_domain, "dc1", service))
            now = dt.datetime.now(dt.UTC)
            issued = self.ca.sign_leaf(
                self.root, csr, self.serial, now, 72 * 3600, "dc1", self.trust_domain
            )
            self.leaves[service] = self.ca.render_leaf(issued, key, self.serial, self.serial)
        return self.leaves[service]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode())
        while (await receive()).get("more_body"):
            pass
        if "index" in query:  # a long-poll on something that never changes here
            for _ in range(300):
                if self.stopping:
                    break
                await asyncio.sleep(0.1)
        status, body = 200, self.answer(method, path)
        if body is None:
            status, body = 404, "not found"
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"x-consul-index", b"5")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def answer(self, method: str, path: str) -> Any:
        if path == "/v1/agent/connect/ca/roots":
            return self.ca.render_roots([self.root], self.trust_domain)
        if path.startswith("/v1/agent/connect/ca/leaf/"):
            return self.leaf(path.rsplit("/", 1)[1])
        if path == "/v1/agent/connect/authorize" and method == "POST":
            return {"Authorized": True, "Reason": "bench stand-in: allow"}
        if path.startswith("/v1/health/connect/"):
            name = path.rsplit("/", 1)[1]
            return [
                {"Node": {"Address": host, "Datacenter": "dc1"}, "Service": {"Port": port}}
                for host, port in self.instances.get(name, ())
            ]
        return None

    def start(self) -> str:
        import uvicorn

        config = uvicorn.Config(
            self, host=HOST, port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise BenchError("the stand-in agent did not start")
            time.sleep(0.02)
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        if self.server is not None:
            self.stopping = True  # ends the parked long-polls
            self.server.should_exit = True
            if self.thread is not None:
                self.thread.join(10)


# ------------------------------------------------------------------------- the run


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gitkv-proxybench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def serve_relay(listen: str, target: str) -> None:
    """A plain TCP relay built from the proxy's own pipe (no TLS, no agent): the yardstick
    that separates what the two hops cost from what mTLS costs."""
    import uvloop

    from gitkv.connect.listeners import Connections
    from gitkv.connect.pipe import Side, join

    host, port = listen.rsplit(":", 1)
    target_host, target_port = target.rsplit(":", 1)

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def relay(side: Side) -> None:
            _, other = await loop.create_connection(Side, target_host, int(target_port))
            await join(side, other)

        await loop.create_server(Connections().protocol_factory(relay), host, int(port))
        await asyncio.Event().wait()

    uvloop.run(main())


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    procs = Procs(work)
    fake: FakeAgent | None = None
    me = [sys.executable, str(Path(__file__).resolve())]
    try:
        app = procs.start("app", [*me, "--serve-app", HOST], stdout=subprocess.PIPE)
        assert app.stdout is not None
        app_port = int(app.stdout.readline().strip() or 0)
        if not app_port:
            raise BenchError(f"the app did not start:\n{procs.log_tail('app')}")
        db_public, upstream, relay_in, relay_mid = (free_port() for _ in range(4))

        mode = "fake"
        url = ""
        if not args.fake_agent:
            url = start_agent(procs)
            roots = httpx.get(f"{url}/v1/agent/connect/ca/roots", timeout=5)
            if roots.status_code == 200:
                mode = "agent"
                register(url, app_port, db_public, upstream)
            else:
                print(f"the agent answers {roots.status_code} to /v1/agent/connect/ca/roots: "
                      "using the in-process stand-in agent")  # fmt: skip
        if mode == "fake":
            fake = FakeAgent({"db": [(HOST, db_public)]})
            url = fake.start()

        proxy_cmd = args.proxy_cmd.split() if args.proxy_cmd else [sys.executable, "-m", "gitkv"]
        proxy = [*proxy_cmd, "connect", "proxy", "-http-addr", url, "-log-level", "warn"]
        db = procs.start("db-proxy", [*proxy, "-service", "db", "-listen", f"{HOST}:{db_public}",
                                      "-service-addr", f"{HOST}:{app_port}"])  # fmt: skip
        web = procs.start(
            "web-proxy", [*proxy, "-service", "web", "-upstream", f"db:{HOST}:{upstream}"]
        )
        relays = [
            procs.start(
                "relay-1", [*me, "--serve-relay", f"{HOST}:{relay_in}", f"{HOST}:{relay_mid}"]
            ),
            procs.start(
                "relay-2", [*me, "--serve-relay", f"{HOST}:{relay_mid}", f"{HOST}:{app_port}"]
            ),
        ]
        wait_listening(procs, "db-proxy", db, db_public)
        wait_listening(procs, "web-proxy", web, upstream)
        wait_listening(procs, "relay-1", relays[0], relay_in)
        wait_listening(procs, "relay-2", relays[1], relay_mid)
        deadline = time.monotonic() + 15
        while True:  # the first connections may race the catalog and the certificates
            try:
                setup_times(upstream, 1)
                break
            except (BenchError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"no traffic through the proxies: {exc}\n{procs.log_tail('db-proxy')}\n"
                        f"{procs.log_tail('web-proxy')}"
                    ) from exc
                time.sleep(0.1)

        size = args.size_mib << 20
        for port in (app_port, relay_in, upstream):  # warm-up every path
            transfer(port, 16 << 20)
        direct, relayed, proxied = [], [], []
        proxy_cpu = 0.0
        for _ in range(args.rounds):  # interleaved, so each path sees the same machine
            direct.append(size / transfer(app_port, size) / 1e6)
            relayed.append(size / transfer(relay_in, size) / 1e6)
            before = cpu_seconds(db.pid) + cpu_seconds(web.pid)
            proxied.append(size / transfer(upstream, size) / 1e6)
            proxy_cpu += cpu_seconds(db.pid) + cpu_seconds(web.pid) - before
        setup_times(upstream, 20)
        direct_setup = setup_times(app_port, args.connections)
        relay_setup = setup_times(relay_in, args.connections)
        proxied_setup = setup_times(upstream, args.connections)
        load = os.getloadavg()[0]
        return {
            "mode": mode,
            "direct_mb_s": statistics.median(direct),
            "relay_mb_s": statistics.median(relayed),
            "proxy_mb_s": statistics.median(proxied),
            "ratio": statistics.median(proxied) / statistics.median(direct),
            "ratio_vs_relay": statistics.median(proxied) / statistics.median(relayed),
            "direct_rounds": direct,
            "relay_rounds": relayed,
            "proxy_rounds": proxied,
            "proxy_cpu_s_per_gib": proxy_cpu / (args.rounds * size / (1 << 30)),
            "setup_direct_p50_ms": percentile(direct_setup, 0.5),
            "setup_direct_p99_ms": percentile(direct_setup, 0.99),
            "setup_relay_p50_ms": percentile(relay_setup, 0.5),
            "setup_proxy_p50_ms": percentile(proxied_setup, 0.5),
            "setup_proxy_p99_ms": percentile(proxied_setup, 0.99),
            "size_mib": args.size_mib,
            "rounds": args.rounds,
            "connections": args.connections,
            "cpus": os.cpu_count(),
            "load_average_1m": load,
        }
    finally:
        procs.stop_all()
        if fake is not None:
            fake.stop()


def report(result: dict[str, Any]) -> str:
    ok_ratio = result["ratio"] >= TARGET_RATIO
    ok_setup = result["setup_proxy_p50_ms"] <= TARGET_SETUP_MS
    agent = "gitkv agent -dev" if result["mode"] == "agent" else "in-process stand-in agent"

    def rounds(key: str) -> str:
        return " ".join(f"{v:.0f}" for v in result[key])

    return "\n".join(
        [
            f"connect proxy bench ({agent}; {result['size_mib']} MiB x {result['rounds']} rounds, "
            f"{result['connections']} connections; {result['cpus']} CPUs, "
            f"load {result['load_average_1m']:.1f})",
            f"  direct TCP copy          {result['direct_mb_s']:7.0f} MB/s   ({rounds('direct_rounds')})",
            f"  plain relay pair         {result['relay_mb_s']:7.0f} MB/s   ({rounds('relay_rounds')})",
            f"  mTLS proxy pair          {result['proxy_mb_s']:7.0f} MB/s   ({rounds('proxy_rounds')})",
            f"  ratio to direct          {result['ratio']:7.2f}        target >= {TARGET_RATIO}"
            + ("" if ok_ratio else "   MISSED"),
            f"  ratio to plain relays    {result['ratio_vs_relay']:7.2f}",
            f"  proxy CPU (both)         {result['proxy_cpu_s_per_gib']:7.2f} s per GiB carried",
            f"  setup direct p50/p99     {result['setup_direct_p50_ms']:7.2f} / "
            f"{result['setup_direct_p99_ms']:.2f} ms",
            f"  setup relays p50         {result['setup_relay_p50_ms']:7.2f} ms",
            f"  setup proxied p50/p99    {result['setup_proxy_p50_ms']:7.2f} / "
            f"{result['setup_proxy_p99_ms']:.2f} ms   target p50 <= {TARGET_SETUP_MS:.0f} ms"
            + ("" if ok_setup else "   MISSED"),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="bytes per throughput round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=500, help="connections for setup times")
    parser.add_argument("--fake-agent", action="store_true", help="always use the stand-in agent")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON too")
    parser.add_argument(
        "--proxy-cmd",
        metavar="CMD",
        help="run the proxies as CMD connect proxy ... (default: this Python, -m gitkv)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument("--serve-app", metavar="HOST", help=argparse.SUPPRESS)
    parser.add_argument(
        "--serve-relay", nargs=2, metavar=("LISTEN", "TARGET"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve_app:
        serve_app(args.serve_app)
        return 0
    if args.serve_relay:
        serve_relay(*args.serve_relay)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with workdir(args.keep) as work:
        try:
            result = measure(args, work)
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
