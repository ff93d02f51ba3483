"""Consul's builtin templated policies: what each grants, variable checks, the synthetic policy,
and enforcement through the resolver (roles, datacenters)."""

from __future__ import annotations

import pytest

from agent.acl.authorizer import Authorizer
from agent.acl.enforce import new_token
from agent.acl.resolve import Resolver
from agent.acl.rules import parse_rules
from agent.acl.templated import (
    BUILTINS,
    TemplatedPolicyError,
    normalize,
    render_rules,
    synthetic_policy,
    validate,
)
from agent.state.acl import ANONYMOUS_ACCESSOR, MANAGEMENT_POLICY_ID
from agent.state.fsm import FSM
from agent.state.store import Store
from tests.harness.entries import apply_entry


def _authz(name: str, var: str | None = None) -> Authorizer:
    variables = {"name": var} if var is not None else None
    return Authorizer(parse_rules(render_rules(BUILTINS[name], variables)), default_allow=False)


def test_the_seven_builtins_and_their_fixed_ids() -> None:
    assert {n: t.id[-2:] for n, t in BUILTINS.items()} == {
        "builtin/service": "03",
        "builtin/node": "04",
        "builtin/dns": "05",
        "builtin/nomad-server": "06",
        "builtin/workload-identity": "07",
        "builtin/api-gateway": "08",
        "builtin/nomad-client": "09",
    }
    for template in BUILTINS.values():
        assert template.id.startswith("00000000-0000-0000-0000-0000000000")
        assert template.description
        assert ("{{.Name}}" in template.template) == bool(template.schema)


def test_service_grants_its_service_and_sidecar_and_reads_the_catalog() -> None:
    a = _authz("builtin/service", "web")
    assert a.allowed("service", "web", "write")
    assert a.allowed("service", "web-sidecar-proxy", "write")
    assert not a.allowed("service", "db", "write")
    assert not a.allowed("service", "web2", "write")
    assert a.allowed("service", "db", "read")
    assert a.allowed("node", "any-node", "read") and not a.allowed("node", "n1", "write")
    assert not a.allowed("key", "x", "read")
    assert not a.allowed("query", "q", "read")
    assert not a.allowed_single("acl", "read")


def test_node_grants_its_node_and_reads_services() -> None:
    a = _authz("builtin/node", "n1")
    assert a.allowed("node", "n1", "write")
    assert not a.allowed("node", "n2", "write") and not a.allowed("node", "n2", "read")
    assert a.allowed("service", "anything", "read")
    assert not a.allowed("service", "anything", "write")


def test_dns_reads_nodes_services_and_queries_only() -> None:
    a = _authz("builtin/dns")
    for resource in ("node", "service", "query"):
        assert a.allowed(resource, "x", "read")
        assert not a.allowed(resource, "x", "write")
    assert not a.allowed("key", "x", "read") and not a.allowed("agent", "a", "read")


def test_nomad_server() -> None:
    a = _authz("builtin/nomad-server")
    assert a.allowed_single("acl", "write")
    assert a.allowed("agent", "a", "read") and not a.allowed("agent", "a", "write")
    assert a.allowed("node", "n", "read") and not a.allowed("node", "n", "write")
    assert a.allowed("service", "s", "write")
    assert not a.allowed("key", "k", "read")


def test_nomad_client() -> None:
    a = _authz("builtin/nomad-client")
    assert not a.allowed_single("acl", "read")
    assert a.allowed("agent", "a", "read") and not a.allowed("agent", "a", "write")
    assert a.allowed("node", "n", "read") and not a.allowed("node", "n", "write")
    assert a.allowed("service", "s", "write")
    assert a.allowed("key", "k", "read") and not a.allowed("key", "k", "write")


def test_workload_identity() -> None:
    a = _authz("builtin/workload-identity", "wl")
    assert a.allowed("identity", "wl", "write")
    assert not a.allowed("identity", "other", "read")
    assert not a.allowed("service", "wl", "read")


def test_api_gateway() -> None:
    a = _authz("builtin/api-gateway", "gw")
    assert a.allowed_single("mesh", "read") and not a.allowed_single("mesh", "write")
    assert a.allowed("service", "gw", "write")
    assert not a.allowed("service", "gw-sidecar-proxy", "write")
    assert a.allowed("service", "other", "read") and a.allowed("node", "n", "read")


def test_synthetic_policy_matches_consuls_documented_preview() -> None:
    policy = synthetic_policy(
        {"TemplateName": "builtin/service", "TemplateVariables": {"name": "web"}}
    )
    assert policy["ID"].startswith("0a73657276696365202277656222207")
    assert policy["ID"].endswith("6c62272e07bb014262b821756295c58d")
    assert policy["Name"] == "synthetic-policy-" + policy["ID"]
    assert (
        policy["Description"] == "synthetic policy generated from templated policy: builtin/service"
    )
    assert policy["Rules"] == (
        '\nservice "web" {\n\tpolicy = "write"\n}\nservice "web-sidecar-proxy" {\n\tpolicy = '
        '"write"\n}\nservice_prefix "" {\n\tpolicy = "read"\n}\nnode_prefix "" {\n\tpolicy = '
        '"read"\n}'
    )
    assert policy["Hash"] == "b04MnvCVtBXZAmGe4uDpGLABJoGo2nNhEJkqaN5E5x4="
    assert "Datacenters" not in policy
    limited = synthetic_policy({"TemplateName": "builtin/dns", "Datacenters": ["dc2"]})
    assert limited["Datacenters"] == ["dc2"] and limited["Hash"] != policy["Hash"]


@pytest.mark.parametrize(
    ("name", "variables", "message"),
    [
        (
            "builtin/service",
            {},
            'service identity "" has an invalid name. Only lowercase alphanumeric '
            "characters, '-' and '_' are allowed",
        ),
        (
            "builtin/service",
            {"name": "Web"},
            'service identity "Web" has an invalid name. Only lowercase alphanumeric '
            "characters, '-' and '_' are allowed",
        ),
        (
            "builtin/node",
            {"name": "n_"},
            'node identity "n_"  has an invalid name. Only lowercase alphanumeric '
            "characters, '-' and '_' are allowed",
        ),
        (
            "builtin/service",
            None,
            "1 error occurred:\n\t* Invalid type. Expected: object, given: null\n\n",
        ),
        ("builtin/workload-identity", {}, "1 error occurred:\n\t* name is required\n\n"),
        ("builtin/api-gateway", {"name": ""}, "1 error occurred:\n\t* name is required\n\n"),
        (
            "builtin/api-gateway",
            {"name": 'gw" {} acl = "write'},
            'name "gw\\" {} acl = \\"write" cannot contain quotes, backslashes or control characters',
        ),
    ],
)
def test_bad_variables(name: str, variables: dict | None, message: str) -> None:
    assert validate(BUILTINS[name], variables) == message


def test_good_variables_and_templates_without_any() -> None:
    assert validate(BUILTINS["builtin/service"], {"name": "web-1"}) is None
    assert validate(BUILTINS["builtin/api-gateway"], {"name": "My.Gateway"}) is None
    assert validate(BUILTINS["builtin/dns"], None) is None
    assert validate(BUILTINS["builtin/nomad-server"], {"name": "ignored"}) is None


def test_normalize_stores_ids_and_drops_duplicates() -> None:
    out = normalize(
        [
            {"TemplateName": "builtin/service", "TemplateVariables": {"name": "web"}},
            {"TemplateName": "builtin/service", "TemplateVariables": {"name": "api"}},
            {
                "TemplateName": "builtin/service",
                "TemplateVariables": {"name": "web"},
                "Datacenters": ["x"],
            },
            {"TemplateName": "builtin/dns", "Datacenters": ["dc1"]},
            {"TemplateName": "builtin/dns"},
        ],
        "token",
    )
    assert out == [
        {
            "TemplateID": BUILTINS["builtin/service"].id,
            "TemplateName": "builtin/service",
            "TemplateVariables": {"name": "web"},
        },
        {
            "TemplateID": BUILTINS["builtin/service"].id,
            "TemplateName": "builtin/service",
            "TemplateVariables": {"name": "api"},
        },
        {
            "TemplateID": BUILTINS["builtin/dns"].id,
            "TemplateName": "builtin/dns",
            "Datacenters": ["dc1"],
        },
    ]
    assert normalize(None, "role") == []


@pytest.mark.parametrize(
    ("raw", "owner", "local", "message"),
    [
        ([{}], "token", False, "templated policy is missing the template name field on this token"),
        (
            [{"TemplateName": "builtin/nope"}],
            "role",
            False,
            "templated policy with an invalid templated name: builtin/nope for this role",
        ),
        (
            [{"TemplateName": "builtin/dns", "Datacenters": ["dc1"]}],
            "token",
            True,
            'templated policy "builtin/dns" cannot specify a list of datacenters on a local token',
        ),
        (
            [{"TemplateName": "builtin/node"}],
            "token",
            False,
            "encountered token with invalid templated policy: 1 error occurred:\n\t* Invalid "
            "type. Expected: object, given: null\n\n",
        ),
    ],
)
def test_normalize_refusals(raw: list, owner: str, local: bool, message: str) -> None:
    with pytest.raises(TemplatedPolicyError) as exc:
        normalize(raw, owner, local)
    assert str(exc.value) == message


# ---------------------------------------------------------------------- enforcement


def _store() -> tuple[Store, FSM]:
    store = Store()
    fsm = FSM(store)
    apply_entry(
        fsm,
        1,
        {
            "Type": "acl-init",
            "Policies": [{"ID": MANAGEMENT_POLICY_ID, "Name": "global-management", "Rules": ""}],
            "Tokens": [new_token(ANONYMOUS_ACCESSOR, "anonymous", "Anonymous Token", [], "t")],
            "InitialManagement": "",
        },
    )
    return store, fsm


def _token(
    accessor: str, secret: str, templated: list[dict], roles: list[dict] | None = None
) -> dict:
    token = new_token(accessor, secret, "", [], "t")
    token["TemplatedPolicies"] = normalize(templated, "token")
    token["Roles"] = roles or []
    return token


def test_resolver_enforces_token_and_role_templated_policies_by_datacenter() -> None:
    store, fsm = _store()
    web = {"TemplateName": "builtin/service", "TemplateVariables": {"name": "web"}}
    elsewhere = {
        "TemplateName": "builtin/node",
        "TemplateVariables": {"name": "n1"},
        "Datacenters": ["dc2"],
    }
    apply_entry(fsm, 2, {"Type": "acl-token-set", "Token": _token("a1", "s1", [web, elsewhere])})
    role = {
        "ID": "r1",
        "Name": "dns",
        "TemplatedPolicies": normalize([{"TemplateName": "builtin/dns"}], "role"),
    }
    apply_entry(fsm, 3, {"Type": "acl-role-set", "Role": role})
    apply_entry(fsm, 4, {"Type": "acl-token-set", "Token": _token("a2", "s2", [], [{"ID": "r1"}])})

    here = Resolver(store, "deny", "dc1")
    a1 = here.resolve("s1").authz
    assert a1.allowed("service", "web", "write") and not a1.allowed("service", "db", "write")
    assert not a1.allowed("node", "n1", "write")  # limited to dc2
    assert Resolver(store, "deny", "dc2").resolve("s1").authz.allowed("node", "n1", "write")
    a2 = here.resolve("s2").authz
    assert a2.allowed("query", "q", "read") and not a2.allowed("service", "web", "write")
    assert store.acl.tokens["a1"]["TemplatedPolicies"][0]["TemplateVariables"] == {"name": "web"}
