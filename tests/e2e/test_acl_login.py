"""Login with auth methods end to end: a real agent with ACLs on (`default_policy = deny`).

A `jwt` auth method trusts a key the test makes; a binding rule binds a service identity
named from a mapped claim. A JWT signed by that key logs in and gets a token whose
permissions are enforced (it registers its service, not another); a JWT signed by another
key, an expired one and one with `alg: none` are refused with nothing written; logout deletes
the token. A second method reads its keys from a JWKS served by a local HTTP server. Then the
records' CRUD and bad input, with Consul's messages and statuses.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.e2e.agentproc import AgentProc
from tests.e2e.test_acl_matrix import agent_args

MGMT = str(uuid.uuid4())
ISSUER = "https://issuer.test"
AUDIENCE = "gitkv-test"


def _pem(key: Any) -> str:
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


def _claims(**extra: Any) -> dict:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "iat": now, "exp": now + 300}
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


class JWKSServer:
    """A JWKS document on 127.0.0.1, counting the fetches."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.fetches += 1
                body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Env:
    def __init__(self, agent: AgentProc) -> None:
        self.agent = agent
        self.http = agent.client()
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.other = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def mgmt(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"X-Consul-Token": MGMT}, **kw)

    def with_token(self, secret: str, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"X-Consul-Token": secret}, **kw)

    def login(self, method: str, bearer: str, **extra: Any) -> httpx.Response:
        return self.http.post(
            "/v1/acl/login", json={"AuthMethod": method, "BearerToken": bearer, **extra}
        )

    def token_count(self) -> int:
        r = self.mgmt("GET", "/v1/acl/tokens")
        assert r.status_code == 200, r.text
        return len(r.json())


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("acl-login")
    agent = AgentProc(*agent_args(tmp, initial_management=MGMT)).start()
    try:
        setup = Env(agent)
        r = setup.mgmt(
            "PUT",
            "/v1/acl/auth-method",
            json={
                "Name": "test-jwt",
                "Type": "jwt",
                "MaxTokenTTL": "10m",
                "Config": {
                    "JWTValidationPubKeys": [_pem(setup.rsa), _pem(setup.ec)],
                    "JWTSupportedAlgs": ["RS256", "ES256"],
                    "BoundIssuer": ISSUER,
                    "BoundAudiences": [AUDIENCE],
                    "ClaimMappings": {"service": "service", "team": "team"},
                    "ListClaimMappings": {"groups": "groups"},
                },
            },
        )
        assert r.status_code == 200, r.text
        r = setup.mgmt(
            "PUT",
            "/v1/acl/binding-rule",
            json={
                "AuthMethod": "test-jwt",
                "Selector": 'value.team == "payments" and "deployers" in list.groups',
                "BindType": "service",
                "BindName": "${value.service}",
            },
        )
        assert r.status_code == 200, r.text
        yield setup
    finally:
        setup.http.close()
        agent.cleanup()


def test_login_binds_a_service_identity_that_is_enforced(env: Env) -> None:
    before = env.token_count()
    bearer = jwt.encode(
        _claims(service="Billing", team="payments", groups=["deployers", "x"]),
        env.rsa,
        algorithm="RS256",
    )
    r = env.login("test-jwt", bearer, Meta={"pod": "billing-1"})
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["AuthMethod"] == "test-jwt"
    assert token["ServiceIdentities"] == [{"ServiceName": "billing"}]  # lower-cased
    assert token["Local"] is True
    assert token["Description"] == 'token created via login: {"pod":"billing-1"}'
    assert "ExpirationTime" in token and token["SecretID"] != "<hidden>"
    assert env.token_count() == before + 1
    listed = env.mgmt("GET", "/v1/acl/tokens", params={"authmethod": "test-jwt"}).json()
    assert [t["AccessorID"] for t in listed] == [token["AccessorID"]]

    secret = token["SecretID"]
    own = {"Name": "billing", "Port": 8080}
    r = env.with_token(secret, "PUT", "/v1/agent/service/register", json=own)
    assert r.status_code == 200, r.text
    other = {"Name": "web", "Port": 80}
    r = env.with_token(secret, "PUT", "/v1/agent/service/register", json=other)
    assert r.status_code == 403 and "Permission denied" in r.text, r.text
    r = env.with_token(secret, "PUT", "/v1/kv/x", content=b"v")
    assert r.status_code == 403

    # Logout deletes it; the secret is then unknown; a second logout is refused.
    r = env.with_token(secret, "POST", "/v1/acl/logout")
    assert r.status_code == 200 and r.json() is True, r.text
    assert env.with_token(secret, "GET", "/v1/acl/token/self").status_code == 404
    r = env.with_token(secret, "POST", "/v1/acl/logout")
    assert (r.status_code, r.text) == (403, "ACL not found")
    assert env.token_count() == before


def test_es256_key_logs_in(env: Env) -> None:
    bearer = jwt.encode(
        _claims(service="ledger", team="payments", groups="deployers"), env.ec, algorithm="ES256"
    )
    r = env.login("test-jwt", bearer)
    assert r.status_code == 200, r.text
    assert r.json()["ServiceIdentities"] == [{"ServiceName": "ledger"}]
    assert r.json()["Description"] == "token created via login"
    assert env.with_token(r.json()["SecretID"], "POST", "/v1/acl/logout").json() is True


@pytest.mark.parametrize(
    "case",
    ["other-key", "expired", "alg-none", "future-nbf", "wrong-issuer", "wrong-audience", "garbage"],
)
def test_bad_jwts_are_refused_and_write_nothing(env: Env, case: str) -> None:
    good = {"service": "billing", "team": "payments", "groups": ["deployers"]}
    now = int(time.time())
    if case == "other-key":
        bearer = jwt.encode(_claims(**good), env.other, algorithm="RS256")
        expected = "no known key successfully validated the token signature"
    elif case == "expired":
        bearer = jwt.encode(
            _claims(**good, iat=now - 3600, exp=now - 600), env.rsa, algorithm="RS256"
        )
        expected = "token is expired (exp)"
    elif case == "alg-none":
        bearer = jwt.encode(_claims(**good), None, algorithm="none")
        expected = 'signing algorithm "none" is not allowed'
    elif case == "future-nbf":
        bearer = jwt.encode(_claims(**good, nbf=now + 3600), env.rsa, algorithm="RS256")
        expected = "token not valid yet (nbf)"
    elif case == "wrong-issuer":
        bearer = jwt.encode(_claims(**good, iss="https://evil"), env.rsa, algorithm="RS256")
        expected = "invalid issuer claim (iss)"
    elif case == "wrong-audience":
        bearer = jwt.encode(_claims(**good, aud="other"), env.rsa, algorithm="RS256")
        expected = "aud claim does not match any bound audience"
    else:
        bearer = "not.a.jwt"
        expected = "error parsing token"
    before = env.token_count()
    r = env.login("test-jwt", bearer)
    assert r.status_code == 500 and expected in r.text, (r.status_code, r.text)
    assert env.token_count() == before


def test_no_matching_rule_is_permission_denied(env: Env) -> None:
    before = env.token_count()
    bearer = jwt.encode(
        _claims(service="billing", team="marketing", groups=["deployers"]),
        env.rsa,
        algorithm="RS256",
    )
    r = env.login("test-jwt", bearer)
    assert (r.status_code, r.text) == (403, "Permission denied")
    r = env.login("no-such-method", bearer)
    assert (r.status_code, r.text) == (403, 'ACL not found: auth method "no-such-method" not found')
    huge = "a" * 40_000
    r = env.login("test-jwt", huge)
    assert r.status_code == 400 and "larger than" in r.text
    r = env.http.post("/v1/acl/login", content=b'{"AuthMethod": 5}')
    assert r.status_code == 400 and r.text.startswith("Failed to decode request body: ")
    assert env.token_count() == before


def test_logout_of_a_token_not_made_by_login(env: Env) -> None:
    r = env.mgmt("POST", "/v1/acl/logout")
    assert (r.status_code, r.text) == (403, "Permission denied: token wasn't created via login")
    r = env.http.post("/v1/acl/logout")
    assert (r.status_code, r.text) == (403, "ACL not found")


def test_jwks_url_method(env: Env) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    server = JWKSServer({"keys": [jwk]})
    try:
        r = env.mgmt(
            "PUT",
            "/v1/acl/auth-method",
            json={
                "Name": "jwks",
                "Type": "jwt",
                "TokenLocality": "global",
                "Config": {"JWKSURL": server.url, "ClaimMappings": {"node": "node"}},
            },
        )
        assert r.status_code == 200, r.text
        assert server.fetches == 1  # checked on write, as Consul does
        r = env.mgmt(
            "PUT",
            "/v1/acl/binding-rule",
            json={"AuthMethod": "jwks", "BindType": "node", "BindName": "${value.node}"},
        )
        assert r.status_code == 200, r.text
        now = int(time.time())
        claims = {"node": "db-1", "iat": now, "exp": now + 60}
        bearer = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
        r = env.login("jwks", bearer)
        assert r.status_code == 200, r.text
        token = r.json()
        assert token["NodeIdentities"] == [{"NodeName": "db-1", "Datacenter": "dc1"}]
        assert token["Local"] is False and "ExpirationTime" not in token
        fetched = server.fetches
        r = env.login("jwks", jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"}))
        assert r.status_code == 200 and server.fetches == fetched  # the key set is kept
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        r = env.login("jwks", jwt.encode(claims, other, algorithm="RS256"))
        assert r.status_code == 500 and "failed to verify id token signature" in r.text

        # Deleting the method deletes its rules and the tokens it made.
        assert env.mgmt("DELETE", "/v1/acl/auth-method/jwks").json() is True
        assert env.mgmt("GET", "/v1/acl/binding-rules", params={"authmethod": "jwks"}).json() == []
        r = env.with_token(token["SecretID"], "GET", "/v1/acl/token/self")
        assert (r.status_code, r.text) == (404, "Supplied token does not exist")
    finally:
        server.close()
    r = env.mgmt(
        "PUT",
        "/v1/acl/auth-method",
        json={"Name": "down", "Type": "jwt", "Config": {"JWKSURL": server.url}},
    )
    assert r.status_code == 500 and "Invalid Auth Method: error checking JWKSURL" in r.text


def test_auth_method_crud_and_bad_input(env: Env) -> None:
    r = env.mgmt("GET", "/v1/acl/auth-method/test-jwt")
    assert r.status_code == 200, r.text
    method = r.json()
    assert list(method)[:3] == ["MaxTokenTTL", "Name", "Type"]
    assert method["MaxTokenTTL"] == "10m0s"
    stubs = env.mgmt("GET", "/v1/acl/auth-methods").json()
    assert {"Name": "test-jwt", "Type": "jwt"}.items() <= stubs[0].items()
    assert "Config" not in stubs[0]
    assert env.mgmt("GET", "/v1/acl/auth-method/none").status_code == 404
    assert env.http.get("/v1/acl/auth-methods").status_code == 403

    bad: list[tuple[dict, int, str]] = [
        ({"Type": "jwt"}, 500, "Invalid Auth Method: no Name is set"),
        ({"Name": "a b", "Type": "jwt"}, 500, "Invalid Auth Method: invalid Name."),
        ({"Name": "x", "Type": "ldap"}, 500, "Type should be one of: [jwt kubernetes]"),
        ({"Name": "test-jwt", "Type": "kubernetes"}, 500, "Type field of an Auth Method is"),
        ({"Name": "x", "Type": "jwt", "MaxTokenTTL": "48h"}, 500, "cannot be more than 24h0m0s"),
        ({"Name": "x", "Type": "jwt", "MaxTokenTTL": "5s"}, 500, "cannot be less than 1m0s"),
        ({"Name": "x", "Type": "jwt", "MaxTokenTTL": "abc"}, 400, "AuthMethod decoding failed"),
        ({"Name": "x", "Type": "jwt", "TokenLocality": "mars"}, 500, "TokenLocality should be"),
        ({"Name": "x", "Type": "jwt", "Config": {}}, 500, "exactly one of"),
        (
            {"Name": "x", "Type": "jwt", "Config": {"JWTValidationPubKeys": ["nope"]}},
            500,
            "error parsing public key JWTValidationPubKeys[0]",
        ),
        (
            {"Name": "x", "Type": "jwt", "Config": {"JWKSURL": "http://h", "Bogus": 1}},
            500,
            "'' has invalid keys: Bogus",
        ),
        (
            {"Name": "x", "Type": "jwt", "Config": {"OIDCDiscoveryURL": "https://idp"}},
            500,
            "OIDC discovery is not supported",
        ),
        ({"Name": "x", "Type": "kubernetes", "Config": {}}, 500, "Config.Host is required"),
        ({"Name": "x", "Config": []}, 400, "AuthMethod decoding failed: json: cannot unmarshal"),
    ]
    before = env.mgmt("GET", "/v1/acl/auth-methods").json()
    for body, status, text in bad:
        r = env.mgmt("PUT", "/v1/acl/auth-method", json=body)
        assert r.status_code == status and text in r.text, (body, r.status_code, r.text)
    r = env.mgmt("PUT", "/v1/acl/auth-method/y", json={"Name": "z", "Type": "jwt"})
    assert (r.status_code, r.text) == (400, "AuthMethod Name in URL and payload do not match")
    assert env.mgmt("GET", "/v1/acl/auth-methods").json() == before


def test_binding_rule_crud_and_bad_input(env: Env) -> None:
    rules = env.mgmt("GET", "/v1/acl/binding-rules").json()
    assert [r["AuthMethod"] for r in rules] == ["test-jwt"]
    rule = rules[0]
    got = env.mgmt("GET", f"/v1/acl/binding-rule/{rule['ID']}").json()
    assert got == rule
    r = env.mgmt(
        "PUT", f"/v1/acl/binding-rule/{rule['ID']}", json={**rule, "Description": "updated"}
    )
    assert r.status_code == 200 and r.json()["Description"] == "updated", r.text
    assert r.json()["CreateIndex"] == rule["CreateIndex"]

    base = {"AuthMethod": "test-jwt", "BindType": "service", "BindName": "svc"}
    bad: list[tuple[dict, str]] = [
        ({**base, "AuthMethod": ""}, "Invalid Binding Rule: no AuthMethod is set"),
        ({**base, "AuthMethod": "nope"}, 'cannot find auth method with name "nope"'),
        ({**base, "BindType": ""}, "Invalid Binding Rule: no BindType is set"),
        ({**base, "BindName": ""}, "Invalid Binding Rule: no BindName is set"),
        ({**base, "BindType": "group"}, 'Invalid Binding Rule: unknown BindType "group"'),
        ({**base, "BindName": "${value.nope}"}, "unknown variable accessed: value.nope"),
        ({**base, "BindName": "Bad Name!"}, "invalid bind name"),
        ({**base, "Selector": "foo == bar"}, 'Selector "foo" is not valid'),
        ({**base, "Selector": "value.team =="}, "Selector is invalid"),
        (
            {**base, "BindType": "templated-policy", "BindName": "builtin/nope"},
            "does not match existing template name",
        ),
        (
            {**base, "BindType": "templated-policy", "BindName": "builtin/service"},
            "Invalid type. Expected: object, given: null",
        ),
        ({**base, "ID": "not-a-uuid"}, "Binding Rule ID invalid UUID"),
    ]
    for body, text in bad:
        path = f"/v1/acl/binding-rule/{body['ID']}" if "ID" in body else "/v1/acl/binding-rule"
        r = env.mgmt("PUT", path, json=body)
        assert r.status_code == 500 and text in r.text, (body, r.status_code, r.text)
    r = env.mgmt("PUT", "/v1/acl/binding-rule", json={**base, "ID": str(uuid.uuid4())})
    assert (r.status_code, r.text) == (400, "BindingRule ID in URL and payload do not match")
    templated = {
        **base,
        "BindType": "templated-policy",
        "BindName": "builtin/service",
        "BindVars": {"Name": "${value.service}"},
    }
    r = env.mgmt("PUT", "/v1/acl/binding-rule", json=templated)
    assert r.status_code == 200 and r.json()["BindVars"] == {"name": "${value.service}"}, r.text
    assert env.mgmt("DELETE", f"/v1/acl/binding-rule/{r.json()['ID']}").json() is True
    assert env.mgmt("GET", f"/v1/acl/binding-rule/{r.json()['ID']}").status_code == 404
    assert [r["ID"] for r in env.mgmt("GET", "/v1/acl/binding-rules").json()] == [rule["ID"]]


def test_templated_policy_binding_is_enforced(env: Env) -> None:
    r = env.mgmt(
        "PUT",
        "/v1/acl/auth-method",
        json={
            "Name": "tpl-jwt",
            "Type": "jwt",
            "Config": {
                "JWTValidationPubKeys": [_pem(env.rsa)],
                "BoundAudiences": [AUDIENCE],
                "ClaimMappings": {"service": "service"},
            },
        },
    )
    assert r.status_code == 200, r.text
    r = env.mgmt(
        "PUT",
        "/v1/acl/binding-rule",
        json={
            "AuthMethod": "tpl-jwt",
            "BindType": "templated-policy",
            "BindName": "builtin/service",
            "BindVars": {"Name": "${value.service}"},
        },
    )
    assert r.status_code == 200, r.text
    r = env.login("tpl-jwt", jwt.encode(_claims(service="Cart"), env.rsa, algorithm="RS256"))
    assert r.status_code == 200, r.text
    token = r.json()
    assert [(t["TemplateName"], t["TemplateVariables"]) for t in token["TemplatedPolicies"]] == [
        ("builtin/service", {"name": "cart"})
    ]
    secret = token["SecretID"]
    cart = {"Name": "cart", "Port": 9000}
    r = env.with_token(secret, "PUT", "/v1/agent/service/register", json=cart)
    assert r.status_code == 200, r.text
    r = env.with_token(secret, "PUT", "/v1/agent/service/register", json={"Name": "web"})
    assert r.status_code == 403, r.text
    assert env.mgmt("DELETE", "/v1/acl/auth-method/tpl-jwt").json() is True
    assert env.with_token(secret, "GET", "/v1/acl/token/self").status_code == 404


def _ca_pem() -> str:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_kubernetes_method_is_a_record_whose_login_needs_the_kubernetes_api(env: Env) -> None:
    sa_jwt = jwt.encode({"sub": "system:serviceaccount:default:consul"}, env.rsa, "RS256")
    config = {"Host": "https://127.0.0.1:6443", "CACert": _ca_pem(), "ServiceAccountJWT": sa_jwt}
    for broken, text in (
        ({**config, "CACert": "junk"}, "error parsing kubernetes ca cert"),
        ({**config, "ServiceAccountJWT": "junk"}, "Config.ServiceAccountJWT is not a valid JWT"),
        ({k: v for k, v in config.items() if k != "Host"}, "Config.Host is required"),
    ):
        body = {"Name": "k8s", "Type": "kubernetes", "Config": broken}
        r = env.mgmt("PUT", "/v1/acl/auth-method", json=body)
        assert r.status_code == 500 and text in r.text, r.text
    r = env.mgmt(
        "PUT", "/v1/acl/auth-method", json={"Name": "k8s", "Type": "kubernetes", "Config": config}
    )
    assert r.status_code == 200, r.text
    rule = {
        "AuthMethod": "k8s",
        "Selector": "serviceaccount.namespace == default",
        "BindType": "service",
        "BindName": "${serviceaccount.name}",
    }
    r = env.mgmt("PUT", "/v1/acl/binding-rule", json=rule)
    assert r.status_code == 200, r.text
    before = env.token_count()
    r = env.login("k8s", sa_jwt)
    assert r.status_code == 500 and r.text.startswith("lookup failed: "), r.text
    assert "TokenReview" in r.text
    r = env.login("k8s", "garbage")
    assert r.status_code == 500 and "failed to parse and validate JWT" in r.text
    assert env.token_count() == before
    assert env.mgmt("DELETE", "/v1/acl/auth-method/k8s").json() is True
