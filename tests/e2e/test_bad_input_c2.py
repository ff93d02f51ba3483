"""Bad input to issue 14's endpoints on a real agent: a clear status and message, and nothing
written (issue 14, "Bad input").

One server (`-bootstrap-expect=1`, ACLs on with `default_policy = deny`, coordinates off so
nothing writes in the background) with DNS on a port of its own. Every refused request is
checked three ways: its status and Consul's message; the Raft log's last index (the agent's
`/v1/agent/self` `Stats.raft.last_log_index`) unchanged; and the table it would have written
(prepared queries, ACL tokens, roles) unchanged, its `X-Consul-Index` included.

The cases: malformed prepared-query definitions, templates with bad regexps and bad HIL,
execute with bad parameters; JWTs signed by another key, expired, with a future `nbf`, an
unknown `alg`, `alg: none`, HS256 keyed with the RSA public key, claims Go cannot decode,
oversized claims and an oversized bearer token, so no token is issued; templated-policy
previews, tokens and roles with bad TemplatedPolicies; and `.query.` DNS names that are
malformed, oversized or name nothing, answered with a DNS error code, the agent still up.
"""

from __future__ import annotations

import base64
import hmac
import json
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.e2e.agentproc import AgentProc, free_port

MGMT = str(uuid.uuid4())
ISSUER = "https://issuer.test"
AUDIENCE = "gitkv-bad-input"
SERVICE = {"Service": "web"}


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _agent_args(tmp: Path, dns_port: int) -> list[str]:
    config = tmp / "config.json"
    acl = {
        "enabled": True,
        "default_policy": "deny",
        "tokens": {"initial_management": MGMT, "agent": MGMT},
    }
    config.write_text(json.dumps({"acl": acl, "disable_coordinates": True}))
    return [
        "-server",
        "-bootstrap-expect=1",
        f"-data-dir={tmp / 'data'}",
        "-node=bad1",
        "-bind=127.0.0.1",
        "-client=127.0.0.1",
        f"-server-port={free_port()}",
        f"-dns-port={dns_port}",
        f"-serf-lan-port={free_port()}",
        "-serf-wan-port=-1",
        f"-config-file={config}",
    ]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Env:
    def __init__(self, agent: AgentProc, dns_port: int) -> None:
        self.agent = agent
        self.dns_port = dns_port
        self.http = agent.client(timeout=15)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def mgmt(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"X-Consul-Token": MGMT}, **kw)

    def raft_index(self) -> int:
        r = self.mgmt("GET", "/v1/agent/self")
        assert r.status_code == 200, r.text
        return int(r.json()["Stats"]["raft"]["last_log_index"])

    def table(self, path: str) -> tuple[str, Any]:
        r = self.mgmt("GET", path)
        assert r.status_code == 200, r.text
        return r.headers["X-Consul-Index"], r.json()

    def state(self) -> dict[str, Any]:
        return {
            "raft": self.raft_index(),
            "queries": self.table("/v1/query"),
            "tokens": self.table("/v1/acl/tokens"),
            "roles": self.table("/v1/acl/roles"),
        }

    def signed(self, header: dict, payload: bytes, key: Any = None) -> str:
        """A compact RS256-signed JWS of exactly these payload bytes (PyJWT would re-encode)."""
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}".encode()
        signature = (key or self.key).sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{_b64(signature)}"

    def login(self, bearer: str) -> httpx.Response:
        return self.http.post(
            "/v1/acl/login", json={"AuthMethod": "bad-jwt", "BearerToken": bearer}
        )


def _settle(env: Env) -> None:
    """Wait until the agent's own start-up writes (its node, the Consul service) are done."""
    deadline = time.monotonic() + 30
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        index = env.raft_index()
        if index != last:
            last, stable_since = index, time.monotonic()
        elif time.monotonic() - stable_since > 2:
            return
        time.sleep(0.2)
    raise AssertionError("the Raft index never settled")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("bad-input-c2")
    dns_port = _udp_port()
    agent = AgentProc(*_agent_args(tmp, dns_port)).start()
    try:
        setup = Env(agent, dns_port)
        method = {
            "Name": "bad-jwt",
            "Type": "jwt",
            "MaxTokenTTL": "10m",
            "Config": {
                "JWTValidationPubKeys": [setup.pem],
                "JWTSupportedAlgs": ["RS256"],
                "BoundIssuer": ISSUER,
                "BoundAudiences": [AUDIENCE],
                "ClaimMappings": {"service": "service"},
            },
        }
        r = setup.mgmt("PUT", "/v1/acl/auth-method", json=method)
        assert r.status_code == 200, r.text
        rule = {"AuthMethod": "bad-jwt", "BindType": "service", "BindName": "${value.service}"}
        r = setup.mgmt("PUT", "/v1/acl/binding-rule", json=rule)
        assert r.status_code == 200, r.text
        r = setup.mgmt("POST", "/v1/query", json={"Name": "known-q", "Service": SERVICE})
        assert r.status_code == 200, r.text
        _settle(setup)
        yield setup
    finally:
        agent.cleanup()


def _refused(env: Env, send: Any, status: int, message: str, exact: bool = False) -> None:
    """`send()` answers `status` with `message` (its start, or all of it) and writes nothing."""
    before = env.state()
    r = send()
    assert r.status_code == status, (r.status_code, r.text[:500])
    if exact:
        assert r.text == message, r.text[:500]
    else:
        assert r.text.startswith(message), r.text[:500]
    assert env.state() == before


# ---------------------------------------------------------------- prepared queries

_QUERY_CASES = [
    ({"Name": 5}, 400, "Request decode failed: json: cannot unmarshal number into Go struct field PreparedQuery.Name of type string"),
    ({"Name": "q", "Service": {"Service": "web", "Tags": [["x"]]}}, 400, "Request decode failed: json: cannot unmarshal array into Go struct field ServiceQuery.Service.Tags of type string"),
    ({"Name": "q", "Service": {"Service": "web", "Failover": {"Targets": "dc2"}}}, 400, "Request decode failed: json: cannot unmarshal string into Go struct field QueryFailoverOptions.Service.Failover.Targets of type []structs.QueryFailoverTarget"),
    ({"Name": "q", "Service": {"Service": "web", "Failover": {"NearestN": 2**63}}}, 400, "Request decode failed: json: cannot unmarshal number 9223372036854775808 into Go struct field"),
    ({"Name": "q"}, 500, "Invalid prepared query: Must provide a Service name to query"),
    ({"Service": SERVICE}, 500, "Invalid prepared query: Must be bound to a session"),
    ({"Name": "q", "Service": {"Service": "web", "Failover": {"NearestN": -1}}}, 500, "Invalid prepared query: Bad NearestN '-1', must be >= 0"),
    ({"Name": "q", "Service": {"Service": "web", "Failover": {"NearestN": 1, "Targets": [{"Datacenter": "dc2"}]}}}, 500, "Invalid prepared query: Targets cannot be populated with NearestN or Datacenters"),
    ({"Name": "q", "Service": SERVICE, "DNS": {"TTL": "1x"}}, 500, "Invalid prepared query: Bad DNS TTL '1x': time: unknown unit \"x\" in duration \"1x\""),
    ({"Name": "q", "Service": SERVICE, "DNS": {"TTL": "-1s"}}, 500, "Invalid prepared query: DNS TTL '-1000000000', must be >=0"),
    ({"Name": "q", "Service": SERVICE, "Token": "<hidden>"}, 500, "Invalid prepared query: Bad Token '<hidden>', it looks like a query definition with a redacted token was submitted"),
    ({"Name": "q", "Service": SERVICE, "Session": "11111111-2222-3333-4444-555555555555"}, 500, 'raft apply failed: invalid session "11111111-2222-3333-4444-555555555555"'),
    ({"Name": "known-q", "Service": SERVICE}, 500, "raft apply failed: name 'known-q' aliases an existing query name"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "message"), _QUERY_CASES)
def test_malformed_query_definitions_are_refused(
    env: Env, body: dict, status: int, message: str
) -> None:
    _refused(env, lambda: env.mgmt("POST", "/v1/query", json=body), status, message)


def _tpl(regexp: str = "", service: str = "web", kind: str = "name_prefix_match") -> dict:
    return {"Name": "t-", "Template": {"Type": kind, "Regexp": regexp}, "Service": {"Service": service}}  # fmt: skip


_COMPILE = "raft apply failed: failed compiling template: "
_TEMPLATE_CASES = [
    (_tpl(kind="regexp"), "Bad Template.Type 'regexp'"),
    (_tpl("("), "Bad Regexp: error parsing regexp: missing closing ): `(`"),
    (_tpl("a)"), "Bad Regexp: error parsing regexp: unexpected ): `a)`"),
    (_tpl("[z-a]"), "Bad Regexp: error parsing regexp: invalid character class range: `z-a`"),
    (_tpl("(?=x)"), "Bad Regexp: error parsing regexp: invalid or unsupported Perl syntax: `(?=`"),
    (_tpl("(a)\\1"), "Bad Regexp: error parsing regexp: invalid escape sequence: `\\1`"),
    (_tpl("a**"), "Bad Regexp: error parsing regexp: invalid nested repetition operator: `**`"),
    (_tpl("a{1001}"), "Bad Regexp: error parsing regexp: invalid repeat count: `{1001}`"),
    (_tpl(service="${"), "Bad format '${' in Service.Service: parse error at 1:3: expected expression but found end of string"),
    (_tpl(service="${nope}"), "Bad evaluation for '${nope}' in Service.Service: 1:3: unknown variable accessed: nope"),
    (_tpl(service="${1/0}"), "Bad evaluation for '${1/0}' in Service.Service: __builtin_IntMath: divide by zero"),
    (_tpl(service="${99999999999999999999}"), "Bad format '${99999999999999999999}' in Service.Service: parse error at 1:3: invalid integer: strconv.Atoi: parsing \"99999999999999999999\": value out of range"),
    (_tpl(service="${" + "(" * 500 + "1" + ")" * 500 + "}"), "Bad format '${(((("),
    (_tpl(service="${" + "1+" * 5000 + "1}"), "Bad format '${1+1+"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), _TEMPLATE_CASES)
def test_templates_with_bad_regexps_or_hil_are_refused(env: Env, body: dict, message: str) -> None:
    _refused(env, lambda: env.mgmt("POST", "/v1/query", json=body), 500, _COMPILE + message)


def test_deep_hil_is_refused_as_nested_too_deeply(env: Env) -> None:
    body = _tpl(service="${" + "(" * 500 + "1" + ")" * 500 + "}")
    r = env.mgmt("POST", "/v1/query", json=body)
    assert r.status_code == 500 and "expression nested too deeply" in r.text, r.text[:300]
    assert "Traceback" not in env.agent.output()


def test_whole_body_refusals(env: Env) -> None:
    post = lambda content: lambda: env.mgmt("POST", "/v1/query", content=content)  # noqa: E731
    _refused(env, post(b""), 400, "Request decode failed: EOF", exact=True)
    _refused(env, post(b"[" * 100_000), 400, "Request decode failed: ")
    _refused(env, post(b'{"Name": "q",'), 400, "Request decode failed: ")
    _refused(env, post(b"\xff\xfe"), 400, "Request decode failed: ")
    huge = b'{"Name": "' + b"a" * (5 * 1024 * 1024) + b'"}'
    _refused(env, post(huge), 413, "Request body too large")


def test_updates_and_deletes_of_unknown_queries(env: Env) -> None:
    unknown = "11111111-2222-3333-4444-555555555555"
    put = lambda path: lambda: env.mgmt("PUT", path, json={"Name": "q", "Service": SERVICE})  # noqa: E731
    _refused(env, put(f"/v1/query/{unknown}"), 500, f"Cannot modify non-existent prepared query: '{unknown}'", exact=True)  # fmt: skip
    _refused(env, put("/v1/query/nope"), 500, "Prepared Query lookup failed: failed prepared query lookup: UUID must be 36 characters", exact=True)  # fmt: skip
    delete = lambda: env.mgmt("DELETE", f"/v1/query/{unknown}")  # noqa: E731
    _refused(env, delete, 500, "Cannot modify non-existent prepared query")


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("limit=x", 500, 'Bad limit: strconv.Atoi: parsing "x": invalid syntax'),
        ("limit=99999999999999999999", 500, 'Bad limit: strconv.Atoi: parsing "99999999999999999999": value out of range'),
        ("connect=maybe", 500, "Error parsing 'connect' value: strconv.ParseBool: parsing \"maybe\": invalid syntax"),
        ("near=%00", 200, ""),
        ("near=" + "n" * 3000, 200, ""),
    ],
)  # fmt: skip
def test_execute_with_bad_parameters(env: Env, query: str, status: int, message: str) -> None:
    send = lambda: env.mgmt("GET", f"/v1/query/known-q/execute?{query}")  # noqa: E731
    _refused(env, send, status, message)


def test_a_backtracking_regexp_does_not_stall_the_agent(env: Env) -> None:
    """`^bt-(a|a)*$` takes 2^n steps in a backtracking engine: minutes for the 40-character
    name of the create's test render, or for an execute's name. Go's RE2, as ours, is linear."""
    body = {
        "Name": "bt-" + "a" * 40 + "!",
        "Template": {"Type": "name_prefix_match", "Regexp": "^bt-(a|a)*$"},
        "Service": {"Service": "${match(1)}"},
    }
    r = env.mgmt("POST", "/v1/query", json=body)
    assert r.status_code == 200, r.text
    query_id = r.json()["ID"]
    try:
        r = env.mgmt("GET", "/v1/query/bt-" + "a" * 40 + "!" * 3 + "/execute")
        assert r.status_code == 200 and r.json()["Service"] == "", r.text
        assert env.mgmt("GET", "/v1/status/leader").status_code == 200
    finally:
        assert env.mgmt("DELETE", f"/v1/query/{query_id}").status_code == 200


# ---------------------------------------------------------------- JWT login


def _claims(**extra: Any) -> dict:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "service": "web", "iat": now, "exp": now + 300}
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def _bearer(env: Env, case: str) -> tuple[str, int, str]:
    now = int(time.time())
    rs256 = {"alg": "RS256", "typ": "JWT"}
    if case == "good-control":
        return jwt.encode(_claims(), env.key, algorithm="RS256"), 200, ""
    if case == "other-key":
        return (
            jwt.encode(_claims(), env.other, algorithm="RS256"),
            500,
            "no known key successfully validated the token signature",
        )
    if case == "expired":
        token = jwt.encode(_claims(iat=now - 3600, exp=now - 600), env.key, algorithm="RS256")
        return token, 500, "error validating claims: go-jose/go-jose/jwt: validation failed, token is expired (exp)"  # fmt: skip
    if case == "future-nbf":
        token = jwt.encode(_claims(nbf=now + 3600), env.key, algorithm="RS256")
        return token, 500, "error validating claims: go-jose/go-jose/jwt: validation failed, token not valid yet (nbf)"  # fmt: skip
    if case == "unknown-alg":
        header = _b64(json.dumps({"alg": "XYZ"}).encode())
        token = f"{header}.{_b64(json.dumps(_claims()).encode())}.c2ln"
        return token, 500, 'error verifying token: signing algorithm "XYZ" is not allowed'
    if case == "alg-none":
        token = jwt.encode(_claims(), None, algorithm="none")
        return token, 500, 'error verifying token: signing algorithm "none" is not allowed'
    if case == "hs256-with-the-public-key":  # the classic algorithm confusion
        payload = json.dumps(_claims()).encode()
        signing_input = f"{_b64(json.dumps({'alg': 'HS256'}).encode())}.{_b64(payload)}"
        mac = hmac.new(env.pem.encode(), signing_input.encode(), "sha256").digest()
        return f"{signing_input}.{_b64(mac)}", 500, 'error verifying token: signing algorithm "HS256"'  # fmt: skip
    if case == "exp-nan":
        payload = json.dumps(_claims(exp=float("nan"))).encode()
        return env.signed(rs256, payload), 500, "failed to unmarshal claims: the exp claim is not a number"  # fmt: skip
    if case == "exp-infinite":
        payload = json.dumps(_claims()).replace(str(now + 300), "1e999").encode()
        return env.signed(rs256, payload), 500, "failed to unmarshal claims: the exp claim is not a number"  # fmt: skip
    if case == "claims-nested-deep":
        payload = b'{"exp": ' + str(now + 300).encode() + b', "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"  # fmt: skip
        return env.signed(rs256, payload), 500, "failed to unmarshal claims: "
    if case == "claims-not-an-object":
        return env.signed(rs256, b"[1, 2]"), 500, "failed to unmarshal claims: "
    if case == "oversized-claims":  # under the size limit: signed and valid, a bad identity
        token = jwt.encode(_claims(service="w" * 20_000), env.key, algorithm="RS256")
        return token, 500, 'invalid bind name: "wwww'
    if case == "oversized-token":
        token = jwt.encode(_claims(pad="p" * 40_000), env.key, algorithm="RS256")
        return token, 400, "Invalid Login request: BearerToken is larger than 32768 bytes"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "other-key", "expired", "future-nbf", "unknown-alg", "alg-none",
        "hs256-with-the-public-key", "exp-nan", "exp-infinite", "claims-nested-deep",
        "claims-not-an-object", "oversized-claims", "oversized-token",
    ],
)  # fmt: skip
def test_bad_jwts_issue_no_token_and_write_nothing(env: Env, case: str) -> None:
    bearer, status, message = _bearer(env, case)
    _refused(env, lambda: env.login(bearer), status, message)


def test_the_control_jwt_does_log_in(env: Env) -> None:
    """The refusals above are about the token, not the method: a good one logs in."""
    bearer, _, _ = _bearer(env, "good-control")
    r = env.login(bearer)
    assert r.status_code == 200, r.text
    secret = r.json()["SecretID"]
    r = env.http.post("/v1/acl/logout", headers={"X-Consul-Token": secret})
    assert r.status_code == 200 and r.json() is True, r.text


def test_an_oversized_login_body_is_refused_before_parsing(env: Env) -> None:
    body = json.dumps({"AuthMethod": "bad-jwt", "BearerToken": "a" * (1024 * 1024)})
    send = lambda: env.http.post("/v1/acl/login", content=body.encode())  # noqa: E731
    _refused(env, send, 413, "Request body too large")


# ---------------------------------------------------------------- templated policies


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("builtin/nope", {"name": "x"}, 'templated policy "builtin/nope" does not exist'),
        ("builtin/service", {}, 'validation error for templated policy: "builtin/service": service identity "" has an invalid name.'),
        ("builtin/service", {"name": "bad name!"}, 'validation error for templated policy: "builtin/service": service identity "bad name!" has an invalid name.'),
        ("builtin/service", {"name": 5}, "Failed to decode request body: json: cannot unmarshal number into Go struct field ACLTemplatedPolicyVariables.name of type string"),
    ],
)  # fmt: skip
def test_templated_policy_preview_refusals(env: Env, name: str, body: dict, message: str) -> None:
    send = lambda: env.mgmt("POST", f"/v1/acl/templated-policy/preview/{name}", json=body)  # noqa: E731
    _refused(env, send, 400, message)


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ([{"TemplateName": "builtin/nope"}], "templated policy with an invalid templated name: builtin/nope for this {kind}"),
        ([{"TemplateName": "builtin/service", "TemplateVariables": {"name": "bad name!"}}], "encountered {kind} with invalid templated policy: service identity \"bad name!\" has an invalid name."),
        ([{"TemplateName": 1}], "{Kind} decoding failed: json: cannot unmarshal number into Go struct field ACLTemplatedPolicy.TemplatedPolicies.TemplateName of type string"),
    ],
)  # fmt: skip
def test_tokens_and_roles_with_bad_templated_policies(
    env: Env, policies: list, message: str
) -> None:
    for kind, body in (("token", {}), ("role", {"Name": "bad-role"})):
        payload = {**body, "TemplatedPolicies": policies}
        _refused(
            env,
            partial(env.mgmt, "PUT", f"/v1/acl/{kind}", json=payload),
            400,
            message.format(kind=kind, Kind=kind.capitalize()),
        )


@pytest.mark.parametrize(
    ("field", "identity", "message"),
    [
        ("ServiceIdentities", {"ServiceName": "Web"}, 'Service identity "Web" has an invalid name. Only lowercase alphanumeric characters, \'-\' and \'_\' are allowed'),
        ("ServiceIdentities", {"ServiceName": "web-"}, 'Service identity "web-" has an invalid name.'),
        ("ServiceIdentities", {"ServiceName": "w" * 257}, "Service identity"),
        ("NodeIdentities", {"NodeName": "Node1", "Datacenter": "dc1"}, "Node identity has an invalid name. Only lowercase alphanumeric characters"),
    ],
)  # fmt: skip
def test_tokens_and_roles_with_identity_names_consul_refuses(
    env: Env, field: str, identity: dict, message: str
) -> None:
    """Consul's IsValidServiceIdentityName / IsValidNodeIdentityName: lowercase, starting and
    ending with a letter or digit, at most 256 (an upper-case name used to be stored)."""
    for kind, body in (("token", {}), ("role", {"Name": "bad-identity"})):
        payload = {**body, field: [identity]}
        _refused(env, partial(env.mgmt, "PUT", f"/v1/acl/{kind}", json=payload), 400, message)
    local = {"Local": True, "ServiceIdentities": [{"ServiceName": "web", "Datacenters": ["dc1"]}]}
    _refused(
        env,
        partial(env.mgmt, "PUT", "/v1/acl/token", json=local),
        400,
        'Service identity "web" cannot specify a list of datacenters on a local token',
        exact=True,
    )
    ok = env.mgmt("PUT", "/v1/acl/token", json={"ServiceIdentities": [{"ServiceName": "w" * 256}]})
    assert ok.status_code == 200, ok.text
    env.mgmt("DELETE", f"/v1/acl/token/{ok.json()['AccessorID']}")


# ---------------------------------------------------------------- DNS `.query.`


def _ask(env: Env, name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return dns.query.udp(query, "127.0.0.1", timeout=5, port=env.dns_port)


@pytest.mark.parametrize(
    "name",
    [
        "nope.query.consul.",
        "query.consul.",
        "a.b.c.query.consul.",
        "known-q.query.nodc.consul.",
        "\\000.query.consul.",
        "%ff\\255.query.consul.",
        ("x" * 63 + ".") * 3 + "x" * 40 + ".query.consul.",
        "bt-" + "a" * 55 + "!.query.consul.",
    ],
)
def test_odd_query_names_get_a_dns_error_code(env: Env, name: str) -> None:
    before = env.raft_index()
    reply = _ask(env, name)
    assert reply.rcode() in (dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL), dns.rcode.to_text(
        reply.rcode()
    )
    assert not reply.answer
    assert env.raft_index() == before
    assert "Traceback" not in env.agent.output()


def _raw_question(labels: list[bytes]) -> bytes:
    header = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    name = b"".join(bytes([len(label) & 0xFF]) + label for label in labels) + b"\x00"
    return header + name + struct.pack(">HH", 1, 1)


@pytest.mark.parametrize(
    "packet",
    [
        _raw_question([b"a" * 64, b"query", b"consul"]),  # a label past 63 octets
        _raw_question([b"x" * 63] * 5 + [b"query", b"consul"]),  # a name past 255 octets
        _raw_question([b"q", b"query", b"consul"])[:-3],  # truncated question
        struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c",  # pointer loop
        b"\x12",
    ],
)
def test_malformed_dns_packets_do_not_crash_the_server(env: Env, packet: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(packet, ("127.0.0.1", env.dns_port))
        try:
            data = sock.recv(4096)
        except TimeoutError:
            data = b""  # dropping what cannot be parsed is an answer too (miekg/dns does)
    if len(data) >= 4:
        rcode = data[3] & 0x0F
        assert rcode in (dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NXDOMAIN), rcode
    # the server still answers, and logged no crash
    assert _ask(env, "nope.query.consul.").rcode() == dns.rcode.NXDOMAIN
    assert "Traceback" not in env.agent.output()
