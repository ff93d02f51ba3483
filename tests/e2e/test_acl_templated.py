"""Templated policies end to end: a real agent with ACLs on (`default_policy = deny`).

The builtins are listed, read and previewed as Consul serves them; tokens and roles carry
`TemplatedPolicies`, which are validated (a refusal writes nothing), shown, hashed and
enforced, a datacenter limit included.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.agentproc import AgentProc
from tests.e2e.test_acl_matrix import agent_args

MGMT = str(uuid.uuid4())
WEB = {"TemplateName": "builtin/service", "TemplateVariables": {"Name": "web"}}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProc]:
    proc = AgentProc(*agent_args(tmp_path_factory.mktemp("tpl"), initial_management=MGMT))
    proc.start()
    try:
        yield proc
    finally:
        proc.cleanup()


@pytest.fixture(scope="module")
def http(agent: AgentProc) -> Iterator[httpx.Client]:
    with agent.client() as client:
        yield client


def _as(secret: str) -> dict[str, str]:
    return {"X-Consul-Token": secret}


def _token(http: httpx.Client, body: dict) -> dict:
    r = http.put("/v1/acl/token", json=body, headers=_as(MGMT))
    assert r.status_code == 200, r.text
    return r.json()


def test_list_read_and_preview(http: httpx.Client) -> None:
    r = http.get("/v1/acl/templated-policies", headers=_as(MGMT))
    assert r.status_code == 200, r.text
    listed = r.json()
    assert sorted(listed) == [
        "builtin/api-gateway",
        "builtin/dns",
        "builtin/node",
        "builtin/nomad-client",
        "builtin/nomad-server",
        "builtin/service",
        "builtin/workload-identity",
    ]
    assert set(listed["builtin/dns"]) == {"TemplateName", "Schema", "Template", "Description"}
    assert listed["builtin/dns"]["Schema"] == ""
    assert listed["builtin/dns"]["Template"] == (
        '\nnode_prefix "" {\n\tpolicy = "read"\n}\nservice_prefix "" {\n\tpolicy = "read"\n}'
        '\nquery_prefix "" {\n\tpolicy = "read"\n}'
    )

    r = http.get("/v1/acl/templated-policy/name/builtin/service", headers=_as(MGMT))
    assert r.status_code == 200 and r.json() == listed["builtin/service"]
    assert r.json()["Schema"].startswith('{\n\t"type": "object"')
    r = http.get("/v1/acl/templated-policy/name/builtin/nope", headers=_as(MGMT))
    assert (r.status_code, r.text) == (400, "Invalid templated policy Name: builtin/nope")

    # The Go client posts the variables struct itself; Consul's documented sample answer.
    r = http.post(
        "/v1/acl/templated-policy/preview/builtin/service", json={"Name": "web"}, headers=_as(MGMT)
    )
    assert r.status_code == 200, r.text
    policy = r.json()
    assert policy["ID"].startswith("0a73657276696365202277656222207")
    assert policy["Name"] == f"synthetic-policy-{policy['ID']}"
    assert (
        policy["Description"] == "synthetic policy generated from templated policy: builtin/service"
    )
    assert policy["Rules"].startswith('\nservice "web" {\n\tpolicy = "write"\n}')
    assert policy["Hash"] == "b04MnvCVtBXZAmGe4uDpGLABJoGo2nNhEJkqaN5E5x4="
    assert (policy["CreateIndex"], policy["ModifyIndex"]) == (0, 0)
    r = http.post("/v1/acl/templated-policy/preview/builtin/dns", json={}, headers=_as(MGMT))
    assert r.status_code == 200 and "query_prefix" in r.json()["Rules"]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            "builtin/node",
            {},
            'validation error for templated policy: "builtin/node": node identity ""  has an '
            "invalid name. Only lowercase alphanumeric characters, '-' and '_' are allowed",
        ),
        (
            "builtin/workload-identity",
            {"name": ""},
            'validation error for templated policy: "builtin/workload-identity": 1 error '
            "occurred:\n\t* name is required\n\n",
        ),
        ("builtin/nope", {}, 'templated policy "builtin/nope" does not exist'),
        (
            "builtin/service",
            {"Name": 7},
            "Failed to decode request body: json: cannot unmarshal number into Go struct field "
            "ACLTemplatedPolicyVariables.name of type string",
        ),
        ("builtin/dns", None, "Failed to decode request body: EOF"),
    ],
)
def test_preview_refusals(http: httpx.Client, path: str, body: dict | None, message: str) -> None:
    kw = {"json": body} if body is not None else {}
    r = http.post(f"/v1/acl/templated-policy/preview/{path}", headers=_as(MGMT), **kw)
    assert (r.status_code, r.text) == (400, message)


def test_endpoints_need_acl_read(http: httpx.Client) -> None:
    weak = _token(http, {"TemplatedPolicies": [WEB]})["SecretID"]
    for method, path in (
        ("GET", "/v1/acl/templated-policies"),
        ("GET", "/v1/acl/templated-policy/name/builtin/dns"),
        ("POST", "/v1/acl/templated-policy/preview/builtin/dns"),
    ):
        for headers in ({}, _as(weak)):
            r = http.request(method, path, json={}, headers=headers)
            assert r.status_code == 403, (method, path, r.text)
            assert "lacks permission 'acl:read'" in r.text


def test_token_with_templated_service_registers_only_its_service(http: httpx.Client) -> None:
    token = _token(http, {"Description": "web", "TemplatedPolicies": [WEB, WEB]})
    assert token["TemplatedPolicies"] == [
        {
            "TemplateID": "00000000-0000-0000-0000-000000000003",
            "TemplateName": "builtin/service",
            "TemplateVariables": {"name": "web"},
        }
    ]
    secret = token["SecretID"]
    r = http.put(
        "/v1/agent/service/register", json={"Name": "web", "Port": 80}, headers=_as(secret)
    )
    assert r.status_code == 200, r.text
    r = http.put(
        "/v1/agent/service/register",
        json={
            "Name": "web-sidecar-proxy",
            "Kind": "connect-proxy",
            "Port": 21000,
            "Proxy": {"DestinationServiceName": "web"},
        },
        headers=_as(secret),
    )
    assert r.status_code == 200, r.text
    r = http.put(
        "/v1/agent/service/register", json={"Name": "db", "Port": 5432}, headers=_as(secret)
    )
    assert r.status_code == 403 and "service:write" in r.text
    r = http.get("/v1/catalog/service/web", headers=_as(secret))
    assert r.status_code == 200  # service:read and node:read everywhere
    r = http.get("/v1/kv/anything", headers=_as(secret))
    assert r.status_code == 403

    # Shown on read and in the list; part of the hash.
    r = http.get(f"/v1/acl/token/{token['AccessorID']}", headers=_as(MGMT))
    assert r.json()["TemplatedPolicies"] == token["TemplatedPolicies"]
    listed = {t["AccessorID"]: t for t in http.get("/v1/acl/tokens", headers=_as(MGMT)).json()}
    assert listed[token["AccessorID"]]["TemplatedPolicies"] == token["TemplatedPolicies"]
    plain = _token(http, {"Description": "web"})
    assert plain["Hash"] != token["Hash"] and "TemplatedPolicies" not in plain

    # Update replaces them: the token loses the service.
    r = http.put(
        f"/v1/acl/token/{token['AccessorID']}",
        json={"TemplatedPolicies": [{"TemplateName": "builtin/dns"}]},
        headers=_as(MGMT),
    )
    assert r.status_code == 200, r.text
    r = http.put(
        "/v1/agent/service/register", json={"Name": "web", "Port": 81}, headers=_as(secret)
    )
    assert r.status_code == 403


def test_role_templated_policy_and_datacenter_limit(http: httpx.Client) -> None:
    r = http.put(
        "/v1/acl/role",
        json={
            "Name": "node-n1",
            "TemplatedPolicies": [
                {"TemplateName": "builtin/node", "TemplateVariables": {"name": "n1"}}
            ],
        },
        headers=_as(MGMT),
    )
    assert r.status_code == 200, r.text
    role = r.json()
    assert role["TemplatedPolicies"][0]["TemplateID"] == "00000000-0000-0000-0000-000000000004"
    assert http.get(f"/v1/acl/role/{role['ID']}", headers=_as(MGMT)).json() == role
    secret = _token(http, {"Roles": [{"Name": "node-n1"}]})["SecretID"]
    node = {"Node": "n1", "Address": "127.0.0.9"}
    r = http.put("/v1/catalog/register", json=node, headers=_as(secret))
    assert r.status_code == 200, r.text
    r = http.put("/v1/catalog/register", json={**node, "Node": "n2"}, headers=_as(secret))
    assert r.status_code == 403

    # Limited to another datacenter: grants nothing in this one (dc1).
    elsewhere = {**WEB, "Datacenters": ["dc2"]}
    secret = _token(http, {"TemplatedPolicies": [elsewhere]})["SecretID"]
    r = http.put(
        "/v1/agent/service/register", json={"Name": "web", "Port": 80}, headers=_as(secret)
    )
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        (
            "token",
            {"TemplatedPolicies": [{"TemplateName": "builtin/service"}]},
            "encountered token with invalid templated policy: 1 error occurred:\n\t* Invalid "
            "type. Expected: object, given: null\n\n",
        ),
        (
            "token",
            {
                "TemplatedPolicies": [
                    {"TemplateName": "builtin/service", "TemplateVariables": {"Name": "Web"}}
                ]
            },
            'encountered token with invalid templated policy: service identity "Web" has an '
            "invalid name. Only lowercase alphanumeric characters, '-' and '_' are allowed",
        ),
        (
            "token",
            {"TemplatedPolicies": [{"TemplateName": "builtin/bogus"}]},
            "templated policy with an invalid templated name: builtin/bogus for this token",
        ),
        (
            "token",
            {
                "Local": True,
                "TemplatedPolicies": [{"TemplateName": "builtin/dns", "Datacenters": ["dc1"]}],
            },
            'templated policy "builtin/dns" cannot specify a list of datacenters on a local token',
        ),
        (
            "token",
            {"TemplatedPolicies": {"TemplateName": "builtin/dns"}},
            "Token decoding failed: json: cannot unmarshal object into Go struct field "
            "ACLToken.TemplatedPolicies of type []*structs.ACLTemplatedPolicy",
        ),
        (
            "role",
            {"Name": "bad-role", "TemplatedPolicies": [{"TemplateVariables": {"name": "x"}}]},
            "templated policy is missing the template name field on this role",
        ),
        (
            "role",
            {
                "Name": "bad-role",
                "TemplatedPolicies": [
                    {"TemplateName": "builtin/api-gateway", "TemplateVariables": {}}
                ],
            },
            "encountered role with invalid templated policy: 1 error occurred:\n\t* name is "
            "required\n\n",
        ),
    ],
)
def test_bad_templated_policies_write_nothing(
    http: httpx.Client, kind: str, body: dict, message: str
) -> None:
    listing = "/v1/acl/tokens" if kind == "token" else "/v1/acl/roles"
    before = http.get(listing, headers=_as(MGMT)).json()
    r = http.put(f"/v1/acl/{kind}", json=body, headers=_as(MGMT))
    assert (r.status_code, r.text) == (400, message)
    assert http.get(listing, headers=_as(MGMT)).json() == before


def test_acl_disabled_refusal(dev_agent: AgentProc) -> None:
    with dev_agent.client() as client:
        for method, path in (
            ("GET", "/v1/acl/templated-policies"),
            ("GET", "/v1/acl/templated-policy/name/builtin/dns"),
            ("POST", "/v1/acl/templated-policy/preview/builtin/dns"),
        ):
            r = client.request(method, path)
            assert (r.status_code, r.text) == (401, "ACL support disabled")
