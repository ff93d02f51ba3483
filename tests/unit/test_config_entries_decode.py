"""Config entries, pure: Consul's decoding (any case, snake_case, weak typing, unknown keys
refused all at once), each kind's Normalize and Validate messages, the GET shape, ACL rules."""

from __future__ import annotations

from typing import Any

import pytest

from agent.connect import entries
from agent.connect.errors import EntryError


def entry(raw: dict[str, Any]) -> dict[str, Any]:
    decoded = entries.normalize(entries.decode_entry(raw))
    entries.validate(decoded)
    return decoded


def refusal(raw: dict[str, Any]) -> EntryError:
    with pytest.raises(EntryError) as caught:
        entry(raw)
    return caught.value


def test_snake_case_any_case_and_weak_types_decode_to_the_canonical_entry() -> None:
    got = entry(
        {
            "kind": "service-defaults",
            "name": "web",
            "PROTOCOL": "HTTP",
            "mesh_gateway": {"mode": "local"},
            "max_inbound_connections": "12",
            "Meta": {"owner": 7},
        }
    )
    assert got == {
        "Kind": "service-defaults",
        "Name": "web",
        "Protocol": "http",
        "MeshGateway": {"Mode": "local"},
        "MaxInboundConnections": 12,
        "Meta": {"owner": "7"},
    }


def test_unknown_keys_are_refused_together_as_go_multierror_prints_them() -> None:
    exc = refusal({"Kind": "service-defaults", "Name": "x", "Nope": 1, "Namespace": "a"})
    assert exc.status == 400
    assert exc.message == (
        "Request decoding failed: 2 errors occurred:\n"
        '\t* invalid config key "Nope"\n'
        '\t* invalid config key "Namespace", namespaces are a consul enterprise feature\n\n'
    )
    nested = refusal({"Kind": "service-splitter", "Name": "w", "Splits": [{"Wait": 1}]})
    assert 'invalid config key "Splits[0].Wait"' in nested.message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "Payload does not contain a kind/Kind key at the top level"),
        ({"Kind": 5}, "Kind value in payload is not a string"),
        ({"Kind": "nope"}, "invalid config entry kind: nope"),
    ],
)
def test_the_kind_is_found_first(raw: dict[str, Any], message: str) -> None:
    exc = refusal(raw)
    assert exc.status == 400 and exc.message == f"Request decoding failed: {message}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"Kind": "service-defaults"}, "Name is required"),
        (
            {"Kind": "proxy-defaults", "Name": "mine"},
            'invalid name ("mine"), only "global" is supported',
        ),
        (
            {"Kind": "service-splitter", "Name": "w", "Splits": [{"Weight": 90}]},
            "the sum of all split weights must be 100, not 90.000000",
        ),
        ({"Kind": "service-splitter", "Name": "w"}, "no splits configured"),
        (
            {
                "Kind": "service-router",
                "Name": "w",
                "Routes": [{"Match": {"HTTP": {"PathPrefix": "x"}}}],
            },
            "Route[0] PathPrefix doesn't start with '/': \"x\"",
        ),
        (
            {"Kind": "service-resolver", "Name": "w", "DefaultSubset": "v9"},
            'DefaultSubset "v9" is not a valid subset',
        ),
        (
            {"Kind": "service-resolver", "Name": "w", "Failover": {"v1": {"Service": "b"}}},
            'Bad Failover["v1"]: not a valid subset subset',
        ),
        (
            {"Kind": "ingress-gateway", "Name": "i", "Listeners": [{"Port": 1, "Protocol": "udp"}]},
            "protocol must be 'tcp', 'http', 'http2', or 'grpc'. 'udp' is an unsupported protocol",
        ),
        (
            {"Kind": "ingress-gateway", "Name": "i", "Listeners": [{"Port": 1}]},
            "No service declared for listener with port 1",
        ),
        (
            {"Kind": "terminating-gateway", "Name": "t", "Services": [{}]},
            "Service name cannot be blank.",
        ),
        ({"Kind": "exported-services", "Name": "x"}, 'exported-services Name must be "default"'),
        ({"Kind": "sameness-group", "Name": "s"}, "sameness-groups are an enterprise-only feature"),
        ({"Kind": "jwt-provider", "Name": "j"}, "JSONWebKeySet is required"),
        ({"Kind": "api-gateway", "Name": "a"}, "api gateway must have at least one listener"),
        (
            {"Kind": "tcp-route", "Name": "r", "Services": [{"Name": "a"}, {"Name": "b"}]},
            "tcp-route currently only supports one service",
        ),
        ({"Kind": "inline-certificate", "Name": "c"}, "failed to parse private key PEM"),
        (
            {"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web"}]},
            "Sources[0].Action must be set to 'allow' or 'deny'",
        ),
        (
            {"Kind": "service-defaults", "Name": "w", "Meta": {"k" * 129: "v"}},
            f'1 error occurred:\n\t* Meta key "{"k" * 129}" exceeds maximum length 128\n\n',
        ),
    ],
)
def test_validation_messages(raw: dict[str, Any], message: str) -> None:
    exc = refusal(raw)
    assert (exc.status, exc.message) == (500, message)


def test_normalize_fills_names_and_spellings() -> None:
    assert entry({"Kind": "proxy-defaults"})["Name"] == "global"
    assert entry({"Kind": "mesh"})["Name"] == "mesh"
    splitter = entry(
        {
            "Kind": "service-splitter",
            "Name": "w",
            "Splits": [{"Weight": 33.333}, {"Weight": 66.667, "Service": "b"}],
        }
    )
    assert [s["Weight"] for s in splitter["Splits"]] == [33.33, 66.67]
    router = entry(
        {
            "Kind": "service-router",
            "Name": "w",
            "Routes": [{"Match": {"HTTP": {"Methods": ["get"]}}}],
        }
    )
    assert router["Routes"][0]["Match"]["HTTP"]["Methods"] == ["GET"]
    intentions = entry(
        {
            "Kind": "service-intentions",
            "Name": "db",
            "Sources": [{"Name": "*", "Action": "deny"}, {"Name": "web", "Action": "allow"}],
        }
    )
    assert [(s["Name"], s["Precedence"]) for s in intentions["Sources"]] == [("web", 9), ("*", 8)]


def test_render_prints_the_always_present_structs_and_indexes() -> None:
    stored = entry({"Kind": "service-defaults", "Name": "web"}) | {
        "CreateIndex": 3,
        "ModifyIndex": 4,
    }
    assert entries.render_entry(stored) == {
        "Kind": "service-defaults",
        "Name": "web",
        "Protocol": "",
        "TransparentProxy": {},
        "MeshGateway": {},
        "Expose": {},
        "CreateIndex": 3,
        "ModifyIndex": 4,
    }
    mesh = entries.render_entry(entry({"Kind": "mesh"}))
    assert "Name" not in mesh and mesh["Kind"] == "mesh"


def test_acl_rules_per_kind() -> None:
    need = entries.Need
    router = entry(
        {
            "Kind": "service-router",
            "Name": "api",
            "Routes": [{"Destination": {"Service": "web"}}, {"Destination": {"Service": "api"}}],
        }
    )
    assert entries.write_rules(router) == (
        need("service", "api", "write"),
        need("service", "web", "read"),
    )
    assert entries.write_rules({"Kind": "mesh", "Name": "mesh"}) == (need("mesh", None, "write"),)
    assert entries.read_rule("proxy-defaults", "global") == ()
    assert entries.read_rule("service-intentions", "db") == (need("intention", "db", "read"),)
    assert isinstance(entries.read_rule("jwt-provider", "okta"), entries.AnyOf)
    with pytest.raises(EntryError) as caught:
        entries.write_rules({"Kind": "bound-api-gateway", "Name": "g"})
    assert caught.value.status == 403
