"""Issue 14's endpoints as real clients use them, against real agents.

Each test replays what a third-party client's own test does (HashiCorp's Go `api` package,
py-consul): the requests it sends, in the JSON shape that client produces, and the
assertions it makes on the answers, restated here. Where the Go client decodes into a
struct, the checks are on what that decoding needs: the field names, which fields are
left out when empty (`omitempty`) and which are always there, the statuses its helpers
tell apart (`requireOK`, `requireNotFoundOrOK`) and the `X-Consul-*` headers its
`QueryMeta` is read from.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import consul
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.e2e.agentproc import AgentProc
from tests.e2e.test_acl_matrix import agent_args

MGMT = str(uuid.uuid4())
NO_TOKEN = {"X-Consul-Token": ""}

# The CA certificate the Go client's auth method tests put in a kubernetes method's Config
# (AuthMethodCreateKubernetesConfigHelper): Consul only parses it when the method is written.
K8S_CA = """-----BEGIN CERTIFICATE-----
MIIE1DCCArwCCQC2kx7TchbxAzANBgkqhkiG9w0BAQsFADAsMQswCQYDVQQGEwJV
UzELMAkGA1UECAwCV0ExEDAOBgNVBAcMB1NlYXR0bGUwHhcNMjEwMTI3MDIzNDA1
WhcNMjIwMTI3MDIzNDA1WjAsMQswCQYDVQQGEwJVUzELMAkGA1UECAwCV0ExEDAO
BgNVBAcMB1NlYXR0bGUwggIiMA0GCSqGSIb3DQEBAQUAA4ICDwAwggIKAoICAQCt
j3zRFLg2A2DcZFwoc1HvIsGzqcfvxjee/OQjKyIuXbdpbJGIahB2piNYtd49zU/5
ofRAuqIQOco3V9LfL52I7NchNBvPQOrXjbpcM3qF2qQvunVlnnaPCIf8S5hsFMaq
w2/+jnLjaUdXGJ9bold5E/bms87uRahvhUpY7MhkSDNsAen+YThpwucc9JFRmrz3
EXGtTzcpyEn9b0s6ut9mum2UVqghAQyLeW8cNx1zeg6Bi5USjOKF6CQgF7o4kZ9X
D0Nk5vB9eePs/q5N9LHkDFKVCmzAYgzcQeGZFEzNcgK7N5y+aB2xXKpH3tydpwRd
uS+g05Jvk8M8P34wteUb8tq3jZuY7UYzlINMSrPuZdFhcGjmxPjC5hl1SZy4vF1s
GAD9RsleTZ8yeC6Cfo4mba214C9CqYkC2NBw2HO53pzO/tYI844QPhjmVBJ7bb35
S052HD7m+AzbfY6w9CDH4D4mzIM4u1yRB6OlXdXTH58BhgxHdEnugLYr13QlVWRW
4nZgMFKiTY7cBscpPcVRsne/VR9VwSatp3adj+G8+WUtwQLJC2OcCFYvmHfdSOs0
B15LH/tGeJcfKViKC9ifPq5abVZByr66jTQMAdBWet03OBnmLqJs9TI4wci0MkK/
HlHYdy734rReD81LY9fCRCRFV4ZtMx2rfj7cqgKLlwIDAQABMA0GCSqGSIb3DQEB
CwUAA4ICAQB6ji6wA9ROFx8ZhLPlEnDiielSUN8LR2K8cmAjxxffJo3GxRH/zZYl
CM+DzU5VVzW6RGWuTNzcFNsxlaRx20sj5RyXLH90wFYLO2Rrs1XKWmqpfdN0Iiue
W7rYdNPV7YPjIVQVoijEt8kwx24jE9mU5ILXe4+WKPWavG+dHA1r8lQdg7wmE/8R
E/nSVtusuX0JRVdL96iy2HB37DYj+rJEE0C7fKAk51o0C4F6fOzUsWCaP/23pZNI
rA6hCq2CJeT4ObVukCIrnylrckZs8ElcZ7PvJ9bCNvma+dAxbL0uEkv0q0feLeVh
OTttNIVTUjYjr3KE6rtE1Rr35R/6HCK+zZDOkKf+TVEQsFuI4DRVEuntzjo9bgZf
fAL6G+UXpzW440BJzmzADnSthawMZFdqVrrBzpzb+B2d9VLDEoyCCFzaJyj/Gyff
kqxRFTHZJRKC/3iIRXOX64bIr1YmXHFHCBkcq7eyh1oeaTrGZ43HimaveWwcsPv/
SxTJANJHqf4BiFtVjN7LZXi3HUIRAsceEbd0TfW5be9SQ0tbDyyGYt/bXtBLGTIh
9kerr9eWDHlpHMTyP01+Ua3EacbfgrmvD9sa3s6gC4SnwlvLdubmyLwoorCs77eF
15bSOU7NsVZfwLw+M+DyNWPxI1BR/XOP+YoyTgIEChIC9eYnmlWU2Q==
-----END CERTIFICATE-----"""

K8S_CONFIG = {
    "Host": "https://203.0.113.42:8443",
    "CACert": "\n" + K8S_CA,
    "ServiceAccountJWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
}


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def acl_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProc]:
    proc = AgentProc(*agent_args(tmp_path_factory.mktemp("compat-c2"), initial_management=MGMT))
    proc.start()
    try:
        yield proc
    finally:
        proc.cleanup()


@pytest.fixture(scope="module")
def http(acl_agent: AgentProc) -> Iterator[httpx.Client]:
    with acl_agent.client() as client:
        client.headers["X-Consul-Token"] = MGMT
        yield client


@pytest.fixture(scope="module")
def pyc(acl_agent: AgentProc) -> consul.Consul:
    return consul.Consul(host=acl_agent.ip, port=acl_agent.http_port, token=MGMT)


def _meta_ok(r: httpx.Response) -> None:
    """What the Go client's parseQueryMeta needs for `LastIndex != 0` and `KnownLeader`."""
    assert int(r.headers["X-Consul-Index"]) > 0, r.headers
    assert r.headers["X-Consul-KnownLeader"] == "true"
    assert "X-Consul-LastContact" in r.headers


def _pem(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


# ---------------------------------------------------------------------- auth methods (Go)


def test_go_auth_method_list(http: httpx.Client) -> None:
    """TestAPI_AuthMethod_List: two kubernetes methods, listed by name with MaxTokenTTL as
    Go's Duration.String() and TokenLocality; a zero TTL is left out, as omitempty does."""
    for name, ttl, locality in (("test_1", "4m20s", "global"), ("test_2", "", "local")):
        # The Go client's MarshalJSON drops an empty MaxTokenTTL and other empty omitempty fields.
        body: dict[str, Any] = {
            "Name": name,
            "Type": "kubernetes",
            "Description": name.replace("_", " "),
            "TokenLocality": locality,
            "Config": K8S_CONFIG,
            "CreateIndex": 0,
            "ModifyIndex": 0,
        }
        if ttl:
            body["MaxTokenTTL"] = ttl
        r = http.put("/v1/acl/auth-method", json=body)
        assert r.status_code == 200, r.text
        created = r.json()
        assert created["Name"] == name and created["Config"] == K8S_CONFIG
        assert ("MaxTokenTTL" in created) == bool(ttl)
        assert "DisplayName" not in created

    r = http.get("/v1/acl/auth-methods")
    assert r.status_code == 200, r.text
    _meta_ok(r)
    entries = [e for e in r.json() if e["Name"] in ("test_1", "test_2")]
    assert [e["Name"] for e in entries] == ["test_1", "test_2"]
    assert entries[0]["MaxTokenTTL"] == "4m20s" and entries[0]["TokenLocality"] == "global"
    assert "MaxTokenTTL" not in entries[1] and entries[1]["TokenLocality"] == "local"
    for entry in entries:
        assert "Config" not in entry  # a list stub carries no Config
        assert entry["CreateIndex"] > 0 and entry["ModifyIndex"] == entry["CreateIndex"]

    r = http.get("/v1/acl/auth-method/test_1")
    assert r.status_code == 200 and r.json()["Config"] == K8S_CONFIG
    _meta_ok(r)
    # AuthMethodRead uses requireNotFoundOrOK: an unknown name must be a bare 404.
    assert http.get("/v1/acl/auth-method/not-there").status_code == 404

    # Kubernetes login needs the Kubernetes API: a clear refusal, no token issued.
    tokens = len(http.get("/v1/acl/tokens").json())
    bearer = jwt.encode({"sub": "system:serviceaccount:default:web"}, "k" * 32, algorithm="HS256")
    r = http.post(
        "/v1/acl/login", json={"AuthMethod": "test_1", "BearerToken": bearer}, headers=NO_TOKEN
    )
    assert r.status_code == 500 and "Kubernetes API" in r.text, r.text
    assert len(http.get("/v1/acl/tokens").json()) == tokens


def test_go_oidc_config_helper_is_refused_on_ce(http: httpx.Client) -> None:
    """OIDCAuthMethodConfig.RenderToConfig sends every key, the OIDC-only ones too; Consul
    CE's jwt method decodes Config with unknown keys refused, naming them, and writes nothing."""
    key = ec.generate_private_key(ec.SECP256R1())
    config = {
        "JWTSupportedAlgs": None,
        "BoundAudiences": None,
        "ClaimMappings": None,
        "ListClaimMappings": None,
        "OIDCDiscoveryURL": "",
        "OIDCDiscoveryCACert": "",
        "OIDCClientID": "",
        "OIDCClientSecret": "",
        "OIDCScopes": None,
        "OIDCACRValues": None,
        "AllowedRedirectURIs": None,
        "VerboseOIDCLogging": False,
        "JWKSURL": "",
        "JWKSCACert": "",
        "JWTValidationPubKeys": [_pem(key)],
        "BoundIssuer": "",
        "ExpirationLeeway": 0,
        "NotBeforeLeeway": 0,
        "ClockSkewLeeway": 0,
    }
    r = http.put("/v1/acl/auth-method", json={"Name": "oidc-keys", "Type": "jwt", "Config": config})
    assert r.status_code == 500, r.text
    assert r.text.startswith("Invalid Auth Method: error decoding config: ")
    assert "invalid keys: AllowedRedirectURIs, OIDCACRValues, OIDCClientID" in r.text
    assert http.get("/v1/acl/auth-method/oidc-keys").status_code == 404


# ---------------------------------------------------------------------- login (Go)


def test_go_login_and_logout(http: httpx.Client) -> None:
    """ACL().Login / TokenReadSelf / Logout with a jwt method, in the Go client's shapes."""
    key = ec.generate_private_key(ec.SECP256R1())
    method = {
        "Name": "go-jwt",
        "Type": "jwt",
        "MaxTokenTTL": "1h0m0s",
        "TokenLocality": "global",
        "Config": {
            "BoundAudiences": ["compat"],
            "ClaimMappings": {"first_name": "name"},
            "JWTValidationPubKeys": [_pem(key)],
            # Durations as the Go client marshals a time.Duration: integer nanoseconds.
            "ClockSkewLeeway": 0,
        },
    }
    assert http.put("/v1/acl/auth-method", json=method).status_code == 200
    rule = {
        "ID": "",
        "Description": "",
        "AuthMethod": "go-jwt",
        "Selector": 'value.name == "jeff"',
        "BindType": "service",
        "BindName": "web-${value.name}",
        "CreateIndex": 0,
        "ModifyIndex": 0,
    }
    r = http.put("/v1/acl/binding-rule", json=rule)
    assert r.status_code == 200, r.text
    created = r.json()
    assert uuid.UUID(created["ID"]) and "BindVars" not in created
    assert created["Selector"] == rule["Selector"]

    now = int(time.time())
    claims = {"aud": "compat", "iat": now, "exp": now + 120, "first_name": "jeff"}
    bearer = jwt.encode(claims, key, algorithm="ES256")
    login = {"AuthMethod": "go-jwt", "BearerToken": bearer, "Meta": {"pod": "web-0"}}
    r = http.post("/v1/acl/login", json=login, headers=NO_TOKEN)
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["AuthMethod"] == "go-jwt"
    assert token["ServiceIdentities"] == [{"ServiceName": "web-jeff"}]
    assert token["Local"] is False  # TokenLocality global
    assert token["Description"] == 'token created via login: {"pod":"web-0"}'
    assert token["ExpirationTime"] > token["CreateTime"]
    for absent in ("Policies", "Roles", "NodeIdentities", "TemplatedPolicies", "ExpirationTTL"):
        assert absent not in token, absent  # omitempty in Consul's ACLToken

    # TokenReadSelf as the new token: the same token, with the read meta Consul sets.
    r = http.get("/v1/acl/token/self", headers={"X-Consul-Token": token["SecretID"]})
    assert r.status_code == 200, r.text
    _meta_ok(r)
    assert r.json() == token

    # A JWT that the selector does not bind is Consul's bare 403.
    other = jwt.encode({**claims, "first_name": "bob"}, key, algorithm="ES256")
    r = http.post("/v1/acl/login", json={**login, "BearerToken": other}, headers=NO_TOKEN)
    assert (r.status_code, r.text) == (403, "Permission denied")

    r = http.post("/v1/acl/logout", headers={"X-Consul-Token": token["SecretID"]})
    assert (r.status_code, r.json()) == (200, True)
    r = http.post("/v1/acl/logout", headers={"X-Consul-Token": token["SecretID"]})
    assert (r.status_code, r.text) == (403, "ACL not found")
    r = http.post("/v1/acl/logout", headers={"X-Consul-Token": MGMT})
    assert r.status_code == 403 and "token wasn't created via login" in r.text


def test_bodies_refused_in_consuls_words(http: httpx.Client) -> None:
    """Consul decodes these bodies with lib.DecodeJSON: a blank one is io.EOF and JSON that
    does not parse is refused, both as 400s that start with the endpoint's own words; nothing
    is written."""
    before = (
        len(http.get("/v1/acl/auth-methods").json()),
        len(http.get("/v1/acl/binding-rules").json()),
        len(http.get("/v1/acl/tokens").json()),
    )
    for method, path, prefix in (
        ("PUT", "/v1/acl/auth-method", "AuthMethod decoding failed: "),
        ("PUT", "/v1/acl/auth-method/go-jwt", "AuthMethod decoding failed: "),
        ("PUT", "/v1/acl/binding-rule", "BindingRule decoding failed: "),
        ("POST", "/v1/acl/login", "Failed to decode request body: "),
    ):
        r = http.request(method, path, headers=NO_TOKEN if "login" in path else None)
        assert (r.status_code, r.text) == (400, f"{prefix}EOF"), (path, r.text)
        r = http.request(method, path, content=b'{"Name": ')
        assert (r.status_code, r.text) == (400, f"{prefix}unexpected EOF"), (path, r.text)
        r = http.request(method, path, content=b'{"Name" "x"}')
        assert (r.status_code, r.text) == (
            400,
            f"{prefix}invalid character '\"' after object key",
        ), (path, r.text)
        # JSON null is no EOF: Go leaves the struct at its zero value and goes on.
        r = http.request(
            method, path, content=b"null", headers=NO_TOKEN if "login" in path else None
        )
        assert r.status_code in (403, 500) and not r.text.endswith("EOF"), (path, r.text)
    # json.Decoder reads the first value and never looks further: trailing bytes are ignored.
    r = http.put(
        "/v1/acl/binding-rule",
        content=b'{"AuthMethod": "go-jwt", "BindType": "role", "BindName": "r"} trailing',
    )
    assert r.status_code == 200, r.text
    assert http.delete(f"/v1/acl/binding-rule/{r.json()['ID']}").json() is True
    after = (
        len(http.get("/v1/acl/auth-methods").json()),
        len(http.get("/v1/acl/binding-rules").json()),
        len(http.get("/v1/acl/tokens").json()),
    )
    assert after == before


# ---------------------------------------------------------------------- py-consul ACL


def test_py_consul_auth_methods_and_binding_rules(pyc: consul.Consul) -> None:
    created = pyc.acl.auth_method.create(
        "py-k8s",
        "kubernetes",
        display_name="Kube",
        description="from py-consul",
        config=K8S_CONFIG,
        max_token_ttl="10m",
        token_locality="global",
    )
    assert created["MaxTokenTTL"] == "10m0s" and created["DisplayName"] == "Kube"
    assert pyc.acl.auth_method.read("py-k8s")["Description"] == "from py-consul"
    assert pyc.acl.auth_method.read("nope") is None  # a 404 is None for py-consul

    updated = pyc.acl.auth_method.update(
        "py-k8s", "kubernetes", description="changed", config=K8S_CONFIG
    )
    # An update replaces the record: what it leaves out is gone (and omitted, being empty).
    assert updated["Description"] == "changed"
    assert "MaxTokenTTL" not in updated and "TokenLocality" not in updated
    names = [m["Name"] for m in pyc.acl.auth_method.list()]
    assert "py-k8s" in names

    rule = pyc.acl.binding_rule.create(
        "py-k8s",
        "service",
        "svc-${serviceaccount.name}",
        description="sa rule",
        selector="serviceaccount.namespace==default",
    )
    templated = pyc.acl.binding_rule.create(
        "py-k8s",
        "templated-policy",
        "builtin/service",
        bind_vars={"Name": "api-${serviceaccount.name}"},
    )
    # Consul's ACLTemplatedPolicyVariables names its field in lower case.
    assert templated["BindVars"] == {"name": "api-${serviceaccount.name}"}
    assert "BindVars" not in rule
    assert pyc.acl.binding_rule.read(rule["ID"]) == rule
    listed = pyc.acl.binding_rule.list(auth_method="py-k8s")
    assert {r["ID"] for r in listed} == {rule["ID"], templated["ID"]}
    assert pyc.acl.binding_rule.list(auth_method="not-a-method") == []

    changed = pyc.acl.binding_rule.update(rule["ID"], "py-k8s", "node", "n-${serviceaccount.name}")
    assert (changed["ID"], changed["BindType"], changed["Description"]) == (rule["ID"], "node", "")
    assert changed["CreateIndex"] == rule["CreateIndex"] < changed["ModifyIndex"]

    assert pyc.acl.binding_rule.delete(rule["ID"]) is True
    assert pyc.acl.binding_rule.read(rule["ID"]) is None
    # Deleting the method takes its binding rules with it.
    assert pyc.acl.auth_method.delete("py-k8s") is True
    assert pyc.acl.binding_rule.read(templated["ID"]) is None
    assert pyc.acl.auth_method.read("py-k8s") is None

    with pytest.raises(consul.ACLPermissionDenied):
        pyc.acl.auth_method.list(token="anonymous")
    with pytest.raises(consul.ACLPermissionDenied):
        pyc.acl.login("no-such-method", "x.y.z")
    with pytest.raises(consul.ACLPermissionDenied):
        pyc.acl.logout("anonymous")


def test_py_consul_jwt_method_crud(pyc: consul.Consul) -> None:
    """py-consul's own auth method CRUD: an offline jwt method with a static RSA key."""
    config = {
        "JWTValidationPubKeys": [_pem(rsa.generate_private_key(65537, 2048))],
        "BoundIssuer": "test-issuer",
    }
    method = pyc.acl.auth_method.create(
        name="test-jwt", method_type="jwt", description="a test auth method", config=config
    )
    assert (method["Name"], method["Type"]) == ("test-jwt", "jwt")
    assert pyc.acl.auth_method.read(name="test-jwt")["Config"]["BoundIssuer"] == "test-issuer"
    assert "test-jwt" in [m["Name"] for m in pyc.acl.auth_method.list()]
    updated = pyc.acl.auth_method.update(
        name="test-jwt", method_type="jwt", description="updated", config=config
    )
    assert updated["Description"] == "updated"
    assert pyc.acl.auth_method.delete(name="test-jwt") is True
    assert pyc.acl.auth_method.read(name="test-jwt") is None


def test_py_consul_templated_policies(pyc: consul.Consul) -> None:
    """py-consul's own templated policy tests, restated, plus its token and role helpers."""
    preview = pyc.acl.templated_policy.preview(
        name="builtin/service", template_variables={"Name": "my-service"}
    )
    assert preview["ID"] and preview["Name"].startswith("synthetic-policy-")
    assert 'service "my-service"' in preview["Rules"]
    read = pyc.acl.templated_policy.read(name="builtin/service")
    assert read["TemplateName"] == "builtin/service" and "Template" in read
    listed = pyc.acl.templated_policy.list()
    assert listed["builtin/service"]["TemplateName"] == "builtin/service"
    with pytest.raises(consul.ConsulException):
        pyc.acl.templated_policy.read(name="builtin/not-a-template")

    token = pyc.acl.token.create(
        templated_policies=[{"builtin/service": {"Name": "web"}}, {"builtin/dns": {}}]
    )
    entries = token["TemplatedPolicies"]
    assert [e["TemplateName"] for e in entries] == ["builtin/service", "builtin/dns"]
    assert entries[0]["TemplateVariables"] == {"name": "web"}
    assert "Datacenters" not in entries[0]  # omitempty
    assert "Policies" not in token and "ServiceIdentities" not in token
    role = pyc.acl.role.create("compat-node", templated_policies=[{"builtin/node": {"Name": "n1"}}])
    assert role["TemplatedPolicies"][0]["TemplateVariables"] == {"name": "n1"}


# ---------------------------------------------------------------------- operator, host


def test_go_operator_usage(dev_agent: AgentProc) -> None:
    """TestAPI_OperatorUsage: four registrations on one node, counted as Consul CE counts."""
    c = dev_agent.client()
    services = [
        {"ID": "redis1", "Service": "redis", "Port": 8000},
        {"ID": "redis2", "Service": "redis", "Port": 8001},
        {
            "Kind": "connect-proxy",
            "ID": "proxy1",
            "Service": "proxy",
            "Port": 9000,
            "Proxy": {"DestinationServiceName": "foo"},
        },
        {"ID": "web-native", "Service": "web", "Port": 8002, "Connect": {"Native": True}},
    ]
    for svc in services:
        reg = {"Datacenter": "dc1", "Node": "foobar", "Address": "10.1.10.10", "Service": svc}
        assert c.put("/v1/catalog/register", json=reg).status_code == 200
    r = c.get("/v1/operator/usage")
    assert r.status_code == 200, r.text
    _meta_ok(r)
    usage = r.json()["Usage"]["dc1"]
    assert (usage["Services"], usage["ServiceInstances"]) == (4, 5)  # with the consul service
    assert usage["ConnectServiceInstances"] == {
        "api-gateway": 0,
        "connect-native": 1,
        "connect-proxy": 1,
        "ingress-gateway": 0,
        "mesh-gateway": 0,
        "terminating-gateway": 0,
    }
    assert usage["BillableServiceInstances"] == 3

    py = consul.Consul(host=dev_agent.ip, port=dev_agent.http_port)
    assert py.operator.usage()["Usage"]["dc1"]["Services"] == 4


def test_go_agent_host(acl_agent: AgentProc, http: httpx.Client) -> None:
    """TestAPI_AgentHost retries until CollectionTime is there; it needs operator:read."""
    r = http.get("/v1/agent/host")
    assert r.status_code == 200, r.text
    host = r.json()
    assert isinstance(host["CollectionTime"], int) and host["CollectionTime"] > 0
    for part in ("Memory", "CPU", "Host", "Disk"):
        assert host[part], part
    assert host["Host"]["os"] == "linux"
    r = http.get("/v1/agent/host", headers=NO_TOKEN)
    assert r.status_code == 403 and "operator:read" in r.text


# ---------------------------------------------------------------------- prepared queries


def _go_definition(name: str) -> dict[str, Any]:
    """A PreparedQueryDefinition as the Go client marshals it: every non-omitempty field."""
    return {
        "ID": "",
        "Name": name,
        "Session": "",
        "Token": "",
        "Service": {
            "Service": "redis",
            "Near": "",
            "Failover": {"NearestN": 0, "Datacenters": None, "Targets": None},
            "IgnoreCheckIDs": None,
            "OnlyPassing": False,
            "Tags": None,
            "NodeMeta": {"somekey": "somevalue"},
            "ServiceMeta": None,
            "Connect": False,
        },
        "DNS": {"TTL": ""},
        "Template": {"Type": "", "Regexp": "", "RemoveEmptyTags": False},
    }


def _decoded_like_go(got: dict, sent: dict) -> None:
    """reflect.DeepEqual of the client's struct after decoding: the fields it has must be
    equal (nulls stay nil slices and maps); fields it does not have are ignored."""
    for key, value in sent.items():
        if isinstance(value, dict):
            _decoded_like_go(got[key], value)
        else:
            assert got[key] == value, (key, got[key], value)


def test_go_prepared_query(dev_agent: AgentProc) -> None:
    """TestAPI_PreparedQuery: create, read, list, update, execute by ID and name, a failing
    check filtered and then ignored through IgnoreCheckIDs, delete."""
    c = dev_agent.client()
    reg: dict[str, Any] = {
        "Datacenter": "dc1",
        "Node": "foobar",
        "Address": "10.1.10.10",
        "TaggedAddresses": {"wan": "127.0.0.1"},
        "NodeMeta": {"somekey": "somevalue"},
        "Service": {"ID": "redis1", "Service": "redis", "Tags": ["master", "v1"], "Port": 8000},
    }
    assert c.put("/v1/catalog/register", json=reg).status_code == 200

    definition = _go_definition("test")
    r = c.post("/v1/query", json=definition)
    assert r.status_code == 200, r.text
    definition["ID"] = r.json()["ID"]
    for path in (f"/v1/query/{definition['ID']}", "/v1/query"):
        r = c.get(path)
        assert r.status_code == 200, r.text
        _meta_ok(r)
        (got,) = r.json()
        _decoded_like_go(got, definition)

    definition["Name"] = "my-query"
    assert c.put(f"/v1/query/{definition['ID']}", json=definition).status_code == 200
    _decoded_like_go(c.get(f"/v1/query/{definition['ID']}").json()[0], definition)

    for ref in (definition["ID"], "my-query"):
        r = c.get(f"/v1/query/{ref}/execute")
        assert r.status_code == 200, r.text
        assert "X-Consul-Index" in r.headers
        result = r.json()
        assert [n["Node"]["Node"] for n in result["Nodes"]] == ["foobar"]
        assert result["Nodes"][0]["Node"]["TaggedAddresses"]["wan"] == "127.0.0.1"
        assert result["Nodes"][0]["Node"]["Datacenter"] == "dc1"
        assert (result["Service"], result["Datacenter"], result["Failovers"]) == ("redis", "dc1", 0)
        assert result["DNS"] == {"TTL": ""}

    failing = {
        **reg,
        "Node": "failingnode",
        "Check": {
            "Node": "failingnode",
            "ServiceID": "redis1",
            "ServiceName": "redis",
            "Name": "failingcheck",
            "Status": "critical",
        },
    }
    assert c.put("/v1/catalog/register", json=failing).status_code == 200
    nodes = c.get(f"/v1/query/{definition['ID']}/execute").json()["Nodes"]
    assert [n["Node"]["Node"] for n in nodes] == ["foobar"]

    definition["Service"]["IgnoreCheckIDs"] = ["failingcheck"]
    assert c.put(f"/v1/query/{definition['ID']}", json=definition).status_code == 200
    nodes = c.get(f"/v1/query/{definition['ID']}/execute").json()["Nodes"]
    assert sorted(n["Node"]["Node"] for n in nodes) == ["failingnode", "foobar"]

    assert c.delete(f"/v1/query/{definition['ID']}").status_code == 200
    assert c.get("/v1/query").json() == []
    r = c.get(f"/v1/query/{definition['ID']}")
    assert (r.status_code, r.text) == (404, "Query not found")

    # py-consul's calls on the same endpoints.
    py = consul.Consul(host=dev_agent.ip, port=dev_agent.http_port)
    created = py.query.create("redis", name="py-q")
    assert py.query.get(created["ID"])[0]["Name"] == "py-q"
    assert [n["Node"]["Node"] for n in py.query.execute("py-q")["Nodes"]] == ["foobar"]
    assert py.query.explain("py-q")["Query"]["Service"]["Service"] == "redis"
    assert py.query.delete(created["ID"]) is True
    assert py.query.get(created["ID"]) is None


# ---------------------------------------------------------------------- debug


def test_go_debug_profiles(dev_agent: AgentProc) -> None:
    """TestAPI_DebugHeap/Profile/Goroutine/Trace on an agent with enable_debug (-dev has it):
    each is a 200 with a non-empty body, read raw."""
    c = dev_agent.client(timeout=30)
    for path, params in (
        ("/debug/pprof/heap", {}),
        ("/debug/pprof/profile", {"seconds": "1"}),
        ("/debug/pprof/goroutine", {}),
        ("/debug/pprof/trace", {"seconds": "1"}),
    ):
        r = c.get(path, params=params)
        assert r.status_code == 200, (path, r.status_code, r.text)
        assert r.content, path


# ---------------------------------------------------------------------- internal


def test_go_assign_service_virtual_ip(dev_agent: AgentProc) -> None:
    """TestAPI_Internal_AssignServiceVirtualIP: resolvers one, two, three get manual VIPs moved
    between them. The Go client parses the reply's query meta and fails without it."""
    c = dev_agent.client()
    for name in ("one", "two", "three"):
        r = c.put("/v1/config", json={"Kind": "service-resolver", "Name": name})
        assert r.status_code == 200 and r.json() is True
    steps = [
        ("missing", ["1.1.1.1", "2.2.2.2"], False, []),
        ("one", ["1.1.1.1", "2.2.2.2", "3.3.3.3"], True, []),
        ("two", ["2.2.2.2"], True, ["one"]),
        ("three", ["3.3.3.3"], True, ["one"]),
        ("missing", ["1.1.1.1", "2.2.2.2", "3.3.3.3"], False, []),
        ("one", ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"], True, ["two", "three"]),
    ]
    for service, vips, found, unassigned_from in steps:
        r = c.put("/v1/internal/service-virtual-ip", json={"Service": service, "ManualVIPs": vips})
        assert r.status_code == 200, r.text
        assert int(r.headers["X-Consul-LastContact"]) >= 0
        assert int(r.headers["X-Consul-Index"]) > 0
        reply = r.json()
        assert reply["Found"] is found, (service, reply)
        names = [u["ServiceName"]["Name"] for u in reply["UnassignedFrom"] or []]
        assert sorted(names) == sorted(unassigned_from), (service, reply)
        assert all(u["Peer"] == "" for u in reply["UnassignedFrom"] or [])
