"""The ACL answers HashiCorp's Go client tests expect (api/acl_test.go), on a real agent.

TestAPI_ACLBootstrap: before bootstrap an unknown token is told the ACL system needs
bootstrapping, after it the management and anonymous tokens are the only ones.
TestAPI_ACLPolicy_List: the builtin global-management and builtin/global-read-only policies
are listed next to the ones created. TestAPI_ACLToken_ListFiltered: `?servicename=` and only
one filter at a time. Reads of a missing record are 404 with Consul's words; an ID that is no
UUID is the index's error (500), as Consul's memdb lookup answers it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.conftest import dev_agent_args

READ_ONLY_ID = "00000000-0000-0000-0000-000000000002"


def _acl_agent(tmp: Path, acl: dict) -> AgentProc:
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "acl.json"
    config.write_text(json.dumps({"primary_datacenter": "dc1", "acl": acl}))
    return AgentProc(*dev_agent_args(), f"-config-file={config}", http_port=free_port())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """makeACLClient: default deny, initial management and agent token "root"."""
    acl = {"enabled": True, "default_policy": "deny"}
    acl["tokens"] = {"initial_management": "root", "agent": "root"}
    agent = _acl_agent(tmp_path_factory.mktemp("acl-root"), acl).start()
    try:
        with agent.client() as http:
            http.headers["X-Consul-Token"] = "root"
            yield http
    finally:
        agent.cleanup()


def test_bootstrap_of_a_deny_cluster(tmp_path: Path) -> None:
    agent = _acl_agent(tmp_path, {"enabled": True, "default_policy": "deny"}).start()
    try:
        with agent.client() as http:
            r = http.get("/v1/acl/tokens")
            assert (r.status_code, r.text) == (
                403,
                "Permission denied: anonymous token lacks permission 'acl:read'. The anonymous "
                "token is used implicitly when a request does not specify a token.",
            )
            r = http.get("/v1/acl/tokens", headers={"X-Consul-Token": "root"})
            assert (r.status_code, r.text) == (
                403,
                "ACL system must be bootstrapped before making any requests that require "
                "authorization: ACL not found",
            )
            # BootstrapWithToken: a secret that is no UUID is refused and nothing is written.
            bad = http.put("/v1/acl/bootstrap", json={"BootstrapSecret": "not-a-uuid"})
            assert (bad.status_code, bad.text) == (500, "uuid string is wrong length")
            secret = "2b778dd9-f5f1-6f29-b4b4-9a5fa948757a"
            made = http.put("/v1/acl/bootstrap", json={"BootstrapSecret": secret})
            assert made.status_code == 200, made.text
            assert made.json()["SecretID"] == made.json()["ID"] == secret
            tokens = http.get("/v1/acl/tokens", headers={"X-Consul-Token": secret}).json()
            assert len(tokens) == 2  # management and anonymous
            # Bootstrapped: an unknown token is simply not found.
            r = http.get("/v1/acl/tokens", headers={"X-Consul-Token": "root"})
            assert (r.status_code, r.text) == (403, "ACL not found")
    finally:
        agent.cleanup()


def test_policy_list_holds_both_builtins(root: httpx.Client) -> None:
    names = {p["ID"]: p["Name"] for p in root.get("/v1/acl/policies").json()}
    assert names["00000000-0000-0000-0000-000000000001"] == "global-management"
    assert names[READ_ONLY_ID] == "builtin/global-read-only"
    policy = root.get(f"/v1/acl/policy/{READ_ONLY_ID}").json()
    assert 'key_prefix "" { policy = "read" }' in policy["Rules"]
    r = root.delete(f"/v1/acl/policy/{READ_ONLY_ID}")
    assert (r.status_code, r.text) == (
        400,
        "Delete operation not permitted on the builtin builtin/global-read-only policy",
    )
    changed = {**policy, "Name": "reads", "Rules": 'key_prefix "" { policy = "write" }'}
    r = root.put(f"/v1/acl/policy/{READ_ONLY_ID}", json=changed)
    assert r.status_code == 400 and "Changing the Rules for the builtin" in r.text
    # A token holding it reads everything and writes nothing.
    token = root.put("/v1/acl/token", json={"Policies": [{"ID": READ_ONLY_ID}]}).json()
    reader = {"X-Consul-Token": token["SecretID"]}
    assert root.put("/v1/kv/ro-check", content=b"v").json() is True
    assert root.get("/v1/kv/ro-check", headers=reader).status_code == 200
    assert root.put("/v1/kv/ro-check", content=b"w", headers=reader).status_code == 403
    assert root.get("/v1/acl/tokens", headers=reader).status_code == 200


def test_reads_of_missing_and_malformed_ids(root: httpx.Client) -> None:
    missing = "7ab2d3a9-0000-4000-8000-000000000000"
    for kind in ("policy", "role", "token"):
        r = root.get(f"/v1/acl/{kind}/{missing}")
        assert (r.status_code, r.text) == (404, f"Requested {kind} does not exist: ACL not found")
        r = root.get(f"/v1/acl/{kind}/not-a-uuid")
        assert (r.status_code, r.text) == (
            500,
            f"failed acl {kind} lookup: UUID must be 36 characters",
        )
    r = root.get("/v1/acl/policy/7ab2d3a9-0000-4000-8000-00000000000z")
    assert r.status_code == 500
    assert (
        r.text == "failed acl policy lookup: Invalid UUID: encoding/hex: invalid byte: U+007A 'z'"
    )
    r = root.get("/v1/acl/policy/name/nope")
    assert (r.status_code, r.text) == (404, "Requested policy does not exist: ACL not found")
    r = root.get("/v1/acl/token/self", headers={"X-Consul-Token": missing})
    assert (r.status_code, r.text) == (404, "Supplied token does not exist")
    assert root.get("/v1/acl/token/self").json()["SecretID"] == "root"


def test_token_list_by_service_name(root: httpx.Client) -> None:
    def make(description: str, *services: str) -> None:
        body = {
            "Description": description,
            "ServiceIdentities": [{"ServiceName": s} for s in services],
        }
        assert root.put("/v1/acl/token", json=body).status_code == 200

    make("token1", "s1")
    make("token2", "s2")
    make("token3", "s1", "s2")
    listed = root.get("/v1/acl/tokens", params={"servicename": "s1"}).json()
    assert sorted(t["Description"] for t in listed) == ["token1", "token3"]
    listed = root.get("/v1/acl/tokens", params={"servicename": "s2"}).json()
    assert sorted(t["Description"] for t in listed) == ["token2", "token3"]
    assert root.get("/v1/acl/tokens", params={"servicename": "nothing"}).json() == []
    r = root.get("/v1/acl/tokens", params={"servicename": "s", "authmethod": "a"})
    assert r.status_code == 500 and "can only filter by one of" in r.text
