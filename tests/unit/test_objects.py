"""Pure tests of whole Consul objects: canonical forms (what Consul fills in is not drift),
the intentions shorthand, dependency order, field-level diffs and plan files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from gitkv.kinds.acl_auth import (
    auth_method_from_api,
    auth_method_spec,
    binding_rule_from_api,
    binding_rule_spec,
)
from gitkv.kinds.config_entries import entry_body, entry_from_api, entry_object, entry_spec
from gitkv.kinds.intentions import intention_entries, intention_shorthand, parse_key
from gitkv.kinds.operator import autopilot_from_api, autopilot_spec, ca_from_api, ca_spec
from gitkv.kinds.queries import query_from_api, query_spec
from gitkv.ledger import Ledger
from gitkv.objects import ApiObject, canonical, flatten
from gitkv.plan import CREATE, DELETE, UPDATE, plan, plans_from_json, plans_to_json
from gitkv.render import render_human
from gitkv.resources import Resources, SecretRef
from gitkv.spec.desired import desired_datacenter
from gitkv.spec.load import load_spec
from gitkv.state import LiveState


def test_canonical_drops_zero_values_and_spells_durations_as_consul() -> None:
    raw = {
        "Protocol": "http",
        "TransparentProxy": {},
        "MeshGateway": {"Mode": ""},
        "Expose": {"Paths": []},
        "ConnectTimeout": "15000ms",
        "RequestTimeout": 90_000_000_000,
        "Weight": 50.0,
        "Flag": False,
        "Meta": None,
    }
    assert canonical(raw) == {
        "Protocol": "http",
        "ConnectTimeout": "15s",
        "RequestTimeout": "1m30s",
        "Weight": 50,
    }
    # Durations are known by name only: an integer in another field is a number.
    assert canonical({"MaxInboundConnections": 90}) == {"MaxInboundConnections": 90}
    assert canonical({"LocalConnectTimeoutMs": 5000}) == {"LocalConnectTimeoutMs": 5000}


def test_what_consul_fills_in_compares_equal_to_the_spec() -> None:
    spec = entry_object(
        "service-intentions",
        "db",
        {"Sources": [{"Name": "web", "Action": "allow"}, {"Name": "*", "Action": "deny"}]},
    )
    live, index = entry_from_api(
        {
            "Kind": "service-intentions",
            "Name": "db",
            "Sources": [
                {"Name": "*", "Action": "deny", "Precedence": 8, "Type": "consul"},
                {"Name": "web", "Action": "allow", "Precedence": 9, "Type": "consul"},
            ],
            "CreateIndex": 11,
            "ModifyIndex": 12,
        }
    )
    assert live == spec and index == 12
    ingress = entry_object("ingress-gateway", "ing", {"Listeners": [{"Port": 80, "Services": []}]})
    ingress_live, _ = entry_from_api(
        {
            "Kind": "ingress-gateway",
            "Name": "ing",
            "TLS": {"Enabled": False},
            "Listeners": [{"Port": 80, "Protocol": "tcp", "Services": None}],
        }
    )
    assert ingress_live == ingress
    defaults = entry_object("service-defaults", "web", {"Protocol": "HTTP"})
    assert entry_from_api({"Kind": "service-defaults", "Name": "web", "Protocol": "http",
                           "TransparentProxy": {}, "MeshGateway": {}})[0] == defaults  # fmt: skip
    # A real difference stays one.
    assert entry_object("service-defaults", "web", {"Protocol": "grpc"}) != defaults


def test_entry_body_puts_kind_name_and_secrets_back() -> None:
    cert = entry_object(
        "inline-certificate",
        "c",
        {"Certificate": "PEM", "PrivateKey": {"env": "KEY"}},
        {"PrivateKey": SecretRef(env="KEY")},
    )
    assert "PrivateKey" not in cert.body
    assert entry_body(cert, {"PrivateKey": "s3cret"}) == {
        "Kind": "inline-certificate",
        "Name": "c",
        "Certificate": "PEM",
        "PrivateKey": "s3cret",
    }
    # The secret is not part of the comparison (it is never read back).
    assert cert == entry_object("inline-certificate", "c", {"Certificate": "PEM"})
    # The mesh entry has no Name field: Consul refuses one.
    mesh = entry_object("mesh", "mesh", {"TransparentProxy": {"MeshDestinationsOnly": True}})
    assert entry_body(mesh) == {
        "Kind": "mesh",
        "TransparentProxy": {"MeshDestinationsOnly": True},
    }


def test_intentions_shorthand_folds_into_entries() -> None:
    assert parse_key(" web ->db ") == ("web", "db")
    with pytest.raises(ValueError, match="<source> -> <destination>"):
        parse_key("web => db")
    got = intention_entries(
        {"web -> db": "allow", "* -> db": "deny", "api -> cache": {"action": "deny",
                                                                   "description": "no"}}
    )  # fmt: skip
    assert got == {
        "cache": {"Sources": [{"Name": "api", "Action": "deny", "Description": "no"}]},
        "db": {"Sources": [{"Name": "*", "Action": "deny"}, {"Name": "web", "Action": "allow"}]},
    }


def test_flatten_names_leaves() -> None:
    body = {"Splits": [{"Weight": 90, "ServiceSubset": "v1"}], "Meta": {"a": "b"}}
    assert list(flatten(body)) == [
        ("Splits[0].Weight", 90),
        ("Splits[0].ServiceSubset", "v1"),
        ("Meta.a", "b"),
    ]


def _entries(**bodies: dict) -> dict[str, ApiObject]:
    out = {}
    for key, body in bodies.items():
        kind, _, name = key.partition("__")
        obj = entry_object(kind.replace("_", "-"), name, body)
        out[obj.id] = obj
    return out


def _desired(entries: dict[str, ApiObject]) -> Resources:
    return Resources(datacenter="dc1", name="t", objects={"config_entry": entries})


def _live(entries: dict[str, ApiObject], ledger: Ledger | None = None) -> LiveState:
    return LiveState(
        address="http://127.0.0.1:8500",
        objects={"config_entry": entries},
        object_indexes={f"config_entry/{i}": n for n, i in enumerate(sorted(entries), 10)},
        ledger=ledger,
    )


CHAIN = _entries(
    service_router__web={"Routes": [{"Destination": {"Service": "api"}}]},
    service_splitter__web={"Splits": [{"Weight": 100}]},
    service_resolver__web={"ConnectTimeout": "5s"},
    service_defaults__web={"Protocol": "http"},
    proxy_defaults__global={"Config": {"protocol": "http"}},
)


def test_dependency_order_and_reverse_for_deletes() -> None:
    p = plan(_desired(CHAIN), _live({}))
    assert [c.id for c in p.changes] == [
        "proxy-defaults/global",
        "service-defaults/web",
        "service-resolver/web",
        "service-splitter/web",
        "service-router/web",
    ]
    assert all(c.action == CREATE for c in p.changes)
    ledger = Ledger.build("t", {"config_entry": list(CHAIN)})
    gone = plan(_desired({}), _live(CHAIN, ledger), prune=True)
    assert [c.id for c in gone.changes] == [
        "service-router/web",
        "service-splitter/web",
        "service-resolver/web",
        "service-defaults/web",
        "proxy-defaults/global",
    ]
    assert all(c.action == DELETE for c in gone.changes)
    assert gone.object_indexes["config_entry/service-router/web"] == 13


def test_unmanaged_entries_are_reported_and_kept() -> None:
    other = _entries(service_defaults__other={"Protocol": "tcp"})
    ledger = Ledger.build("t", {"config_entry": ["service-defaults/web"]})
    live = {**other, **_entries(service_defaults__web={"Protocol": "http"})}
    p = plan(_desired({}), _live(live, ledger), prune=True)
    assert [(c.action, c.id) for c in p.changes] == [(DELETE, "service-defaults/web")]
    assert ("config_entry", "service-defaults/other") in p.unmanaged


def test_update_is_shown_field_by_field_and_survives_a_plan_file() -> None:
    want = _entries(service_splitter__web={"Splits": [{"Weight": 80}, {"Weight": 20}]})
    have = _entries(service_splitter__web={"Splits": [{"Weight": 50}, {"Weight": 50}]})
    p = plan(_desired(want), _live(have))
    assert [(c.action, c.id) for c in p.changes] == [(UPDATE, "service-splitter/web")]
    text = render_human([p])
    assert "Splits[0].Weight: 50 -> 80" in text and "Splits[1].Weight: 50 -> 20" in text
    again = plans_from_json(plans_to_json([p]))[0]
    assert again.changes == p.changes
    assert again.object_indexes == {"config_entry/service-splitter/web": 10}


def test_plan_file_keeps_secret_references_not_values() -> None:
    cert = entry_object("inline-certificate", "c", {"Certificate": "PEM"},
                        {"PrivateKey": SecretRef(env="CERT_KEY")})  # fmt: skip
    p = plan(_desired({cert.id: cert}), _live({}))
    text = plans_to_json([p])
    assert '"env": "CERT_KEY"' in text
    back = plans_from_json(text)[0].changes[0].after
    assert back.secrets == (("PrivateKey", SecretRef(env="CERT_KEY")),)
    assert "PrivateKey = from env:CERT_KEY (hidden)" in render_human([p])
    assert json.loads(text)["plans"][0]["changes"][0]["after"]["body"] == {"Certificate": "PEM"}


def test_convergence_after_every_prefix() -> None:
    """Applying any prefix of the changes and planning again gives exactly the rest."""
    want = _entries(
        service_defaults__web={"Protocol": "http"},
        service_splitter__web={"Splits": [{"Weight": 100}]},
    )
    stale = _entries(service_defaults__old={"Protocol": "tcp"})
    ledger = Ledger.build("t", {"config_entry": ["service-defaults/old"]})
    full = plan(_desired(want), _live(stale, ledger), prune=True)
    for n in range(len(full.changes) + 1):
        live = dict(stale)
        for c in full.changes[:n]:
            if c.action == DELETE:
                live.pop(c.id)
            else:
                live[c.id] = c.after
        rest = plan(_desired(want), _live(live, ledger), prune=True)
        assert rest.changes == full.changes[n:]


def test_intentions_naming_unknown_services_warn_once_per_service() -> None:
    entries = {
        o.id: o
        for o in (
            entry_object("service-intentions", "db", {"Sources": [{"Name": "web"}, {"Name": "*"}]}),
            entry_object("service-defaults", "web", {"Protocol": "http"}),
        )
    }
    live = LiveState(address="http://127.0.0.1:8500", catalog_services=("consul",))
    p = plan(_desired(entries), live)
    assert p.notes == (
        "warning: service 'db' is neither in the catalog nor in the spec "
        "(named by intention * -> db, web -> db)",
    )
    known = plan(_desired(entries), replace(live, catalog_services=("consul", "db")))
    assert known.notes == ()


def test_live_objects_become_spec_values_that_plan_to_nothing(tmp_path: Path) -> None:
    """What `import` relies on: live JSON -> value -> spec value -> the same value again."""
    live_entry, _ = entry_from_api(
        {"Kind": "service-resolver", "Name": "web", "ConnectTimeout": "15s",
         "Subsets": {"v1": {"Filter": "Service.Meta.v == 1"}}, "CreateIndex": 3}
    )  # fmt: skip
    intentions, _ = entry_from_api(
        {"Kind": "service-intentions", "Name": "db",
         "Sources": [{"Name": "web", "Action": "allow", "Precedence": 9, "Type": "consul"}]}
    )  # fmt: skip
    query, _, _ = query_from_api(
        {"ID": "x", "Name": "q", "Token": "<hidden>", "Session": "",
         "Service": {"Service": "web", "Failover": {"NearestN": 0, "Datacenters": None},
                     "OnlyPassing": True, "Tags": None}, "DNS": {"TTL": "10s"},
         "Template": {"Type": "", "Regexp": "", "RemoveEmptyTags": False}}
    )  # fmt: skip
    method, _ = auth_method_from_api(
        {"Name": "jwt", "Type": "jwt", "DisplayName": "", "MaxTokenTTL": "1h0m0s",
         "TokenLocality": "", "Config": {"BoundIssuer": "i", "OIDCClientSecret": "s"}}
    )  # fmt: skip
    rule, _, _ = binding_rule_from_api(
        {"ID": "r1", "AuthMethod": "jwt", "Selector": "", "BindType": "role",
         "BindName": "ops", "Description": "d"}
    )  # fmt: skip
    pilot, _ = autopilot_from_api(
        {"CleanupDeadServers": True, "LastContactThreshold": "200ms", "MaxTrailingLogs": 250,
         "MinQuorum": 0, "ServerStabilizationTime": "10s", "RedundancyZoneTag": "",
         "DisableUpgradeMigration": False, "UpgradeVersionTag": "", "ModifyIndex": 4}
    )  # fmt: skip
    ca, _ = ca_from_api({"Provider": "consul", "Config": {"LeafCertTTL": "72h"}})

    kind, name, value = entry_spec(live_entry)
    dc = {
        "config_entries": {kind: {name: value}},
        "intentions": intention_shorthand("db", intentions.body),
        "prepared_queries": {"q": query_spec(query)},
        "acl": {"auth_methods": {"jwt": auth_method_spec(method)},
                "binding_rules": [binding_rule_spec(rule)]},
        "autopilot": autopilot_spec(pilot),
        "ca": ca_spec(ca),
    }  # fmt: skip
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({"version": 1, "datacenters": {"dc1": dc}}))
    got = desired_datacenter(load_spec(spec)).objects
    for obj in (live_entry, intentions, query, method, rule, pilot, ca):
        assert got[obj.kind][obj.id] == obj, obj.kind
    assert "OIDCClientSecret" not in json.dumps(dc)


def test_acl_objects_are_left_alone_when_acls_are_off() -> None:
    method = auth_method_from_api({"Name": "jwt", "Type": "jwt"})[0]
    desired = Resources(datacenter="dc1", name="t", objects={"acl_auth_method": {"jwt": method}})
    ledger = Ledger.build("t", {"acl_auth_method": ["jwt", "old"]})
    live = LiveState(address="http://127.0.0.1:8500", acl_enabled=False, ledger=ledger)
    p = plan(desired, live, prune=True)
    assert p.changes == ()
    assert p.ledger_after.ids("acl_auth_method") == ("jwt", "old")


def test_cluster_settings_are_laid_over_the_live_ones_and_never_deleted() -> None:
    live_pilot = autopilot_from_api({"CleanupDeadServers": True, "MaxTrailingLogs": 250})[0]
    want = autopilot_from_api({"MaxTrailingLogs": 500})[0]
    desired = Resources(datacenter="dc1", name="t", objects={"autopilot": {"config": want}})
    live = LiveState(address="x", objects={"autopilot": {"config": live_pilot}},
                     object_indexes={"autopilot/config": 9})  # fmt: skip
    (change,) = plan(desired, live).changes
    assert change.action == UPDATE
    assert change.after.body == {"CleanupDeadServers": True, "MaxTrailingLogs": 500}
    assert (
        plan(desired, replace(live, objects={"autopilot": {"config": change.after}})).changes == ()
    )
    # Leaving the spec: no longer managed, nothing deleted, nothing "unmanaged".
    ledger = Ledger.build("t", {"autopilot": ["config"]})
    gone = plan(Resources(datacenter="dc1", name="t"), replace(live, ledger=ledger), prune=True)
    assert gone.changes == () and gone.unmanaged == ()
    assert not gone.ledger_after.ids("autopilot")
