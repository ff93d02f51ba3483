"""`gitkv connect proxy` end to end: a real `-dev` agent, two real proxy processes, real traffic.

    client -> web's upstream listener (plain TCP) -> mTLS -> db's public listener -> echo server

Intentions decide: a `deny` for web => db makes new connections fail within about a second
(the proxy caches authorize answers for half a second), and `allow` lets them through again.

Needs the agent's Connect CA endpoints (`/v1/agent/connect/ca/*`, authorize, intentions); until
the agent serves them the tests skip.
"""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.conftest import dev_agent_args

ROOT = Path(__file__).resolve().parents[2]


def _agent_routes_connect_ca() -> bool:
    """A cheap look, before any agent starts: does the agent's HTTP layer name the route?"""
    needle = "/v1/agent/connect/ca/roots"
    for path in (ROOT / "agent" / "http").rglob("*.py"):
        if needle in path.read_text(errors="replace"):
            return True
    return False


pytestmark = pytest.mark.skipif(
    not _agent_routes_connect_ca(),
    reason="the agent does not serve /v1/agent/connect/ca/roots yet",
)


class ProxyProc:
    """A `python -m gitkv connect proxy ...` subprocess, its output in a temp file."""

    def __init__(self, agent: AgentProc, *args: str) -> None:
        fd, path = tempfile.mkstemp(prefix="gitkv-proxy-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)
        env = dict(os.environ, CONSUL_HTTP_ADDR=agent.url)
        env.pop("CONSUL_HTTP_TOKEN", None)
        command = [sys.executable, "-m", "gitkv", "connect", "proxy", *args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self, *ports: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        waiting = set(ports)
        while waiting and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"proxy exited with {self.proc.returncode}:\n{self.output()}")
            for port in list(waiting):
                with socket.socket() as sock:
                    sock.settimeout(0.2)
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        waiting.discard(port)
            time.sleep(0.05)
        assert not waiting, f"proxy not listening on {sorted(waiting)}:\n{self.output()}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def cleanup(self) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(262144):
            self.request.sendall(data)


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def echo() -> Iterator[int]:
    server = EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentProc]:
    proc = AgentProc(*dev_agent_args(), http_port=free_port()).start()
    try:
        with proc.client() as http:
            answer = http.get("/v1/agent/connect/ca/roots")
        if answer.status_code == 404:
            pytest.skip("the agent answers 404 to /v1/agent/connect/ca/roots")
        assert answer.status_code == 200, answer.text
        yield proc
    finally:
        proc.cleanup()


def round_trip(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send `payload` through the upstream listener, return what came back (b"" if refused)."""
    got = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
        sender.start()
        try:
            while len(got) < len(payload):
                chunk = sock.recv(262144)
                if not chunk:
                    break
                got += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        sender.join(timeout)
    return bytes(got)


def works(port: int) -> bool:
    try:
        return round_trip(port, b"ping", timeout=2.0) == b"ping"
    except OSError:
        return False


def register_pair(http: httpx.Client, echo_port: int, *, nested: bool) -> dict[str, int]:
    """db (the echo server) and web, each with a sidecar: a `connect.sidecar_service` block the
    agent expands (`nested`), or the separate connect-proxy registration it expands to."""
    ports = {"db_public": free_port(), "web_public": free_port(), "upstream": free_port()}
    web_app = free_port()
    for service, app_port, public, upstreams in (
        ("db", echo_port, ports["db_public"], []),
        (
            "web",
            web_app,
            ports["web_public"],
            [{"DestinationName": "db", "LocalBindPort": ports["upstream"]}],
        ),
    ):
        # The sidecar inherits the service's address: 127.0.0.1, never every interface.
        body: dict[str, Any] = {
            "ID": service,
            "Name": service,
            "Address": "127.0.0.1",
            "Port": app_port,
        }
        if nested:
            body["Connect"] = {
                "SidecarService": {"Port": public, "Proxy": {"Upstreams": upstreams}}
            }
        r = http.put("/v1/agent/service/register", json=body)
        assert r.status_code == 200, r.text
        if nested:
            continue
        sidecar = {
            "Kind": "connect-proxy",
            "ID": f"{service}-sidecar-proxy",
            "Name": f"{service}-sidecar-proxy",
            "Address": "127.0.0.1",
            "Port": public,
            "Proxy": {
                "DestinationServiceName": service,
                "DestinationServiceID": service,
                "LocalServiceAddress": "127.0.0.1",
                "LocalServicePort": app_port,
                "Upstreams": upstreams,
            },
        }
        r = http.put("/v1/agent/service/register", json=sidecar)
        assert r.status_code == 200, r.text
    return ports


def set_intention(http: httpx.Client, action: str) -> None:
    r = http.put(
        "/v1/connect/intentions/exact",
        params={"source": "web", "destination": "db"},
        json={"Action": action},
    )
    assert r.status_code == 200, r.text


def until(predicate: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until `predicate()` held, or None if it never did within `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def _proxies(
    agent: AgentProc, ports: dict[str, int], echo_port: int, sidecar: bool
) -> tuple[ProxyProc, ProxyProc]:
    if sidecar:
        db = ProxyProc(agent, "-sidecar-for", "db", "-log-level", "debug")
        web = ProxyProc(agent, "-sidecar-for", "web", "-log-level", "debug")
    else:
        db = ProxyProc(
            agent,
            "-service", "db",
            "-listen", f"127.0.0.1:{ports['db_public']}",
            "-service-addr", f"127.0.0.1:{echo_port}",
            "-log-level", "debug",
        )  # fmt: skip
        web = ProxyProc(agent, "-service", "web", "-upstream", f"db:{ports['upstream']}")
    return db, web


def _traffic_and_intentions(agent: AgentProc, echo_port: int, sidecar: bool) -> None:
    with agent.client() as http:
        ports = register_pair(http, echo_port, nested=sidecar)
        db, web = _proxies(agent, ports, echo_port, sidecar)
        try:
            db.wait_listening(ports["db_public"])
            web.wait_listening(ports["upstream"])
            assert until(lambda: works(ports["upstream"]), 10) is not None, (
                db.output() + web.output()
            )

            payload = os.urandom(4 << 20)
            assert round_trip(ports["upstream"], payload, timeout=30) == payload

            # A connection opened before the deny was authorized when it started; Consul's
            # built-in proxy never re-checks it, and neither do we.
            held = socket.create_connection(("127.0.0.1", ports["upstream"]), timeout=5)
            held.sendall(b"held")
            assert held.recv(16) == b"held"

            set_intention(http, "deny")
            took = until(lambda: not works(ports["upstream"]), 3.0)
            assert took is not None, "a deny intention never took effect:\n" + db.output()
            assert took <= 1.5, f"deny took {took:.2f}s"
            assert "denied" in db.output()
            held.sendall(b"still")
            assert held.recv(16) == b"still"
            held.close()

            set_intention(http, "allow")
            took = until(lambda: works(ports["upstream"]), 3.0)
            assert took is not None and took <= 1.5, f"allow took {took}"

            if sidecar:  # the proxy follows its registration: an upstream moves
                moved = free_port()
                body = {"ID": "web", "Name": "web", "Address": "127.0.0.1", "Port": free_port()}
                body["Connect"] = {
                    "SidecarService": {
                        "Port": ports["web_public"],
                        "Proxy": {"Upstreams": [{"DestinationName": "db", "LocalBindPort": moved}]},
                    }
                }
                assert http.put("/v1/agent/service/register", json=body).status_code == 200
                assert until(lambda: works(moved), 10.0) is not None, web.output()
                assert until(lambda: not works(ports["upstream"]), 5.0) is not None
        finally:
            codes = (web.stop(), db.stop())
            logs = web.output() + db.output()
            web.cleanup()
            db.cleanup()
            with agent.client() as cleanup:
                cleanup.delete(
                    "/v1/connect/intentions/exact", params={"source": "web", "destination": "db"}
                )
                for service in ("web", "db"):
                    cleanup.put(f"/v1/agent/service/deregister/{service}-sidecar-proxy")
                    cleanup.put(f"/v1/agent/service/deregister/{service}")
        assert codes == (0, 0), logs
        assert "Connect proxy shutdown" in logs
        assert "Traceback" not in logs, logs


def test_traffic_flows_and_intentions_decide_flags_mode(agent: AgentProc, echo: int) -> None:
    _traffic_and_intentions(agent, echo, sidecar=False)


def test_traffic_flows_and_intentions_decide_sidecar_mode(agent: AgentProc, echo: int) -> None:
    with agent.client() as http:
        probe = {
            "Kind": "connect-proxy",
            "ID": "probe-sidecar-proxy",
            "Name": "probe-sidecar-proxy",
            "Port": free_port(),
            "Proxy": {"DestinationServiceName": "probe", "LocalServicePort": 1},
        }
        http.put("/v1/agent/service/register", json=probe)
        shown = http.get("/v1/agent/service/probe-sidecar-proxy").json()
        http.put("/v1/agent/service/deregister/probe-sidecar-proxy")
    if not (shown.get("Proxy") or {}).get("DestinationServiceName"):
        pytest.skip("the agent does not return a connect-proxy's Proxy block yet")
    _traffic_and_intentions(agent, echo, sidecar=True)


def test_a_proxy_without_its_registration_says_so(agent: AgentProc) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gitkv", "connect", "proxy", "-sidecar-for", "nothing-here"],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, CONSUL_HTTP_ADDR=agent.url),
    )
    assert result.returncode == 1
    assert "No sidecar proxy registered for nothing-here" in result.stderr
