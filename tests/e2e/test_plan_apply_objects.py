"""`gitkv plan` / `apply` of config entries, intentions, prepared queries, auth methods,
binding rules, autopilot and CA settings, end to end against one real ACL-enabled server.

Every test works under its own ledger name and its own service names, so they do not see
each other's objects (they share the module's agent). Writes "by hand" go through plain
`/v1` requests, as another tool or an operator would make them.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gitkv.commands import run
from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.test_acl_matrix import agent_args

ROOT = str(uuid.uuid4())


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProc]:
    proc = AgentProc(
        *agent_args(tmp_path_factory.mktemp("objects"), initial_management=ROOT),
        http_port=free_port(),
    ).start()
    try:
        yield proc
    finally:
        proc.cleanup()


@pytest.fixture
def api(agent: AgentProc) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=agent.url, headers={"X-Consul-Token": ROOT}, timeout=30) as c:
        yield c


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_SSL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", ROOT)


def gitkv(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def write_spec(path: Path, agent: AgentProc, name: str, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    head = f"version: 1\nname: {name}\ndatacenters:\n  dc1:\n    address: {agent.url}\n"
    path.write_text(head + textwrap.indent(textwrap.dedent(body), "    "))
    return path


def entry(api: httpx.Client, kind: str, name: str) -> dict[str, Any] | None:
    r = api.get(f"/v1/config/{kind}/{name}")
    return r.json() if r.status_code == 200 else None


CHAIN = """\
config_entries:
  proxy-defaults:
    global: {Config: {protocol: http}}
  service-defaults:
    c-web: {Protocol: http}
    c-api: {Protocol: HTTP, Meta: {team: a}}
  service-resolver:
    c-web:
      ConnectTimeout: 15000ms
      Subsets:
        v1: {Filter: "Service.Meta.version == v1"}
        v2: {Filter: "Service.Meta.version == v2"}
  service-splitter:
    c-web:
      Splits:
        - {Weight: 90, ServiceSubset: v1}
        - {Weight: 10, ServiceSubset: v2}
  service-router:
    c-web:
      Routes:
        - Match: {HTTP: {PathPrefix: /api, Methods: [get]}}
          Destination: {Service: c-api, RequestTimeout: 5s}
  ingress-gateway:
    c-ing:
      Listeners:
        - {Port: 8080, Protocol: http, Services: [{Name: c-web}]}
  service-intentions:
    c-db:
      Sources:
        - {Name: c-api, Action: allow, Description: reads}
intentions:
  "c-web -> c-api": allow
  "* -> c-api": deny
"""


def test_config_entries_and_intentions_round_trip(
    agent: AgentProc, api: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Someone else's entry of a kind the spec manages: reported, never touched.
    assert api.put("/v1/config", json={"Kind": "service-defaults", "Name": "c-other"}).json()
    spec = write_spec(tmp_path / "spec.yaml", agent, "chain", CHAIN)
    code, out, err = gitkv(capsys, "plan", str(spec), "--detailed-exitcode")
    assert code == 2, err
    assert "Plan: 9 to add, 0 to change, 0 to destroy." in out
    order = [line.split()[2] for line in out.splitlines() if line.startswith("+ config_entry")]
    # Defaults before the resolver before the splitter before the router that needs them.
    assert order.index("proxy-defaults/global") < order.index("service-defaults/c-web")
    assert order.index("service-defaults/c-api") < order.index("service-resolver/c-web")
    assert order.index("service-resolver/c-web") < order.index("service-splitter/c-web")
    assert order.index("service-splitter/c-web") < order.index("service-router/c-web")
    assert "Routes[0].Match.HTTP.Methods[0] = GET" in out
    assert "config_entry service-defaults/c-other" in out  # unmanaged
    assert "intention * -> c-api" not in out

    code, out, err = gitkv(capsys, "apply", str(spec), "--auto-approve")
    assert code == 0, out + err
    assert "9 added, 0 changed, 0 destroyed" in out
    sources = entry(api, "service-intentions", "c-api")["Sources"]  # type: ignore[index]
    assert {(s["Name"], s["Action"]) for s in sources} == {("*", "deny"), ("c-web", "allow")}
    assert entry(api, "service-resolver", "c-web")["ConnectTimeout"] == "15s"  # type: ignore[index]

    # Applied spec re-plans to nothing: Consul's defaults (Precedence, Type, empty structs,
    # the listener's protocol, 15000ms as 15s, HTTP as http) are not drift.
    code, out, _ = gitkv(capsys, "plan", str(spec), "--detailed-exitcode")
    assert code == 0 and "No changes." in out, out
    ledger = json.loads(api.get("/v1/kv/gitkv/state/chain", params={"raw": ""}).text)
    assert "service-router/c-web" in ledger["managed"]["config_entry"]
    assert "service-defaults/c-other" not in ledger["managed"]["config_entry"]

    # A change by hand is drift, shown field by field.
    assert api.put(
        "/v1/config",
        json={"Kind": "service-splitter", "Name": "c-web",
              "Splits": [{"Weight": 50, "ServiceSubset": "v1"}, {"Weight": 50, "ServiceSubset": "v2"}]},
    ).json()  # fmt: skip
    code, out, _ = gitkv(capsys, "plan", str(spec), "--detailed-exitcode")
    assert code == 2
    assert "~ config_entry service-splitter/c-web" in out
    assert "Splits[0].Weight: 50 -> 90" in out and "Splits[1].Weight: 50 -> 10" in out
    assert gitkv(capsys, "apply", str(spec), "--auto-approve")[0] == 0
    assert [s["Weight"] for s in entry(api, "service-splitter", "c-web")["Splits"]] == [90, 10]  # type: ignore[index]

    # Dropping the router and the defaults its destination needs: kept without --prune,
    # deleted with it in reverse order (the router first, or Consul refuses the defaults).
    trimmed = CHAIN.replace("    c-api: {Protocol: HTTP, Meta: {team: a}}\n", "")
    trimmed = (
        trimmed[: trimmed.index("  service-router:")]
        + trimmed[trimmed.index("  ingress-gateway:") :]
    )
    trimmed = trimmed.replace(
        '"c-web -> c-api": allow\n  "* -> c-api": deny', '"c-web -> c-ing": allow'
    )
    write_spec(spec, agent, "chain", trimmed)
    code, out, _ = gitkv(capsys, "plan", str(spec))
    assert "Left the spec, kept (managed; use --prune to delete) (3):" in out
    code, out, _ = gitkv(capsys, "plan", str(spec), "--prune")
    lines = [ln for ln in out.splitlines() if ln.startswith("- config_entry")]
    assert lines.index("- config_entry service-router/c-web") < lines.index(
        "- config_entry service-defaults/c-api"
    )
    code, out, err = gitkv(capsys, "apply", str(spec), "--auto-approve", "--prune")
    assert code == 0, out + err
    assert "1 added, 0 changed, 3 destroyed" in out
    assert entry(api, "service-router", "c-web") is None
    assert entry(api, "service-defaults", "c-other") is not None  # unmanaged: untouched
    assert entry(api, "service-intentions", "c-api") is None
    assert entry(api, "service-intentions", "c-ing")["Sources"][0]["Name"] == "c-web"  # type: ignore[index]
    assert gitkv(capsys, "plan", str(spec), "--detailed-exitcode")[0] == 0


def test_stale_plan_of_a_config_entry_is_refused(
    agent: AgentProc, api: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = "config_entries:\n  service-defaults:\n    s-web: {Protocol: http}\n"
    spec = write_spec(tmp_path / "spec.yaml", agent, "stale", body)
    assert gitkv(capsys, "apply", str(spec), "--auto-approve")[0] == 0
    write_spec(spec, agent, "stale", body.replace("http", "grpc"))
    planfile = tmp_path / "plan.json"
    assert gitkv(capsys, "plan", str(spec), "-out", str(planfile))[0] == 0
    # Someone changes the entry after the plan was made.
    assert api.put(
        "/v1/config", json={"Kind": "service-defaults", "Name": "s-web", "Protocol": "http2"}
    ).json()
    code, _, err = gitkv(capsys, "apply", str(planfile), "--auto-approve")
    assert code == 1
    assert "refusing to apply a stale plan" in err and "service-defaults/s-web" in err
    assert entry(api, "service-defaults", "s-web")["Protocol"] == "http2"  # type: ignore[index]
    # A create races too: the plan said "must not exist".
    write_spec(spec, agent, "stale", body + "    s-new: {Protocol: http}\n")
    assert gitkv(capsys, "plan", str(spec), "-out", str(planfile))[0] == 0
    assert api.put("/v1/config", json={"Kind": "service-defaults", "Name": "s-new"}).json()
    code, _, err = gitkv(capsys, "apply", str(planfile), "--auto-approve")
    assert code == 1 and "service-defaults/s-new" in err


def test_bad_entries_are_refused_before_anything_is_written(
    agent: AgentProc, api: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        tmp_path / "spec.yaml",
        agent,
        "bad",
        """\
        config_entries:
          service-default:
            b-web: {Protocol: http}
          service-defaults:
            b-tcp: {Protocol: tcp}
          service-splitter:
            b-tcp:
              Splits: [{Weight: 60}, {Weight: 30}]
        intentions:
          "b-web -> b-tcp": permit
        """,
    )
    code, _, err = gitkv(capsys, "apply", str(spec), "--auto-approve")
    assert code == 1
    assert f"{spec}:7:7: unknown field 'service-default' (did you mean 'service-defaults'?)" in err
    assert "the sum of all split weights must be 100, not 90" in err
    assert "does not permit advanced routing or splitting behavior" in err
    assert "Input should be 'allow' or 'deny'" in err
    assert entry(api, "service-defaults", "b-tcp") is None


def test_intention_to_an_unknown_service_is_a_warning(
    agent: AgentProc, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", agent, "warn", 'intentions:\n  "w-a -> w-b": deny\n')
    code, out, _ = gitkv(capsys, "plan", str(spec))
    assert code == 0
    assert "Warning: service 'w-a' is neither in the catalog nor in the spec" in out
    assert "Warning: service 'w-b' is neither in the catalog nor in the spec" in out
    assert "(named by intention w-a -> w-b)" in out


def public_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_every_new_kind_plans_applies_replans_and_prunes(
    agent: AgentProc,
    api: httpx.Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    query_token = str(uuid.uuid4())
    monkeypatch.setenv("E2E_QUERY_TOKEN", query_token)
    pem = json.dumps(public_key_pem())
    body = f"""\
    config_entries:
      service-defaults:
        a-web: {{Protocol: http}}
    intentions:
      "a-web -> a-db": allow
    prepared_queries:
      a-web-nearest:
        Service: {{Service: a-web, OnlyPassing: true, Failover: {{NearestN: 2}}, Tags: [v1]}}
        DNS: {{TTL: 10s}}
        Token: {{env: E2E_QUERY_TOKEN}}
      a-db-any:
        Service: {{Service: a-db}}
    acl:
      policies:
        a-read: {{rules: 'service_prefix "" {{ policy = "read" }}'}}
      roles:
        a-reader: {{policies: [a-read]}}
      auth_methods:
        a-jwt:
          type: jwt
          display_name: E2E JWT
          max_token_ttl: 1h
          token_locality: local
          config:
            BoundIssuer: https://issuer.e2e
            JWTValidationPubKeys: [{pem}]
            ClaimMappings: {{service: service}}
      binding_rules:
        - {{auth_method: a-jwt, bind_type: service, bind_name: "${{value.service}}",
            selector: "value.service != \\"\\""}}
        - {{auth_method: a-jwt, bind_type: role, bind_name: a-reader, description: readers}}
    autopilot:
      cleanup_dead_servers: false
      max_trailing_logs: 500
      last_contact_threshold: 400ms
    ca:
      provider: consul
      config: {{LeafCertTTL: 48h}}
    """
    spec = write_spec(tmp_path / "spec.yaml", agent, "every", body)
    code, out, err = gitkv(capsys, "plan", str(spec), "--detailed-exitcode")
    assert code == 2, err
    assert "Plan: 9 to add, 2 to change, 0 to destroy." in out, out
    assert "~ autopilot config" in out and "CleanupDeadServers: true -> false" in out
    assert "~ ca config" in out and "Config.LeafCertTTL: 72h0m0s -> 48h0m0s" in out
    assert "Token = from env:E2E_QUERY_TOKEN (hidden)" in out
    heads = [ln.split()[1] for ln in out.splitlines() if ln[:2] in ("+ ", "~ ")]
    # Policies and roles before the binding rules naming them; queries last.
    assert heads.index("acl_role") < heads.index("acl_binding_rule") < heads.index("prepared_query")
    planfile = tmp_path / "plan.json"
    assert gitkv(capsys, "plan", str(spec), "-out", str(planfile))[0] == 0
    code, out, err = gitkv(capsys, "apply", str(planfile), "--auto-approve")
    assert code == 0, out + err
    assert "9 added, 2 changed, 0 destroyed" in out

    code, out, _ = gitkv(capsys, "plan", str(spec), "--detailed-exitcode")
    assert code == 0 and "No changes." in out, out

    queries = {q["Name"]: q for q in api.get("/v1/query").json()}
    assert queries["a-web-nearest"]["Token"] == query_token  # sent from the environment
    assert queries["a-web-nearest"]["Service"]["Failover"]["NearestN"] == 2
    pilot = api.get("/v1/operator/autopilot/configuration").json()
    assert (pilot["CleanupDeadServers"], pilot["MaxTrailingLogs"]) == (False, 500)
    assert pilot["ServerStabilizationTime"] == "10s"  # not named: left as it was
    ca = api.get("/v1/connect/ca/configuration").json()
    assert ca["Config"]["LeafCertTTL"] in ("48h", "48h0m0s")
    rules = api.get("/v1/acl/binding-rules").json()
    ledger_text = api.get("/v1/kv/gitkv/state/every", params={"raw": ""}).text
    ledger = json.loads(ledger_text)
    assert {r["ID"] for r in rules} <= set(ledger["object_ids"].values())
    assert query_token not in ledger_text and query_token not in planfile.read_text()

    # A binding rule edited by hand is still gitkv's (the ledger has its ID): changed back.
    role_rule = next(r for r in rules if r["BindType"] == "role")
    api.put(f"/v1/acl/binding-rule/{role_rule['ID']}",
            json={**role_rule, "BindName": "someone-else"}).raise_for_status()  # fmt: skip
    code, out, _ = gitkv(capsys, "plan", str(spec), "--detailed-exitcode")
    assert code == 2 and "BindName: someone-else -> a-reader" in out, out
    assert gitkv(capsys, "apply", str(spec), "--auto-approve")[0] == 0
    again = api.get(f"/v1/acl/binding-rule/{role_rule['ID']}").json()
    assert again["BindName"] == "a-reader"

    # Something made by hand beside them: unmanaged, never pruned.
    api.post("/v1/query", json={"Name": "a-manual", "Service": {"Service": "x"}}).raise_for_status()
    # Drop a query and the role binding rule: pruned; the
    # autopilot and CA settings leaving the spec are simply no longer managed.
    dropped = ("a-db-any:", "{Service: a-db}", "bind_name: a-reader")
    kept = body[: body.index("autopilot:")].splitlines(keepends=True)
    trimmed = "".join(line for line in kept if not any(d in line for d in dropped))
    write_spec(spec, agent, "every", trimmed)
    code, out, _ = gitkv(capsys, "plan", str(spec), "--prune")
    assert "Plan: 0 to add, 0 to change, 2 to destroy." in out, out
    assert "prepared_query a-manual" in out  # listed as unmanaged
    assert gitkv(capsys, "apply", str(spec), "--auto-approve", "--prune")[0] == 0
    names = {q["Name"] for q in api.get("/v1/query").json()}
    assert names == {"a-web-nearest", "a-manual"}
    assert [r["BindType"] for r in api.get("/v1/acl/binding-rules").json()] == ["service"]
    assert api.get("/v1/operator/autopilot/configuration").json()["MaxTrailingLogs"] == 500
    assert gitkv(capsys, "plan", str(spec), "--detailed-exitcode")[0] == 0


def test_stale_plan_of_queries_and_autopilot_is_refused(
    agent: AgentProc, api: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = "prepared_queries:\n  q-stale: {Service: {Service: web}}\nautopilot: {min_quorum: 0}\n"
    spec = write_spec(tmp_path / "spec.yaml", agent, "stale2", body)
    assert gitkv(capsys, "apply", str(spec), "--auto-approve")[0] == 0
    write_spec(spec, agent, "stale2", body.replace("web", "api").replace("0}", "1}"))
    planfile = tmp_path / "plan.json"
    assert gitkv(capsys, "plan", str(spec), "-out", str(planfile))[0] == 0
    query = next(q for q in api.get("/v1/query").json() if q["Name"] == "q-stale")
    api.put(f"/v1/query/{query['ID']}",
            json={**query, "Service": {"Service": "db"}}).raise_for_status()  # fmt: skip
    code, _, err = gitkv(capsys, "apply", str(planfile), "--auto-approve")
    assert code == 1 and "prepared_query q-stale: it was modified meanwhile" in err, err
    assert api.get(f"/v1/query/{query['ID']}").json()[0]["Service"]["Service"] == "db"
    # Autopilot has Consul's own check-and-set (min_quorum 1 was applied above: autopilot
    # comes before queries in apply order).
    write_spec(spec, agent, "stale2", body.replace("0}", "2}"))
    assert gitkv(capsys, "plan", str(spec), "-out", str(planfile))[0] == 0
    pilot = api.get("/v1/operator/autopilot/configuration").json()
    api.put("/v1/operator/autopilot/configuration",
            json={**pilot, "MaxTrailingLogs": 321}).raise_for_status()  # fmt: skip
    code, _, err = gitkv(capsys, "apply", str(planfile), "--auto-approve")
    assert code == 1 and "autopilot config: it was modified meanwhile" in err, err
    assert api.get("/v1/operator/autopilot/configuration").json()["MinQuorum"] == 1


def _self_signed() -> tuple[str, str]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw.e2e")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("gw.e2e")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def test_secret_fields_come_from_files_and_are_never_saved(
    agent: AgentProc, api: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = _self_signed()
    (tmp_path / "gw.key").write_text(key)
    body = (
        "config_entries:\n  inline-certificate:\n    i-gw:\n"
        f"      Certificate: {json.dumps(cert)}\n      PrivateKey: {{file: gw.key}}\n"
    )
    spec = write_spec(tmp_path / "spec.yaml", agent, "secrets", body)
    planfile = tmp_path / "plan.json"
    code, out, _ = gitkv(capsys, "plan", str(spec), "-out", str(planfile))
    assert code == 0 and "PrivateKey = from file:" in out and "(hidden)" in out
    code, out, err = gitkv(capsys, "apply", str(planfile), "--auto-approve")
    assert code == 0, out + err
    stored = entry(api, "inline-certificate", "i-gw")
    assert stored is not None and stored["PrivateKey"].strip() == key.strip()
    assert gitkv(capsys, "plan", str(spec), "--detailed-exitcode")[0] == 0
    ledger = api.get("/v1/kv/gitkv/state/secrets", params={"raw": ""}).text
    secret_line = key.splitlines()[1]
    assert secret_line not in ledger and secret_line not in planfile.read_text()
    assert secret_line not in gitkv(capsys, "plan", str(spec), "--json")[1]
