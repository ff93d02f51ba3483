"""agent/http/acl.py on in-memory twins: bootstrap proposed through the writer, a policy
written and listed with the bootstrap token, and the refusals that never reach the log."""

from __future__ import annotations

import dataclasses
import json

import pytest

from agent.config import load_config
from agent.http import acl
from agent.http.app import HTTPError, Response
from agent.http.deps import HTTPDeps
from tests.harness import areas
from tests.harness.twins import MemoryWriter, http_deps


def acl_deps() -> HTTPDeps:
    config = load_config(["-dev"], environ={})
    settings = dataclasses.replace(config.acl, enabled=True, default_policy="deny")
    return http_deps(dataclasses.replace(config, acl=settings))


def call(deps: HTTPDeps, method: str, path: str, body: bytes = b"", token: str = "") -> Response:
    headers = [(b"x-consul-token", token.encode())] if token else []
    return areas.call(acl.register, deps, method, path, b"", body, headers)


def commands(deps: HTTPDeps) -> list[str]:
    assert isinstance(deps.writer, MemoryWriter)
    return deps.writer.types()


def test_bootstrap_then_a_policy_written_and_listed() -> None:
    deps = acl_deps()
    root = json.loads(call(deps, "PUT", "/v1/acl/bootstrap").body)
    assert "acl-bootstrap" in commands(deps)
    secret = root["SecretID"]
    policy = {"Name": "readers", "Rules": 'key_prefix "" { policy = "read" }'}
    made = json.loads(call(deps, "PUT", "/v1/acl/policy", json.dumps(policy).encode(), secret).body)
    assert made["Name"] == "readers"
    assert commands(deps)[-1] == "acl-policy-set"
    listed = json.loads(call(deps, "GET", "/v1/acl/policies", token=secret).body)
    assert {p["Name"] for p in listed} == {
        "global-management",
        "builtin/global-read-only",
        "readers",
    }
    replication = json.loads(call(deps, "GET", "/v1/acl/replication").body)
    assert replication["SourceDatacenter"] == "dc1"


def test_refusals_never_reach_the_writer() -> None:
    deps = acl_deps()
    secret = json.loads(call(deps, "PUT", "/v1/acl/bootstrap").body)["SecretID"]
    before = list(commands(deps))
    with pytest.raises(HTTPError) as anonymous:
        call(deps, "PUT", "/v1/acl/policy", b'{"Name": "p"}')
    assert anonymous.value.status == 403
    with pytest.raises(HTTPError) as bad_name:
        call(deps, "PUT", "/v1/acl/policy", b'{"Name": "no spaces"}', secret)
    assert bad_name.value.status == 400
    assert bad_name.value.message.startswith("Invalid Policy: invalid Name.")
    with pytest.raises(HTTPError) as no_agent_write:
        call(deps, "PUT", "/v1/agent/token/agent", b'{"Token": "x"}')
    assert "'agent:write'" in no_agent_write.value.message
    assert f'on "{deps.identity.node_name}"' in no_agent_write.value.message
    assert commands(deps) == before
