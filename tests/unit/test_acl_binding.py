"""Binding rules (agent/acl/binding.py): selectors, `${...}` bind names, what a login binds."""

from __future__ import annotations

import pytest

from agent.acl.binding import BindError, Identity, bind, check_rule, check_selector, interpolate

JWT_ROOTS = {"value": None, "list": None}


def identity(values: dict, lists: dict | None = None) -> Identity:
    return Identity(
        fields={"value": values, "list": lists or {}},
        variables={f"value.{k}": v for k, v in values.items()},
        roots=JWT_ROOTS,
    )


def rule(bind_type: str, bind_name: str, selector: str = "", **extra: object) -> dict:
    return {"BindType": bind_type, "BindName": bind_name, "Selector": selector, **extra}


ROLES = {"ops": {"ID": "role-1", "Name": "ops"}}
POLICIES = {"readers": {"ID": "pol-1", "Name": "readers"}}


def run(rules: list[dict], ident: Identity):
    return bind(rules, ident, "dc1", ROLES.get, POLICIES.get)


def test_interpolate() -> None:
    assert interpolate("svc-${value.name}", {"value.name": "Web"}) == "svc-web"
    assert interpolate("${value.name}", {"value.name": "Web"}, lowercase=False) == "Web"
    assert interpolate("plain", {}) == "plain"
    assert interpolate("$${value.name}", {"value.name": "x"}) == "${value.name}"
    with pytest.raises(BindError, match="1:3: unknown variable accessed: value.nope"):
        interpolate("${value.nope}", {})
    with pytest.raises(BindError, match="unknown function called: upper"):
        interpolate('${upper("x")}', {})
    with pytest.raises(BindError, match="parse error at 1:3"):
        interpolate("${", {})


def test_bind_each_type() -> None:
    ident = identity({"name": "Web", "team": "core"}, {"groups": ["admins"]})
    got = run(
        [
            rule("service", "${value.name}", 'value.team == "core"'),
            rule("node", "node-${value.team}"),
            rule("role", "ops"),
            rule("role", "missing-role"),
            rule("policy", "readers", '"admins" in list.groups'),
            rule("service", "never", 'value.team == "other"'),
            rule("templated-policy", "builtin/service", BindVars={"name": "${value.name}"}),
        ],
        ident,
    )
    assert got.service_identities == [{"ServiceName": "web"}]
    assert got.node_identities == [{"NodeName": "node-core", "Datacenter": "dc1"}]
    assert got.roles == [{"ID": "role-1"}]
    assert got.policies == [{"ID": "pol-1"}]
    assert got.templated_policies == [
        {
            "TemplateID": "00000000-0000-0000-0000-000000000003",
            "TemplateName": "builtin/service",
            "TemplateVariables": {"name": "web"},
        }
    ]


def test_nothing_bound_and_broken_selectors() -> None:
    ident = identity({"name": "web"})
    assert run([rule("service", "x", 'value.name == "db"')], ident).none()
    # A selector that cannot be evaluated never matches (list compared with ==).
    assert run([rule("service", "x", "list.groups == a")], identity({}, {"groups": ["a"]})).none()
    with pytest.raises(BindError, match='invalid bind name: "bad name"'):
        run([rule("service", "bad ${value.name}")], identity({"name": "name"}))


def test_check_rule_binds_a_fake_identity() -> None:
    check_rule("service", "${value.name}", None, ["value.name"])
    check_rule("role", "Ops_Team", None, [])
    with pytest.raises(BindError, match='failed to validate bindType "service": .*unknown'):
        check_rule("service", "${value.nope}", None, ["value.name"])
    with pytest.raises(BindError, match="invalid bind name"):
        check_rule("node", "UPPER_not_lowered!", None, [])
    with pytest.raises(BindError, match="does not match existing template name"):
        check_rule("templated-policy", "builtin/unknown", None, [])
    with pytest.raises(BindError, match="Expected: object, given: null"):
        check_rule("templated-policy", "builtin/node", None, [])
    with pytest.raises(BindError, match="has an invalid name"):
        check_rule("templated-policy", "builtin/node", {"name": "${value.x}-"}, ["value.x"])
    check_rule("templated-policy", "builtin/dns", None, [])


def test_check_selector_against_the_method_fields() -> None:
    blank = identity({"team": ""}, {"groups": None})
    check_selector('value.team == "core" and "a" in list.groups', blank)
    check_selector("all list.groups as g { g != bad }", blank)
    for bad in ("team == core", "value.team.x == y", "other.x == 1"):
        with pytest.raises(BindError, match="is not valid"):
            check_selector(bad, blank)
    with pytest.raises(BindError):
        check_selector("value.team ==", blank)
    kube = Identity(
        fields={"serviceaccount": {"namespace": "", "name": "", "uid": ""}},
        variables={},
        roots={"serviceaccount": frozenset({"namespace", "name", "uid"})},
    )
    check_selector("serviceaccount.namespace == default", kube)
    with pytest.raises(BindError, match='Selector "serviceaccount.pod" is not valid'):
        check_selector("serviceaccount.pod == x", kube)
