"""Sidecar proxies on a real `gitkv agent -dev` process: a service registered with
`"Connect": {"SidecarService": {}}` brings `web-sidecar-proxy` (port from the configured
range, two checks), seen by the agent, catalog, health and Connect endpoints and by DNS
(`web.connect.consul`), and gone with its service; a config file's `connect { sidecar_service }`
block does the same at start. The sidecar range is pinned to one port this test listens on,
so the sidecar's TCP check passes."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dns.message
import dns.query
import dns.rcode
import httpx
import pytest

from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.conftest import dev_agent_args


def udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class MeshAgent:
    proc: AgentProc
    dns_port: int
    sidecar_port: int  # the whole sidecar range; something listens there
    config_sidecar_port: int


@pytest.fixture(scope="module")
def agent() -> Iterator[MeshAgent]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    config_port = free_port()
    dns_port = udp_port()
    args = [a for a in dev_agent_args() if not a.startswith("-dns-port")]
    hcl = (
        f"ports {{ sidecar_min_port = {port}\nsidecar_max_port = {port} }}\n"
        f'service {{ name = "api"\nport = 9000\nconnect {{ sidecar_service {{ port = {config_port} }} }} }}'
    )
    proc = AgentProc(*args, f"-dns-port={dns_port}", f"-hcl={hcl}").start()
    try:
        yield MeshAgent(proc, dns_port, port, config_port)
    finally:
        proc.cleanup()
        listener.close()


@pytest.fixture
def http(agent: MeshAgent) -> Iterator[httpx.Client]:
    with agent.proc.client() as client:
        yield client


def until(what: str, probe: Any, timeout: float = 25.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"never: {what}")


def ask(agent: MeshAgent, name: str, rdtype: str) -> dns.message.Message:
    return dns.query.udp(
        dns.message.make_query(name, rdtype), "127.0.0.1", timeout=5, port=agent.dns_port
    )


def test_a_config_file_sidecar(http: httpx.Client, agent: MeshAgent) -> None:
    services = http.get("/v1/agent/services").json()
    sidecar = services["api-sidecar-proxy"]
    assert (sidecar["Kind"], sidecar["Port"]) == ("connect-proxy", agent.config_sidecar_port)
    assert sidecar["Proxy"]["DestinationServiceID"] == "api"
    assert sidecar["Proxy"]["LocalServicePort"] == 9000


def test_sidecar_registration_end_to_end(http: httpx.Client, agent: MeshAgent) -> None:
    body = {"Name": "web", "Port": 8080, "Tags": ["v1"], "Connect": {"SidecarService": {}}}
    assert http.put("/v1/agent/service/register", json=body).status_code == 200

    own = http.get("/v1/agent/service/web-sidecar-proxy").json()
    assert own["Kind"] == "connect-proxy"
    assert (own["Service"], own["Port"], own["Tags"]) == (
        "web-sidecar-proxy",
        agent.sidecar_port,
        ["v1"],
    )
    assert own["Proxy"] == {
        "DestinationServiceName": "web",
        "DestinationServiceID": "web",
        "LocalServiceAddress": "127.0.0.1",
        "LocalServicePort": 8080,
        "MeshGateway": {},
        "Expose": {},
    }
    assert "Connect" not in http.get("/v1/agent/service/web").json()

    [node] = http.get("/v1/catalog/service/web-sidecar-proxy").json()
    assert node["ServiceKind"] == "connect-proxy"
    assert node["ServiceProxy"]["Mode"] == ""
    assert node["ServiceProxy"]["DestinationServiceName"] == "web"
    [connect] = http.get("/v1/catalog/connect/web").json()
    assert (connect["ServiceID"], connect["ServicePort"]) == (
        "web-sidecar-proxy",
        agent.sidecar_port,
    )

    def passing() -> list[dict]:
        return http.get("/v1/health/connect/web", params={"passing": "1"}).json()

    [entry] = until("the sidecar's checks pass", passing)
    checks = {c["Name"]: c for c in entry["Checks"] if c["ServiceID"]}
    assert checks["Connect Sidecar Listening"]["Type"] == "tcp"
    assert checks["Connect Sidecar Aliasing web"]["Output"] == "No checks found."

    a = ask(agent, "web.connect.consul.", "A")
    assert [r.to_text() for rrset in a.answer for r in rrset] == ["127.0.0.1"]
    srv = ask(agent, "web.connect.consul.", "SRV")
    [[record]] = [list(rrset) for rrset in srv.answer]
    assert record.port == agent.sidecar_port

    assert http.put("/v1/agent/service/deregister/web").status_code == 200
    assert "web-sidecar-proxy" not in http.get("/v1/agent/services").json()
    assert http.get("/v1/catalog/connect/web").json() == []
    assert ask(agent, "web.connect.consul.", "A").rcode() == dns.rcode.NXDOMAIN


def test_a_proxy_without_destination_is_refused(http: httpx.Client) -> None:
    body = {"Name": "p", "Kind": "connect-proxy", "Port": 1}
    answer = http.put("/v1/agent/service/register", json=body)
    assert answer.status_code == 400
    assert answer.text == (
        "Validation failed: 1 error occurred:\n"
        "\t* Proxy.DestinationServiceName must be non-empty for Connect proxy services\n\n"
    )
