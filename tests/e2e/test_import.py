"""`gitkv import` end to end: a cluster populated by this test's own HTTP writes (an
ACL-enabled single server on 127.0.0.1, free ports) is imported, and the spec round-trips:
it validates, `gitkv plan` shows no changes, and `gitkv apply` changes nothing."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gitkv.commands import run
from tests.e2e.agentproc import AgentProc
from tests.e2e.test_acl_matrix import agent_args

MGMT = "5b0e8c1f-6a47-4d3e-9f21-0c7d2a9b8e64"
QUERY_TOKEN = "0d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
VALUES = {
    "app/plain": b"1",
    "app/multi": b"line one\nline two\n",
    "app/binary": bytes(range(256)),
    "app/large": b"x" * 5000,
    "app/unicode": "h\u00e9llo \u2713 \u0085 \x7f \U0001f600".encode(),
    "app/quotes": b'say "hi" \\ # not a comment: {x}',
    "app/empty": b"",
    "app/yes": b"yes",
    "app/0x10": b"0x10",
    "app/dir/": b"",
    "top": b"a key that is also a folder",
    "top/inner": b"under it",
    "deep/a/../b": b"dots",
}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProc]:
    proc = AgentProc(*agent_args(tmp_path_factory.mktemp("imp"), initial_management=MGMT))
    proc.start()
    try:
        yield proc
    finally:
        proc.cleanup()


@pytest.fixture(scope="module")
def http(agent: AgentProc) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=agent.url, headers={"X-Consul-Token": MGMT}, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def populated(http: httpx.Client) -> dict[str, str]:
    """The cluster as someone built it by hand; the SecretIDs of the tokens made."""
    for key, value in VALUES.items():
        assert http.put(f"/v1/kv/{key}", content=value).json() is True
    assert http.put("/v1/kv/app/flagged", params={"flags": 42}, content=b"f").json() is True
    ok = [
        http.put(
            "/v1/agent/service/register",
            json={
                "Name": "web",
                "Port": 8080,
                "Address": "10.0.0.5",
                "Tags": ["v2", "blue"],
                "Meta": {"team": "web"},
                "Checks": [
                    {"HTTP": "http://127.0.0.1:1/health", "Interval": "10s", "Timeout": "2s"},
                    {"Name": "heartbeat", "TTL": "30s"},
                ],
            },
        ),
        http.put("/v1/agent/service/register", json={"Name": "api", "ID": "api-1", "Port": 9}),
        http.put(
            "/v1/agent/service/register",
            json={"Name": "meshed", "Port": 81, "Connect": {"SidecarService": {}}},
        ),
        http.put(
            "/v1/agent/service/register",
            json={
                "Name": "headers",
                "Port": 82,
                "Check": {"HTTP": "http://127.0.0.1:1/", "Interval": "5s", "Header": {"A": ["b"]}},
            },
        ),
        http.put(
            "/v1/catalog/register",
            json={
                "Node": "legacy-db",
                "Address": "10.1.1.1",
                "NodeMeta": {"rack": "r1"},
                "Service": {"Service": "pg", "Port": 5432, "Tags": ["primary"]},
            },
        ),
        http.put(
            "/v1/acl/policy",
            json={
                "Name": "app-read",
                "Description": "reads app/",
                "Rules": 'key_prefix "app/" {\n  policy = "read"\n}\n',
            },
        ),
        http.put(
            "/v1/acl/policy",
            json={
                "Name": "nodes-read",
                "Rules": 'node_prefix "" { policy = "read" }',
                "Datacenters": ["dc1"],
            },
        ),
        http.put(
            "/v1/acl/role",
            json={"Name": "reader", "Description": "r", "Policies": [{"Name": "app-read"}]},
        ),
    ]
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for entry in (
        {"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "http", "x": 1.5}},
        {"Kind": "service-defaults", "Name": "web", "Protocol": "http"},
        {
            "Kind": "service-resolver",
            "Name": "web",
            "ConnectTimeout": "15s",
            "Subsets": {
                "v1": {"Filter": "Service.Meta.v == 1"},
                "v2": {"Filter": "Service.Meta.v == 2"},
            },
        },
        {
            "Kind": "service-splitter",
            "Name": "web",
            "Splits": [
                {"Weight": 90.5, "ServiceSubset": "v1"},
                {"Weight": 9.5, "ServiceSubset": "v2"},
            ],
        },
        {
            "Kind": "service-intentions",
            "Name": "web",
            "Sources": [{"Name": "api", "Action": "allow"}],
        },
    ):
        ok.append(http.put("/v1/config", json=entry))
    ok += [
        http.post(
            "/v1/query",
            json={
                "Name": "web-q",
                "Service": {"Service": "web", "OnlyPassing": True},
                "DNS": {"TTL": "10s"},
            },
        ),
        http.post(
            "/v1/query",
            json={"Name": "with-token", "Token": QUERY_TOKEN, "Service": {"Service": "web"}},
        ),
        http.put(
            "/v1/acl/auth-method",
            json={
                "Name": "jwt1",
                "Type": "jwt",
                "MaxTokenTTL": "1h",
                "Config": {"JWTValidationPubKeys": [pem.decode()], "BoundIssuer": "me"},
            },
        ),
        http.put(
            "/v1/acl/binding-rule",
            json={
                "AuthMethod": "jwt1",
                "BindType": "service",
                "BindName": "web",
                "Selector": 'value.sub == "x"',
            },
        ),  # fmt: skip
    ]
    assert all(r.status_code == 200 for r in ok), [r.text for r in ok]
    secrets = {}
    for body in (
        {
            "Description": "ci deploy",
            "Policies": [{"Name": "app-read"}],
            "Roles": [{"Name": "reader"}],
        },
        {"Description": "gitkv:made-by-gitkv", "Policies": [{"Name": "nodes-read"}], "Local": True},
        {"Description": "", "Policies": [{"Name": "app-read"}]},
        {"Description": "twice", "Policies": [{"Name": "app-read"}]},
        {"Description": "twice", "Policies": [{"Name": "app-read"}]},
        {"Description": "svc", "ServiceIdentities": [{"ServiceName": "web"}]},
    ):
        r = http.put("/v1/acl/token", json=body)
        assert r.status_code == 200, r.text
        secrets[r.json()["AccessorID"]] = r.json()["SecretID"]
    return secrets


@pytest.fixture
def env(agent: AgentProc, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_SSL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONSUL_HTTP_ADDR", agent.url)
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", MGMT)


def gitkv(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _indexes(http: httpx.Client) -> dict[str, object]:
    """Everything an apply could touch, with its ModifyIndex."""
    kv = {e["Key"]: e["ModifyIndex"] for e in http.get("/v1/kv/", params={"recurse": ""}).json()}
    kv = {k: v for k, v in kv.items() if not k.startswith("gitkv/")}
    return {
        "kv": kv,
        "services": http.get("/v1/agent/services").json(),
        "checks": {k: v["Definition"] for k, v in http.get("/v1/agent/checks").json().items()},
        "node": http.get("/v1/catalog/node/legacy-db").json()["Node"]["ModifyIndex"],
        "policies": {p["Name"]: p["ModifyIndex"] for p in http.get("/v1/acl/policies").json()},
        "roles": {r["Name"]: r["ModifyIndex"] for r in http.get("/v1/acl/roles").json()},
        "tokens": {t["AccessorID"]: t["ModifyIndex"] for t in http.get("/v1/acl/tokens").json()},
        "entries": {
            (e["Kind"], e["Name"]): e["ModifyIndex"]
            for kind in (
                "proxy-defaults",
                "service-defaults",
                "service-resolver",
                "service-splitter",
                "service-intentions",
            )  # fmt: skip
            for e in http.get(f"/v1/config/{kind}").json()
        },
        "queries": {q["Name"]: q["ModifyIndex"] for q in http.get("/v1/query").json()},
        "methods": [m["ModifyIndex"] for m in http.get("/v1/acl/auth-methods").json()],
        "rules": [r["ModifyIndex"] for r in http.get("/v1/acl/binding-rules").json()],
        "autopilot": http.get("/v1/operator/autopilot/configuration").json()["ModifyIndex"],
        "ca": http.get("/v1/connect/ca/configuration").json()["ModifyIndex"],
    }


def test_import_round_trips(
    populated: dict[str, str],
    http: httpx.Client,
    env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out_dir = tmp_path / "spec"
    code, out, err = gitkv(capsys, "import", "--out", str(out_dir), "--inline-max", "64")
    assert code == 0, err
    assert "Imported 14 KV keys, 2 services, 1 external node, 2 ACL policies" in out
    assert "1 ACL role, 3 ACL tokens" in out  # ci, made-by-gitkv, the initial management one
    # What a spec cannot express is named, with the reason, and left out.
    assert "Skipped service acl1/headers: check 'service:headers' sets Header" in err
    assert "Skipped service acl1/meshed: it has a sidecar proxy" in err
    assert "Skipped service acl1/meshed-sidecar-proxy: a connect-proxy service" in err
    assert "no description (gitkv finds tokens by their description)" in err
    assert err.count("its description 'twice' is not unique") == 2
    assert "has ServiceIdentities" in err
    assert "Skipped prepared_query with-token: it runs with a token" in err
    assert "5 config entries, 1 prepared query, 1 auth method, 1 binding rule" in out
    assert "1 autopilot configuration, 1 CA configuration" in out
    # Secrets never leave the cluster; large, multi-line and binary values are files.
    written = {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}
    for secret in [*populated.values(), MGMT, QUERY_TOKEN]:
        assert all(secret.encode() not in data for data in written.values())
    spec = (out_dir / "gitkv.yaml").read_text()
    assert (out_dir / "kv/app/binary").read_bytes() == VALUES["app/binary"]
    assert '"app/large": {file: "kv/app/large"}' in spec
    assert '"app/multi": {file: "kv/app/multi"}' in spec
    assert '"app/flagged": {value: "f", flags: 42}' in spec
    assert '"made-by-gitkv":' in spec and "local: true" in spec
    assert "# AccessorID " in spec
    assert '"web": {"Splits": [{"Weight": 90.5, "ServiceSubset": "v1"}' in spec
    assert '"web": {"Sources": [{"Name": "api", "Action": "allow"}]}' in spec
    assert '"web-q": {"Service": {"Service": "web", "OnlyPassing": true}' in spec
    assert (
        '- {"auth_method": "jwt1", "selector": "value.sub == \\"x\\"", "bind_type": "service"'
        in spec
    )
    # It validates, plans to nothing, and applying it changes nothing.
    assert gitkv(capsys, "validate", str(out_dir))[0] == 0
    before = _indexes(http)
    code, out, err = gitkv(capsys, "plan", str(out_dir), "--detailed-exitcode")
    assert code == 0, out + err
    assert "No changes. The cluster matches the spec." in out
    code, out, err = gitkv(capsys, "apply", str(out_dir), "--auto-approve")
    assert code == 0, err
    assert "0 added, 0 changed, 0 destroyed" in out
    assert _indexes(http) == before
    assert gitkv(capsys, "plan", str(out_dir), "--detailed-exitcode")[0] == 0
    # Every value reads back byte for byte through the spec.
    for key, value in VALUES.items():
        entry = http.get(f"/v1/kv/{key}").json()[0]
        assert base64.b64decode(entry["Value"] or "") == value


def test_only_some_kinds_and_prefixes(
    populated: dict[str, str],
    http: httpx.Client,
    env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out_dir = tmp_path / "only"
    code, out, err = gitkv(
        capsys, "import", "--out", str(out_dir), "--only", "kv,acl_role", "--kv-prefix", "top/"
    )
    assert code == 0, err
    spec = (out_dir / "gitkv.yaml").read_text()
    assert 'kv_prefixes: ["top/"]' in spec and '"top/inner"' in spec and '"app/plain"' not in spec
    assert "services:" not in spec and "agents:" not in spec
    # A role whose policy is not imported would not validate: skipped, with the reason.
    assert "Skipped acl_role reader: names policy app-read, not imported" in err
    code, out, err = gitkv(capsys, "plan", str(out_dir), "--detailed-exitcode")
    assert code == 0, out + err


def test_bad_input_is_refused_and_writes_nothing(
    populated: dict[str, str], env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = gitkv(capsys, "import", "--out", str(tmp_path / "x"), "--only", "kv,bogus")
    assert code == 1 and "--only: unknown kind 'bogus'" in err
    assert not (tmp_path / "x").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.yaml").write_text("mine")
    code, _, err = gitkv(capsys, "import", "--out", str(tmp_path / "full"))
    assert code == 1 and "is not empty" in err
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.yaml"]
    code, _, err = gitkv(capsys, "import", "--out", str(tmp_path / "y"), "--kv-prefix", "/app")
    assert code == 1 and "never start with '/'" in err
    code, _, err = gitkv(capsys, "import", "--out", str(tmp_path / "z"), "--datacenter", "DC1")
    assert code == 1 and "--datacenter 'DC1'" in err
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_a_host_name_address_gives_agents_by_ip(
    populated: dict[str, str],
    agent: AgentProc,
    env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out_dir = tmp_path / "svc"
    address = agent.url.replace("127.0.0.1", "localhost")
    code, out, err = gitkv(
        capsys, "import", "--out", str(out_dir), "--only", "service", "--address", address
    )
    assert code == 0, err
    spec = (out_dir / "gitkv.yaml").read_text()
    assert f'address: "{address}"' in spec
    assert (
        f'"acl1": {{server: true, bind: "127.0.0.1", ports: {{http: {agent.http_port}}}}}' in spec
    )
    code, out, err = gitkv(capsys, "plan", str(out_dir), "--detailed-exitcode")
    assert code == 0, out + err
