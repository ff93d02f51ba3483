"""gitkv on the write-up's 3 servers + 1 client (issue 16's "Done when"), with ACLs on.

The cluster is examples/shenzhen's four agents moved to 127.0.0.181-184 (standard ports on
each) and started with `gitkv up`; gitkv talks to the client agent only, as a user's CI job
would. One spec with every control-plane kind plans, applies, reads back from every server,
re-plans to no changes and prunes only what it manages; a cluster grown by hand round-trips
through `gitkv import`; a commit in a watched local repository is applied in under 2 s.
"""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.agentproc import port_busy
from tests.e2e.test_plan_apply_objects import public_key_pem
from tests.e2e.watchkit import SpecRepo, WatchProc, clean_env, eventually, gitkv

pytestmark = pytest.mark.cluster

IPS = ("127.0.0.181", "127.0.0.182", "127.0.0.183", "127.0.0.184")
SERVERS = [f"http://{ip}:8500" for ip in IPS[:3]]
CLIENT = f"http://{IPS[3]}:8500"
ROOT = str(uuid.UUID(int=0x51EED5EED))


def _agents_yaml() -> str:
    acl = f'-hcl=acl {{ enabled = true default_policy = "allow" tokens {{ initial_management = "{ROOT}" }} }}'  # noqa: E501
    fast = "-hcl=performance { raft_multiplier = 1 }"
    lines = ["version: 1", "datacenters:", "  shenzhen:", f"    address: {CLIENT}", "    agents:"]
    for n, ip in enumerate(IPS, start=1):
        server = "true" if n <= 3 else "false"
        lines.append(
            f"      node{n}: {{server: {server}, bind: {ip}, client: {ip}, "
            f"args: [{json.dumps(acl)}, {json.dumps(fast)}]}}"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The directory of the cluster's spec, with the four agents running."""
    deadline = time.monotonic() + 75  # a previous run's sockets may linger in TIME_WAIT
    while (busy := [ip for ip in IPS for p in (8500, 8300) if port_busy(ip, p)]) and (
        time.monotonic() < deadline
    ):
        time.sleep(1)
    if busy:
        pytest.skip(f"the cluster's addresses are in use ({', '.join(busy)})")
    root = tmp_path_factory.mktemp("cp-cluster")
    (root / "cluster.yaml").write_text(_agents_yaml())
    up = gitkv("up", str(root), "--timeout", "120", env=_env())
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        with httpx.Client(headers={"X-Consul-Token": ROOT}, timeout=10) as h:
            eventually(
                lambda: all(h.get(f"{u}/v1/status/leader").json() for u in [*SERVERS, CLIENT]),
                timeout=60,
                what="every agent knows the leader",
            )
        yield root
    finally:
        down = gitkv("down", str(root), "--purge", env=_env())
        assert down.returncode == 0, down.stderr


def _env(**extra: str) -> dict[str, str]:
    return clean_env(CONSUL_HTTP_TOKEN=ROOT, **extra)


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    with httpx.Client(base_url=CLIENT, headers={"X-Consul-Token": ROOT}, timeout=30) as c:
        yield c


def _spec(name: str, body: str) -> str:
    head = f"version: 1\nname: {name}\ndatacenters:\n  shenzhen:\n    address: {CLIENT}\n"
    return head + textwrap.indent(textwrap.dedent(body), "    ")


CONTROL_PLANE = """\
config_entries:
  proxy-defaults:
    global: {{Config: {{protocol: http}}}}
  service-defaults:
    cp-web: {{Protocol: http}}
    cp-admin: {{Protocol: http}}
  service-resolver:
    cp-web:
      DefaultSubset: v1
      Subsets:
        v1: {{Filter: "Service.Meta.version == v1"}}
        v2: {{Filter: "Service.Meta.version == v2"}}
  service-splitter:
    cp-web:
      Splits:
        - {{Weight: 90, ServiceSubset: v1}}
        - {{Weight: 10, ServiceSubset: v2}}
  service-router:
    cp-web:
      Routes:
        - Match: {{HTTP: {{PathPrefix: /admin}}}}
          Destination: {{Service: cp-admin}}
  ingress-gateway:
    cp-ingress:
      Listeners:
        - {{Port: 8080, Protocol: http, Services: [{{Name: cp-web}}]}}
  terminating-gateway:
    cp-egress:
      Services: [{{Name: cp-legacy}}]
  mesh:
    mesh: {{TransparentProxy: {{MeshDestinationsOnly: true}}}}
  exported-services:
    default: {{Services: [{{Name: cp-web, Consumers: [{{Peer: other}}]}}]}}
intentions:
  "cp-web -> cp-db": allow
  "cp-admin -> cp-db": allow
  "* -> cp-db": deny
prepared_queries:
  cp-web-nearest:
    Service: {{Service: cp-web, OnlyPassing: true, Failover: {{NearestN: 2}}}}
    DNS: {{TTL: 10s}}
  cp-db-any:
    Service: {{Service: cp-db}}
acl:
  policies:
    cp-read: {{rules: 'service_prefix "cp-" {{ policy = "read" }}'}}
  roles:
    cp-reader: {{policies: [cp-read]}}
  auth_methods:
    cp-jwt:
      type: jwt
      max_token_ttl: 1h
      config:
        BoundIssuer: https://issuer.cp
        JWTValidationPubKeys: [{pem}]
        ClaimMappings: {{service: service}}
  binding_rules:
    - {{auth_method: cp-jwt, bind_type: service, bind_name: "${{value.service}}"}}
    - {{auth_method: cp-jwt, bind_type: role, bind_name: cp-reader}}
autopilot:
  max_trailing_logs: 400
ca:
  provider: consul
  config: {{LeafCertTTL: 48h}}
"""

ENTRIES = [
    ("proxy-defaults", "global"),
    ("service-defaults", "cp-web"),
    ("service-defaults", "cp-admin"),
    ("service-resolver", "cp-web"),
    ("service-splitter", "cp-web"),
    ("service-router", "cp-web"),
    ("ingress-gateway", "cp-ingress"),
    ("terminating-gateway", "cp-egress"),
    ("mesh", "mesh"),
    ("exported-services", "default"),
    ("service-intentions", "cp-db"),
]


def _plan(spec: Path, *extra: str) -> tuple[int, str]:
    done = gitkv("plan", str(spec), "--detailed-exitcode", *extra, env=_env())
    return done.returncode, done.stdout + done.stderr


def _apply(spec: Path, *extra: str) -> str:
    done = gitkv("apply", str(spec), "--auto-approve", *extra, env=_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_every_control_plane_kind_through_the_client_agent(
    cluster: Path, api: httpx.Client, tmp_path: Path
) -> None:
    spec = tmp_path / "cp.yaml"
    pem = json.dumps(public_key_pem())
    spec.write_text(_spec("cp", CONTROL_PLANE.format(pem=pem)))
    code, out = _plan(spec)
    assert code == 2, out
    out = _apply(spec)
    assert " 0 destroyed" in out, out
    code, out = _plan(spec)
    assert code == 0 and "No changes." in out, out

    # Written through the client agent, replicated by Raft: every server has every entry,
    # read from its own copy (?stale), the same modify index on each.
    for kind, name in ENTRIES:
        seen = set()
        for server in SERVERS:
            r = api.get(f"{server}/v1/config/{kind}/{name}", params={"stale": ""})
            assert r.status_code == 200, (server, kind, name, r.text)
            seen.add(r.json()["ModifyIndex"])
        assert len(seen) == 1, (kind, name, seen)
    queries = {q["Name"] for q in api.get("/v1/query").json()}
    assert {"cp-web-nearest", "cp-db-any"} <= queries
    methods = [m["Name"] for m in api.get("/v1/acl/auth-methods").json()]
    assert "cp-jwt" in methods
    rules = api.get("/v1/acl/binding-rules", params={"authmethod": "cp-jwt"}).json()
    assert sorted(r["BindType"] for r in rules) == ["role", "service"]
    assert api.get("/v1/operator/autopilot/configuration").json()["MaxTrailingLogs"] == 400
    ca = api.get("/v1/connect/ca/configuration").json()
    assert ca["Config"]["LeafCertTTL"] in ("48h", "48h0m0s")
    chain = api.get("/v1/discovery-chain/cp-web").json()["Chain"]
    assert chain["Protocol"] == "http" and "router:cp-web.default.default" in chain["Nodes"]

    # Made by hand beside the spec: never pruned. Dropped from the spec: pruned.
    api.post(
        "/v1/query", json={"Name": "cp-manual", "Service": {"Service": "x"}}
    ).raise_for_status()
    api.put("/v1/config", json={"Kind": "service-defaults", "Name": "cp-hand", "Protocol": "tcp"})
    trimmed = CONTROL_PLANE.replace("  cp-db-any:\n    Service: {{Service: cp-db}}\n", "")
    trimmed = trimmed.replace('  "cp-admin -> cp-db": allow\n', "")
    trimmed = trimmed.replace("    cp-admin: {{Protocol: http}}\n", "")
    trimmed = trimmed.replace("          Destination: {{Service: cp-admin}}", "          Destination: {{Service: cp-web}}")  # fmt: skip # noqa: E501
    spec.write_text(_spec("cp", trimmed.format(pem=pem)))
    code, out = _plan(spec, "--prune")
    assert code == 2 and "Plan: 0 to add, 2 to change, 2 to destroy." in out, out
    _apply(spec, "--prune")
    names = {q["Name"] for q in api.get("/v1/query").json()}
    assert "cp-db-any" not in names and "cp-manual" in names
    assert api.get("/v1/config/service-defaults/cp-admin").status_code == 404
    assert api.get("/v1/config/service-defaults/cp-hand").status_code == 200
    sources = api.get("/v1/config/service-intentions/cp-db").json()["Sources"]
    assert sorted(s["Name"] for s in sources) == ["*", "cp-web"]
    code, out = _plan(spec)
    assert code == 0 and "No changes." in out, out


def _indexes(api: httpx.Client) -> dict[str, int]:
    out = {}
    for kind in ("service-defaults", "service-router", "service-intentions"):
        for e in api.get(f"/v1/config/{kind}").json():
            out[f"{kind}/{e['Name']}"] = e["ModifyIndex"]
    for q in api.get("/v1/query").json():
        out[f"query/{q['Name']}"] = q["ModifyIndex"]
    for e in api.get("/v1/kv/imp/", params={"recurse": ""}).json():
        out[f"kv/{e['Key']}"] = e["ModifyIndex"]
    return out


def test_a_cluster_grown_by_hand_round_trips_through_import(
    cluster: Path, api: httpx.Client, tmp_path: Path
) -> None:
    for key, value in {"imp/a": "1", "imp/b/c": '{"x": 2}', "imp/large": "y" * 3000}.items():
        assert api.put(f"/v1/kv/{key}", content=value.encode()).json() is True
    for body in (
        {"Kind": "service-defaults", "Name": "imp-api", "Protocol": "http"},
        {"Kind": "service-defaults", "Name": "imp-v2", "Protocol": "http"},
        {
            "Kind": "service-router",
            "Name": "imp-api",
            "Routes": [
                {"Match": {"HTTP": {"PathPrefix": "/v2"}}, "Destination": {"Service": "imp-v2"}}
            ],  # noqa: E501
        },
        {
            "Kind": "service-intentions",
            "Name": "imp-api",
            "Sources": [{"Name": "imp-web", "Action": "allow"}],
        },  # fmt: skip
    ):
        r = api.put("/v1/config", json=body)
        assert r.status_code == 200, r.text
    api.post("/v1/query", json={"Name": "imp-q", "Service": {"Service": "imp-api"}})
    # Answered by the client agent itself: it resolves the token through a server.
    assert api.get("/v1/agent/self").status_code == 200
    assert (
        api.get("/v1/agent/self", headers={"X-Consul-Token": str(uuid.uuid4())}).status_code == 403
    )
    out_dir = tmp_path / "imported"
    done = gitkv(
        "import", "--out", str(out_dir), "--address", CLIENT, "--datacenter", "shenzhen",
        "--name", "imported", "--only", "kv,config_entry,prepared_query", "--kv-prefix", "imp/",
        env=_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out_dir / "kv/imp/large").read_text() == "y" * 3000
    assert gitkv("validate", str(out_dir), env=_env()).returncode == 0
    before = _indexes(api)
    code, out = _plan(out_dir)
    assert code == 0 and "No changes." in out, out
    out = _apply(out_dir)
    assert "0 added, 0 changed, 0 destroyed" in out, out
    assert _indexes(api) == before


def test_a_commit_in_a_watched_local_repository_is_applied_within_two_seconds(
    cluster: Path, api: httpx.Client, tmp_path: Path
) -> None:
    name = "cpwatch"

    def spec(value: str) -> str:
        return _spec(name, f"kv_prefixes: [{name}/]\nkv:\n  {name}/k: {json.dumps(value)}\n")

    def applied(commit: str):
        def probe():
            r = api.get(f"/v1/kv/gitkv/status/{name}", params={"raw": ""})
            st = r.json() if r.status_code == 200 else {}
            return st.get("commit") == commit and st.get("state") == "applied"

        return probe

    repo = SpecRepo(tmp_path / "repo")
    first = repo.commit({"gitkv.yaml": spec("1")}, push=False)
    w = WatchProc(
        tmp_path / "w.log", str(repo.work_path), "--interval", "300s", "--lock-name", name,
        "--cache-dir", str(tmp_path / "c"), env=_env(),
    )  # fmt: skip
    try:
        eventually(applied(first), timeout=30, what="first commit applied")
        sha = repo.commit({"gitkv.yaml": spec("2")}, push=False)
        # The poll is 300 s away: only the watched ref can apply it this soon.
        eventually(applied(sha), timeout=2, what="commit applied within 2 s")
        eventually(
            lambda: all(
                api.get(f"{s}/v1/kv/{name}/k", params={"raw": "", "stale": ""}).text == "2"
                for s in SERVERS
            ),
            timeout=5,
            what="every server has the value",
        )
        assert w.stop() == 0
    finally:
        w.kill()


def test_the_client_agent_resolves_tokens_through_the_servers(api: httpx.Client) -> None:
    """`/v1/agent/*` is answered by the client agent itself, which holds no ACL tables: it
    asks a server for the token and its policies (and keeps them for acl.token_ttl). The
    cluster's default policy is allow: only the token's own deny can refuse."""
    rules = 'service "cp-api" { policy = "write" } service "cp-other" { policy = "deny" }'
    policy = api.put("/v1/acl/policy", json={"Name": "cp-api-write", "Rules": rules}).json()
    token = api.put("/v1/acl/token", json={"Policies": [{"ID": policy["ID"]}]}).json()
    secret = token["SecretID"]
    with httpx.Client(base_url=CLIENT, headers={"X-Consul-Token": secret}, timeout=10) as h:
        mine = {"Name": "cp-api", "Port": 9090}
        eventually(
            lambda: h.put("/v1/agent/service/register", json=mine).status_code == 200,
            timeout=10,
            what="the new token known to the client agent",
        )
        other = h.put("/v1/agent/service/register", json={"Name": "cp-other", "Port": 1})
        assert other.status_code == 403, other.text
        assert f"token with AccessorID '{token['AccessorID']}' lacks permission" in other.text
        assert "cp-api" in h.get("/v1/agent/services").json()
        assert "cp-other" not in api.get("/v1/agent/services").json()
        assert h.put("/v1/agent/service/deregister/cp-api").status_code == 200
