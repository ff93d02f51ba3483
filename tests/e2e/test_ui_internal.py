"""/v1/internal/ui/* on a real -dev agent: the services listing (proxies, gateways, Connect
native, checks lent by proxies), a gateway's services and intentions, and the metrics proxy
(off, and on in front of a small backend this test runs)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.conftest import dev_agent_args


@pytest.fixture(scope="module")
def dev() -> Iterator[httpx.Client]:
    agent = AgentProc(*dev_agent_args(), http_port=free_port()).start()
    try:
        with agent.client() as http:
            _populate(http)
            yield http
    finally:
        agent.cleanup()


def _register(http: httpx.Client, service: dict, check: dict | None = None) -> None:
    body: dict = {"Node": "n1", "Address": "127.0.0.2", "Service": service}
    if check is not None:
        body["Check"] = check | {"ServiceID": service["ID"]}
    r = http.put("/v1/catalog/register", json=body)
    assert r.status_code == 200, r.text


def _populate(http: httpx.Client) -> None:
    _register(http, {"ID": "web1", "Service": "web", "Port": 80, "Tags": ["v2", "v1"]})
    _register(
        http,
        {"ID": "web2", "Service": "web", "Port": 81, "Tags": ["v1"]}
        | {"Meta": {"external-source": "kubernetes"}},
        {"CheckID": "web2-alive", "Name": "alive", "Status": "passing"},
    )
    proxy = {"DestinationServiceName": "web", "DestinationServiceID": "web1"}
    _register(
        http,
        {"ID": "web1-proxy", "Service": "web-sidecar-proxy", "Kind": "connect-proxy", "Port": 21000}
        | {"Proxy": proxy | {"Mode": "transparent"}},
        {"CheckID": "proxy-alive", "Name": "proxy alive", "Status": "critical"},
    )
    _register(
        http,
        {"ID": "ghost-proxy", "Service": "ghost-sidecar-proxy", "Kind": "connect-proxy"}
        | {"Port": 21001, "Proxy": {"DestinationServiceName": "ghost"}},
    )
    _register(http, {"ID": "nat", "Service": "nat", "Port": 82, "Connect": {"Native": True}})
    _register(http, {"ID": "ing", "Service": "ing", "Kind": "ingress-gateway", "Port": 8080})
    entry = {
        "Kind": "ingress-gateway",
        "Name": "ing",
        "Listeners": [
            {"Port": 8080, "Protocol": "tcp", "Services": [{"Name": "web"}]},
            {"Port": 9090, "Protocol": "tcp", "Services": [{"Name": "nat"}]},
        ],
    }
    assert http.put("/v1/config", json=entry).json() is True


def _by_name(items: list[dict]) -> dict[str, dict]:
    return {item["Name"]: item for item in items}


def test_services_listing_summarizes_as_consul(dev: httpx.Client) -> None:
    r = dev.get("/v1/internal/ui/services")
    assert r.status_code == 200, r.text
    assert r.headers["X-Consul-Query-Backend"] == "blocking-query"
    listing = r.json()
    assert [s["Name"] for s in listing] == sorted(s["Name"] for s in listing)
    services = _by_name(listing)
    web = services["web"]
    assert "Kind" not in web
    assert (web["InstanceCount"], web["Nodes"], web["Tags"]) == (2, ["n1"], ["v1", "v2"])
    assert web["ExternalSources"] == ["kubernetes"]
    # The proxy's critical check is counted for the service it fronts, once.
    assert (web["ChecksPassing"], web["ChecksWarning"], web["ChecksCritical"]) == (1, 0, 1)
    assert web["ConnectedWithProxy"] is True and web["TransparentProxy"] is True
    assert web["ConnectedWithGateway"] is True and web["ConnectNative"] is False
    assert web["GatewayConfig"] == {}
    proxy = services["web-sidecar-proxy"]
    assert proxy["Kind"] == "connect-proxy" and proxy["ConnectedWithProxy"] is False
    ghost = services["ghost"]  # fronted by a proxy, no instance of its own
    assert (ghost["InstanceCount"], ghost["Nodes"], ghost["Datacenter"]) == (0, None, "")
    assert ghost["ConnectedWithProxy"] is True and ghost["ConnectedWithGateway"] is False
    assert services["nat"]["ConnectNative"] is True
    ing = services["ing"]
    assert ing["Kind"] == "ingress-gateway"
    assert ing["GatewayConfig"] == {"AssociatedServiceCount": 2}
    assert services["consul"]["InstanceCount"] == 1
    filtered = dev.get("/v1/internal/ui/services", params={"filter": 'Service.Service == "nat"'})
    assert [s["Name"] for s in filtered.json()] == ["nat"]


def test_gateway_services_nodes_lists_what_the_gateway_exposes(dev: httpx.Client) -> None:
    r = dev.get("/v1/internal/ui/gateway-services-nodes/ing")
    assert r.status_code == 200, r.text
    services = _by_name(r.json())
    assert set(services) == {"nat", "web"}
    assert services["web"]["GatewayConfig"] == {"Addresses": ["web.ingress.dc1.consul.:8080"]}
    assert services["web"]["InstanceCount"] == 2
    assert services["nat"]["GatewayConfig"] == {"Addresses": ["nat.ingress.dc1.consul.:9090"]}
    assert dev.get("/v1/internal/ui/gateway-services-nodes/none").json() == []
    missing = dev.get("/v1/internal/ui/gateway-services-nodes/")
    assert (missing.status_code, missing.text) == (400, "Missing gateway name")


def test_gateway_intentions_lists_intentions_to_linked_services(dev: httpx.Client) -> None:
    assert dev.get("/v1/internal/ui/gateway-intentions/ing").json() == []
    made = []
    for source, action in (("a", "allow"), ("b", "deny")):
        r = dev.post(
            "/v1/connect/intentions",
            json={"SourceName": source, "DestinationName": "web", "Action": action},
        )
        assert r.status_code == 200, r.text
        made.append(r.json()["ID"])
    r = dev.post(
        "/v1/connect/intentions",
        json={"SourceName": "c", "DestinationName": "unlinked", "Action": "allow"},
    )
    assert r.status_code == 200, r.text
    got = dev.get("/v1/internal/ui/gateway-intentions/ing")
    assert got.status_code == 200, got.text
    assert sorted(i["ID"] for i in got.json()) == sorted(made)
    assert {i["DestinationName"] for i in got.json()} == {"web"}
    missing = dev.get("/v1/internal/ui/gateway-intentions/")
    assert (missing.status_code, missing.text) == (400, "Missing gateway name")


def test_metrics_proxy_is_off_by_default(dev: httpx.Client) -> None:
    r = dev.get("/v1/internal/ui/metrics-proxy/api/v1/query")
    assert (r.status_code, r.text) == (404, "Metrics proxy is not enabled")
    args = [*dev_agent_args(), "-hcl=ui_config { enabled = false }"]
    with AgentProc(*args, http_port=free_port()).start() as agent, agent.client() as http:
        r = http.get("/v1/internal/ui/metrics-proxy/api/v1/query")
        assert (r.status_code, r.text) == (404, "UI is not enabled")


class _Backend(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.dumps(
            {
                "path": self.path,
                "token": self.headers.get("X-Consul-Token"),
                "extra": self.headers.get("X-Extra"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def test_metrics_proxy_forwards_allowed_paths() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/prom"
    hcl = (
        f'ui_config {{ metrics_proxy {{ base_url = "{base}" '
        'path_allowlist = ["/prom/api/v1/query"] '
        'add_headers = [{ name = "X-Extra", value = "yes" }] } }'
    )
    try:
        args = [*dev_agent_args(), f"-hcl={hcl}"]
        with AgentProc(*args, http_port=free_port()).start() as agent, agent.client() as http:
            r = http.get(
                "/v1/internal/ui/metrics-proxy/api/v1/query",
                params={"query": "up"},
                headers={"X-Consul-Token": "secret"},
            )
            assert r.status_code == 200, r.text
            assert r.json() == {
                "path": "/prom/api/v1/query?query=up",
                "token": None,
                "extra": "yes",
            }
            denied = http.get("/v1/internal/ui/metrics-proxy/api/v1/other")
            assert (denied.status_code, denied.text) == (403, "")
            # A header that is not UTF-8 (HTTP headers are bytes) passes through; it used to
            # fail the handler's decode and answer a 500.
            odd = http.get(
                "/v1/internal/ui/metrics-proxy/api/v1/query", headers={"X-Odd": b"caf\xe9"}
            )
            assert odd.status_code == 200, odd.text
    finally:
        server.shutdown()
        server.server_close()
