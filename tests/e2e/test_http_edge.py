"""The HTTP edge against a real agent: half-closed clients get their answer, unclean paths get
Go's 301, a truncated body stores nothing, and a 70 KB service ID survives a restart.

Loopback addresses 127.0.0.88 and 127.0.0.89 only (the multi-dc suite owns .81-.84).
"""

from __future__ import annotations

import http.client as http_client
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.limits import MAX_IDENTIFIER_BYTES
from tests.e2e.agentproc import AgentProc, free_port

EDGE_IP = "127.0.0.88"
RESTART_IP = "127.0.0.89"


def server_args(ip: str, data_dir: Path) -> list[str]:
    return [
        "-server",
        "-bootstrap-expect=1",
        f"-data-dir={data_dir}",
        "-node=edge1",
        f"-bind={ip}",
        f"-client={ip}",
        f"-server-port={free_port(ip)}",
        "-dns-port=-1",
        f"-serf-lan-port={free_port(ip)}",
        "-serf-wan-port=-1",
    ]


@pytest.fixture(scope="module")
def edge_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProc]:
    data_dir = tmp_path_factory.mktemp("edge") / "d"
    agent = AgentProc(*server_args(EDGE_IP, data_dir), ip=EDGE_IP).start()
    try:
        yield agent
    finally:
        agent.cleanup()


def exchange(agent: AgentProc, raw: bytes) -> bytes:
    """Send `raw`, half-close our side, and read until the agent closes."""
    with socket.create_connection((agent.ip, agent.http_port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_half_closed_put_gets_its_answer(edge_agent: AgentProc) -> None:
    answer = exchange(
        edge_agent, b"PUT /v1/kv/edge/half HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    )
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\ntrue")
    with edge_agent.client() as http:
        assert http.get("/v1/kv/edge/half", params={"raw": ""}).content == b"hello"


def test_half_closed_pipeline_gets_every_answer(edge_agent: AgentProc) -> None:
    answer = exchange(
        edge_agent,
        b"PUT /v1/kv/edge/pipe HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nA"
        b"GET /v1/kv/edge/pipe?raw HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert answer.endswith(b"\r\n\r\nA")


def test_truncated_body_stores_nothing(edge_agent: AgentProc) -> None:
    exchange(edge_agent, b"PUT /v1/kv/edge/cut HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nAB")
    with edge_agent.client() as http:
        assert http.get("/v1/kv/edge/cut").status_code == 404


def as_sent(agent: AgentProc, method: str, target: str, body: bytes = b"") -> tuple:
    """(status, headers, body) for `target` exactly as written: httpx would clean it first."""
    conn = http_client.HTTPConnection(agent.ip, agent.http_port, timeout=10)
    try:
        conn.request(method, target, body=body or None)
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def test_dot_segments_redirect_like_go(edge_agent: AgentProc) -> None:
    status, headers, body = as_sent(edge_agent, "PUT", "/v1/kv/edge/a/../b?flags=1", b"v")
    assert (status, headers["location"], body) == (301, "/v1/kv/edge/b?flags=1", b"")
    assert "content-type" not in headers  # Go types only the GET and HEAD answers

    status, headers, body = as_sent(edge_agent, "GET", "/v1/kv/edge//x/./y/")
    assert (status, headers["location"]) == (301, "/v1/kv/edge/x/y/")
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert body == b'<a href="/v1/kv/edge/x/y/">Moved Permanently</a>.\n\n'
    assert "x-consul-default-acl-policy" not in headers  # the mux answers, not Consul

    status, headers, _ = as_sent(edge_agent, "DELETE", "/v1/kv/edge/../?recurse")
    assert (status, headers["location"]) == (301, "/v1/kv/?recurse")

    with edge_agent.client() as http:
        keys = http.get("/v1/kv/edge/", params={"keys": ""}).json() or []
        assert not any(".." in key or "//" in key for key in keys)
        assert http.get("/v1/kv/edge/half").status_code == 200  # the DELETE removed nothing


def test_percent_encoded_keys_are_not_paths(edge_agent: AgentProc) -> None:
    with edge_agent.client() as http:
        assert http.put("/v1/kv/edge/p%2Fq", content=b"1").json() is True
        assert http.get("/v1/kv/edge/p/q", params={"raw": ""}).content == b"1"
        # Encoded, the bytes of ".." are a key like any other (as on Consul built with Go 1.22+).
        assert http.put("/v1/kv/edge/enc%2F..%2Fz", content=b"2").json() is True
        assert http.get("/v1/kv/edge/enc%2F..%2Fz", params={"raw": ""}).content == b"2"


def test_70kb_service_id_survives_restart(tmp_path: Path) -> None:
    long_id = "svc-" + "x" * 70_000
    args = server_args(RESTART_IP, tmp_path / "d")
    port = free_port(RESTART_IP)
    with AgentProc(*args, ip=RESTART_IP, http_port=port).start() as agent:
        with agent.client() as http:
            body = {"ID": long_id, "Name": "web", "Port": 80, "Check": {"TTL": "30s"}}
            registered = http.put("/v1/agent/service/register", json=body)
            assert registered.status_code == 200, registered.text
            assert long_id in http.get("/v1/agent/services").json()

            too_long = {"ID": "s" * (MAX_IDENTIFIER_BYTES + 1), "Name": "big"}
            refused = http.put("/v1/agent/service/register", json=too_long)
            assert refused.status_code in (400, 413), refused.text
            assert "big" not in {
                s["Service"] for s in http.get("/v1/agent/services").json().values()
            }
        assert agent.stop() == 0

    with AgentProc(*args, ip=RESTART_IP, http_port=port).start() as agent, agent.client() as http:
        services = http.get("/v1/agent/services").json()
        assert list(services) == [long_id]
        assert services[long_id]["Port"] == 80
        assert f"service:{long_id}" in http.get("/v1/agent/checks").json()
