"""Central service config merged into rendered proxy registrations (agent/connect/central_config.py),
case by case as Consul's resolve and MergeServiceConfig tests put them."""

from __future__ import annotations

import asyncio

from agent import render
from agent.connect.central_config import merge, merged_proxy, resolve
from agent.mesh_entries import RemoteServiceDefaults
from agent.state.structs import ConnectProxyConfig, MeshGatewayConfig, Upstream


def _entries(*found: dict) -> dict:
    return {(e["Kind"], e["Name"]): e for e in found}


def _proxy_defaults(**fields) -> dict:
    return {"Kind": "proxy-defaults", "Name": "global", **fields}


def _service_defaults(name: str, **fields) -> dict:
    return {"Kind": "service-defaults", "Name": name, **fields}


def _sidecar(**fields) -> dict:
    return render.proxy(ConnectProxyConfig(DestinationServiceName="web", **fields))


def test_proxy_defaults_config_is_copied_in():
    entries = _entries(_proxy_defaults(Config={"protocol": "http", "foo": "bar"}))
    out = merged_proxy(entries, "connect-proxy", "web-sidecar-proxy", _sidecar())
    assert out["Config"] == {"protocol": "http", "foo": "bar"}


def test_service_defaults_protocol_wins_over_proxy_defaults():
    entries = _entries(
        _proxy_defaults(Config={"protocol": "http", "foo": "bar"}),
        _service_defaults("web", Protocol="grpc"),
    )
    out = merged_proxy(entries, "connect-proxy", "web-sidecar-proxy", _sidecar())
    assert out["Config"] == {"protocol": "grpc", "foo": "bar"}


def test_local_config_keys_are_kept():
    entries = _entries(
        _proxy_defaults(Config={"protocol": "http", "foo": "bar", "nested": {"a": 1, "b": 2}}),
        _service_defaults("web", Protocol="grpc", MaxInboundConnections=5),
    )
    proxy = _sidecar(Config={"protocol": "tcp", "nested": {"a": 9}})
    out = merged_proxy(entries, "connect-proxy", "web-sidecar-proxy", proxy)
    assert out["Config"] == {
        "protocol": "tcp",
        "nested": {"a": 9, "b": 2},
        "foo": "bar",
        "max_inbound_connections": 5,
    }


def test_typical_service_and_no_entries_leave_the_proxy_alone():
    entries = _entries(_proxy_defaults(Config={"protocol": "http"}))
    proxy = render.proxy(ConnectProxyConfig())
    assert merged_proxy(entries, "", "web", proxy) is proxy
    assert merged_proxy({}, "connect-proxy", "web-sidecar-proxy", _sidecar()) == _sidecar()


def test_catalog_shape_is_kept():
    entries = _entries(
        _proxy_defaults(TransparentProxy={"OutboundListenerPort": 15001}, Mode="transparent")
    )
    out = merged_proxy(entries, "connect-proxy", "web-sidecar-proxy", _sidecar())
    assert list(out) == [
        "TransparentProxy",
        "DestinationServiceName",
        "Mode",
        "MeshGateway",
        "Expose",
    ]
    assert out["Mode"] == "transparent"
    assert out["TransparentProxy"] == {"OutboundListenerPort": 15001}


def test_agent_shape_omits_empty_mode_and_extensions():
    entries = _entries(
        _proxy_defaults(Config={"a": 1}, EnvoyExtensions=[{"Name": "builtin/lua"}]),
    )
    proxy = render.agent_proxy(ConnectProxyConfig(DestinationServiceName="web"))
    out = merged_proxy(entries, "connect-proxy", "web-sidecar-proxy", proxy, agent=True)
    assert out == {
        "DestinationServiceName": "web",
        "Config": {"a": 1},
        "MeshGateway": {},
        "Expose": {},
    }
    catalog = merged_proxy(entries, "connect-proxy", "x", _sidecar())
    assert catalog["EnvoyExtensions"] == [
        {
            "Name": "builtin/lua",
            "Required": False,
            "Arguments": None,
            "ConsulVersion": "",
            "EnvoyVersion": "",
        }
    ]


def test_tproxy_fields_filled_only_when_unset():
    entries = _entries(
        _proxy_defaults(Mode="transparent"),
        _service_defaults(
            "web", TransparentProxy={"OutboundListenerPort": 808, "DialedDirectly": True}
        ),
    )
    proxy = _sidecar(Mode="direct")
    proxy["TransparentProxy"] = {"OutboundListenerPort": 1234}
    out = merged_proxy(entries, "connect-proxy", "web-sidecar-proxy", proxy)
    assert out["Mode"] == "direct"
    assert out["TransparentProxy"] == {"OutboundListenerPort": 1234, "DialedDirectly": True}


def test_mesh_gateway_precedence():
    entries = _entries(
        _proxy_defaults(MeshGateway={"Mode": "remote"}),
        _service_defaults("web", MeshGateway={"Mode": "local"}),
    )
    assert merged_proxy(entries, "connect-proxy", "x", _sidecar())["MeshGateway"] == {
        "Mode": "local"
    }
    own = _sidecar(MeshGateway=MeshGatewayConfig(Mode="none"))
    assert merged_proxy(entries, "connect-proxy", "x", own)["MeshGateway"] == {"Mode": "none"}
    gateway = render.proxy(ConnectProxyConfig())
    entries = _entries(_proxy_defaults(MeshGateway={"Mode": "remote"}))
    out = merged_proxy(entries, "terminating-gateway", "tgw", gateway)
    assert out["MeshGateway"] == {"Mode": "remote"}


def _with_upstreams(*upstreams: Upstream, **fields) -> dict:
    return _sidecar(Upstreams=list(upstreams), **fields)


def test_upstream_protocol_precedence_and_overrides():
    entries = _entries(
        _proxy_defaults(Config={"protocol": "http"}),
        _service_defaults("db", Protocol="grpc"),
        _service_defaults(
            "web",
            UpstreamConfig={
                "Defaults": {"ConnectTimeoutMs": 2500, "Limits": {"MaxConnections": 10}},
                "Overrides": [
                    {"Name": "cache", "Protocol": "http2", "PassiveHealthCheck": {"MaxFailures": 3}}
                ],
            },
        ),
    )
    proxy = _with_upstreams(
        Upstream(DestinationType="service", DestinationName="db", LocalBindPort=9000),
        Upstream(DestinationType="service", DestinationName="cache", LocalBindPort=9001),
        Upstream(
            DestinationType="service",
            DestinationName="api",
            LocalBindPort=9002,
            Config={"connect_timeout_ms": 100},
        ),
        Upstream(DestinationType="prepared_query", DestinationName="q", LocalBindPort=9003),
    )
    db, cache, api, query = merged_proxy(entries, "connect-proxy", "x", proxy)["Upstreams"]
    assert db["Config"] == {
        "protocol": "grpc",
        "connect_timeout_ms": 2500,
        "limits": {"MaxConnections": 10},
    }
    assert cache["Config"] == {
        "protocol": "http2",
        "connect_timeout_ms": 2500,
        "limits": {"MaxConnections": 10},
        "passive_health_check": {"MaxFailures": 3},
    }
    assert api["Config"] == {
        "connect_timeout_ms": 100,
        "protocol": "http",
        "limits": {"MaxConnections": 10},
    }
    assert "Config" not in query
    assert list(db) == [
        "DestinationType",
        "DestinationName",
        "Datacenter",
        "LocalBindPort",
        "Config",
        "MeshGateway",
    ]


def test_upstream_mesh_gateway_flattening():
    entries = _entries(
        _proxy_defaults(MeshGateway={"Mode": "remote"}),
        _service_defaults(
            "web", UpstreamConfig={"Overrides": [{"Name": "db", "MeshGateway": {"Mode": "none"}}]}
        ),
    )
    proxy = _with_upstreams(
        Upstream(DestinationType="service", DestinationName="db", LocalBindPort=1),
        Upstream(DestinationType="service", DestinationName="api", LocalBindPort=2),
        Upstream(
            DestinationType="service",
            DestinationName="own",
            LocalBindPort=3,
            MeshGateway=MeshGatewayConfig(Mode="local"),
        ),
    )
    db, api, own = merged_proxy(entries, "connect-proxy", "x", proxy)["Upstreams"]
    assert db["MeshGateway"] == {"Mode": "none"} and "Config" not in db
    assert api["MeshGateway"] == {"Mode": "remote"}
    assert own["MeshGateway"] == {"Mode": "local"}
    # the registration's own mode beats proxy-defaults, an override beats it
    proxy["MeshGateway"] = {"Mode": "local"}
    db, api, _ = merged_proxy(entries, "connect-proxy", "x", proxy)["Upstreams"]
    assert api["MeshGateway"] == {"Mode": "local"} and db["MeshGateway"] == {"Mode": "none"}


def test_peer_upstream_keeps_its_protocol():
    entries = _entries(
        _proxy_defaults(Config={"protocol": "http"}),
        _service_defaults("web", UpstreamConfig={"Defaults": {"ConnectTimeoutMs": 7}}),
    )
    proxy = _with_upstreams(
        Upstream(
            DestinationType="service", DestinationName="db", DestinationPeer="p", LocalBindPort=1
        )
    )
    (db,) = merged_proxy(entries, "connect-proxy", "x", proxy)["Upstreams"]
    assert db["Config"] == {"connect_timeout_ms": 7}


def test_transparent_mode_appends_centrally_configured_upstreams():
    entries = _entries(
        _service_defaults(
            "web",
            Mode="transparent",
            UpstreamConfig={
                "Defaults": {"ConnectTimeoutMs": 3000},
                "Overrides": [{"Name": "db", "Protocol": "grpc"}],
            },
        )
    )
    out = merged_proxy(entries, "connect-proxy", "x", _sidecar())
    assert out["Mode"] == "transparent"
    assert out["Upstreams"] == [
        {
            "DestinationType": "",
            "DestinationNamespace": "default",
            "DestinationPartition": "default",
            "DestinationName": "*",
            "Datacenter": "",
            "Config": {"connect_timeout_ms": 3000},
            "MeshGateway": {},
            "CentrallyConfigured": True,
        },
        {
            "DestinationType": "",
            "DestinationNamespace": "default",
            "DestinationPartition": "default",
            "DestinationName": "db",
            "Datacenter": "",
            "Config": {"protocol": "grpc", "connect_timeout_ms": 3000},
            "MeshGateway": {},
            "CentrallyConfigured": True,
        },
    ]


def test_resolve_without_upstreams_returns_no_upstream_configs():
    entries = _entries(
        _proxy_defaults(Config={"protocol": "http"}),
        _service_defaults("web", Meta={"a": "b"}, Expose={"Checks": True}),
    )
    resolved = resolve(entries, "connect-proxy", _sidecar(), "web")
    assert "UpstreamConfigs" not in resolved
    assert resolved["Meta"] == {"a": "b"}
    out = merge(_sidecar(), resolved)
    assert out["Expose"] == {"Checks": True}


class _Reader:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.fail = False

    async def read_remote(self, path: str, headers=None, token=None):
        self.paths.append(path)
        if self.fail:
            raise OSError("no server")
        kind = path.rsplit("/", 1)[1]
        return [{"Kind": kind, "Name": "global" if kind == "proxy-defaults" else "web"}]


def test_client_cache_reads_both_kinds_and_keeps_the_last_answer():
    now = [0.0]
    reader = _Reader()
    cache = RemoteServiceDefaults(reader, lambda: now[0], max_age=1.0)

    async def scenario() -> None:
        first = await cache.entries()
        assert set(first) == {("proxy-defaults", "global"), ("service-defaults", "web")}
        await cache.entries()
        assert reader.paths == ["/v1/config/proxy-defaults", "/v1/config/service-defaults"]
        now[0] = 5.0
        reader.fail = True
        assert await cache.entries() == first

    asyncio.run(scenario())
