"""Connect proxies and gateways as registrations: their fields decoded in any casing Consul
reads, Consul's validation messages, the two JSON shapes they render in, SidecarService
expansion (defaults, port assignment, default checks), alias check health and the sidecar port
range of the agent's config."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from agent import render
from agent.check_alias import AliasedCheck, alias_status
from agent.config import ConfigError, load_config
from agent.proxy_config import decode_connect_fields, multierror, service_errors
from agent.services import VALIDATE_AGENT, ServiceError, parse_service
from agent.sidecars import allocate_port, default_checks, sidecar_registration
from agent.state.structs import (
    ConnectProxyConfig,
    Service,
    ServiceConnect,
    TransparentProxyConfig,
    Upstream,
)


def parse(body: dict[str, Any], **kw: Any):
    return parse_service(body, "dc1", enable_script_checks=False, **kw)


def refusal(body: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(ServiceError) as err:
        parse(body, **kw)
    return err.value.message


# ---------------------------------------------------------------------- decoding


def test_proxy_fields_read_in_camel_and_snake_case() -> None:
    body = {
        "kind": "connect-proxy",
        "name": "web-proxy",
        "port": 21000,
        "proxy": {
            "destination_service_name": "web",
            "local_service_port": 8080,
            "mesh_gateway": {"mode": "local"},
            "transparent_proxy": {"outbound_listener_port": 15001},
            "Config": {"protocol": "http", "nested": {"Keep": "Case"}},
            "upstreams": [{"destination_name": "db", "local_bind_port": 9191}],
            "expose": {"paths": [{"path": "/m", "listener_port": 21500, "local_path_port": 80}]},
        },
        "locality": {"region": "us", "zone": "a"},
    }
    defn = parse(body)
    proxy = defn.service["Proxy"]
    assert proxy["DestinationServiceName"] == "web"
    assert proxy["LocalServicePort"] == 8080
    assert proxy["MeshGateway"] == {"Mode": "local"}
    assert proxy["TransparentProxy"] == {"OutboundListenerPort": 15001}
    assert proxy["Config"] == {"protocol": "http", "nested": {"Keep": "Case"}}
    # An agent registration's upstreams default to the service type.
    assert proxy["Upstreams"] == [
        {
            "DestinationType": "service",
            "DestinationName": "db",
            "LocalBindPort": 9191,
            "MeshGateway": {},
        }
    ]
    assert proxy["Expose"] == {
        "Paths": [{"ListenerPort": 21500, "Path": "/m", "LocalPathPort": 80}]
    }
    assert defn.service["Locality"] == {"Region": "us", "Zone": "a"}
    assert defn.record["Locality"] == {"Region": "us", "Zone": "a"}


def test_wrong_kinds_are_refused_in_gos_words() -> None:
    message = refusal({"Name": "p", "Proxy": {"LocalServicePort": "80"}})
    assert message == (
        "Request decode failed: json: cannot unmarshal string into Go struct field "
        "ConnectProxyConfig.Proxy.LocalServicePort of type int"
    )


def test_catalog_keeps_an_untyped_upstream_and_the_sidecar_sugar() -> None:
    raw = {
        "Kind": "connect-proxy",
        "Proxy": {"DestinationServiceName": "web", "Upstreams": [{"DestinationName": "db"}]},
        "Connect": {"sidecar_service": {"port": 1}},
    }
    fields = decode_connect_fields(raw, struct="NodeService", path="Service")
    assert fields.proxy.Upstreams[0].DestinationType == ""
    assert fields.connect.SidecarService == {"Port": 1}


def test_plain_service_shows_no_proxy_to_the_agent_api_but_keeps_it_for_the_catalog() -> None:
    defn = parse({"Name": "web", "Port": 80, "Proxy": {"Config": {"a": 1}}})
    assert "Proxy" not in defn.service and "Connect" not in defn.service
    assert defn.record["Proxy"]["Config"] == {"a": 1}
    native = parse({"Name": "db", "Port": 5432, "Connect": {"Native": True}})
    assert native.service["Connect"] == {"Native": True}
    assert native.record["Connect"] == {"Native": True}


# ---------------------------------------------------------------------- validation


def test_a_proxy_without_destination_or_port_lists_every_error() -> None:
    message = refusal(
        {
            "Name": "p",
            "Kind": "connect-proxy",
            "Connect": {"Native": True},
            "Proxy": {
                "Upstreams": [
                    {"DestinationName": "db", "LocalBindPort": 1},
                    {"DestinationName": "db", "LocalBindPort": 2},
                    {"DestinationName": "cache", "LocalBindPort": 1},
                    {"DestinationName": "*", "LocalBindPort": 3},
                    {"DestinationType": "dns", "DestinationName": "x", "LocalBindPort": 4},
                    {"DestinationName": "y"},
                ]
            },
        }
    )
    assert message == (
        "Validation failed: 9 errors occurred:\n"
        "\t* Port or SocketPath must be set for a connect-proxy\n"
        "\t* Proxy.DestinationServiceName must be non-empty for Connect proxy services\n"
        "\t* A Proxy cannot also be Connect Native, only typical services\n"
        '\t* upstreams cannot contain duplicates of [type="service", name="db", '
        'partition="", namespace="", peer="", datacenter=""]\n'
        "\t* upstreams cannot contain duplicates by local bind address and port or unix path; "
        '"127.0.0.1:1" is specified twice\n'
        "\t* upstream destination name cannot be a wildcard\n"
        '\t* unknown upstream destination type: "dns"\n'
        "\t* upstream local bind port or local socket path must be defined and nonzero\n"
        "\t* Port or SocketPath must be set for a Connect native service.\n\n"
    )


def test_expose_paths_and_opaque_config() -> None:
    message = refusal(
        {
            "Name": "p",
            "Kind": "connect-proxy",
            "Port": 1,
            "Proxy": {
                "DestinationServiceName": "*",
                "Config": {"envoy_hcp_metrics_bind_socket_dir": "d" * 71},
                "Expose": {
                    "Paths": [
                        {"Path": "", "ListenerPort": 0},
                        {"Path": "/a", "ListenerPort": 0, "Protocol": "GRPC"},
                    ]
                },
            },
        }
    )
    assert message.splitlines()[1:] == [
        "\t* Proxy.DestinationServiceName must not be a wildcard for Connect proxy services",
        "\t* Proxy.Config: envoy_hcp_metrics_bind_socket_dir length 71 exceeds max 70",
        "\t* expose.paths: empty path exposed",
        "\t* expose.paths: invalid listener port: 0",
        "\t* expose.paths: duplicate listener ports exposed",
        "\t* expose.paths: invalid listener port: 0",
        "\t* protocol 'grpc' not supported for path: /a, must be in: [http http2]",
        "",
    ]


@pytest.mark.parametrize("kind", ["mesh-gateway", "terminating-gateway"])
def test_gateways_need_a_port_and_no_proxy_target(kind: str) -> None:
    message = refusal(
        {
            "Name": "gw",
            "Kind": kind,
            "Proxy": {"DestinationServiceName": "x", "LocalServicePort": 1},
            "Connect": {"SidecarService": {}},
        }
    )
    assert message == (
        "Validation failed: 4 errors occurred:\n"
        f"\t* Port must be non-zero for a {kind}\n"
        f"\t* A {kind} cannot have a sidecar service defined\n"
        f"\t* The Proxy.DestinationServiceName configuration is invalid for a {kind}\n"
        f"\t* The Proxy.LocalServicePort configuration is invalid for a {kind}\n\n"
    )


@pytest.mark.parametrize("kind", ["ingress-gateway", "api-gateway"])
def test_ingress_and_api_gateways_need_no_port(kind: str) -> None:
    defn = parse({"Name": "gw", "Kind": kind})
    assert defn.service["Kind"] == kind
    assert defn.service["Proxy"] == {"MeshGateway": {}, "Expose": {}}


def test_nested_sidecar_rules() -> None:
    message = refusal(
        {
            "Name": "web",
            "Connect": {"SidecarService": {"ID": "x", "Connect": {"SidecarService": {}}}},
        }
    )
    assert message == (
        "Validation failed: 2 errors occurred:\n"
        "\t* A SidecarService cannot specify an ID as this is managed by the agent\n"
        "\t* A SidecarService cannot have a nested SidecarService\n\n"
    )


def test_sidecar_checks_are_judged_with_the_service() -> None:
    message = refusal({"Name": "web", "Connect": {"SidecarService": {"Check": {"TCP": "x:1"}}}})
    assert message.startswith("Invalid check in sidecar_service: ")


def test_agent_rules_skip_the_port_a_sidecar_gets_later() -> None:
    body = {"Name": "s", "Kind": "connect-proxy", "Proxy": {"DestinationServiceName": "web"}}
    assert parse(body, validation=VALIDATE_AGENT).service["Port"] == 0
    assert refusal({**body, "Proxy": {}}, validation=VALIDATE_AGENT) == (
        "Failed Validation: 1 error occurred:\n"
        "\t* Proxy.DestinationServiceName must be non-empty for Connect proxy services\n\n"
    )


def test_config_files_must_name_known_modes() -> None:
    body = {"Name": "web", "Proxy": {"MeshGateway": {"Mode": "far"}, "Mode": "odd"}}
    assert refusal(body, remote=False) == 'Invalid Mesh Gateway Mode: "far"'
    assert parse(body).record["Proxy"]["Mode"] == "odd"  # the HTTP API keeps any string


def test_catalog_rules_and_multierror_format() -> None:
    fields = decode_connect_fields({"Kind": "connect-proxy"})
    errors = service_errors("connect-proxy", 0, "/tmp/s", fields, catalog=True)
    assert errors == ["Proxy.DestinationServiceName must be non-empty for Connect proxy services"]
    assert multierror(["a"]) == "1 error occurred:\n\t* a\n\n"
    assert multierror(["a", "b"]) == "2 errors occurred:\n\t* a\n\t* b\n\n"


def test_ipv6_bind_addresses_are_bracketed() -> None:
    ups = [
        {"DestinationName": "a", "LocalBindAddress": "::1", "LocalBindPort": 1},
        {"DestinationName": "b", "LocalBindAddress": "::1", "LocalBindPort": 1},
    ]
    fields = decode_connect_fields({"Proxy": {"DestinationServiceName": "w", "Upstreams": ups}})
    [error] = service_errors("connect-proxy", 1, "", fields, catalog=False)
    assert error.endswith('"[::1]:1" is specified twice')


# ---------------------------------------------------------------------- rendering


def test_the_catalog_and_the_agent_api_print_a_proxy_differently() -> None:
    proxy = ConnectProxyConfig(
        DestinationServiceName="web",
        Upstreams=[Upstream(DestinationName="db", LocalBindPort=9191)],
        TransparentProxy=TransparentProxyConfig(DialedDirectly=True),
    )
    catalog = render.proxy(proxy)
    assert list(catalog) == [
        "TransparentProxy",
        "DestinationServiceName",
        "Mode",
        "Upstreams",
        "MeshGateway",
        "Expose",
    ]
    assert catalog["Upstreams"] == [
        {"DestinationType": "", "DestinationName": "db", "Datacenter": "", "LocalBindPort": 9191,
         "MeshGateway": {}}
    ]  # fmt: skip
    agent = render.agent_proxy(proxy)
    assert list(agent) == [
        "DestinationServiceName",
        "TransparentProxy",
        "Upstreams",
        "MeshGateway",
        "Expose",
    ]
    assert agent["Upstreams"] == [
        {"DestinationName": "db", "LocalBindPort": 9191, "MeshGateway": {}}
    ]


def test_rendered_proxy_converts_back_to_the_same_record() -> None:
    # A client agent compares the catalog's JSON with its own records (anti-entropy).
    defn = parse(
        {
            "Name": "gw",
            "Kind": "terminating-gateway",
            "Port": 8443,
            "Proxy": {
                "Config": {"a": [1, {"b": None}]},
                "AccessLogs": {"Enabled": True},
                "EnvoyExtensions": [{"Name": "builtin/lua", "Arguments": {"Script": "x"}}],
            },
        }
    )
    record = msgspec.convert(defn.record["Proxy"], ConnectProxyConfig)
    assert msgspec.convert(render.proxy(record), ConnectProxyConfig) == record


# ---------------------------------------------------------------------- sidecar expansion


def test_sidecar_defaults_come_from_the_service() -> None:
    parent = parse(
        {
            "ID": "web1",
            "Name": "web",
            "Port": 8080,
            "Address": "10.0.0.5",
            "Tags": ["v1"],
            "Meta": {"team": "a"},
            "Locality": {"Region": "r"},
            "Connect": {"SidecarService": {}},
        }
    )
    assert parent.sidecar == {}
    assert "SidecarService" not in parent.raw["Connect"]
    assert parent.record["Connect"] == {}
    body = sidecar_registration(parent)
    assert body == {
        "ID": "web1-sidecar-proxy",
        "Meta": {"team": "a"},
        "Tags": ["v1"],
        "Locality": {"Region": "r"},
        "Kind": "connect-proxy",
        "Name": "web-sidecar-proxy",
        "Address": "10.0.0.5",
        "Proxy": {
            "DestinationServiceName": "web",
            "DestinationServiceID": "web1",
            "LocalServiceAddress": "127.0.0.1",
            "LocalServicePort": 8080,
        },
    }


def test_sidecar_own_settings_win_and_a_socket_is_forwarded() -> None:
    parent = parse(
        {
            "Name": "web",
            "SocketPath": "/run/web.sock",
            "Tags": ["v1"],
            "Connect": {
                "SidecarService": {
                    "Name": "edge",
                    "Tags": ["mine"],
                    "Meta": {"k": "v"},
                    "Port": 7000,
                    "Proxy": {"Upstreams": [{"DestinationName": "db", "LocalBindPort": 1}]},
                }
            },
        }
    )
    body = sidecar_registration(parent)
    assert (body["Name"], body["Tags"], body["Meta"], body["Port"]) == (
        "edge",
        ["mine"],
        {"k": "v"},
        7000,
    )
    assert body["Proxy"]["LocalServiceSocketPath"] == "/run/web.sock"
    assert "LocalServicePort" not in body["Proxy"]


def test_sidecar_meta_is_checked() -> None:
    parent = parse({"Name": "web", "Connect": {"SidecarService": {"Meta": {"consul-x": "1"}}}})
    with pytest.raises(ServiceError) as err:
        sidecar_registration(parent)
    assert err.value.message == (
        "Invalid SidecarService: Couldn't load metadata pair ('consul-x', '1'): "
        "Key prefix 'consul-' is reserved for internal use"
    )


def test_ports_are_the_lowest_free_and_kept_on_re_registration() -> None:
    used = [("a", 21000), ("b", 21002), ("c", 80)]
    assert allocate_port("x-sidecar-proxy", used, 21000, 21255) == 21001
    assert allocate_port("b", used, 21000, 21255) == 21002
    with pytest.raises(ServiceError) as full:
        allocate_port("x", [("a", 21000)], 21000, 21000)
    assert (full.value.status, full.value.message) == (
        500,
        "no port provided for sidecar_service and none left in the configured range [21000, 21000]",
    )
    with pytest.raises(ServiceError) as off:
        allocate_port("x", [], -1, -1)
    assert off.value.message == (
        "no port provided for sidecar_service and auto-assignment disabled in config"
    )


def test_default_checks_probe_the_listener_and_alias_the_service() -> None:
    body = {"ID": "web-sidecar-proxy", "Port": 21000, "Proxy": {"LocalServiceAddress": "::1"}}
    assert default_checks(body) == [
        {"Name": "Connect Sidecar Listening", "TCP": "[::1]:21000", "Interval": "10s"},
        {"Name": "Connect Sidecar Aliasing web", "AliasService": "web"},
    ]
    assert default_checks({**body, "Address": "10.0.0.5"})[0]["TCP"] == "10.0.0.5:21000"


# ---------------------------------------------------------------------- alias checks


def test_alias_health_follows_the_aliased_service() -> None:
    def status(*checks: AliasedCheck, exists: bool = True) -> tuple[str, str]:
        return alias_status("", "web", checks, lambda: exists)

    assert status() == ("passing", "No checks found.")
    assert status(exists=False) == ("critical", "Service web could not be found on node ")
    ok = AliasedCheck("n1", "web", "up", "passing")
    warn = AliasedCheck("n1", "web", "slow", "warning", "1s")
    down = AliasedCheck("n1", "", "node", "critical", "gone")
    other = AliasedCheck("n1", "db", "db", "critical")
    assert status(ok, other) == ("passing", "All checks passing.")
    assert status(warn, ok) == ("warning", 'Aliased check "slow" failing: 1s')
    assert status(ok, warn, down) == ("critical", 'Aliased check "node" failing: gone')
    # A remote alias sees only the named node's checks.
    assert alias_status("n2", "web", [down], lambda: False) == (
        "critical",
        "Service web could not be found on node n2",
    )


# ---------------------------------------------------------------------- config


def test_sidecar_port_range_config() -> None:
    ports = load_config(["-dev"], environ={}).ports
    assert (ports.sidecar_min_port, ports.sidecar_max_port) == (21000, 21255)
    off = load_config(
        ["-dev", "-hcl", "ports { sidecar_min_port = 0\nsidecar_max_port = 0 }"], environ={}
    ).ports
    assert (off.sidecar_min_port, off.sidecar_max_port) == (-1, -1)
    with pytest.raises(ConfigError) as err:
        load_config(["-dev", "-hcl", "ports { sidecar_min_port = 30000 }"], environ={})
    assert "sidecar_min_port must be less than sidecar_max_port" in str(err.value)


# ---------------------------------------------------------------------- store records


def test_a_service_stored_before_connect_settings_existed_loads_with_zero_values() -> None:
    old = {"ID": "web", "Service": "web", "Port": 80, "CreateIndex": 3, "ModifyIndex": 3}
    svc = msgspec.msgpack.decode(msgspec.msgpack.encode(old), type=Service)
    assert (svc.SocketPath, svc.Locality) == ("", None)
    assert svc.Proxy == ConnectProxyConfig() and svc.Connect == ServiceConnect()
    assert render.node_service(svc)["Proxy"] == {"Mode": "", "MeshGateway": {}, "Expose": {}}
