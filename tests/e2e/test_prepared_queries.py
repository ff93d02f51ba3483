"""Prepared queries' definitions on a real agent with ACLs: create, read, update, delete,
blocking lists, ACL rules and token redaction, session-bound queries, and bad input (a status,
Consul's message, and nothing written)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import consul
import httpx
import pytest

from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.seedcluster import eventually

MGMT = "6f6d1c1e-2d0a-4a57-9c55-8f6a2b7b7c01"
UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


def _args(tmp: Path) -> list[str]:
    acl = {
        "enabled": True,
        "default_policy": "deny",
        "tokens": {"initial_management": MGMT, "agent": MGMT},
    }
    config = tmp / "acl.json"
    config.write_text(json.dumps({"acl": acl}))
    return [
        "-server",
        "-bootstrap-expect=1",
        f"-data-dir={tmp / 'data'}",
        "-node=pq1",
        "-bind=127.0.0.1",
        "-client=127.0.0.1",
        f"-server-port={free_port()}",
        "-dns-port=-1",
        f"-serf-lan-port={free_port()}",
        "-serf-wan-port=-1",
        f"-config-file={config}",
    ]


class Caller:
    def __init__(self, http: httpx.Client, token: str | None) -> None:
        self.http, self.token = http, token

    def __call__(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"X-Consul-Token": self.token} if self.token else {}
        return self.http.request(method, path, headers=headers, **kw)


class Setup:
    def __init__(self, agent: AgentProc) -> None:
        self.http = agent.client()
        self.mgmt = Caller(self.http, MGMT)
        self.anon = Caller(self.http, None)

    def token(self, rules: str) -> Caller:
        name = f"p{abs(hash(rules))}"
        r = self.mgmt("PUT", "/v1/acl/policy", json={"Name": name, "Rules": rules})
        assert r.status_code == 200, r.text
        r = self.mgmt("PUT", "/v1/acl/token", json={"Policies": [{"Name": name}]})
        assert r.status_code == 200, r.text
        return Caller(self.http, r.json()["SecretID"])

    def listing(self) -> tuple[str, list[dict]]:
        r = self.mgmt("GET", "/v1/query")
        assert r.status_code == 200, r.text
        return r.headers["X-Consul-Index"], r.json()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    agent = AgentProc(*_args(tmp_path_factory.mktemp("pq"))).start()
    s = Setup(agent)
    try:
        yield s
    finally:
        s.http.close()
        agent.cleanup()


def _create(call: Caller, body: dict) -> str:
    r = call("POST", "/v1/query", json=body)
    assert r.status_code == 200, r.text
    return r.json()["ID"]


def test_create_read_update_delete(setup: Setup) -> None:
    mgmt = setup.mgmt
    body = {
        "Name": "crud",
        "Service": {"Service": "db", "Tags": ["primary", "!old"], "Failover": {"NearestN": 2}},
        "DNS": {"TTL": "10s"},
    }
    query_id = _create(mgmt, body)
    r = mgmt("GET", f"/v1/query/{query_id}")
    assert r.status_code == 200
    [query] = r.json()
    assert query["ID"] == query_id and query["Name"] == "crud"
    assert query["Service"]["Tags"] == ["primary", "!old"]
    assert query["Service"]["Failover"] == {"NearestN": 2, "Datacenters": None, "Targets": None}
    assert query["DNS"] == {"TTL": "10s"} and query["Template"]["Type"] == ""
    assert int(r.headers["X-Consul-Index"]) == query["ModifyIndex"]
    assert query_id in [q["ID"] for q in setup.listing()[1]]

    r = mgmt("PUT", f"/v1/query/{query_id}", json={"Name": "crud2", "Service": {"Service": "web"}})
    assert (r.status_code, r.text) == (200, "")
    [updated] = mgmt("GET", f"/v1/query/{query_id}").json()
    assert updated["Name"] == "crud2" and updated["Service"]["Service"] == "web"
    assert updated["CreateIndex"] == query["CreateIndex"]
    assert updated["ModifyIndex"] > query["ModifyIndex"]

    r = mgmt("DELETE", f"/v1/query/{query_id}")
    assert (r.status_code, r.text) == (200, "")
    r = mgmt("GET", f"/v1/query/{query_id}")
    assert (r.status_code, r.text) == (404, "Query not found")
    r = mgmt("DELETE", f"/v1/query/{query_id}")
    assert (r.status_code, r.text) == (
        500,
        f"Cannot modify non-existent prepared query: '{query_id}'",
    )


def test_a_template_is_stored_as_defined(setup: Setup) -> None:
    body = {
        "Name": "geo-",
        "Template": {"Type": "name_prefix_match", "Regexp": "^geo-(.*)$", "RemoveEmptyTags": True},
        "Service": {"Service": "${match(1)}", "Tags": ["${agent.segment}"]},
    }
    query_id = _create(setup.mgmt, body)
    [query] = setup.mgmt("GET", f"/v1/query/{query_id}").json()
    assert query["Template"] == body["Template"]
    assert query["Service"]["Service"] == "${match(1)}"
    assert setup.mgmt("DELETE", f"/v1/query/{query_id}").status_code == 200


def test_list_blocks_until_the_table_changes(setup: Setup) -> None:
    index, _ = setup.listing()
    created: list[str] = []
    timer = threading.Timer(
        0.3,
        lambda: created.append(
            _create(setup.mgmt, {"Name": "blocker", "Service": {"Service": "db"}})
        ),
    )
    timer.start()
    try:
        r = setup.mgmt("GET", "/v1/query", params={"index": index, "wait": "10s"})
    finally:
        timer.join()
    assert r.status_code == 200
    assert int(r.headers["X-Consul-Index"]) > int(index)
    assert created and created[0] in [q["ID"] for q in r.json()]
    setup.mgmt("DELETE", f"/v1/query/{created[0]}")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/v1/query", b"{", 400, "Request decode failed: "),
        ("POST", "/v1/query", b"", 400, "Request decode failed: EOF"),
        (
            "POST",
            "/v1/query",
            {"Name": "x", "Service": {"Service": "db", "Failover": {"NearestN": "2"}}},
            400,
            "Request decode failed: json: cannot unmarshal string into Go struct field "
            "QueryFailoverOptions.Service.Failover.NearestN of type int",
        ),
        (
            "POST",
            "/v1/query",
            {"Name": "x"},
            500,
            "Invalid prepared query: Must provide a Service name to query",
        ),
        (
            "POST",
            "/v1/query",
            {"Service": {"Service": "db"}},
            500,
            "Invalid prepared query: Must be bound to a session",
        ),
        (
            "POST",
            "/v1/query",
            {"Name": "x", "Service": {"Service": "db", "Failover": {"NearestN": -1}}},
            500,
            "Invalid prepared query: Bad NearestN '-1', must be >= 0",
        ),
        (
            "POST",
            "/v1/query",
            {"Name": "x", "Service": {"Service": "db"}, "DNS": {"TTL": "ten"}},
            500,
            "Invalid prepared query: Bad DNS TTL 'ten': time: invalid duration \"ten\"",
        ),
        (
            "POST",
            "/v1/query",
            {"Name": "x", "Token": "<hidden>", "Service": {"Service": "db"}},
            500,
            "Invalid prepared query: Bad Token '<hidden>', it looks like a query definition "
            "with a redacted token was submitted",
        ),
        (
            "POST",
            "/v1/query",
            {"ID": UNKNOWN_ID, "Name": "x", "Service": {"Service": "db"}},
            500,
            "ID must be empty when creating a new prepared query",
        ),
        (
            "POST",
            "/v1/query",
            {
                "Name": "t-",
                "Template": {"Type": "name_prefix_match", "Regexp": "^(t-"},
                "Service": {"Service": "db"},
            },
            500,
            "raft apply failed: failed compiling template: Bad Regexp: error parsing regexp: "
            "missing closing ): `^(t-`",
        ),
        (
            "POST",
            "/v1/query",
            {
                "Name": "t-",
                "Template": {"Type": "name_prefix_match"},
                "Service": {"Service": "${nope}"},
            },
            500,
            "raft apply failed: failed compiling template: Bad evaluation for '${nope}' in "
            "Service.Service: 1:3: unknown variable accessed: nope",
        ),
        (
            "POST",
            "/v1/query",
            {"Name": "t-", "Template": {"Type": "prefix"}, "Service": {"Service": "db"}},
            500,
            "raft apply failed: failed compiling template: Bad Template.Type 'prefix'",
        ),
        (
            "POST",
            "/v1/query",
            {"Session": UNKNOWN_ID, "Service": {"Service": "db"}},
            500,
            f'raft apply failed: invalid session "{UNKNOWN_ID}"',
        ),
        (
            "PUT",
            f"/v1/query/{UNKNOWN_ID}",
            {"Name": "x", "Service": {"Service": "db"}},
            500,
            f"Cannot modify non-existent prepared query: '{UNKNOWN_ID}'",
        ),
        (
            "GET",
            "/v1/query/not-an-id",
            None,
            500,
            "failed prepared query lookup: UUID must be 36 characters",
        ),
        ("GET", f"/v1/query/{UNKNOWN_ID}", None, 404, "Query not found"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    setup: Setup, method: str, path: str, body: Any, status: int, message: str
) -> None:
    before = setup.listing()
    kw = (
        {"content": body} if isinstance(body, bytes) else {"json": body} if body is not None else {}
    )
    r = setup.mgmt(method, path, **kw)
    assert r.status_code == status, r.text
    assert r.text.startswith(message) if message.endswith(": ") else r.text == message
    assert setup.listing() == before


def test_names_are_unique_in_any_case_and_never_an_existing_id(setup: Setup) -> None:
    first = _create(setup.mgmt, {"Name": "unique", "Service": {"Service": "db"}})
    before = setup.listing()
    for name, message in (
        ("UNIQUE", "name 'UNIQUE' aliases an existing query name"),
        (first, f"name '{first}' aliases an existing query ID"),
    ):
        r = setup.mgmt("POST", "/v1/query", json={"Name": name, "Service": {"Service": "db"}})
        assert (r.status_code, r.text) == (500, f"raft apply failed: {message}")
    assert setup.listing() == before
    setup.mgmt("DELETE", f"/v1/query/{first}")


def test_acl_rules_filtering_and_redaction(setup: Setup) -> None:
    writer = setup.token('query_prefix "acl-" { policy = "write" }')
    reader = setup.token('query_prefix "" { policy = "read" }')
    stranger = setup.token('key_prefix "x/" { policy = "read" }')

    named = _create(
        writer, {"Name": "acl-db", "Token": "exec-secret", "Service": {"Service": "db"}}
    )
    r = writer("POST", "/v1/query", json={"Name": "other", "Service": {"Service": "db"}})
    assert r.status_code == 403
    assert "lacks permission 'query:write' on \"other\"" in r.text
    # Renaming out of the prefix needs write on the new name too.
    r = writer("PUT", f"/v1/query/{named}", json={"Name": "zzz", "Service": {"Service": "db"}})
    assert r.status_code == 403 and "query:write" in r.text
    r = reader("PUT", f"/v1/query/{named}", json={"Name": "acl-db", "Service": {"Service": "x"}})
    assert r.status_code == 403
    assert reader("DELETE", f"/v1/query/{named}").status_code == 403

    # Management sees the stored token; a reader sees it hidden; others see nothing.
    [mine] = setup.mgmt("GET", f"/v1/query/{named}").json()
    assert mine["Token"] == "exec-secret"
    [theirs] = reader("GET", f"/v1/query/{named}").json()
    assert theirs["Token"] == "<hidden>"
    assert [q["Token"] for q in reader("GET", "/v1/query").json() if q["ID"] == named] == [
        "<hidden>"
    ]
    r = stranger("GET", f"/v1/query/{named}")
    assert (r.status_code, r.text) == (403, "Permission denied")
    r = stranger("GET", "/v1/query")
    assert r.status_code == 200 and r.json() == []
    assert r.headers.get("X-Consul-Results-Filtered-By-ACLs") == "true"
    assert setup.anon("GET", "/v1/query").json() == []

    # An unnamed query is guarded by its ID only: anyone who has it may read it (token
    # hidden), but only management lists it.
    session = setup.mgmt("PUT", "/v1/session/create", json={}).json()["ID"]
    unnamed = _create(stranger, {"Session": session, "Token": "t", "Service": {"Service": "db"}})
    [seen] = stranger("GET", f"/v1/query/{unnamed}").json()
    assert seen["Token"] == "<hidden>"
    assert unnamed not in [q["ID"] for q in reader("GET", "/v1/query").json()]
    assert unnamed in [q["ID"] for q in setup.listing()[1]]

    assert writer("DELETE", f"/v1/query/{named}").status_code == 200
    assert stranger("DELETE", f"/v1/query/{unnamed}").status_code == 200
    r = setup.http.get(
        "/v1/query", headers={"X-Consul-Token": "5c9a4f7e-0000-4000-8000-000000000000"}
    )
    assert (r.status_code, r.text) == (403, "ACL not found")


def test_destroying_its_session_deletes_a_bound_query(setup: Setup) -> None:
    session = setup.mgmt("PUT", "/v1/session/create", json={}).json()["ID"]
    bound = _create(setup.mgmt, {"Session": session, "Service": {"Service": "db"}})
    named = _create(
        setup.mgmt, {"Name": "bound-named", "Session": session, "Service": {"Service": "db"}}
    )
    assert setup.mgmt("GET", f"/v1/query/{bound}").status_code == 200
    assert setup.mgmt("PUT", f"/v1/session/destroy/{session}").json() is True
    for query_id in (bound, named):
        r = setup.mgmt("GET", f"/v1/query/{query_id}")
        assert (r.status_code, r.text) == (404, "Query not found")


def test_execute_and_explain_only_answer_get(setup: Setup) -> None:
    query_id = _create(setup.mgmt, {"Name": "verbs", "Service": {"Service": "db"}})
    for suffix in ("execute", "explain"):
        r = setup.mgmt("PUT", f"/v1/query/{query_id}/{suffix}")
        assert r.status_code == 405 and r.headers["Allow"] == "OPTIONS,GET"
    setup.mgmt("DELETE", f"/v1/query/{query_id}")


def test_a_snapshot_carries_queries_and_a_restart_keeps_them(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("pq-snap")
    agent = AgentProc(*_args(tmp)).start()
    try:
        s = Setup(agent)
        template = {
            "Name": "snap-",
            "Template": {"Type": "name_prefix_match"},
            "Service": {"Service": "${name.suffix}"},
        }
        query_id = _create(s.mgmt, template)
        saved = s.mgmt("GET", "/v1/snapshot")
        assert saved.status_code == 200
        assert s.mgmt("DELETE", f"/v1/query/{query_id}").status_code == 200
        assert s.mgmt("PUT", "/v1/snapshot", content=saved.content).status_code == 200
        [restored] = s.mgmt("GET", f"/v1/query/{query_id}").json()
        assert restored["Template"]["Type"] == "name_prefix_match"
        # The restored template still answers the names it prefixes.
        explained = s.mgmt("GET", "/v1/query/snap-db/explain").json()
        assert explained["Query"]["Service"]["Service"] == "db"
        s.http.close()
        agent.stop()
        agent = AgentProc(*_args(tmp)).start()
        s = Setup(agent)
        [again] = s.mgmt("GET", f"/v1/query/{query_id}").json()
        assert again == restored
        s.http.close()
    finally:
        agent.cleanup()


def test_py_consul_drives_the_whole_api(dev_agent_module: AgentProc) -> None:
    """py-consul, unmodified, on a -dev agent (its create sends the token only inside the
    query, so it needs ACLs off): lower-case keys, always a name_prefix_match template,
    updates and deletes read as the status alone."""
    c = consul.Consul(host=dev_agent_module.ip, port=dev_agent_module.http_port)
    created = c.query.create("pyc-db", name="pyc-", tags=["primary"], ttl="10s", nearestn=2)
    query_id = created["ID"]
    [query] = c.query.get(query_id)
    assert query["Template"]["Type"] == "name_prefix_match"
    assert query["Service"]["Tags"] == ["primary"] and query["DNS"]["TTL"] == "10s"
    assert query["Service"]["Failover"]["NearestN"] == 2
    assert query_id in [q["ID"] for q in c.query.list()]
    assert c.query.update(query_id, "pyc-web", name="pyc-") is True
    assert c.query.get(query_id)[0]["Service"]["Service"] == "pyc-web"
    explained = c.query.explain("pyc-anything")
    assert explained["Query"]["ID"] == query_id
    assert c.query.execute("pyc-anything")["Service"] == "pyc-web"
    with pytest.raises(consul.ConsulException, match="Must provide a Service name"):
        c.query.create("", name="pyc-empty")
    assert c.query.delete(query_id) is True
    assert query_id not in [q["ID"] for q in c.query.list()]


def test_a_session_invalidated_by_its_check_takes_its_queries(
    dev_agent_module: AgentProc,
) -> None:
    """No explicit destroy: the session's TTL check goes critical, the session is invalidated
    and its query goes with it, in the same apply (the list's blocking read wakes on it)."""
    http = dev_agent_module.client()
    try:
        check = {"Name": "pq-lease", "TTL": "1s", "Status": "passing"}
        assert http.put("/v1/agent/check/register", json=check).status_code == 200

        def session_while_passing() -> str | None:
            http.put("/v1/agent/check/pass/pq-lease")
            body = {"NodeChecks": ["serfHealth", "pq-lease"]}
            answer = http.put("/v1/session/create", json=body)
            return answer.json()["ID"] if answer.status_code == 200 else None

        session = eventually(session_while_passing)
        body = {"Session": session, "Service": {"Service": "db"}}
        query_id = _create(Caller(http, None), body)
        listed = http.get("/v1/query")
        assert query_id in [q["ID"] for q in listed.json()]
        index = listed.headers["X-Consul-Index"]
        woke = http.get("/v1/query", params={"index": index, "wait": "30s"})
        assert woke.status_code == 200
        eventually(lambda: query_id not in [q["ID"] for q in http.get("/v1/query").json()])
        r = http.get(f"/v1/query/{query_id}")
        assert (r.status_code, r.text) == (404, "Query not found")
        assert http.get(f"/v1/session/info/{session}").json() == []
        http.put("/v1/agent/check/deregister/pq-lease")
    finally:
        http.close()
