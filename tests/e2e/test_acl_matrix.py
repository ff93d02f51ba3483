"""ACLs end to end: a real agent with `acl.enabled`, `default_policy = deny`.

The security matrix runs each endpoint family against five callers: no token, the explicit
anonymous token, a read-only token, a token that writes only under `other/` (and the `other`
service), and the management token; each cell is the expected status (and, for lists, the
filtered body). Then bootstrap, bad input (nothing changes), secrets absent from the log,
persistence across a restart, and `gitkv apply` of a spec's `acl:` part.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gitkv.commands import run
from tests.e2e.agentproc import AgentProc, free_port

MGMT = str(uuid.uuid4())
RO_RULES = """
key_prefix "" { policy = "read" }
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
agent_prefix "" { policy = "read" }
session_prefix "" { policy = "read" }
operator = "read"
acl = "read"
"""
OTHER_RULES = """
key_prefix "other/" { policy = "write" }
service "other" { policy = "write" }
"""
CALLERS = ("none", "anon", "ro", "other", "mgmt")


def agent_args(tmp: Path, *, initial_management: str | None, ip: str = "127.0.0.1") -> list[str]:
    acl: dict[str, Any] = {"enabled": True, "default_policy": "deny"}
    if initial_management:
        # The agent's own token carries its anti-entropy writes (Consul's acl.tokens.agent).
        acl["tokens"] = {"initial_management": initial_management, "agent": initial_management}
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "acl.json"
    config.write_text(json.dumps({"acl": acl}))
    return [
        "-server",
        "-bootstrap-expect=1",
        f"-data-dir={tmp / 'data'}",
        "-node=acl1",
        f"-bind={ip}",
        f"-client={ip}",
        f"-server-port={free_port(ip)}",
        "-dns-port=-1",
        f"-serf-lan-port={free_port(ip)}",
        "-serf-wan-port=-1",
        f"-config-file={config}",
    ]


class Setup:
    def __init__(self, agent: AgentProc, secrets: dict[str, str | None]) -> None:
        self.agent = agent
        self.secrets = secrets
        self.http = agent.client()

    def call(self, who: str, method: str, path: str, **kw: Any) -> httpx.Response:
        secret = self.secrets[who]
        headers = dict(kw.pop("headers", {}))
        if secret is not None:
            headers["X-Consul-Token"] = secret
        return self.http.request(method, path, headers=headers, **kw)


@pytest.fixture(scope="module")
def acl_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("acl")
    agent = AgentProc(*agent_args(tmp, initial_management=MGMT)).start()
    try:
        setup = Setup(agent, {"none": None, "anon": "anonymous", "mgmt": MGMT})
        for name, rules in (("ro", RO_RULES), ("other", OTHER_RULES)):
            r = setup.call("mgmt", "PUT", "/v1/acl/policy", json={"Name": name, "Rules": rules})
            assert r.status_code == 200, r.text
            r = setup.call("mgmt", "PUT", "/v1/acl/token", json={"Policies": [{"Name": name}]})
            assert r.status_code == 200, r.text
            setup.secrets[name] = r.json()["SecretID"]
        for key in ("app/a", "app/b", "other/x"):
            assert setup.call("mgmt", "PUT", f"/v1/kv/{key}", content=b"v").json() is True
        r = setup.call(
            "mgmt", "PUT", "/v1/agent/service/register", json={"Name": "web", "Port": 80}
        )
        assert r.status_code == 200, r.text
        yield setup
    finally:
        setup.http.close()
        agent.cleanup()


# (label, method, path, kwargs, expected status per caller, in CALLERS order)
MATRIX: list[tuple[str, str, str, dict, tuple[int, ...]]] = [
    ("kv read", "GET", "/v1/kv/app/a", {}, (403, 403, 200, 403, 200)),
    ("kv write", "PUT", "/v1/kv/app/a", {"content": b"w"}, (403, 403, 403, 403, 200)),
    ("kv write other", "PUT", "/v1/kv/other/y", {"content": b"w"}, (403, 403, 403, 200, 200)),
    ("kv recurse", "GET", "/v1/kv/", {"params": {"recurse": ""}}, (404, 404, 200, 200, 200)),
    ("kv keys", "GET", "/v1/kv/app/", {"params": {"keys": ""}}, (404, 404, 200, 404, 200)),
    (
        "kv delete tree",
        "DELETE",
        "/v1/kv/other/gone/",
        {"params": {"recurse": ""}},
        (403, 403, 403, 200, 200),
    ),
    (
        "kv delete all",
        "DELETE",
        "/v1/kv/zzz/",
        {"params": {"recurse": ""}},
        (403, 403, 403, 403, 200),
    ),
    (
        "txn write",
        "PUT",
        "/v1/txn",
        {"json": [{"KV": {"Verb": "set", "Key": "other/t", "Value": "dg=="}}]},
        (409, 409, 409, 200, 200),
    ),
    (
        "catalog register",
        "PUT",
        "/v1/catalog/register",
        {"json": {"Node": "ext", "Address": "10.0.0.9", "Service": {"Service": "other"}}},
        (403, 403, 403, 403, 200),
    ),
    ("catalog nodes", "GET", "/v1/catalog/nodes", {}, (200,) * 5),
    ("catalog services", "GET", "/v1/catalog/services", {}, (200,) * 5),
    ("health service", "GET", "/v1/health/service/web", {}, (200,) * 5),
    ("agent services", "GET", "/v1/agent/services", {}, (200,) * 5),
    (
        "agent register other",
        "PUT",
        "/v1/agent/service/register",
        {"json": {"Name": "other", "ID": "other1"}},
        (403, 403, 403, 200, 200),
    ),
    (
        "agent register web2",
        "PUT",
        "/v1/agent/service/register",
        {"json": {"Name": "web2"}},
        (403, 403, 403, 403, 200),
    ),
    ("agent self", "GET", "/v1/agent/self", {}, (403, 403, 200, 403, 200)),
    (
        "agent reload",
        "PUT",
        "/v1/agent/maintenance",
        {"params": {"enable": "false"}},
        (403, 403, 403, 403, 200),
    ),
    ("session create", "PUT", "/v1/session/create", {"json": {}}, (403, 403, 403, 403, None)),
    ("operator raft", "GET", "/v1/operator/raft/configuration", {}, (403, 403, 200, 403, 200)),
    (
        "operator keyring write",
        "PUT",
        "/v1/operator/keyring",
        {"json": {}},
        (403, 403, 403, 403, None),
    ),
    ("snapshot", "GET", "/v1/snapshot", {}, (403, 403, 403, 403, 200)),
    ("acl policies", "GET", "/v1/acl/policies", {}, (403, 403, 200, 403, 200)),
    ("acl tokens", "GET", "/v1/acl/tokens", {}, (403, 403, 200, 403, 200)),
    # Read by the secret sent, not resolved first: none sent (and no default token) is a 404.
    ("acl token self", "GET", "/v1/acl/token/self", {}, (404, 200, 200, 200, 200)),
    ("acl replication", "GET", "/v1/acl/replication", {}, (200,) * 5),  # no ACL (Consul)
    ("status", "GET", "/v1/status/leader", {}, (200,) * 5),
]


@pytest.mark.parametrize(
    ("label", "method", "path", "kw", "expected"), MATRIX, ids=[m[0] for m in MATRIX]
)
def test_matrix(
    acl_agent: Setup, label: str, method: str, path: str, kw: dict, expected: tuple
) -> None:
    got = {}
    for who, want in zip(CALLERS, expected, strict=True):
        r = acl_agent.call(who, method, path, **kw)
        got[who] = r.status_code
        if want is None:
            assert r.status_code != 403, (who, r.text)
        if r.status_code == 403:
            if who in ("none", "anon"):
                assert "anonymous token lacks permission" in r.text, r.text
            else:
                assert "Permission denied: token with AccessorID '" in r.text, r.text
    assert got == {w: (got[w] if e is None else e) for w, e in zip(CALLERS, expected, strict=True)}


def test_lists_are_filtered(acl_agent: Setup) -> None:
    def keys(who: str) -> list[str]:
        r = acl_agent.call(who, "GET", "/v1/kv/", params={"recurse": ""})
        return sorted(e["Key"] for e in r.json()) if r.status_code == 200 else []

    assert {"app/a", "app/b", "other/x"} <= set(keys("mgmt"))
    assert keys("ro") == keys("mgmt")
    assert all(k.startswith("other/") for k in keys("other")) and "other/x" in keys("other")
    assert keys("none") == []
    filtered = acl_agent.call("other", "GET", "/v1/kv/", params={"recurse": ""})
    assert filtered.headers.get("x-consul-results-filtered-by-acls") == "true"
    assert (
        "x-consul-results-filtered-by-acls"
        not in acl_agent.call("mgmt", "GET", "/v1/kv/", params={"recurse": ""}).headers
    )
    # anonymous never learns that something was hidden
    anon = acl_agent.call("anon", "GET", "/v1/catalog/nodes")
    assert anon.json() == [] and "x-consul-results-filtered-by-acls" not in anon.headers
    assert "acl1" in [n["Node"] for n in acl_agent.call("ro", "GET", "/v1/catalog/nodes").json()]
    assert acl_agent.call("other", "GET", "/v1/catalog/nodes").json() == []
    assert "web" in acl_agent.call("ro", "GET", "/v1/catalog/services").json()
    assert acl_agent.call("none", "GET", "/v1/catalog/services").json() == {}
    assert len(acl_agent.call("mgmt", "GET", "/v1/health/service/web").json()) == 1
    assert acl_agent.call("other", "GET", "/v1/health/service/web").json() == []
    services = acl_agent.call("other", "GET", "/v1/agent/services").json()
    assert "web" not in services
    # a txn read returns only what the token may read
    r = acl_agent.call("other", "PUT", "/v1/txn", json=[{"KV": {"Verb": "get-tree", "Key": ""}}])
    assert r.status_code == 200
    assert {res["KV"]["Key"] for res in r.json()["Results"]} <= {"other/x", "other/y", "other/t"}


def test_denied_txn_names_the_op(acl_agent: Setup) -> None:
    ops = [
        {"KV": {"Verb": "set", "Key": "other/ok", "Value": "dg=="}},
        {"KV": {"Verb": "set", "Key": "app/no", "Value": "dg=="}},
    ]
    r = acl_agent.call("other", "PUT", "/v1/txn", json=ops)
    assert r.status_code == 409
    errors = r.json()["Errors"]
    assert [e["OpIndex"] for e in errors] == [1]
    assert "'key:write' on \"app/no\"" in errors[0]["What"]
    assert acl_agent.call("mgmt", "GET", "/v1/kv/other/ok").status_code == 404


def test_secrets_shown_only_to_acl_writers(acl_agent: Setup) -> None:
    ro = acl_agent.call("ro", "GET", "/v1/acl/tokens").json()
    assert ro and {t["SecretID"] for t in ro} == {"<hidden>"}
    mgmt = acl_agent.call("mgmt", "GET", "/v1/acl/tokens").json()
    assert MGMT in {t["SecretID"] for t in mgmt}
    me = acl_agent.call("ro", "GET", "/v1/acl/token/self").json()
    assert me["SecretID"] == acl_agent.secrets["ro"]
    assert me["Policies"][0]["Name"] == "ro"


def test_unknown_token_is_refused(acl_agent: Setup) -> None:
    unknown = {"X-Consul-Token": str(uuid.uuid4())}
    for path in ("/v1/kv/app/a", "/v1/catalog/nodes"):
        r = acl_agent.http.get(path, headers=unknown)
        assert (r.status_code, r.text) == (403, "ACL not found")
    r = acl_agent.http.get("/v1/acl/token/self", headers=unknown)
    assert (r.status_code, r.text) == (404, "Supplied token does not exist")
    # the other ways to present a token
    assert acl_agent.http.get("/v1/kv/app/a", params={"token": MGMT}).status_code == 200
    bearer = {"Authorization": f"Bearer {MGMT}"}
    assert acl_agent.http.get("/v1/kv/app/a", headers=bearer).status_code == 200
    assert acl_agent.http.get("/v1/kv/app/a").headers["x-consul-default-acl-policy"] == "deny"


def _acl_state(setup: Setup) -> tuple:
    return tuple(
        json.dumps(setup.call("mgmt", "GET", f"/v1/acl/{what}").json(), sort_keys=True)
        for what in ("policies", "tokens", "roles")
    )


def test_bad_input_changes_nothing(acl_agent: Setup) -> None:
    before = _acl_state(acl_agent)
    r = acl_agent.call(
        "mgmt",
        "PUT",
        "/v1/acl/policy",
        json={"Name": "broken", "Rules": 'key "x" {\n  policy = \n}'},
    )
    assert r.status_code == 400 and "At 3:1:" in r.text, r.text
    r = acl_agent.call("mgmt", "PUT", "/v1/acl/policy", json={"Name": "ro", "Rules": ""})
    assert r.status_code == 400 and "already exists" in r.text
    r = acl_agent.call("mgmt", "PUT", "/v1/acl/token", json={"Policies": [{"Name": "no-such"}]})
    assert r.status_code == 400 and "no-such" in r.text
    r = acl_agent.call(
        "mgmt", "PUT", "/v1/acl/role", json={"Name": "r", "Policies": [{"Name": "nope"}]}
    )
    assert r.status_code == 400
    r = acl_agent.call("mgmt", "DELETE", "/v1/acl/policy/00000000-0000-0000-0000-000000000001")
    assert r.status_code == 400
    r = acl_agent.call(
        "mgmt",
        "PUT",
        "/v1/acl/policy/00000000-0000-0000-0000-000000000001",
        json={"Name": "global-management", "Rules": 'key_prefix "" { policy = "read" }'},
    )
    assert r.status_code == 400
    r = acl_agent.call("mgmt", "PUT", "/v1/acl/bootstrap")
    assert r.status_code == 403 and "ACL bootstrap no longer allowed" in r.text
    assert _acl_state(acl_agent) == before


def test_token_and_role_lifecycle(acl_agent: Setup) -> None:
    r = acl_agent.call(
        "mgmt", "PUT", "/v1/acl/role", json={"Name": "readers", "Policies": [{"Name": "ro"}]}
    )
    assert r.status_code == 200, r.text
    role = r.json()
    assert acl_agent.call("mgmt", "GET", "/v1/acl/role/name/readers").json()["ID"] == role["ID"]
    tok = acl_agent.call(
        "mgmt", "PUT", "/v1/acl/token", json={"Roles": [{"Name": "readers"}], "Description": "d"}
    ).json()
    h = {"X-Consul-Token": tok["SecretID"]}
    assert acl_agent.http.get("/v1/kv/app/a", headers=h).status_code == 200
    listed = acl_agent.call("mgmt", "GET", "/v1/acl/tokens", params={"role": role["ID"]}).json()
    assert [t["AccessorID"] for t in listed] == [tok["AccessorID"]]
    clone = acl_agent.call(
        "mgmt", "PUT", f"/v1/acl/token/{tok['AccessorID']}/clone", json={"Description": "c"}
    ).json()
    assert clone["SecretID"] != tok["SecretID"] and clone["Roles"] == tok["Roles"]
    # update: drop the role -> the token can no longer read
    r = acl_agent.call(
        "mgmt", "PUT", f"/v1/acl/token/{tok['AccessorID']}", json={"Description": "none"}
    )
    assert r.status_code == 200 and r.json()["SecretID"] == tok["SecretID"]
    assert acl_agent.http.get("/v1/kv/app/a", headers=h).status_code == 403
    for accessor in (tok["AccessorID"], clone["AccessorID"]):
        assert acl_agent.call("mgmt", "DELETE", f"/v1/acl/token/{accessor}").json() is True
    assert acl_agent.http.get("/v1/kv/app/a", headers=h).text == "ACL not found"
    assert acl_agent.call("mgmt", "DELETE", f"/v1/acl/role/{role['ID']}").json() is True
    assert acl_agent.call("mgmt", "GET", f"/v1/acl/role/{role['ID']}").status_code == 404


def test_bootstrap_once_then_reset(tmp_path: Path) -> None:
    agent = AgentProc(*agent_args(tmp_path, initial_management=None))
    with agent.start(), agent.client() as http:
        first = http.put("/v1/acl/bootstrap")
        assert first.status_code == 200, first.text
        token = first.json()
        assert token["ID"] == token["SecretID"]
        assert token["Policies"] == [
            {"ID": "00000000-0000-0000-0000-000000000001", "Name": "global-management"}
        ]
        second = http.put("/v1/acl/bootstrap")
        assert second.status_code == 403
        assert second.text.startswith(
            "Permission denied: ACL bootstrap no longer allowed (reset index: "
        )
        reset = second.text.rsplit(" ", 1)[1].rstrip(")")
        h = {"X-Consul-Token": token["SecretID"]}
        assert http.put("/v1/kv/x", content=b"1", headers=h).json() is True
        (tmp_path / "data" / "acl-bootstrap-reset").write_text(reset)
        third = http.put("/v1/acl/bootstrap")
        assert third.status_code == 200, third.text
        assert not (tmp_path / "data" / "acl-bootstrap-reset").exists()
        secret = third.json()["SecretID"]
        log = agent.output()
    # ACL state is replicated state: it survives a restart (log replay / snapshot).
    again = AgentProc(*agent_args(tmp_path, initial_management=None)).start()
    with again, again.client() as http:
        h = {"X-Consul-Token": secret}
        assert http.get("/v1/kv/x", headers=h).status_code == 200
        assert http.get("/v1/kv/x").status_code == 403
        assert http.put("/v1/acl/bootstrap").status_code == 403
    for value in (token["SecretID"], secret):
        assert value not in log


def test_secrets_not_in_log_and_state_survives_restart(acl_agent: Setup) -> None:
    acl_agent.http.get("/v1/kv/app/a", params={"token": acl_agent.secrets["ro"]})
    log = acl_agent.agent.output()
    for secret in (MGMT, acl_agent.secrets["ro"], acl_agent.secrets["other"]):
        assert secret not in log


def test_gitkv_apply_acl_spec(
    acl_agent: Setup,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = str(uuid.uuid4())
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", MGMT)
    monkeypatch.setenv("APP_TOKEN", secret)
    for name in ("CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_SSL"):
        monkeypatch.delenv(name, raising=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"version: 1\nname: aclapply\ndatacenters:\n  dc1:\n    address: {acl_agent.agent.url}\n"
        '    kv_prefixes: [gk/]\n    kv:\n      gk/a: "1"\n'
        "    acl:\n"
        "      policies:\n"
        '        gk-read: {rules: \'key_prefix "gk/" { policy = "read" }\'}\n'
        "      roles:\n        gk: {policies: [gk-read]}\n"
        "      tokens:\n        gk: {roles: [gk], secret: {env: APP_TOKEN}}\n"
    )
    code = run(["apply", str(spec), "--auto-approve"])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert secret not in out.out + out.err
    h = {"X-Consul-Token": secret}
    assert acl_agent.http.get("/v1/kv/gk/a", headers=h).status_code == 200
    assert acl_agent.http.get("/v1/kv/app/a", headers=h).status_code == 403
    code = run(["plan", str(spec), "--detailed-exitcode"])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    # an update goes through PUT /v1/acl/policy/<id> and takes effect at once
    spec.write_text(spec.read_text().replace('key_prefix "gk/"', 'key_prefix ""'))
    code = run(["apply", str(spec), "--auto-approve"])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert acl_agent.http.get("/v1/kv/app/a", headers=h).status_code == 200
    assert run(["plan", str(spec), "--detailed-exitcode"]) == 0


def test_agent_default_token_and_legacy_endpoints(acl_agent: Setup) -> None:
    assert acl_agent.http.get("/v1/kv/app/a").status_code == 403
    r = acl_agent.call("ro", "PUT", "/v1/agent/token/default", json={"Token": "x"})
    assert r.status_code == 403  # agent:write needed
    r = acl_agent.call(
        "mgmt", "PUT", "/v1/agent/token/default", json={"Token": acl_agent.secrets["ro"]}
    )
    assert r.status_code == 200, r.text
    try:
        assert acl_agent.http.get("/v1/kv/app/a").status_code == 200
    finally:
        acl_agent.call("mgmt", "PUT", "/v1/agent/token/default", json={"Token": ""})
    assert acl_agent.http.get("/v1/kv/app/a").status_code == 403
    assert (
        acl_agent.call("mgmt", "PUT", "/v1/agent/token/bogus", json={"Token": ""}).status_code
        == 404
    )
    r = acl_agent.call("mgmt", "GET", "/v1/acl/list")
    assert r.status_code == 410 and "legacy ACL system was removed" in r.text


def test_expired_token_is_not_found(acl_agent: Setup) -> None:
    r = acl_agent.call(
        "mgmt", "PUT", "/v1/acl/token", json={"Policies": [{"Name": "ro"}], "ExpirationTTL": "1h"}
    )
    assert r.status_code == 200 and r.json()["ExpirationTime"]
    r = acl_agent.call("mgmt", "PUT", "/v1/acl/token", json={"ExpirationTTL": "soon"})
    assert r.status_code == 400


def test_anti_entropy_uses_the_agent_token(tmp_path: Path) -> None:
    """Without an agent token (default deny) the agent's node info sync is refused and says
    so, while a service syncs with the token it was registered with (Consul's local state);
    once `PUT /v1/agent/token/agent` gives it one, the node info goes through too."""
    agent = AgentProc(*agent_args(tmp_path, initial_management=None))
    with agent.start(), agent.client() as http:
        boot = http.put("/v1/acl/bootstrap").json()
        mgmt = {"X-Consul-Token": boot["SecretID"]}
        http.put("/v1/agent/service/register", json={"Name": "quiet", "Port": 1}, headers=mgmt)

        def node_meta() -> dict:
            found = http.get("/v1/catalog/node/acl1", headers=mgmt).json() or {}
            return found.get("Node", {}).get("Meta") or {}

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if http.get("/v1/catalog/service/quiet", headers=mgmt).json():
                break
            time.sleep(0.2)
        names = [
            s["ServiceName"] for s in http.get("/v1/catalog/service/quiet", headers=mgmt).json()
        ]
        assert names == ["quiet"]
        assert "blocked by ACLs" in agent.output()
        assert "consul-version" not in node_meta()
        http.put("/v1/agent/token/agent", json={"Token": boot["SecretID"]}, headers=mgmt)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "consul-version" not in node_meta():
            time.sleep(0.2)
        assert "consul-version" in node_meta()
