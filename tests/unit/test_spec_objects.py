"""Spec side of config entries, intentions, queries, auth methods, autopilot and CA: models,
positioned errors for what Consul would refuse, and what the spec turns into."""

from __future__ import annotations

import textwrap
from pathlib import Path

from gitkv.spec.desired import desired_datacenter
from gitkv.spec.load import check_spec, load_spec


def write(tmp: Path, body: str) -> Path:
    path = tmp / "spec.yaml"
    head = "version: 1\ndatacenters:\n  dc1:\n"
    path.write_text(head + textwrap.indent(textwrap.dedent(body).lstrip("\n"), "    "))
    return path


def problems(path: Path) -> list[str]:
    loaded, found = check_spec(path)
    assert loaded is None
    return [str(d).replace(str(path.parent) + "/", "") for d in found]


def test_unknown_kinds_and_fields_are_positioned(tmp_path: Path) -> None:
    spec = write(
        tmp_path,
        """
        config_entries:
          service-default:
            web: {Protocol: http}
          service-resolver:
            web: {ConectTimeout: 5s}
          bound-api-gateway:
            gw: {}
        """,
    )
    assert problems(spec) == [
        "spec.yaml:5:7: unknown field 'service-default' (did you mean 'service-defaults'?)",
        "spec.yaml:8:15: unknown field 'ConectTimeout' (did you mean 'ConnectTimeout'?)",
        "spec.yaml:9:7: unknown field 'bound-api-gateway' (did you mean 'api-gateway'?)",
    ]


def test_what_consul_would_refuse(tmp_path: Path) -> None:
    spec = write(
        tmp_path,
        """
        config_entries:
          service-defaults:
            web: {Protocol: tcp}
            api: {Protocol: http}
            grpc-svc: {Protocol: grpc}
          service-resolver:
            api: {Subsets: {v1: {Filter: "Service.Meta.v == 1"}}}
          service-splitter:
            web:
              Splits: [{Weight: 33.33}, {Weight: 33.33}, {Weight: 33.33}]
            api:
              Splits: [{Weight: 50, ServiceSubset: v1}, {Weight: 50, ServiceSubset: v2}]
          service-router:
            api:
              Routes: [{Destination: {Service: grpc-svc}}]
          service-intentions:
            db: {Sources: [{Name: web, Action: allow}]}
        intentions:
          "api -> db": allow
          "bad": allow
        """,
    )
    assert problems(spec) == [
        "spec.yaml:12:9: service-splitter 'web': discovery chain \"web\" uses a protocol "
        '"tcp" that does not permit advanced routing or splitting behavior '
        "(set Protocol: http in its service-defaults)",
        "spec.yaml:12:9: web: the sum of all split weights must be 100, not 99.99",
        'spec.yaml:15:81: service "api" does not have a subset named "v2" '
        "(its service-resolver in the spec defines v1)",
        'spec.yaml:18:21: discovery chain "api" uses inconsistent protocols; service '
        '"grpc-svc" has "grpc" which is not "http"',
        "spec.yaml:22:7: intention 'api -> db': destination 'db' also has a "
        "service-intentions config entry; write its sources in one place",
        "spec.yaml:23:7: invalid name 'bad': write an intention as '<source> -> <destination>' "
        "(names or *)",
    ]


def test_names_consul_fixes(tmp_path: Path) -> None:
    spec = write(
        tmp_path,
        """
        config_entries:
          proxy-defaults:
            web: {Config: {protocol: http}}
          exported-services:
            mine: {Services: []}
          mesh:
            mesh: {}
            other: {}
        """,
    )
    assert problems(spec) == [
        'spec.yaml:6:9: proxy-defaults: invalid name ("web"), only "global" is supported',
        'spec.yaml:8:9: exported-services: exported-services Name must be "default"',
        'spec.yaml:11:9: mesh: the mesh entry is named "mesh" (Consul has only one)',
    ]


def test_secrets_and_acl_references(tmp_path: Path) -> None:
    spec = write(
        tmp_path,
        """
        prepared_queries:
          q: {Service: {Service: web}, Token: plain}
        acl:
          auth_methods:
            jwt: {type: jwt, secret_config: {Key: inline}}
          binding_rules:
            - {auth_method: nope, bind_type: role, bind_name: r}
            - {auth_method: jwt, bind_type: role, bind_name: r}
            - {auth_method: jwt, bind_type: role, bind_name: r}
            - {auth_method: jwt, bind_type: token, bind_name: r}
        ca:
          provider: consul
          secret_config: {PrivateKey: "-----BEGIN"}
        """,
    )
    got = problems(spec)
    inline = "inline secrets are not allowed: use {env: VARIABLE} or {file: PATH}"
    assert any(p.startswith("spec.yaml:5:43: Token: " + inline) for p in got), got
    assert any(p.startswith("spec.yaml:8:47: Key: " + inline) for p in got), got
    assert "spec.yaml:10:25: unknown auth method 'nope' (defined: jwt)" in got
    assert "spec.yaml:12:11: duplicate binding rule (same as the one at spec.yaml:11:11)" in got
    assert any(p.startswith("spec.yaml:13:41: bind_type: Input should be") for p in got), got
    assert any(p.startswith("spec.yaml:16:35: PrivateKey: " + inline) for p in got), got


def test_spec_becomes_canonical_objects(tmp_path: Path, monkeypatch: object) -> None:
    (tmp_path / "ca.key").write_text("KEY\n")
    spec = write(
        tmp_path,
        """
        config_entries:
          service-defaults:
            web: {Protocol: HTTP}
          service-splitter:
            web: {Splits: [{Weight: 100}]}
        intentions:
          "web -> db": allow
        prepared_queries:
          web-nearest:
            Service: {Service: web, Failover: {NearestN: 2}, OnlyPassing: true}
            DNS: {TTL: 10s}
            Token: {env: QUERY_TOKEN}
        acl:
          auth_methods:
            kube: {type: kubernetes, max_token_ttl: 1h, config: {Host: "https://k8s"},
                   secret_config: {ServiceAccountJWT: {env: SA_JWT}}}
          binding_rules:
            - {auth_method: kube, bind_type: service, bind_name: "${serviceaccount.name}",
               selector: "serviceaccount.namespace==default"}
        autopilot: {cleanup_dead_servers: false, last_contact_threshold: 500ms}
        ca:
          provider: consul
          config: {LeafCertTTL: 24h}
          secret_config: {PrivateKey: {file: ca.key}}
        """,
    )
    res = desired_datacenter(load_spec(spec))
    entries = res.objects["config_entry"]
    assert entries["service-defaults/web"].body == {"Protocol": "http"}
    assert entries["service-splitter/web"].body == {"Splits": [{"Weight": 100}]}
    assert entries["service-intentions/db"].body == {
        "Sources": [{"Name": "web", "Action": "allow"}]
    }
    query = res.objects["prepared_query"]["web-nearest"]
    assert query.body == {
        "Service": {"Service": "web", "Failover": {"NearestN": 2}, "OnlyPassing": True},
        "DNS": {"TTL": "10s"},
    }
    assert [(k, r.describe()) for k, r in query.secrets] == [("Token", "env:QUERY_TOKEN")]
    method = res.objects["acl_auth_method"]["kube"]
    assert method.body == {
        "Type": "kubernetes",
        "MaxTokenTTL": "1h0m0s",
        "Config": {"Host": "https://k8s"},
    }
    rule = res.objects["acl_binding_rule"]
    assert list(rule) == ["kube/service/${serviceaccount.name}/serviceaccount.namespace==default"]
    assert res.objects["autopilot"]["config"].body == {
        "CleanupDeadServers": False,
        "LastContactThreshold": "500ms",
    }
    ca = res.objects["ca"]["config"]
    assert ca.body["Config"] == {"LeafCertTTL": "24h0m0s"}
    assert ca.secrets[0][0] == "PrivateKey" and ca.secrets[0][1].resolve() == "KEY"
    assert res.has_acl
