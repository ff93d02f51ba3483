"""Central service config on a real -dev agent: proxy-defaults and service-defaults written
through /v1/config show up merged into a sidecar's Proxy, in the agent's own view, in the
catalog it syncs, and in the catalog and health views with ?merge-central-config."""

from __future__ import annotations

from tests.e2e.agentproc import AgentProc

MERGED = {"protocol": "grpc", "foo": "bar"}


def test_sidecar_shows_central_config(dev_agent: AgentProc) -> None:
    with dev_agent.client() as http:
        for entry in (
            {
                "Kind": "proxy-defaults",
                "Name": "global",
                "Config": {"protocol": "http", "foo": "bar"},
            },
            {"Kind": "service-defaults", "Name": "web", "Protocol": "grpc"},
        ):
            assert http.put("/v1/config", json=entry).json() is True
        web = {"Name": "web", "Port": 8080, "Connect": {"SidecarService": {}}}
        http.put("/v1/agent/service/register", json=web).raise_for_status()

        own = http.get("/v1/agent/service/web-sidecar-proxy").json()
        assert own["Proxy"]["Config"] == MERGED
        assert own["Proxy"]["DestinationServiceName"] == "web"
        listed = http.get("/v1/agent/services").json()
        assert listed["web-sidecar-proxy"]["Proxy"]["Config"] == MERGED
        assert "Proxy" not in listed["web"]

        # The catalog holds the merged registration (Consul's service manager registers it
        # so, and anti-entropy syncs it); ?merge-central-config merges again, to the same.
        plain = http.get("/v1/catalog/service/web-sidecar-proxy").json()
        assert [s["ServiceProxy"].get("Config") for s in plain] == [MERGED]
        merged = http.get("/v1/catalog/service/web-sidecar-proxy?merge-central-config").json()
        assert [s["ServiceProxy"]["Config"] for s in merged] == [MERGED]
        health = http.get("/v1/health/connect/web?merge-central-config").json()
        assert [i["Service"]["Proxy"]["Config"] for i in health] == [MERGED]

        # a later change to the entries shows without re-registering
        entry = {"Kind": "service-defaults", "Name": "web", "Protocol": "http2"}
        assert http.put("/v1/config", json=entry).json() is True
        own = http.get("/v1/agent/service/web-sidecar-proxy").json()
        assert own["Proxy"]["Config"] == {"protocol": "http2", "foo": "bar"}
