"""Connect on a real -dev agent: the CA's CSR limits, central service config in the catalog
(and `enable_central_service_config`), hash-blocking on the merged registration, virtual IPs
and the federation-state endpoints."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from tests.e2e.agentproc import AgentProc

pytestmark = pytest.mark.timeout(120)


def _ca_ready(client: httpx.Client) -> dict:
    deadline = time.monotonic() + 20
    while True:
        answer = client.get("/v1/connect/ca/configuration")
        if answer.status_code == 200:
            return answer.json()
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)


def test_csr_rate_limit_refuses_with_429(dev_agent: AgentProc) -> None:
    client = dev_agent.client()
    current = _ca_ready(client)
    config = dict(current["Config"]) | {"CSRMaxPerSecond": 0.2}
    body = {"Provider": current["Provider"], "Config": config}
    assert client.put("/v1/connect/ca/configuration", json=body).status_code == 200
    assert client.get("/v1/agent/connect/ca/leaf/first").status_code == 200
    # The next token is 5 s away, beyond the 0.5 s a request may wait: refused at once.
    refused = client.get("/v1/agent/connect/ca/leaf/second")
    assert refused.status_code == 429, refused.text
    assert refused.text == "Rate limit reached, try again later"
    # The cached certificate is still served.
    assert client.get("/v1/agent/connect/ca/leaf/first").status_code == 200

    # No rate, one at a time: sequential requests all get their certificate.
    config |= {"CSRMaxPerSecond": 0, "CSRMaxConcurrent": 1}
    body = {"Provider": current["Provider"], "Config": config}
    assert client.put("/v1/connect/ca/configuration", json=body).status_code == 200
    for name in ("second", "third", "fourth"):
        answer = client.get(f"/v1/agent/connect/ca/leaf/{name}")
        assert answer.status_code == 200, answer.text
    shown = client.get("/v1/connect/ca/configuration").json()["Config"]
    assert shown["CSRMaxConcurrent"] == 1


def _sidecar_in_catalog(client: httpx.Client, want: dict) -> dict:
    """The catalog's web-sidecar-proxy once its Proxy.Config is `want` (anti-entropy runs
    after the entry write)."""
    deadline = time.monotonic() + 20
    while True:
        found = client.get("/v1/catalog/service/web-sidecar-proxy").json()
        if found and found[0]["ServiceProxy"].get("Config") == want:
            return found[0]["ServiceProxy"]
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


WEB = {
    "Name": "web",
    "Port": 8080,
    "Connect": {"SidecarService": {"Proxy": {"Config": {"local": 1}}}},
}
PROXY_DEFAULTS = {
    "Kind": "proxy-defaults",
    "Name": "global",
    "Config": {"foo": "bar"},
    "MeshGateway": {"Mode": "local"},
}


def test_the_catalog_gets_the_merged_sidecar_and_follows_entry_changes(
    dev_agent: AgentProc,
) -> None:
    client = dev_agent.client()
    assert client.put("/v1/config", json=PROXY_DEFAULTS).json() is True
    assert client.put("/v1/agent/service/register", json=WEB).status_code == 200
    proxy = _sidecar_in_catalog(client, {"local": 1, "foo": "bar"})
    assert proxy["MeshGateway"] == {"Mode": "local"}

    first = client.get("/v1/agent/service/web-sidecar-proxy")
    digest = first.json()["ContentHash"]
    assert first.headers["X-Consul-ContentHash"] == digest

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        parked = pool.submit(
            dev_agent.client().get,
            "/v1/agent/service/web-sidecar-proxy",
            params={"hash": digest, "wait": "20s"},
        )
        time.sleep(0.3)  # let the reader park (the answer does not depend on it)
        entry = {"Kind": "service-defaults", "Name": "web", "Protocol": "http"}
        assert client.put("/v1/config", json=entry).json() is True
        woken = parked.result(timeout=30)
    assert woken.status_code == 200
    body = woken.json()
    assert body["ContentHash"] != digest  # woken by the change, not by the wait running out
    assert body["Proxy"]["Config"] == {"local": 1, "foo": "bar", "protocol": "http"}
    _sidecar_in_catalog(client, {"local": 1, "foo": "bar", "protocol": "http"})

    # A deleted entry leaves the merge too.
    assert client.delete("/v1/config/proxy-defaults/global").status_code == 200
    proxy = _sidecar_in_catalog(client, {"local": 1, "protocol": "http"})
    assert proxy["MeshGateway"] == {}


def test_central_service_config_off_registers_the_sidecar_as_sent() -> None:
    from tests.e2e.conftest import dev_agent_args

    args = [*dev_agent_args(), "-hcl", "enable_central_service_config = false"]
    with AgentProc(*args).start() as agent:
        client = agent.client()
        assert client.put("/v1/config", json=PROXY_DEFAULTS).json() is True
        assert client.put("/v1/agent/service/register", json=WEB).status_code == 200
        proxy = _sidecar_in_catalog(client, {"local": 1})
        assert proxy["MeshGateway"] == {}
        shown = client.get("/v1/agent/service/web-sidecar-proxy").json()
        assert shown["Proxy"]["Config"] == {"local": 1}
        assert shown["Proxy"]["MeshGateway"] == {}


def test_virtual_ips_in_the_catalog_over_dns_and_set_by_hand() -> None:
    import socket

    import dns.message
    import dns.query

    from tests.e2e.conftest import dev_agent_args

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        dns_port = sock.getsockname()[1]
    args = [a for a in dev_agent_args() if not a.startswith("-dns-port")]
    with AgentProc(*args, f"-dns-port={dns_port}").start() as agent:
        client = agent.client()
        web = {"Name": "web", "Port": 8080, "Connect": {"SidecarService": {}}}
        assert client.put("/v1/agent/service/register", json=web).status_code == 200
        deadline = time.monotonic() + 20
        while True:
            found = client.get("/v1/catalog/service/web-sidecar-proxy").json()
            tagged = found[0].get("ServiceTaggedAddresses") or {} if found else {}
            if "consul-virtual" in tagged:
                break
            assert time.monotonic() < deadline, found
            time.sleep(0.1)
        vip = tagged["consul-virtual"]
        assert vip["Address"] == "240.0.0.1" and vip["Port"] == found[0]["ServicePort"]
        # The agent keeps the servers' address in its own view, and stops syncing.
        shown = client.get("/v1/agent/service/web-sidecar-proxy").json()
        assert shown["TaggedAddresses"]["consul-virtual"] == vip
        index = found[0]["ModifyIndex"]
        # Registering it again runs a sync: the catalog already holds it, nothing is written.
        assert client.put("/v1/agent/service/register", json=web).status_code == 200
        again = client.get("/v1/catalog/service/web-sidecar-proxy").json()
        assert again[0]["ModifyIndex"] == index

        answer = dns.query.udp(
            dns.message.make_query("web.virtual.consul.", "A"), "127.0.0.1", 5, dns_port
        )
        assert [r.to_text() for rrset in answer.answer for r in rrset] == ["240.0.0.1"]

        put = client.put(
            "/v1/internal/service-virtual-ip", json={"Service": "web", "ManualVIPs": ["1.2.3.4"]}
        )
        assert put.status_code == 200, put.text
        assert put.json() == {"Found": True, "UnassignedFrom": None}
        bad = client.put(
            "/v1/internal/service-virtual-ip", json={"Service": "web", "ManualVIPs": ["x"]}
        )
        assert (bad.status_code, bad.text) == (500, '"<nil>" is not a valid IPv4 address')


def test_federation_states_of_a_single_primary(dev_agent: AgentProc) -> None:
    client = dev_agent.client()
    deadline = time.monotonic() + 20
    while not (listed := client.get("/v1/internal/federation-states").json()):
        assert time.monotonic() < deadline, "the leader never wrote its federation state"
        time.sleep(0.1)
    (state,) = listed
    assert state["Datacenter"] == "dc1" and state["MeshGateways"] is None
    assert state["UpdatedAt"].endswith("Z") and state["PrimaryModifyIndex"] == 0
    one = client.get("/v1/internal/federation-state/dc1")
    assert one.status_code == 200 and one.json()["State"] == state
    assert int(one.headers["X-Consul-Index"]) >= state["ModifyIndex"]
    missing = client.get("/v1/internal/federation-state/dc2")
    assert (missing.status_code, missing.text) == (404, "")
    assert client.get("/v1/internal/federation-states/mesh-gateways").json() == {}

    gateway = {"Name": "mgw", "Kind": "mesh-gateway", "Port": 8443}
    assert client.put("/v1/agent/service/register", json=gateway).status_code == 200
    deadline = time.monotonic() + 30
    while not (dump := client.get("/v1/internal/federation-states/mesh-gateways").json()):
        assert time.monotonic() < deadline, "the gateway never reached the federation state"
        time.sleep(0.2)
    assert [g["Service"]["ID"] for g in dump["dc1"]] == ["mgw"]


def test_a_client_agent_merges_syncs_resolves_virtual_ips_and_relays_the_csr_limit(
    tmp_path,
) -> None:
    """The client-agent paths: central config from a server's entries, the merged sidecar
    synced through the server, `.virtual.` answered over RPC, a refused CSR still a 429."""
    import socket

    import dns.message
    import dns.query

    from tests.e2e.agentproc import free_port
    from tests.e2e.conftest import dev_agent_args

    serf = free_port()
    server_args = [a for a in dev_agent_args() if not a.startswith(("-dns-port", "-serf-lan"))]
    server = AgentProc(*server_args, f"-serf-lan-port={serf}", "-dns-port=-1", "-node=srv")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.2", 0))
        client_dns = sock.getsockname()[1]
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
        http = client.client()
        assert http.put("/v1/config", json=PROXY_DEFAULTS).json() is True
        assert http.put("/v1/agent/service/register", json=WEB).status_code == 200
        proxy = _sidecar_in_catalog(http, {"local": 1, "foo": "bar"})
        assert proxy["MeshGateway"] == {"Mode": "local"}
        found = http.get("/v1/catalog/service/web-sidecar-proxy").json()
        assert found[0]["ServiceTaggedAddresses"]["consul-virtual"]["Address"] == "240.0.0.1"
        query = dns.message.make_query("web.virtual.consul.", "A")
        answer = dns.query.udp(query, "127.0.0.2", timeout=5, port=client_dns)
        assert [r.to_text() for rrset in answer.answer for r in rrset] == ["240.0.0.1"]

        current = _ca_ready(http)
        body = {
            "Provider": current["Provider"],
            "Config": dict(current["Config"]) | {"CSRMaxPerSecond": 0.2},
        }
        assert http.put("/v1/connect/ca/configuration", json=body).status_code == 200
        assert http.get("/v1/agent/connect/ca/leaf/one").status_code == 200
        refused = http.get("/v1/agent/connect/ca/leaf/two")
        assert (refused.status_code, refused.text) == (
            429,
            "Rate limit reached, try again later",
        )
    finally:
        client.cleanup()
        server.cleanup()
