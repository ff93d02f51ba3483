"""A loaded spec -> plain `Resources` values in canonical form."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from gitkv.errors import GitkvError
from gitkv.resources import CheckDef, KVPair, SecretRef
from gitkv.spec import LoadedSpec, desired, desired_datacenter, load_spec

SPEC = """
    version: 1
    name: demo
    prune: true
    datacenters:
      dc1:
        address: 127.0.0.1:8500
        agents:
          n1: {server: true, bind: 127.0.0.11, client: 127.0.0.11}
        kv_prefixes: [app/]
        kv:
          app/plain: hello
          app/flagged: {value: x, flags: 42}
          app/file: {file: files/blob.bin}
          app/json: {json: {b: 1, a: [true, null]}}
        kv_dir: {path: tree, prefix: app/tree/}
        services:
          - name: web
            agent: n1
            port: 8080
            tags: [v2, v1]
            meta: {team: b, owner: a}
            checks:
              - {http: "http://127.0.0.11:8080/health", interval: 90s, timeout: 2s, method: HEAD}
              - {ttl: 30s, id: web-ttl, name: heartbeat}
              - {args: [/bin/check, --fast], interval: 1m}
        external_services:
          - node: db
            address: 10.0.0.5
            services: [{name: pg, id: pg-2, port: 5432}, {name: pg, id: pg-1, port: 5433}]
        acl:
          policies:
            read: {rules: "\\n  key_prefix \\"app/\\" { policy = \\"read\\" }\\n", datacenters: [dc2, dc1]}
          roles:
            r: {policies: [read]}
          tokens:
            t: {policies: [read], roles: [r], secret: {env: T_SECRET}}
            f: {description: mine, local: true, secret: {file: secrets/f}}
      dc2: {}
"""


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedSpec:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "blob.bin").write_bytes(b"\x00\xffbinary")
    (tmp_path / "tree" / "x").mkdir(parents=True)
    (tmp_path / "tree" / "x" / "y").write_text("deep")
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(SPEC))
    return load_spec(tmp_path / "spec.yaml")


def test_kv_values(loaded: LoadedSpec) -> None:
    res = desired_datacenter(loaded, "dc1")
    assert res.kv["app/plain"] == KVPair("app/plain", b"hello", 0)
    assert res.kv["app/flagged"] == KVPair("app/flagged", b"x", 42)
    assert res.kv["app/file"].value == b"\x00\xffbinary"
    assert json.loads(res.kv["app/json"].value) == {"b": 1, "a": [True, None]}
    assert res.kv["app/tree/x/y"].value == b"deep"
    assert res.prefixes == ("app/",)


def test_datacenter_settings(loaded: LoadedSpec) -> None:
    res = desired_datacenter(loaded, "dc1", revision="abc123")
    assert res.datacenter == "dc1" and res.address == "http://127.0.0.1:8500"
    assert res.prune is True and res.name == "demo" and res.ledger_name == "demo"
    assert res.digest == loaded.digest and res.revision == "abc123"
    agent = res.agents["n1"]
    assert (agent.server, agent.bind, agent.http_address) == (
        True,
        "127.0.0.11",
        "http://127.0.0.11:8500",
    )


def test_services_are_canonical(loaded: LoadedSpec) -> None:
    svc = desired_datacenter(loaded, "dc1").services["n1/web"]
    assert (svc.agent, svc.id, svc.name, svc.port) == ("n1", "web", "web", 8080)
    assert svc.tags == ("v1", "v2")
    assert svc.meta == (("owner", "a"), ("team", "b"))
    assert [c.id for c in svc.checks] == ["service:web:1", "service:web:3", "web-ttl"]
    http, script, ttl = svc.checks
    assert http == CheckDef(
        id="service:web:1",
        name="Service 'web' check",
        kind="http",
        target="http://127.0.0.11:8080/health",
        interval="1m30s",
        timeout="2s",
        method="HEAD",
    )
    assert (script.kind, script.target, script.interval) == ("script", "/bin/check --fast", "1m0s")
    assert (ttl.kind, ttl.name, ttl.ttl, ttl.target) == ("ttl", "heartbeat", "30s", "")


def test_external_nodes(loaded: LoadedSpec) -> None:
    node = desired_datacenter(loaded, "dc1").external_nodes["db"]
    assert node.address == "10.0.0.5"
    assert [s.id for s in node.services] == ["pg-1", "pg-2"]


def test_acl(loaded: LoadedSpec, tmp_path: Path) -> None:
    res = desired_datacenter(loaded, "dc1")
    policy = res.policies["read"]
    assert policy.rules == 'key_prefix "app/" { policy = "read" }'
    assert policy.datacenters == ("dc1", "dc2")
    assert res.roles["r"].policies == ("read",)
    t, f = res.tokens["t"], res.tokens["f"]
    assert t.description == "gitkv:t" and t.policies == ("read",) and t.roles == ("r",)
    assert t.secret == SecretRef(env="T_SECRET")
    assert f.description == "mine" and f.local is True
    assert f.secret == SecretRef(file=str((tmp_path / "secrets" / "f").resolve()))
    assert res.has_acl


def test_every_datacenter(loaded: LoadedSpec) -> None:
    all_dcs = desired(loaded.spec, loaded.base_dir)
    assert set(all_dcs) == {"dc1", "dc2"}
    assert all_dcs["dc2"].kv == {} and all_dcs["dc2"].address is None
    with pytest.raises(GitkvError, match="several datacenters"):
        desired_datacenter(loaded)
    with pytest.raises(GitkvError, match="not in the spec"):
        desired_datacenter(loaded, "dc9")


def test_unreadable_file_at_desired_time(loaded: LoadedSpec) -> None:
    (loaded.base_dir / "files" / "blob.bin").unlink()
    with pytest.raises(GitkvError, match="cannot read KV value file"):
        desired_datacenter(loaded, "dc1")


def test_examples_convert() -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    quick = desired_datacenter(load_spec(root / "quickstart"))
    assert quick.agents["dev"].http_address == "http://127.0.0.1:8500"
    assert "dev/web" in quick.services
    shenzhen = desired_datacenter(load_spec(root / "shenzhen"))
    assert set(shenzhen.agents) == {"node1", "node2", "node3", "node4"}
    assert shenzhen.kv["app/shared/region"].value == b"shenzhen\n"
