"""gitkv's client and state reader against recorded HashiCorp Consul response shapes.

The fixtures in `fixtures/consul/` follow Consul's documented wire format; if these pass,
gitkv reads and writes a real Consul the same way it does the bundled agent.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from gitkv.apply import apply_plan
from gitkv.client import ConsulClient, ConsulSettings, normalize_address
from gitkv.errors import ClusterError, StalePlanError
from gitkv.plan import plan
from gitkv.resources import (
    AclPolicy,
    AclToken,
    AgentSpec,
    CheckDef,
    KVPair,
    Resources,
    ServiceReg,
)
from gitkv.state import read_live

FIXTURES = Path(__file__).parent / "fixtures" / "consul"
ADDR = "http://127.0.0.14:8500"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


class Recorded:
    """Serves fixture files by `(method, path)`; records requests for assertions."""

    def __init__(self, routes: dict[tuple[str, str], tuple[int, str | None]]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path)
        if key not in self.routes:
            return httpx.Response(404, text="Invalid URL path: not a recognized HTTP API endpoint")
        status, name = self.routes[key]
        body = fixture(name) if name else b""
        ctype = "application/json" if name and name.endswith(".json") else "text/plain"
        return httpx.Response(status, content=body, headers={"Content-Type": ctype})

    def client(self, token: str | None = None) -> ConsulClient:
        return ConsulClient(
            ConsulSettings(address=ADDR, token=token), transport=httpx.MockTransport(self)
        )


CLUSTER_ROUTES: dict[tuple[str, str], tuple[int, str | None]] = {
    ("GET", "/v1/kv/gitkv/state/dc1"): (200, "kv_ledger.json"),
    ("GET", "/v1/kv/app/"): (200, "kv_recurse_app.json"),
    ("GET", "/v1/agent/self"): (200, "agent_self.json"),
    ("GET", "/v1/agent/members"): (200, "agent_members.json"),
    ("GET", "/v1/agent/services"): (200, "agent_services.json"),
    ("GET", "/v1/agent/checks"): (200, "agent_checks.json"),
    ("GET", "/v1/acl/policies"): (200, "acl_policies.json"),
    ("GET", "/v1/acl/policy/a1b2c3d4-0000-4000-8000-000000000001"): (
        200,
        "acl_policy_web_read.json",
    ),
    ("GET", "/v1/acl/roles"): (200, "acl_roles.json"),
    ("GET", "/v1/acl/tokens"): (200, "acl_tokens.json"),
}

WEB = ServiceReg(
    agent="node4",
    id="web",
    name="web",
    tags=("v1",),
    port=8080,
    meta=(("team", "a"),),
    checks=(
        CheckDef(
            "service:web", "Service 'web' check", "http", "http://127.0.0.14:8080/health", "90s"
        ),
    ),
)


def desired() -> Resources:
    return Resources(
        datacenter="dc1",
        kv={"app/web/banner": KVPair("app/web/banner", b"hello", 42)},
        services={WEB.key: WEB},
        policies={
            "web-read": AclPolicy("web-read", rules='key_prefix "app/web/" { policy = "read" }')
        },
        tokens={"web": AclToken("web", description="gitkv:web", policies=("web-read",))},
        agents={n: AgentSpec(n) for n in ("node1", "node2", "node3", "node4")},
        prefixes=("app/",),
    )


def test_read_live_from_recorded_shapes() -> None:
    rec = Recorded(CLUSTER_ROUTES)
    with rec.client() as c:
        live = read_live(c, desired())
    assert live.kv["app/web/banner"] == KVPair("app/web/banner", b"hello", 42)
    assert live.kv["app/web/empty"].value == b""  # Value: null
    assert live.kv_index == {"app/web/banner": 15, "app/web/empty": 13, "app/web/locked": 21}
    assert live.ledger is not None and live.ledger_index == 31
    assert live.ledger.manages("service", "node4/web")

    web = live.services["node4/web"]
    assert web.meta == (("team", "a"),)  # gitkv's digest is lifted out of the meta
    assert web.checks_digest == "0123456789abcdef"
    (check,) = web.checks
    assert (check.id, check.kind, check.interval, check.target) == (
        "service:web",
        "http",
        "1m30s",
        "",
    )
    assert live.services["node4/cache"].address == "127.0.0.99"

    assert [(m.name, m.status, m.server) for m in live.members] == [
        ("node1", "alive", True),
        ("node2", "failed", True),
        ("node4", "alive", False),
    ]
    assert live.policies["web-read"].rules.startswith('key_prefix "app/web/"')
    assert ("acl_policy", "ops") in live.unmanaged_acl
    assert ("acl_policy", "global-management") not in live.unmanaged_acl
    assert live.token_ids == {"web": "e7f3dc95-49ba-47a8-a0c6-7ae022af92ac"}
    # Older servers list SecretIDs; they must not survive into gitkv's values.
    assert "3f8a1a52" not in repr(live)
    # One recursive read per prefix, never a read per key.
    kv_gets = [r.url.path for r in rec.requests if r.url.path.startswith("/v1/kv/")]
    assert kv_gets == ["/v1/kv/gitkv/state/dc1", "/v1/kv/app/"]
    assert all(
        r.url.params.get("recurse") == "" for r in rec.requests if r.url.path == "/v1/kv/app/"
    )


def test_plan_over_recorded_shapes() -> None:
    rec = Recorded(CLUSTER_ROUTES)
    with rec.client() as c:
        p = plan(desired(), read_live(c, desired()))
    # The service's stored digest is not the spec's: its checks changed -> update.
    assert [(ch.action, ch.kind, ch.id) for ch in p.changes] == [("update", "service", "node4/web")]
    assert {(d.agent, d.problem) for d in p.drift} == {
        ("node2", "failed"),
        ("node3", "missing"),
    }
    assert ("kv", "app/web/locked") in p.unmanaged
    assert ("service", "node4/cache") in p.unmanaged


def _kv_change_plan(routes: dict[tuple[str, str], tuple[int, str | None]]) -> tuple[Any, Recorded]:
    rec = Recorded({**CLUSTER_ROUTES, **routes})
    want = Resources(
        datacenter="dc1",
        kv={"app/web/banner": KVPair("app/web/banner", b"bye", 42)},
        prefixes=("app/",),
        digest="new-spec-digest",  # so the ledger is rewritten in the same txn
    )
    with rec.client() as c:
        p = plan(want, read_live(c, want))
    return p, rec


def test_txn_200_shape_advances_the_ledger_index() -> None:
    p, rec = _kv_change_plan({("PUT", "/v1/txn"): (200, "txn_200.json")})
    with rec.client() as c:
        result = apply_plan(c, p)
    assert result.ledger_index == 40
    (txn,) = [r for r in rec.requests if r.url.path == "/v1/txn"]
    ops = json.loads(txn.content)
    assert ops[0] == {
        "KV": {"Verb": "cas", "Key": "app/web/banner", "Value": "Ynll", "Flags": 42, "Index": 15}
    }
    assert ops[-1]["KV"]["Verb"] == "cas"
    assert ops[-1]["KV"]["Key"] == "gitkv/state/dc1" and ops[-1]["KV"]["Index"] == 31


def test_txn_409_shape_is_a_stale_plan_naming_the_key() -> None:
    p, rec = _kv_change_plan({("PUT", "/v1/txn"): (409, "txn_409.json")})
    with rec.client() as c, pytest.raises(StalePlanError) as err:
        apply_plan(c, p)
    assert err.value.keys == ("app/web/banner",)
    assert "index is stale" in str(err.value)


def test_acl_401_skips_acl_with_a_note() -> None:
    rec = Recorded({**CLUSTER_ROUTES, ("GET", "/v1/acl/policies"): (401, "acl_disabled.txt")})
    with rec.client() as c:
        live = read_live(c, desired())
    assert live.acl_enabled is False
    assert any("ACL support disabled" in n for n in live.notes)
    p = plan(desired(), live)
    assert all(not ch.kind.startswith("acl_") for ch in p.changes)


def test_403_says_to_set_a_token() -> None:
    rec = Recorded({("GET", "/v1/kv/app/"): (403, "permission_denied.txt")})
    with rec.client() as c, pytest.raises(ClusterError) as err:
        c.kv_list("app/")
    assert err.value.status == 403
    assert "permission denied" in str(err.value)
    assert "CONSUL_HTTP_TOKEN" in str(err.value)


def test_token_is_sent_as_header_and_never_printed() -> None:
    rec = Recorded({("GET", "/v1/kv/app/"): (200, "kv_recurse_app.json")})
    with rec.client(token="tok-secret-123") as c:
        c.kv_list("app/")
        assert "tok-secret-123" not in repr(c.settings)
    assert rec.requests[0].headers["X-Consul-Token"] == "tok-secret-123"


def test_connection_refused_names_the_address() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"http://127.0.0.1:{port}"
    with (
        ConsulClient(ConsulSettings(address=addr, timeout=5)) as c,
        pytest.raises(ClusterError) as err,
    ):
        c.kv_list("app/")
    assert str(err.value).startswith(f"cannot reach Consul at {addr}")
    assert err.value.status is None


def test_env_conventions(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    s = ConsulSettings.from_env(
        env={
            "CONSUL_HTTP_ADDR": "10.0.0.1:8501",
            "CONSUL_HTTP_SSL": "true",
            "CONSUL_HTTP_TOKEN_FILE": str(token_file),
        }
    )
    assert s.address == "https://10.0.0.1:8501"
    assert s.token == "from-file"
    s = ConsulSettings.from_env(
        env={"CONSUL_HTTP_TOKEN": "env-wins", "CONSUL_HTTP_TOKEN_FILE": str(token_file)}
    )
    assert s.address == "http://127.0.0.1:8500" and s.token == "env-wins"
    assert ConsulSettings.from_env("https://h:1", env={}).address == "https://h:1"
    assert normalize_address("http://h:8500/") == "http://h:8500"
    with pytest.raises(ClusterError, match="unsupported"):
        normalize_address("unix:///tmp/consul.sock")
