"""/v1/agent/*: local services and checks, checks that really run, anti-entropy to the
catalog, maintenance, health-by-service, persistence — with httpx and py-consul."""

from __future__ import annotations

import http.server as http_server
import threading
import time
from collections.abc import Callable
from pathlib import Path

import consul
import httpx
import pytest

from tests.e2e.agentproc import AgentProc, free_port


def eventually(probe: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def http(dev_agent: AgentProc):
    with dev_agent.client() as client:
        yield client


class _Handler(http_server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def web_server():
    handler = type("H", (_Handler,), {"status": 200})
    server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def test_register_service_shapes_and_catalog_sync(http: httpx.Client) -> None:
    body = {
        "Name": "web",
        "ID": "web-1",
        "Port": 8080,
        "Tags": ["v1"],
        "Meta": {"env": "prod"},
        "Check": {"TTL": "30s"},
    }
    assert http.put("/v1/agent/service/register", json=body).status_code == 200
    services = http.get("/v1/agent/services").json()
    svc = services["web-1"]
    assert svc["Service"] == "web" and svc["Port"] == 8080 and svc["Tags"] == ["v1"]
    assert svc["Meta"] == {"env": "prod"} and svc["Weights"] == {"Passing": 1, "Warning": 1}
    one = http.get("/v1/agent/service/web-1")
    assert one.json()["ContentHash"] == one.headers["x-consul-contenthash"]
    checks = http.get("/v1/agent/checks").json()
    assert checks["service:web-1"]["Status"] == "critical"
    assert checks["service:web-1"]["Type"] == "ttl"
    # synced to the catalog by the time the registration returned
    catalog = http.get("/v1/catalog/service/web").json()
    assert [c["ServiceID"] for c in catalog] == ["web-1"]


def test_ttl_pass_warn_fail_update(http: httpx.Client) -> None:
    http.put("/v1/agent/check/register", json={"Name": "mem", "TTL": "30s"})
    for path, status in (("pass", "passing"), ("warn", "warning"), ("fail", "critical")):
        assert (
            http.put(f"/v1/agent/check/{path}/mem", params={"note": f"note-{path}"}).status_code
            == 200
        )
        check = http.get("/v1/agent/checks").json()["mem"]
        assert (check["Status"], check["Output"]) == (status, f"note-{path}")
    http.put("/v1/agent/check/update/mem", json={"Status": "passing", "Output": "fine"})
    assert http.get("/v1/agent/checks").json()["mem"]["Output"] == "fine"
    eventually(
        lambda: any(
            c["CheckID"] == "mem" and c["Status"] == "passing"
            for c in http.get("/v1/health/state/passing").json()
        )
    )
    bad = http.put("/v1/agent/check/update/mem", json={"Status": "great"})
    assert (bad.status_code, bad.text) == (400, "Invalid check status: 'great'")
    assert http.put("/v1/agent/check/pass/nope").status_code == 404


def test_ttl_expires_to_critical(http: httpx.Client) -> None:
    http.put("/v1/agent/check/register", json={"Name": "short", "TTL": "1s", "Status": "passing"})
    eventually(lambda: http.get("/v1/agent/checks").json()["short"]["Status"] == "critical")
    assert "TTL expired" in http.get("/v1/agent/checks").json()["short"]["Output"]


def test_http_check_really_runs(http: httpx.Client, web_server) -> None:
    server, handler = web_server
    url = f"http://127.0.0.1:{server.server_address[1]}/health"
    http.put(
        "/v1/agent/service/register",
        json={
            "Name": "api",
            "Port": server.server_address[1],
            "Check": {"HTTP": url, "Interval": "1s", "Timeout": "2s"},
        },
    )
    eventually(lambda: http.get("/v1/agent/checks").json()["service:api"]["Status"] == "passing")
    assert "200 OK" in http.get("/v1/agent/checks").json()["service:api"]["Output"]
    handler.status = 503
    eventually(lambda: http.get("/v1/agent/checks").json()["service:api"]["Status"] == "critical")
    # the catalog follows: ?passing drops the instance
    eventually(lambda: http.get("/v1/health/service/api", params={"passing": ""}).json() == [])
    handler.status = 429
    eventually(lambda: http.get("/v1/agent/checks").json()["service:api"]["Status"] == "warning")


def test_tcp_check_really_runs(http: httpx.Client) -> None:
    closed = free_port()
    http.put(
        "/v1/agent/check/register",
        json={"Name": "tcp", "TCP": f"127.0.0.1:{closed}", "Interval": "1s"},
    )
    eventually(lambda: http.get("/v1/agent/checks").json()["tcp"]["Output"] != "")
    assert http.get("/v1/agent/checks").json()["tcp"]["Status"] == "critical"


def test_script_checks_need_enable_script_checks(http: httpx.Client) -> None:
    answer = http.put(
        "/v1/agent/check/register", json={"Name": "s", "Args": ["/bin/true"], "Interval": "5s"}
    )
    assert answer.status_code >= 400
    assert "enable_script_checks" in answer.text
    assert "s" not in http.get("/v1/agent/checks").json()


def test_script_check_with_flag(tmp_path: Path) -> None:
    agent = AgentProc(
        "-dev", "-enable-script-checks", "-dns-port=-1", f"-server-port={free_port()}"
    )
    with agent.start(), agent.client() as http:
        http.put(
            "/v1/agent/check/register",
            json={"Name": "s", "Args": ["/bin/sh", "-c", "echo hi; exit 1"], "Interval": "1s"},
        )
        eventually(lambda: http.get("/v1/agent/checks").json()["s"]["Status"] == "warning")
        assert "hi" in http.get("/v1/agent/checks").json()["s"]["Output"]


def test_bad_registrations(http: httpx.Client) -> None:
    cases = [
        ({"Port": 1}, 400, "Missing service name"),
        ({"Name": "x", "Address": "0.0.0.0"}, 400, "Invalid service address"),
        ({"Name": "x", "Check": {"HTTP": "http://127.0.0.1/"}}, 400, "Interval must be > 0"),
        ({"Name": "x", "Check": {"TTL": "10s", "Status": "bogus"}}, 400, "Status for checks must"),
    ]
    for body, status, text in cases:
        answer = http.put("/v1/agent/service/register", json=body)
        assert (answer.status_code, text in answer.text) == (status, True), answer.text
    assert http.put("/v1/agent/service/register", content=b"{bad").status_code == 400
    missing = http.put(
        "/v1/agent/check/register", json={"Name": "c", "ServiceID": "ghost", "TTL": "5s"}
    )
    assert missing.status_code == 404
    assert http.put("/v1/agent/check/register", json={"TTL": "5s"}).text == "Missing check name"
    assert http.get("/v1/agent/services").json() == {}


def test_deregister_and_maintenance(http: httpx.Client) -> None:
    http.put(
        "/v1/agent/service/register",
        json={"Name": "m", "Check": {"TTL": "30s", "Status": "passing"}},
    )
    assert (
        http.put(
            "/v1/agent/service/maintenance/m", params={"enable": "true", "reason": "upgrade"}
        ).status_code
        == 200
    )
    maint = http.get("/v1/agent/checks").json()["_service_maintenance:m"]
    assert (maint["Status"], maint["Notes"]) == ("critical", "upgrade")
    health = http.get("/v1/agent/health/service/id/m")
    assert health.status_code == 503 and health.json()["AggregatedStatus"] == "maintenance"
    http.put("/v1/agent/service/maintenance/m", params={"enable": "false"})
    assert http.get("/v1/agent/health/service/id/m").status_code == 200
    assert http.get("/v1/agent/health/service/name/m", params={"format": "text"}).text == "passing"
    assert http.put("/v1/agent/service/maintenance/m").text == "Missing value for enable"
    assert http.put("/v1/agent/maintenance", params={"enable": "maybe"}).status_code == 400
    http.put("/v1/agent/maintenance", params={"enable": "true"})
    assert "_node_maintenance" in http.get("/v1/agent/checks").json()
    http.put("/v1/agent/maintenance", params={"enable": "false"})
    assert http.put("/v1/agent/service/deregister/m").status_code == 200
    assert http.put("/v1/agent/service/deregister/m").status_code == 404
    eventually(lambda: http.get("/v1/catalog/service/m").json() == [])


def test_self_members_and_metrics(http: httpx.Client) -> None:
    me = http.get("/v1/agent/self").json()
    assert me["Config"]["Version"] == "1.22.0"
    assert set(me) >= {"Config", "DebugConfig", "Coord", "Member", "Stats", "Meta"}
    [member] = http.get("/v1/agent/members").json()
    assert member["Status"] == 1 and member["Tags"]["role"] == "consul"
    metrics = http.get("/v1/agent/metrics").json()
    assert {"Timestamp", "Gauges", "Points", "Counters", "Samples"} <= set(metrics)
    text = http.get("/v1/agent/metrics", params={"format": "prometheus"}).text
    assert "consul_runtime_alloc_bytes" in text


def test_py_consul_agent_api(dev_agent: AgentProc) -> None:
    c = consul.Consul(host=dev_agent.ip, port=dev_agent.http_port)
    assert (
        c.agent.service.register(
            "pc-web", service_id="pc-1", port=81, tags=["a"], check=consul.Check.ttl("15s")
        )
        is True
    )
    assert "pc-1" in c.agent.services()
    assert c.agent.check.ttl_pass("service:pc-1", notes="ok") is True
    assert c.agent.checks()["service:pc-1"]["Status"] == "passing"
    _, nodes = c.health.service("pc-web", passing=True)
    assert [n["Service"]["ID"] for n in nodes] == ["pc-1"]
    assert c.agent.self()["Config"]["NodeName"]
    assert c.agent.service.deregister("pc-1") is True
    assert c.agent.services() == {}


def test_services_and_checks_survive_restart(tmp_path: Path) -> None:
    args = [
        "-server",
        "-bootstrap-expect=1",
        f"-data-dir={tmp_path}",
        "-node=p",
        "-bind=127.0.0.1",
        "-client=127.0.0.1",
        "-dns-port=-1",
        f"-server-port={free_port()}",
        f"-serf-lan-port={free_port()}",
    ]
    port = free_port()
    with AgentProc(*args, http_port=port).start() as agent, agent.client() as http:
        http.put(
            "/v1/agent/service/register", json={"Name": "keep", "Port": 7, "Check": {"TTL": "60s"}}
        )
        http.put("/v1/agent/check/register", json={"Name": "node-ttl", "TTL": "60s"})
        http.put("/v1/agent/check/pass/node-ttl", params={"note": "was passing"})
    with AgentProc(*args, http_port=port).start() as agent, agent.client() as http:
        assert "keep" in http.get("/v1/agent/services").json()
        checks = http.get("/v1/agent/checks").json()
        assert {"service:keep", "node-ttl"} <= set(checks)
        assert checks["node-ttl"]["Status"] == "passing"


def test_autopilot_configuration_set_with_cas(http: httpx.Client) -> None:
    # The leader stores the configuration when it takes office (Consul's
    # getOrCreateAutopilotConfig), so it carries a real Raft index once written.
    url = "/v1/operator/autopilot/configuration"
    eventually(lambda: http.get(url).json()["ModifyIndex"] > 0)
    before = http.get(url).json()
    assert before["CleanupDeadServers"] is True
    stale = http.put("/v1/operator/autopilot/configuration", params={"cas": "99"},
                     json={"CleanupDeadServers": False})  # fmt: skip
    assert stale.json() is False
    assert http.put("/v1/operator/autopilot/configuration",
                    json={"CleanupDeadServers": False, "MaxTrailingLogs": 300}).json() is True  # fmt: skip
    after = http.get("/v1/operator/autopilot/configuration").json()
    assert (after["CleanupDeadServers"], after["MaxTrailingLogs"]) == (False, 300)
    cas = str(after["ModifyIndex"])
    assert http.put("/v1/operator/autopilot/configuration", params={"cas": cas},
                    json={"MinQuorum": 3}).json() is True  # fmt: skip
    bad = http.put("/v1/operator/autopilot/configuration", json={"MinQuorum": "three"})
    assert bad.status_code == 400
