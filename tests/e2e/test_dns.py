"""The DNS interface of a real `gitkv agent -dev` process, asked with dnspython over UDP and
TCP on 127.0.0.1: services with a critical instance, SRV targets, nodes, PTR, NXDOMAIN, and
forwarding to a recursor (a tiny fake one in this process)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import httpx
import pytest

from tests.e2e.agentproc import AgentProc, AgentStartError, free_port
from tests.e2e.conftest import dev_agent_args

NODE = "dnsnode"


def udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeRecursor:
    """Answers every A question with 192.0.2.1 (on a thread, until stopped)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            reply.answer.append(
                dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "192.0.2.1")
            )
            self.sock.sendto(reply.to_wire(), addr)

    def __enter__(self) -> FakeRecursor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


def agent_args(dns_port: int, *extra: str) -> list[str]:
    args = [a for a in dev_agent_args() if not a.startswith("-dns-port")]
    return [*args, f"-dns-port={dns_port}", f"-node={NODE}", "-node-meta=rack:r1", *extra]


@pytest.fixture(scope="module")
def recursor() -> Iterator[FakeRecursor]:
    with FakeRecursor() as fake:
        yield fake


@dataclass(frozen=True)
class DNSAgent:
    """A running agent and the port its DNS interface listens on."""

    proc: AgentProc
    dns_port: int


@pytest.fixture(scope="module")
def agent(recursor: FakeRecursor) -> Iterator[DNSAgent]:
    port = udp_port()
    proc = AgentProc(*agent_args(port, f"-recursor=127.0.0.1:{recursor.port}")).start()
    try:
        with proc.client() as http:
            register_services(http)
        yield DNSAgent(proc, port)
    finally:
        proc.cleanup()


def register_services(http: httpx.Client) -> None:
    """web: web1 on the node address, web2 critical (TTL never passed), web3 passing on its
    own address; then wait until the catalog shows all three with those statuses."""
    services = [
        {"ID": "web1", "Name": "web", "Port": 8080, "Tags": ["v1"]},
        {"ID": "web2", "Name": "web", "Port": 8081, "Address": "127.0.0.22", "Check": {"TTL": "60s"}},
        {"ID": "web3", "Name": "web", "Port": 8082, "Address": "127.0.0.23", "Tags": ["v3"], "Check": {"TTL": "60s"}},
    ]  # fmt: skip
    for body in services:
        assert http.put("/v1/agent/service/register", json=body).status_code == 200
    assert http.put("/v1/agent/check/pass/service:web3").status_code == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        entries = http.get("/v1/health/service/web").json()
        status = {
            e["Service"]["ID"]: sorted(c["Status"] for c in e["Checks"] if c["ServiceID"])
            for e in entries
        }
        if status == {"web1": [], "web2": ["critical"], "web3": ["passing"]}:
            return
        time.sleep(0.1)
    raise AssertionError(f"services never reached the catalog: {status}")


def ask(agent: DNSAgent, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, "127.0.0.1", timeout=5, port=agent.dns_port)


def values(
    msg: dns.message.Message, section: str = "answer", rdtype: str | None = None
) -> set[str]:
    return {
        rdata.to_text()
        for rrset in getattr(msg, section)
        if rdtype is None or rrset.rdtype == dns.rdatatype.from_text(rdtype)
        for rdata in rrset
    }


@pytest.mark.parametrize("tcp", [False, True])
def test_service_a_drops_the_critical_instance(agent: DNSAgent, tcp: bool) -> None:
    msg = ask(agent, "web.service.consul.", tcp=tcp)
    assert msg.rcode() == dns.rcode.NOERROR
    assert values(msg) == {"127.0.0.1", "127.0.0.23"}


def test_service_tag_and_rfc2782(agent: DNSAgent) -> None:
    assert values(ask(agent, "v3.web.service.dc1.consul.")) == {"127.0.0.23"}
    assert values(ask(agent, "_web._v1.service.consul.", "SRV"), rdtype="SRV") == {
        f"1 1 8080 {NODE}.node.dc1.consul."
    }


def test_service_srv(agent: DNSAgent) -> None:
    msg = ask(agent, "web.service.consul.", "SRV")
    assert values(msg, rdtype="SRV") == {
        f"1 1 8080 {NODE}.node.dc1.consul.",
        "1 1 8082 7f000017.addr.dc1.consul.",
    }
    assert values(msg, "additional", "A") == {"127.0.0.1", "127.0.0.23"}
    assert '"rack=r1"' in values(msg, "additional", "TXT")


def test_servers_as_consul_service(agent: DNSAgent) -> None:
    assert values(ask(agent, "consul.service.consul.")) == {"127.0.0.1"}


def test_node_lookup(agent: DNSAgent) -> None:
    msg = ask(agent, f"{NODE.upper()}.node.consul.")
    assert values(msg) == {"127.0.0.1"}
    assert '"rack=r1"' in values(ask(agent, f"{NODE}.node.dc1.consul.", "TXT"))


def test_reverse_lookup(agent: DNSAgent) -> None:
    msg = ask(agent, "1.0.0.127.in-addr.arpa.", "PTR")
    assert values(msg) == {f"{NODE}.node.dc1.consul."}


def test_nxdomain_carries_soa(agent: DNSAgent) -> None:
    for name in ("nope.service.consul.", "nope.node.consul.", "web.service.dc9.consul."):
        msg = ask(agent, name)
        assert msg.rcode() == dns.rcode.NXDOMAIN, name
        assert [r.rdtype for r in msg.authority] == [dns.rdatatype.SOA]
        soa = msg.authority[0][0]
        assert soa.mname.to_text() == "ns.consul." and soa.minimum == 0


def test_addr_lookup(agent: DNSAgent) -> None:
    assert values(ask(agent, "7f000017.addr.dc1.consul.")) == {"127.0.0.23"}


def test_other_names_go_to_the_recursor(agent: DNSAgent) -> None:
    msg = ask(agent, "example.com.")
    assert msg.rcode() == dns.rcode.NOERROR
    assert values(msg) == {"192.0.2.1"}


def test_taken_dns_port_fails_the_start() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        proc = AgentProc(*agent_args(port), http_port=free_port())
        try:
            with pytest.raises(AgentStartError) as failure:
                proc.start()
            assert f"127.0.0.1:{port}" in str(failure.value)
            assert proc.proc is not None and proc.proc.returncode == 1
        finally:
            proc.cleanup()


def test_client_agent_answers_from_the_servers(tmp_path) -> None:
    """A client agent holds no catalog: its DNS reads the servers' health API over RPC."""
    serf = free_port()
    server_args = [a for a in dev_agent_args() if not a.startswith(("-dns-port", "-serf-lan"))]
    server = AgentProc(*server_args, f"-serf-lan-port={serf}", "-dns-port=-1", "-node=srv")
    client_dns = udp_port()
    client = AgentProc(
        "-node=cli",
        "-bind=127.0.0.2",
        "-client=127.0.0.2",
        f"-join=127.0.0.1:{serf}",
        f"-data-dir={tmp_path / 'cli'}",
        f"-server-port={free_port('127.0.0.2')}",
        f"-serf-lan-port={free_port('127.0.0.2')}",
        "-serf-wan-port=-1",
        f"-dns-port={client_dns}",
        ip="127.0.0.2",
    )
    try:
        server.start()
        client.start(timeout=30)
        with client.client() as http:
            body = {"ID": "cache1", "Name": "cache", "Port": 6379}
            assert http.put("/v1/agent/service/register", json=body).status_code == 200
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not http.get("/v1/health/service/cache").json():
                time.sleep(0.1)
        query = dns.message.make_query("cache.service.consul.", "SRV")
        msg = dns.query.udp(query, "127.0.0.2", timeout=5, port=client_dns)
        assert values(msg, rdtype="SRV") == {"1 1 6379 cli.node.dc1.consul."}
        assert values(msg, "additional", "A") == {"127.0.0.2"}
        query = dns.message.make_query("srv.node.consul.", "A")
        assert values(dns.query.tcp(query, "127.0.0.2", timeout=5, port=client_dns)) == {
            "127.0.0.1"
        }
    finally:
        client.cleanup()
        server.cleanup()
