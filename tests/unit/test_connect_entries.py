"""Config entries of every OSS kind: Consul's decoding (Kind lookup, any case, snake_case
aliases, weak typing, unknown keys), Normalize, Validate's messages, the GET shape and the
ACL rules. Pure and fast; the reference is Consul's agent/structs/config_entry*.go."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from agent.connect import entries
from agent.connect.entries import AnyOf, Need
from agent.connect.errors import EntryError

DECODE = "Request decoding failed: "


def stored(raw: dict[str, Any]) -> dict[str, Any]:
    entry = entries.normalize(entries.decode_entry(raw))
    entries.validate(entry)
    return entry


def refused(raw: dict[str, Any]) -> tuple[int, str]:
    with pytest.raises(EntryError) as caught:
        stored(raw)
    return caught.value.status, caught.value.message


def one_error(text: str) -> str:
    return f"1 error occurred:\n\t* {text}\n\n"


# ----------------------------------------------------------------------- certificates


def _pem_key(key: Any, fmt: serialization.PrivateFormat) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def _certificate(key: Any, common_name: str | None, dns: list[str]) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
    )
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def pki() -> dict[str, str]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    small_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    traditional = serialization.PrivateFormat.TraditionalOpenSSL
    return {
        "cert": _certificate(rsa_key, "example.com", ["www.example.com"]),
        "key": _pem_key(rsa_key, traditional),
        "other_key": _pem_key(other_key, serialization.PrivateFormat.PKCS8),
        "small_key": _pem_key(small_key, traditional),
        "ec_key": _pem_key(ec_key, traditional),
        "no_cn_cert": _certificate(rsa_key, None, ["www.example.com"]),
    }


# ----------------------------------------------------------------------- every kind

# (CamelCase body, the same entry in snake_case / other casings, GET shape without indexes)
GOOD: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        {
            "Kind": "service-defaults",
            "Name": "web",
            "Protocol": "HTTP",
            "MeshGateway": {"Mode": "local"},
            "TransparentProxy": {"DialedDirectly": True},
            "UpstreamConfig": {"Defaults": {"ConnectTimeoutMs": 500, "Protocol": "GRPC"}},
            "MaxInboundConnections": 12,
        },
        {
            "kind": "service-defaults",
            "name": "web",
            "protocol": "HTTP",
            "mesh_gateway": {"mode": "local"},
            "transparent_proxy": {"dialed_directly": True},
            "upstream_config": {"defaults": {"connect_timeout_ms": "500", "protocol": "GRPC"}},
            "max_inbound_connections": "12",
        },
        {
            "Kind": "service-defaults",
            "Name": "web",
            "Protocol": "http",
            "TransparentProxy": {"DialedDirectly": True},
            "MeshGateway": {"Mode": "local"},
            "Expose": {},
            "UpstreamConfig": {
                "Defaults": {
                    "Peer": "",
                    "Protocol": "grpc",
                    "ConnectTimeoutMs": 500,
                    "MeshGateway": {},
                }
            },
            "MaxInboundConnections": 12,
        },
    ),
    (
        {
            "Kind": "proxy-defaults",
            "Config": {"protocol": "http"},
            "AccessLogs": {"Enabled": True, "JSONFormat": '{"a": "%START_TIME%"}'},
        },
        {
            "kind": "proxy-defaults",
            "name": "global",
            "config": {"protocol": "http"},
            "access_logs": {"enabled": True, "json_format": '{"a": "%START_TIME%"}'},
        },
        {
            "Kind": "proxy-defaults",
            "Name": "global",
            "Config": {"protocol": "http"},
            "TransparentProxy": {},
            "MeshGateway": {},
            "Expose": {},
            "AccessLogs": {"Enabled": True, "JSONFormat": '{"a": "%START_TIME%"}'},
        },
    ),
    (
        {
            "Kind": "service-router",
            "Name": "web",
            "Routes": [
                {
                    "Match": {"HTTP": {"PathPrefix": "/api", "Methods": ["get", "POST"]}},
                    "Destination": {"Service": "api", "RequestTimeout": "2s", "NumRetries": 3},
                }
            ],
        },
        {
            "kind": "service-router",
            "name": "web",
            "routes": [
                {
                    "match": {"http": {"path_prefix": "/api", "methods": ["get", "POST"]}},
                    "destination": {"service": "api", "request_timeout": 2e9, "num_retries": "3"},
                }
            ],
        },
        {
            "Kind": "service-router",
            "Name": "web",
            "Routes": [
                {
                    "Match": {"HTTP": {"PathPrefix": "/api", "Methods": ["GET", "POST"]}},
                    # ServiceRouteDestination's MarshalJSON writes its durations first
                    "Destination": {"RequestTimeout": "2s", "Service": "api", "NumRetries": 3},
                }
            ],
        },
    ),
    (
        {
            "Kind": "service-splitter",
            "Name": "web",
            "Splits": [{"Weight": 33.333, "ServiceSubset": "v1"}, {"Weight": 66.667}],
        },
        {
            "kind": "service-splitter",
            "name": "web",
            "splits": [{"weight": "33.333", "service_subset": "v1"}, {"weight": 66.667}],
        },
        {
            "Kind": "service-splitter",
            "Name": "web",
            "Splits": [{"Weight": 33.33, "ServiceSubset": "v1"}, {"Weight": 66.67}],
        },
    ),
    (
        {
            "Kind": "service-resolver",
            "Name": "web",
            "DefaultSubset": "v1",
            "Subsets": {"v1": {"Filter": "Service.Meta.version == 1", "OnlyPassing": True}},
            "Failover": {"*": {"Datacenters": ["dc2"]}},
            "ConnectTimeout": "15s",
            "LoadBalancer": {
                "Policy": "ring_hash",
                "RingHashConfig": {"MinimumRingSize": 1024},
                "HashPolicies": [
                    {"Field": "cookie", "FieldValue": "x", "CookieConfig": {"TTL": "10s"}}
                ],
            },
        },
        {
            "kind": "service-resolver",
            "name": "web",
            "default_subset": "v1",
            "subsets": {"v1": {"filter": "Service.Meta.version == 1", "only_passing": "true"}},
            "failover": {"*": {"datacenters": "dc2"}},
            "connect_timeout": "15s",
            "load_balancer": {
                "policy": "ring_hash",
                "ring_hash_config": {"minimum_ring_size": "1024"},
                "hash_policies": [
                    {"field": "cookie", "field_value": "x", "cookie_config": {"ttl": "10s"}}
                ],
            },
        },
        {
            # ServiceResolverConfigEntry's MarshalJSON writes its durations first
            "ConnectTimeout": "15s",
            "Kind": "service-resolver",
            "Name": "web",
            "DefaultSubset": "v1",
            "Subsets": {"v1": {"Filter": "Service.Meta.version == 1", "OnlyPassing": True}},
            "Failover": {"*": {"Datacenters": ["dc2"]}},
            "LoadBalancer": {
                "Policy": "ring_hash",
                "RingHashConfig": {"MinimumRingSize": 1024},
                "HashPolicies": [
                    {"Field": "cookie", "FieldValue": "x", "CookieConfig": {"TTL": 10_000_000_000}}
                ],
            },
        },
    ),
    (
        {
            "Kind": "service-intentions",
            "Name": "db",
            "Sources": [
                {"Name": "*", "Action": "deny"},
                {
                    "Name": "web",
                    "Permissions": [
                        {"Action": "allow", "HTTP": {"PathPrefix": "/v1", "Methods": ["get"]}}
                    ],
                },
            ],
        },
        {
            "kind": "service-intentions",
            "name": "db",
            "sources": [
                {"name": "*", "action": "deny"},
                {
                    "name": "web",
                    "permissions": [
                        {"action": "allow", "http": {"path_prefix": "/v1", "methods": "get"}}
                    ],
                },
            ],
        },
        {
            "Kind": "service-intentions",
            "Name": "db",
            "Sources": [
                {
                    "Name": "web",
                    "Permissions": [
                        {"Action": "allow", "HTTP": {"PathPrefix": "/v1", "Methods": ["GET"]}}
                    ],
                    "Precedence": 9,
                    "Type": "consul",
                },
                {"Name": "*", "Action": "deny", "Precedence": 8, "Type": "consul"},
            ],
        },
    ),
    (
        {
            "Kind": "ingress-gateway",
            "Name": "ingress",
            "TLS": {"Enabled": True, "TLSMinVersion": "TLSv1_2"},
            "Listeners": [
                {
                    "Port": 8080,
                    "Protocol": "HTTP",
                    "Services": [{"Name": "web", "Hosts": ["web.example.com"]}],
                },
                {"Port": 9090, "Services": [{"Name": "db", "MaxConnections": 5}]},
            ],
        },
        {
            "kind": "ingress-gateway",
            "name": "ingress",
            "tls": {"enabled": "true", "tls_min_version": "TLSv1_2"},
            "listeners": [
                {
                    "port": "8080",
                    "protocol": "HTTP",
                    "services": {"name": "web", "hosts": "web.example.com"},
                },
                {"port": 9090, "services": [{"name": "db", "max_connections": "5"}]},
            ],
        },
        {
            "Kind": "ingress-gateway",
            "Name": "ingress",
            "TLS": {"Enabled": True, "TLSMinVersion": "TLSv1_2"},
            "Listeners": [
                {
                    "Port": 8080,
                    "Protocol": "http",
                    "Services": [{"Name": "web", "Hosts": ["web.example.com"]}],
                },
                {
                    "Port": 9090,
                    "Protocol": "tcp",
                    "Services": [{"Name": "db", "Hosts": None, "MaxConnections": 5}],
                },
            ],
        },
    ),
    (
        {
            "Kind": "terminating-gateway",
            "Name": "term",
            "Services": [{"Name": "billing", "CAFile": "/ca.pem", "SNI": "billing.example"}],
        },
        {
            "kind": "terminating-gateway",
            "name": "term",
            "services": [{"name": "billing", "ca_file": "/ca.pem", "sni": "billing.example"}],
        },
        {
            "Kind": "terminating-gateway",
            "Name": "term",
            "Services": [{"Name": "billing", "CAFile": "/ca.pem", "SNI": "billing.example"}],
        },
    ),
    (
        {
            "Kind": "mesh",
            "TransparentProxy": {"MeshDestinationsOnly": True},
            "AllowEnablingPermissiveMutualTLS": True,
            "TLS": {"Incoming": {"TLSMinVersion": "TLSv1_2", "TLSMaxVersion": "TLSv1_3"}},
            "Peering": {"PeerThroughMeshGateways": True},
        },
        {
            "kind": "mesh",
            "transparent_proxy": {"mesh_destinations_only": True},
            "allow_enabling_permissive_mutual_tls": 1,
            "tls": {"incoming": {"tls_min_version": "TLSv1_2", "tls_max_version": "TLSv1_3"}},
            "peering": {"peer_through_mesh_gateways": "t"},
        },
        {
            "Kind": "mesh",
            "TransparentProxy": {"MeshDestinationsOnly": True},
            "AllowEnablingPermissiveMutualTLS": True,
            "TLS": {"Incoming": {"TLSMinVersion": "TLSv1_2", "TLSMaxVersion": "TLSv1_3"}},
            "Peering": {"PeerThroughMeshGateways": True},
        },
    ),
    (
        {
            "Kind": "exported-services",
            "Name": "default",
            "Services": [{"Name": "web", "Consumers": [{"Peer": "east"}]}],
        },
        {
            "kind": "exported-services",
            "name": "default",
            "services": [{"name": "web", "consumers": [{"peer_name": "east"}]}],
        },
        {
            "Kind": "exported-services",
            "Name": "default",
            "Services": [{"Name": "web", "Consumers": [{"Peer": "east"}]}],
        },
    ),
    (
        {
            "Kind": "api-gateway",
            "Name": "gw",
            "Listeners": [
                {
                    "Name": "http",
                    "Port": 8443,
                    "Protocol": "HTTP",
                    "TLS": {"Certificates": [{"Name": "cert"}]},
                }
            ],
        },
        {
            "kind": "api-gateway",
            "name": "gw",
            "listeners": [
                {
                    "name": "http",
                    "port": "8443",
                    "protocol": "HTTP",
                    "tls": {"certificates": {"name": "cert"}},
                }
            ],
        },
        {
            "Kind": "api-gateway",
            "Name": "gw",
            "Listeners": [
                {
                    "Name": "http",
                    "Hostname": "",
                    "Port": 8443,
                    "Protocol": "http",
                    "TLS": {
                        "Certificates": [
                            {"Kind": "inline-certificate", "Name": "cert", "SectionName": ""}
                        ],
                        "MaxVersion": "",
                        "MinVersion": "",
                        "CipherSuites": None,
                    },
                }
            ],
            "Status": {"Conditions": None},
        },
    ),
    (
        {
            "Kind": "http-route",
            "Name": "route",
            "Parents": [{"Name": "gw"}],
            "Hostnames": ["shop.example.com"],
            "Rules": [{"Matches": [{"Method": "get"}], "Services": [{"Name": "web"}]}],
        },
        {
            "kind": "http-route",
            "name": "route",
            "parents": {"name": "gw"},
            "hostnames": "shop.example.com",
            "rules": [{"matches": [{"method": "get"}], "services": [{"name": "web", "weight": 0}]}],
        },
        {
            "Kind": "http-route",
            "Name": "route",
            "Parents": [{"Kind": "api-gateway", "Name": "gw", "SectionName": ""}],
            "Rules": [
                {
                    "Filters": {
                        "Headers": None,
                        "URLRewrite": None,
                        "RetryFilter": None,
                        "TimeoutFilter": None,
                        "JWT": None,
                    },
                    "ResponseFilters": {"Headers": None},
                    "Matches": [
                        {
                            "Headers": None,
                            "Method": "GET",
                            "Path": {"Match": "prefix", "Value": "/"},
                            "Query": None,
                        }
                    ],
                    "Services": [
                        {
                            "Name": "web",
                            "Weight": 1,
                            "Filters": {
                                "Headers": None,
                                "URLRewrite": None,
                                "RetryFilter": None,
                                "TimeoutFilter": None,
                                "JWT": None,
                            },
                            "ResponseFilters": {"Headers": None},
                        }
                    ],
                }
            ],
            "Hostnames": ["shop.example.com"],
            "Status": {"Conditions": None},
        },
    ),
    (
        {
            "Kind": "tcp-route",
            "Name": "tcp",
            "Parents": [{"Name": "gw"}],
            "Services": [{"Name": "db"}],
        },
        {
            "kind": "tcp-route",
            "name": "tcp",
            "parents": [{"name": "gw"}],
            "services": {"name": "db"},
        },
        {
            "Kind": "tcp-route",
            "Name": "tcp",
            "Parents": [{"Kind": "api-gateway", "Name": "gw", "SectionName": ""}],
            "Services": [{"Name": "db"}],
            "Status": {"Conditions": None},
        },
    ),
    (
        {
            "Kind": "jwt-provider",
            "Name": "okta",
            "JSONWebKeySet": {
                "Remote": {"URI": "https://okta.example/keys", "CacheDuration": "5m"}
            },
            "Locations": [{"Header": {"Name": "Authorization", "ValuePrefix": "Bearer "}}],
        },
        {
            "kind": "jwt-provider",
            "name": "okta",
            "json_web_key_set": {
                "remote": {"uri": "https://okta.example/keys", "cache_duration": "5m"}
            },
            "locations": [{"header": {"name": "Authorization", "value_prefix": "Bearer "}}],
        },
        {
            "Kind": "jwt-provider",
            "Name": "okta",
            "JSONWebKeySet": {
                "Remote": {"URI": "https://okta.example/keys", "CacheDuration": 300_000_000_000}
            },
            "Locations": [{"Header": {"Name": "Authorization", "ValuePrefix": "Bearer "}}],
            "ClockSkewSeconds": 30,
        },
    ),
]


def _render(raw: dict[str, Any]) -> dict[str, Any]:
    out = entries.render_entry(stored(raw))
    assert (out.pop("CreateIndex"), out.pop("ModifyIndex")) == (0, 0)
    return out


@pytest.mark.parametrize(("camel", "snake", "shape"), GOOD, ids=[g[0]["Kind"] for g in GOOD])
def test_a_good_entry_round_trips(camel: dict, snake: dict, shape: dict) -> None:
    assert _render(camel) == shape
    # the snake_case / any-case / weakly typed spelling is the same entry
    assert stored(snake) == stored(camel)
    # what GET prints can be PUT back unchanged
    printed = entries.render_entry(stored(camel) | {"CreateIndex": 5, "ModifyIndex": 6})
    assert stored(printed) == stored(camel)


@pytest.mark.parametrize("camel", [g[0] for g in GOOD], ids=[g[0]["Kind"] for g in GOOD])
def test_an_unknown_field_is_refused_with_consuls_text(camel: dict) -> None:
    status, message = refused(camel | {"Bogus": 1})
    assert (status, message) == (400, DECODE + one_error('invalid config key "Bogus"'))


def test_inline_certificate_round_trips(pki: dict[str, str]) -> None:
    raw = {
        "Kind": "inline-certificate",
        "Name": "cert",
        "Certificate": pki["cert"],
        "PrivateKey": pki["key"],
    }
    snake = {
        "kind": "inline-certificate",
        "name": "cert",
        "certificate": pki["cert"],
        "private_key": pki["key"],
    }
    assert _render(raw) == {k: raw[k] for k in ("Kind", "Name", "Certificate", "PrivateKey")}
    status, message = refused(snake)  # PrivateKey has no snake_case alias
    assert (status, message) == (400, DECODE + one_error('invalid config key "private_key"'))


@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        ("cert", "", "failed to parse private key PEM"),
        ("cert", "small_key", "key length must be at least 2048 bits"),
        ("", "key", "failed to parse certificate PEM"),
        ("cert", "other_key", "tls: private key does not match public key"),
        ("cert", "ec_key", "tls: private key type does not match public key type"),
        ("no_cn_cert", "key", 'host "" must be a valid DNS hostname'),
    ],
)
def test_inline_certificate_refusals(
    pki: dict[str, str], cert: str, key: str, message: str
) -> None:
    raw = {
        "Kind": "inline-certificate",
        "Name": "c",
        "Certificate": pki.get(cert, ""),
        "PrivateKey": pki.get(key, ""),
    }
    assert refused(raw) == (500, message)


def test_bound_api_gateway_decodes_but_only_the_controller_writes_it() -> None:
    entry = stored(
        {
            "Kind": "bound-api-gateway",
            "Name": "gw",
            "Listeners": [{"Name": "l", "Routes": [{"Kind": "http-route", "Name": "r"}]}],
        }
    )
    with pytest.raises(EntryError) as caught:
        entries.write_rules(entry)
    assert (caught.value.status, caught.value.message) == (
        403,
        "Permission denied: only writeable by controller",
    )
    assert entries.read_rule("bound-api-gateway", "gw") == (Need("service", "gw", "read"),)


# ----------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "Payload does not contain a kind/Kind key at the top level"),
        (None, "Payload does not contain a kind/Kind key at the top level"),
        ([1], "'' expected a map, got 'slice'"),
        ({"Kind": 5}, "Kind value in payload is not a string"),
        ({"kind": True}, "Kind value in payload is not a string"),
        ({"Kind": "nope"}, "invalid config entry kind: nope"),
        ({"Kind": "file-system-certificate"}, "invalid config entry kind: file-system-certificate"),
    ],
)
def test_the_kind_is_found_first(raw: Any, message: str) -> None:
    with pytest.raises(EntryError) as caught:
        entries.decode_entry(raw)
    assert (caught.value.status, caught.value.message) == (400, DECODE + message)


def test_unknown_keys_are_collected_with_their_paths_nested_first() -> None:
    status, message = refused(
        {
            "Kind": "service-splitter",
            "Name": "w",
            "Namespace": "a",
            "Splits": [{"Weight": 100, "Wait": 1}],
            "Partition": "p",
            "CreateIndex": 3,
            "kind": "service-splitter",
        }
    )
    assert status == 400
    assert message == DECODE + (
        "3 errors occurred:\n"
        '\t* invalid config key "Splits[0].Wait"\n'
        '\t* invalid config key "Namespace", namespaces are a consul enterprise feature\n'
        '\t* invalid config key "Partition"\n\n'
    )
    jwt = refused(
        {
            "Kind": "http-route",
            "Name": "r",
            "Rules": [{"Filters": {"JWT": {"Providers": [{"Name": "okta"}]}}}],
        }
    )
    assert jwt == (
        400,
        DECODE
        + one_error(
            'invalid config key "Rules[0].Filters.JWT.Providers", '
            "api-gateway jwt validation is a consul enterprise feature"
        ),
    )


def test_type_errors_are_mapstructures_sorted_list() -> None:
    status, message = refused(
        {
            "Kind": "service-defaults",
            "Name": "web",
            "Protocol": ["a", "b"],
            "MaxInboundConnections": "x",
            "TransparentProxy": {"DialedDirectly": "maybe"},
            "Expose": 7,
        }
    )
    assert status == 400
    assert message == DECODE + (
        "4 error(s) decoding:\n\n"
        "* 'Expose' expected a map, got 'float64'\n"
        "* 'Protocol' expected type 'string', got unconvertible type '[]interface {}', "
        "value: '[a b]'\n"
        "* cannot parse 'MaxInboundConnections' as int: strconv.ParseInt: parsing \"x\": "
        "invalid syntax\n"
        "* cannot parse 'TransparentProxy.DialedDirectly' as bool: strconv.ParseBool: "
        'parsing "maybe": invalid syntax'
    )
    bad_duration = refused({"Kind": "service-resolver", "Name": "w", "ConnectTimeout": "soon"})
    assert bad_duration == (
        400,
        DECODE + "1 error(s) decoding:\n\n* error decoding 'ConnectTimeout': "
        'time: invalid duration "soon"',
    )


def test_weak_typing_follows_mapstructure() -> None:
    entry = stored(
        {
            "Kind": "service-defaults",
            "Name": 7,  # numbers become strings
            "Protocol": ["http"],  # a one-element list is unwrapped
            "MaxInboundConnections": 3.9,  # float64 into an int truncates
            "LocalConnectTimeoutMs": "0x10",  # strconv base prefixes
            "Meta": {"n": 1.5, "b": True},
            "Destination": {"Addresses": "example.com", "Port": "443"},  # scalar lifts to a list
        }
    )
    assert entry["Name"] == "7" and entry["Protocol"] == "http"
    assert (entry["MaxInboundConnections"], entry["LocalConnectTimeoutMs"]) == (3, 16)
    assert entry["Meta"] == {"n": "1.5", "b": "1"}
    assert entry["Destination"] == {"Addresses": ["example.com"], "Port": 443}


def test_an_alias_next_to_its_field_leaves_a_stray_key() -> None:
    # HookTranslateKeys moves mesh_gateway to "meshgateway" unless that exact key exists.
    assert refused(
        {"Kind": "service-defaults", "Name": "w", "MeshGateway": {}, "mesh_gateway": {}}
    ) == (400, DECODE + one_error('invalid config key "meshgateway"'))
    # Consul matches snake_case only through alias tags: PrivateKey has none, Protocol none.
    assert refused({"Kind": "service-defaults", "Name": "w", "pro_tocol": "http"})[0] == 400


def test_zero_values_are_absent_except_under_pointers() -> None:
    entry = stored(
        {
            "Kind": "service-resolver",
            "Name": "w",
            "DefaultSubset": "",
            "Subsets": {"v1": {}},
            "LoadBalancer": {},
            "Redirect": None,
        }
    )
    assert entry == {
        "Kind": "service-resolver",
        "Name": "w",
        "Subsets": {"v1": {}},
        "LoadBalancer": {},
    }


def test_mesh_has_no_name_field() -> None:
    assert stored({"Kind": "mesh"})["Name"] == "mesh"
    assert "Name" not in entries.render_entry(stored({"Kind": "mesh"}))
    assert refused({"Kind": "mesh", "Name": "mesh"}) == (
        400,
        DECODE + one_error('invalid config key "Name"'),
    )


# ----------------------------------------------------------------------- validation

REFUSALS: list[tuple[dict[str, Any], str]] = [
    # service-defaults collects its problems into one go-multierror text
    ({"Kind": "service-defaults"}, "Name is required"),
    (
        {"Kind": "service-defaults", "Name": "*"},
        "service-defaults name must be the name of a service, and not a wildcard",
    ),
    (
        {"Kind": "service-defaults", "Name": "w", "Meta": {"k" * 129: "v"}},
        one_error(f'Meta key "{"k" * 129}" exceeds maximum length 128'),
    ),
    (
        {
            "Kind": "service-defaults",
            "Name": "w",
            "BalanceInboundConnections": "round",
            "Destination": {"Addresses": ["a.example", "a.example", "bad*"], "Port": 0},
        },
        "4 errors occurred:\n"
        "\t* invalid value for balance_inbound_connections: round\n"
        "\t* Duplicate address 'a.example' is not allowed\n"
        "\t* Destination address 'bad*' is invalid Could not validate address bad* as an IP "
        "or Hostname\n"
        "\t* Invalid Port number 0\n\n",
    ),
    (
        {
            "Kind": "service-defaults",
            "Name": "w",
            "UpstreamConfig": {
                "Overrides": [{"Name": "*"}, {"Name": "db", "Limits": {"MaxConnections": -1}}]
            },
        },
        "2 errors occurred:\n"
        "\t* error in upstream override for *:: Wildcard name is not supported\n"
        "\t* error in upstream override for db:: 1 error occurred:\n"
        "\t* max connections cannot be negative\n\n\n\n",
    ),
    (
        {"Kind": "service-defaults", "Name": "w", "MutualTLSMode": "loose"},
        'Invalid MutualTLSMode "loose". Must be one of "", "strict", or "permissive".',
    ),
    (
        {"Kind": "service-defaults", "Name": "w", "EnvoyExtensions": [{"Name": "lua"}]},
        one_error('invalid EnvoyExtensions[0][lua]: name "lua" is not a built-in extension'),
    ),
    # proxy-defaults
    (
        {"Kind": "proxy-defaults", "Name": "mine"},
        'invalid name ("mine"), only "global" is supported',
    ),
    (
        {"Kind": "proxy-defaults", "AccessLogs": {"Type": "file"}},
        "path must be specified when using file type access logs",
    ),
    (
        {"Kind": "proxy-defaults", "Config": {"protocol": {"x": 1}}},
        "1 error(s) decoding:\n\n* 'protocol' expected type 'string', got unconvertible type "
        "'map[string]interface {}', value: 'map[x:1]'",
    ),
    # service-router
    (
        {
            "Kind": "service-router",
            "Name": "w",
            "Routes": [{"Match": {"HTTP": {"PathPrefix": "x"}}}],
        },
        "Route[0] PathPrefix doesn't start with '/': \"x\"",
    ),
    (
        {
            "Kind": "service-router",
            "Name": "w",
            "Routes": [{"Match": {"HTTP": {"PathExact": "/a", "PathRegex": "b"}}}],
        },
        "Route[0] should only contain at most one of PathExact, PathPrefix, or PathRegex",
    ),
    (
        {
            "Kind": "service-router",
            "Name": "w",
            "Routes": [{"Match": {"HTTP": {"Methods": ["get", "GET"]}}}],
        },
        'Route[0] Methods contains "GET" more than once',
    ),
    (
        {
            "Kind": "service-router",
            "Name": "w",
            "Routes": [{"Destination": {"PrefixRewrite": "/b"}}],
        },
        "Route[0] cannot make use of PrefixRewrite without configuring either PathExact or PathPrefix",
    ),
    (
        {"Kind": "service-router", "Name": "w", "Routes": [{"Destination": {"RetryOn": ["oops"]}}]},
        'Route[0] contains an invalid retry condition: "oops"',
    ),
    # service-splitter
    ({"Kind": "service-splitter", "Name": "w"}, "no splits configured"),
    (
        {"Kind": "service-splitter", "Name": "w", "Splits": [{"Weight": 90}]},
        "the sum of all split weights must be 100, not 90.000000",
    ),
    (
        {
            "Kind": "service-splitter",
            "Name": "w",
            "Splits": [{"Weight": 50}, {"Weight": 50, "Service": "w"}],
        },
        'split destination occurs more than once: service="w", subset="", namespace="", partition=""',
    ),
    # service-resolver
    (
        {"Kind": "service-resolver", "Name": "w", "Subsets": {"V1": {}}},
        'Subset "V1" is invalid: must be 63 characters or fewer, begin or end with lower case '
        "alphanumeric characters, and contain lower case alphanumeric characters or '-' in between",
    ),
    (
        {"Kind": "service-resolver", "Name": "w", "DefaultSubset": "v9"},
        'DefaultSubset "v9" is not a valid subset',
    ),
    (
        {"Kind": "service-resolver", "Name": "w", "Subsets": {"v1": {"Filter": "Service.Meta =="}}},
        None,  # the filter parser's own text follows the prefix
    ),
    (
        {"Kind": "service-resolver", "Name": "w", "Redirect": {}},
        "Redirect is empty",
    ),
    (
        {
            "Kind": "service-resolver",
            "Name": "w",
            "Redirect": {"Service": "a"},
            "Failover": {"*": {"Service": "b"}},
        },
        "Redirect and Failover cannot both be set",
    ),
    (
        {"Kind": "service-resolver", "Name": "w", "Redirect": {"Peer": "p", "Datacenter": "dc2"}},
        "Redirect.Peer cannot be set with Redirect.Datacenter",
    ),
    (
        {"Kind": "service-resolver", "Name": "w", "Redirect": {"ServiceSubset": "v1"}},
        "Redirect.ServiceSubset defined without Redirect.Service",
    ),
    (
        {"Kind": "service-resolver", "Name": "w", "Redirect": {"Namespace": "ns"}},
        "Redirect: Setting Namespace requires Consul Enterprise",
    ),
    (
        {"Kind": "service-resolver", "Name": "w", "Failover": {"v1": {"Service": "b"}}},
        'Bad Failover["v1"]: not a valid subset subset',
    ),
    (
        {"Kind": "service-resolver", "Name": "w", "Failover": {"*": {}}},
        'Bad Failover["*"]: one of Service, ServiceSubset, Namespace, Targets, SamenessGroup, '
        "or Datacenters is required",
    ),
    (
        {
            "Kind": "service-resolver",
            "Name": "w",
            "Failover": {"*": {"Service": "b", "Targets": [{"Service": "c"}]}},
        },
        'Bad Failover["*"]: Targets cannot be set with Service',
    ),
    (
        {
            "Kind": "service-resolver",
            "Name": "w",
            "Failover": {"*": {"Targets": [{"Peer": "p", "Datacenter": "d"}]}},
        },
        'Bad Failover["*"].Targets[0]: Peer cannot be set with Datacenter',
    ),
    (
        {"Kind": "service-resolver", "Name": "w", "Failover": {"*": {"Datacenters": ["dc2", ""]}}},
        'Bad Failover["*"].Datacenters: found empty datacenter',
    ),
    (
        {"Kind": "service-resolver", "Name": "w", "ConnectTimeout": "-1s"},
        "Bad ConnectTimeout '-1s', must be >= 0",
    ),
    (
        {
            "Kind": "service-resolver",
            "Name": "w",
            "LoadBalancer": {"Policy": "random", "HashPolicies": [{}]},
        },
        'Bad LoadBalancer configuration: HashPolicies specified for non-hash-based Policy: "random"',
    ),
    # service-intentions
    (
        {"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web"}]},
        "Sources[0].Action must be set to 'allow' or 'deny'",
    ),
    ({"Kind": "service-intentions", "Name": "db"}, "At least one source is required"),
    (
        {
            "Kind": "service-intentions",
            "Name": "db",
            "Sources": [{"Name": "w*b", "Action": "allow"}],
        },
        "Sources[0].Name: wildcard character '*' cannot be used with partial values",
    ),
    (
        {
            "Kind": "service-intentions",
            "Name": "db",
            "Sources": [{"Name": "web", "Action": "allow"}, {"Name": "web", "Action": "deny"}],
        },
        'Sources[1] defines "web" more than once',
    ),
    (
        {
            "Kind": "service-intentions",
            "Name": "db",
            "Sources": [{"Name": "web", "Permissions": [{"Action": "allow"}]}],
        },
        "Sources[0].Permissions[0].HTTP is required",
    ),
    (
        {
            "Kind": "service-intentions",
            "Name": "db",
            "Sources": [{"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {}}]}],
        },
        "Sources[0].Permissions[0].HTTP should not be empty",
    ),
    (
        {
            "Kind": "service-intentions",
            "Name": "*",
            "Sources": [
                {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathExact": "/"}}]}
            ],
        },
        "Sources[0].Permissions cannot be specified on intentions with wildcarded destinations",
    ),
    (
        {
            "Kind": "service-intentions",
            "Name": "db",
            "Sources": [{"Name": "web", "Action": "allow", "SamenessGroup": "sg"}],
        },
        "Sources[0].SamenessGroup: Sameness groups are a Consul Enterprise feature. ",
    ),
    # ingress-gateway
    (
        {
            "Kind": "ingress-gateway",
            "Name": "i",
            "Listeners": [{"Port": 1, "Protocol": "udp", "Services": [{"Name": "a"}]}],
        },
        "protocol must be 'tcp', 'http', 'http2', or 'grpc'. 'udp' is an unsupported protocol",
    ),
    (
        {"Kind": "ingress-gateway", "Name": "i", "Listeners": [{"Port": 1}]},
        "No service declared for listener with port 1",
    ),
    (
        {
            "Kind": "ingress-gateway",
            "Name": "i",
            "Listeners": [
                {"Port": 1, "Services": [{"Name": "a"}]},
                {"Port": 1, "Services": [{"Name": "b"}]},
            ],
        },
        "port 1 declared on two listeners",
    ),
    (
        {
            "Kind": "ingress-gateway",
            "Name": "i",
            "Listeners": [{"Port": 1, "Services": [{"Name": "a"}, {"Name": "b"}]}],
        },
        "Multiple services per listener are only supported for L7 protocols, 'http', 'grpc' and "
        "'http2' (listener on port 1)",
    ),
    (
        {
            "Kind": "ingress-gateway",
            "Name": "i",
            "Listeners": [{"Port": 1, "Services": [{"Name": "*"}]}],
        },
        "Wildcard service name is only valid for protocol = 'http' (listener on port 1)",
    ),
    (
        {
            "Kind": "ingress-gateway",
            "Name": "i",
            "Listeners": [{"Port": 1, "Services": [{"Name": "a", "Hosts": ["a.b"]}]}],
        },
        "Associating hosts to a service is not supported for the tcp protocol (listener on port 1)",
    ),
    (
        {
            "Kind": "ingress-gateway",
            "Name": "i",
            "TLS": {"Enabled": True},
            "Listeners": [
                {"Port": 1, "Protocol": "http", "Services": [{"Name": "a", "Hosts": ["*"]}]}
            ],
        },
        "Host '*' is not allowed when TLS is enabled, all hosts must be valid DNS records to add as a DNSSAN",
    ),
    (
        {
            "Kind": "ingress-gateway",
            "Name": "i",
            "Listeners": [
                {"Port": 1, "Protocol": "http", "Services": [{"Name": "a", "Hosts": ["a.*.com"]}]}
            ],
        },
        'Host "a.*.com" is not valid, a wildcard specifier is only allowed as the leftmost label',
    ),
    (
        {
            "Kind": "ingress-gateway",
            "Name": "i",
            "Listeners": [
                {"Port": 1, "Services": [{"Name": "a", "RequestHeaders": {"Set": {"x": "y"}}}]}
            ],
        },
        'request headers only valid for http, http2 and grpc protocols (service "a" on listener on port 1)',
    ),
    (
        {
            "Kind": "ingress-gateway",
            "Name": "i",
            "TLS": {"SDS": {"CertResource": "c"}},
            "Listeners": [{"Port": 1, "Services": [{"Name": "a"}]}],
        },
        "TLS.SDS.ClusterName is required if CertResource is set",
    ),
    # terminating-gateway
    (
        {"Kind": "terminating-gateway", "Name": "t", "Services": [{}]},
        "Service name cannot be blank.",
    ),
    (
        {"Kind": "terminating-gateway", "Name": "t", "Services": [{"Name": "a", "CertFile": "c"}]},
        'Service "a" must have a CertFile, CAFile, and KeyFile specified for TLS origination',
    ),
    # mesh
    (
        {
            "Kind": "mesh",
            "TLS": {"Outgoing": {"TLSMinVersion": "TLSv1_3", "TLSMaxVersion": "TLSv1_2"}},
        },
        "error in outgoing TLS configuration: configuring max version TLSv1_2 less than the "
        "configured min version TLSv1_3 is invalid",
    ),
    (
        {"Kind": "mesh", "TLS": {"Incoming": {"TLSMinVersion": "TLS13"}}},
        "error in incoming TLS configuration: no matching TLS version found for TLS13, please "
        "specify one of [TLS_AUTO, TLSv1_0, TLSv1_1, TLSv1_2, TLSv1_3]",
    ),
    (
        {
            "Kind": "mesh",
            "TLS": {
                "Incoming": {
                    "TLSMinVersion": "TLSv1_3",
                    "CipherSuites": ["TLS_RSA_WITH_AES_128_CBC_SHA"],
                }
            },
        },
        "error in incoming TLS configuration: configuring CipherSuites is only applicable to "
        "connections negotiated with TLS 1.2 or earlier, TLSMinVersion is set to TLSv1_3",
    ),
    # exported-services, sameness-group
    ({"Kind": "exported-services", "Name": "x"}, 'exported-services Name must be "default"'),
    (
        {"Kind": "exported-services", "Name": "default", "Services": [{"Name": "web"}]},
        "Services[0]: must have at least one consumer",
    ),
    (
        {
            "Kind": "exported-services",
            "Name": "default",
            "Services": [{"Name": "web", "Consumers": [{"Peer": "*"}]}],
        },
        "Services[0].Consumers[0]: exporting to all peers (wildcard) is not supported",
    ),
    ({"Kind": "sameness-group", "Name": "s"}, "sameness-groups are an enterprise-only feature"),
    # api-gateway, routes
    ({"Kind": "api-gateway", "Name": "a"}, "api gateway must have at least one listener"),
    (
        {
            "Kind": "api-gateway",
            "Name": "a",
            "Listeners": [{"Name": "L", "Port": 1, "Protocol": "tcp"}],
        },
        'listener name "L" is invalid, must be at least 1 character and contain only letters, numbers, or dashes',
    ),
    (
        {
            "Kind": "api-gateway",
            "Name": "a",
            "Listeners": [{"Name": "l", "Port": 1, "Protocol": "udp"}],
        },
        "unsupported listener protocol \"udp\", must be one of 'tcp', or 'http'",
    ),
    (
        {
            "Kind": "api-gateway",
            "Name": "a",
            "Listeners": [{"Name": "l", "Port": 70000, "Protocol": "tcp"}],
        },
        "listener port 70000 not in the range 1-65535",
    ),
    (
        {
            "Kind": "api-gateway",
            "Name": "a",
            "Listeners": [
                {
                    "Name": "l",
                    "Port": 1,
                    "Protocol": "http",
                    "TLS": {"Certificates": [{"Kind": "x", "Name": "c"}]},
                }
            ],
        },
        "unsupported certificate kind: \"x\", must be 'inline-certificate'",
    ),
    (
        {"Kind": "tcp-route", "Name": "r", "Services": [{"Name": "a"}, {"Name": "b"}]},
        "tcp-route currently only supports one service",
    ),
    (
        {"Kind": "tcp-route", "Name": "r", "Parents": [{"Kind": "http-route", "Name": "x"}]},
        "unsupported parent kind: \"http-route\", must be 'api-gateway'",
    ),
    (
        {"Kind": "http-route", "Name": "r", "Parents": [{"Name": "g"}, {"Name": "g"}]},
        "route parents must be unique",
    ),
    (
        {"Kind": "http-route", "Name": "r", "Hostnames": ["*.example.com"]},
        'host "*.example.com" must not be a wildcard',
    ),
    (
        {
            "Kind": "http-route",
            "Name": "r",
            "Rules": [{"Matches": [{}, {"Path": {"Match": "exact", "Value": "x"}}]}],
        },
        "Rule[0], Match[1], Path, exact type match doesn't start with '/': \"x\"",
    ),
    (
        {
            "Kind": "http-route",
            "Name": "r",
            "Rules": [{"Matches": [{"Query": [{"Name": "q", "Match": "x"}]}]}],
        },
        "Rule[0], Match[0], Query[0], match type should be one of present, exact, or regex",
    ),
    # jwt-provider
    ({"Kind": "jwt-provider", "Name": "j"}, "JSONWebKeySet is required"),
    ({"Kind": "jwt-provider"}, "Name is required"),
    (
        {"Kind": "jwt-provider", "Name": "j", "JSONWebKeySet": {}},
        "must specify exactly one of Local or Remote JSON Web key set",
    ),
    (
        {
            "Kind": "jwt-provider",
            "Name": "j",
            "JSONWebKeySet": {"Local": {"JWKS": "a", "Filename": "b"}},
        },
        "must specify exactly one of String or filename for local keyset",
    ),
    (
        {"Kind": "jwt-provider", "Name": "j", "JSONWebKeySet": {"Local": {"JWKS": "not base64!"}}},
        "JWKS must be valid base64 encoded string",
    ),
    (
        {"Kind": "jwt-provider", "Name": "j", "JSONWebKeySet": {"Remote": {}}},
        "Remote JWKS URI is required",
    ),
    (
        {"Kind": "jwt-provider", "Name": "j", "JSONWebKeySet": {"Remote": {"URI": "keys"}}},
        'Remote JWKS URI is invalid: parse "keys": invalid URI for request, uri: keys',
    ),
    (
        {
            "Kind": "jwt-provider",
            "Name": "j",
            "JSONWebKeySet": {
                "Remote": {"URI": "https://k/", "JWKSCluster": {"DiscoveryType": "DNS"}}
            },
        },
        'unsupported jwks cluster discovery type: "DNS"',
    ),
    (
        {
            "Kind": "jwt-provider",
            "Name": "j",
            "JSONWebKeySet": {"Local": {"Filename": "/k"}},
            "Locations": [{}, {"Cookie": {}}],
        },
        "2 errors occurred:\n"
        "\t* must set exactly one of: JWT location header, query param or cookie\n"
        "\t* JWT location cookie name must be specified\n\n",
    ),
    (
        {
            "Kind": "jwt-provider",
            "Name": "j",
            "JSONWebKeySet": {"Local": {"Filename": "/k"}},
            "Forwarding": {},
        },
        "Header name required for forwarding config",
    ),
]


@pytest.mark.parametrize(("raw", "message"), REFUSALS)
def test_validation_messages(raw: dict[str, Any], message: str | None) -> None:
    status, text = refused(raw)
    assert status == 500
    if message is None:
        assert text.startswith('Filter for subset "v1" is not a valid expression: ')
    else:
        assert text == message


# ----------------------------------------------------------------------- normalize, names


def test_normalize_applies_consuls_defaults() -> None:
    assert stored({"Kind": "proxy-defaults"})["Name"] == "global"
    assert (
        stored(
            {"Kind": "jwt-provider", "Name": "j", "JSONWebKeySet": {"Local": {"Filename": "/k"}}}
        )["ClockSkewSeconds"]
        == 30
    )
    ingress = stored(
        {
            "Kind": "ingress-gateway",
            "Name": "i",
            "Listeners": [{"Port": 1, "Services": [{"Name": "a"}]}],
        }
    )
    assert ingress["Listeners"][0]["Protocol"] == "tcp"
    exported = stored(
        {
            "Kind": "exported-services",
            "Name": "default",
            "Services": [{"Name": "a", "Namespace": "x", "Consumers": [{"Peer": "p"}]}],
        }
    )
    assert "Namespace" not in exported["Services"][0]  # CE: namespaces normalize away
    raw = {"Kind": "service-defaults", "Name": "w", "Protocol": "HTTP"}
    entries.normalize(entries.decode_entry(raw))
    assert raw["Protocol"] == "HTTP"  # inputs are not changed


def test_delete_names() -> None:
    assert entries.validate_delete_name("mesh", "anything") == "mesh"
    assert entries.validate_delete_name("proxy-defaults", "global") == "global"
    assert entries.validate_delete_name("service-defaults", "web") == "web"
    with pytest.raises(EntryError) as caught:
        entries.validate_delete_name("proxy-defaults", "foo")
    assert (caught.value.status, caught.value.message) == (
        500,
        'invalid name ("foo"), only "global" is supported',
    )
    with pytest.raises(EntryError) as unknown:
        entries.validate_delete_name("nope", "x")
    assert (unknown.value.status, unknown.value.message) == (400, "invalid config entry kind: nope")


def test_kinds_and_warnings() -> None:
    assert entries.KINDS[:3] == ("service-defaults", "proxy-defaults", "service-router")
    assert "bound-api-gateway" in entries.KINDS and "jwt-provider" in entries.KINDS
    term = stored(
        {"Kind": "terminating-gateway", "Name": "t", "Services": [{"Name": "a", "CAFile": "/ca"}]}
    )
    assert entries.warnings(term) == [
        'TLS is configured but SNI is not set for service "a". Enabling SNI is strongly '
        "recommended when using TLS."
    ]


# ----------------------------------------------------------------------- ACL


def test_read_rules_per_kind() -> None:
    assert entries.read_rule("service-defaults", "web") == (Need("service", "web", "read"),)
    assert entries.read_rule("service-resolver", "web") == (Need("service", "web", "read"),)
    assert entries.read_rule("ingress-gateway", "ig") == (Need("service", "ig", "read"),)
    for kind in ("proxy-defaults", "mesh", "sameness-group"):
        assert entries.read_rule(kind, "x") == ()
    for kind in ("exported-services", "http-route", "tcp-route", "inline-certificate"):
        assert entries.read_rule(kind, "x") == (Need("mesh", None, "read"),)
    assert entries.read_rule("service-intentions", "db") == (Need("intention", "db", "read"),)
    assert entries.read_rule("jwt-provider", "okta") == AnyOf(
        ((Need("service", "", "write"),), (Need("mesh", None, "read"),))
    )


def test_write_rules_per_kind() -> None:
    router = stored(
        {
            "Kind": "service-router",
            "Name": "api",
            "Routes": [{"Destination": {"Service": "web"}}, {"Destination": {"Service": "api"}}],
        }
    )
    assert entries.write_rules(router) == (
        Need("service", "api", "write"),
        Need("service", "web", "read"),
    )
    resolver = stored(
        {
            "Kind": "service-resolver",
            "Name": "db",
            "Failover": {"*": {"Targets": [{"Service": "db2"}, {"Peer": "east"}]}},
        }
    )
    assert entries.write_rules(resolver) == (
        Need("service", "db", "write"),
        Need("service", "db2", "read"),
    )
    assert entries.write_rules({"Kind": "service-defaults", "Name": "w"}) == (
        Need("service", "w", "write"),
    )
    assert entries.write_rules({"Kind": "service-intentions", "Name": "db"}) == (
        Need("intention", "db", "write"),
    )
    for kind in ("proxy-defaults", "mesh", "ingress-gateway", "jwt-provider", "http-route"):
        assert entries.write_rules({"Kind": kind, "Name": "x"}) == (Need("mesh", None, "write"),)
