"""Anti-entropy under ACLs signs each catalog write as Consul's local state does: a service and
its checks with the token they were registered with (else config_file_service_registration for
config-file definitions, else default), a check with another token on its own, the node and
every deregistration with the agent token; the registration token survives a restart."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import load_config
from agent.local import LocalState
from agent.state.fsm import FSM
from agent.state.store import Store
from tests.harness.twins import LocalHostTwin, MemoryWriter

ACL = '-hcl=acl { enabled = true default_policy = "deny" }'


@dataclass
class ACLHost(LocalHostTwin):
    """A server host with ACLs on: anti-entropy's writes go through the API, recorded here."""

    tokens: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, dict, str]] = field(default_factory=list)

    async def api_call(self, method: str, path: str, body: Any, token: str = "") -> tuple[int, str]:
        self.calls.append((path, body, token))
        return 200, "true"

    def agent_tokens(self) -> dict[str, str]:
        return self.tokens


def host(data_dir: Path | None = None, **tokens: str) -> ACLHost:
    fsm = FSM(Store())
    config = load_config(["-dev", ACL], environ={})
    return ACLHost(
        config=config, data_dir=data_dir, writer=MemoryWriter(fsm), store=fsm.store, tokens=tokens
    )


def writes(agent: ACLHost) -> dict[str, str]:
    """What each register call carried: 'node', 'service <id> [checks]' or 'checks [...]'."""
    out = {}
    for path, body, token in agent.calls:
        if path.endswith("/deregister"):
            out[f"deregister {body.get('ServiceID') or body.get('CheckID')}"] = token
            continue
        checks = sorted(c["CheckID"] for c in body.get("Checks") or ())
        if body.get("Service"):
            out[f"service {body['Service']['ID']} {checks}"] = token
        elif checks:
            out[f"checks {checks}"] = token
        else:
            out["node"] = token
    return out


def test_services_and_checks_sync_with_their_registration_tokens() -> None:
    agent = host(agent="agent-tok", default="default-tok")
    local = LocalState(agent)
    local.add_service(
        {"ID": "web1", "Name": "web", "Check": {"CheckID": "web-ttl", "TTL": "30s"}},
        token="web-tok",
    )
    local.add_check(
        {"CheckID": "web-extra", "Name": "x", "ServiceID": "web1", "TTL": "9s"}, token="other"
    )
    local.add_service({"ID": "anon", "Name": "anon"})  # no token: the default one
    local.add_check({"CheckID": "mem", "Name": "mem", "TTL": "10s"}, token="mem-tok")
    asyncio.run(local.sync())
    assert writes(agent) == {
        "node": "agent-tok",
        "service web1 ['web-ttl']": "web-tok",
        "service web1 ['web-extra']": "other",
        "service anon []": "default-tok",
        "checks ['mem']": "mem-tok",
    }


def test_node_falls_back_to_default_token_and_deregistration_uses_the_agent_token() -> None:
    agent = host(default="default-tok")
    local = LocalState(agent)
    local.add_service({"ID": "web1", "Name": "web"}, token="web-tok")
    asyncio.run(local.sync())
    assert writes(agent)["node"] == "default-tok"
    # The catalog holds a service the agent no longer knows: removed with the node token.
    agent.calls.clear()
    agent.tokens["agent"] = "agent-tok"
    asyncio.run(agent.writer.write(_register_stray(agent)))
    asyncio.run(local.sync())
    assert writes(agent)["deregister stray"] == "agent-tok"


def _register_stray(agent: ACLHost) -> Any:
    from agent.state.commands import Register, ServiceRecord

    return Register(
        Node=agent.node_name,
        Address="127.0.0.1",
        Service=ServiceRecord(ID="stray", Service="stray"),
    )


def test_config_file_definitions_use_config_file_service_registration() -> None:
    agent = host(default="default-tok", config_file_service_registration="cfg-tok")
    agent.config = load_config(
        ["-dev", ACL, '-hcl=services { name = "db" id = "db1" }'], environ={}
    )
    local = LocalState(agent)
    local.load()
    local.add_service({"ID": "api1", "Name": "api"})
    asyncio.run(local.sync())
    found = writes(agent)
    assert found["service db1 []"] == "cfg-tok"
    assert found["service api1 []"] == "default-tok"


def test_registration_token_persists_over_a_restart(tmp_path: Path) -> None:
    local = LocalState(host(tmp_path))
    local.add_service({"ID": "web1", "Name": "web", "Check": {"TTL": "30s"}}, token="web-tok")
    local.add_check({"CheckID": "mem", "Name": "mem", "TTL": "10s"}, token="mem-tok")
    agent = host(tmp_path, default="default-tok")
    again = LocalState(agent)
    again.load()
    assert again.service_tokens == {"web1": "web-tok"}
    assert again.check_tokens == {"service:web1": "web-tok", "mem": "mem-tok"}
    asyncio.run(again.sync())
    assert writes(agent)["service web1 ['service:web1']"] == "web-tok"


def test_changing_a_token_slot_is_reported_once() -> None:
    from agent.acl.enforce import ACLRuntime

    cfg = load_config(["-dev", ACL], environ={})
    rt = ACLRuntime(Store(), cfg.acl, None, "n1", None, lambda: True)  # type: ignore[arg-type]
    seen: list[str] = []
    rt.on_token_change = seen.append
    rt.set_token("agent", "a")
    rt.set_token("agent", "a")  # unchanged: no new sync
    rt.set_token("dns", "d")
    assert seen == ["agent", "dns"]


def test_maintenance_checks_sync_with_the_callers_token() -> None:
    agent = host(agent="agent-tok", default="default-tok")
    local = LocalState(agent)
    local.add_service({"ID": "web1", "Name": "web"}, token="web-tok")
    local.set_service_maintenance("web1", True, "", token="ops-tok")
    local.set_node_maintenance(True, "", token="node-tok")
    asyncio.run(local.sync())
    found = writes(agent)
    assert found["service web1 ['_service_maintenance:web1']"] == "ops-tok"
    assert found["checks ['_node_maintenance']"] == "node-tok"
    local.set_service_maintenance("web1", False, "")
    assert "_service_maintenance:web1" not in local.check_tokens


@dataclass
class ClientHost(ACLHost):
    """A client agent: no store of its own, the catalog read from a server (recorded)."""

    reads: list[tuple[str, str | None]] = field(default_factory=list)

    def local_store(self) -> Store | None:
        return None

    async def read_remote(
        self, path: str, headers: list | None = None, token: str | None = None
    ) -> Any:
        self.reads.append((path, token))
        return None


def test_remote_alias_check_reads_with_its_own_token_else_default() -> None:
    fsm = FSM(Store())
    agent = ClientHost(
        config=load_config(["-dev", ACL], environ={}),
        data_dir=None,
        writer=MemoryWriter(fsm),
        store=fsm.store,
        tokens={"agent": "agent-tok", "default": "default-tok"},
    )
    local = LocalState(agent)
    alias = {"CheckID": "a1", "Name": "a", "AliasNode": "other", "AliasService": "db"}
    local.add_check(alias, token="alias-tok")
    local.add_check(alias | {"CheckID": "a2"})
    for cid in ("a1", "a2"):
        assert asyncio.run(local._remote_alias(local.checks[cid]))[0] == "critical"
    tokens = [token for path, token in agent.reads if path == "/v1/catalog/node/other"]
    assert tokens == ["alias-tok", "default-tok"]
