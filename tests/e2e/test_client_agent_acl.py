"""Applications on a CLIENT agent under `default_policy = "deny"` (the write-up's 3+1 shape).

Patroni, py-consul scripts and curl talk to their local agent, often a client agent: it holds
no ACL tables, resolves tokens through a server (cached for acl.token_ttl, down_policy when no
server answers) and syncs its services with its agent token. Everything below goes through the
client agent (node4 on 127.0.0.194) only; the servers (127.0.0.191-193) are used to set up
tokens and to read back what the client synced. Standard ports on each address.
"""

from __future__ import annotations

import signal
import time

import consul
import dns.message
import dns.query
import dns.rcode
import httpx
import pytest

from tests.e2e.seedcluster import Agent, SeedCluster, eventually

pytestmark = pytest.mark.cluster

SERVERS = {"node1": "127.0.0.191", "node2": "127.0.0.192", "node3": "127.0.0.193"}
CLIENT = ("node4", "127.0.0.194")
MGMT = "6a1d0f7e-1c52-4d0b-9b0e-000000000001"
AGENT_TOKEN = "6a1d0f7e-1c52-4d0b-9b0e-000000000002"
ACL = 'enabled = true default_policy = "deny" enable_token_persistence = true token_ttl = "2s"'
SERVER_HCL = f'-hcl=acl {{ {ACL} tokens {{ initial_management = "{MGMT}" }} }}'
CLIENT_HCL = f'-hcl=acl {{ {ACL} tokens {{ agent = "{AGENT_TOKEN}" }} }}'
HDR = "X-Consul-Results-Filtered-By-ACLs"

APP_RULES = """
key_prefix "app/" { policy = "write" }
service "web" { policy = "write" }
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
session_prefix "" { policy = "write" }
event_prefix "app-" { policy = "write" }
agent_prefix "" { policy = "read" }
"""
NARROW_RULES = 'key_prefix "app/" { policy = "read" }'
AGENT_RULES = 'node "node4" { policy = "write" } service_prefix "" { policy = "read" }'


def _mgmt(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=10, headers={"X-Consul-Token": MGMT})


def _token(mgmt: httpx.Client, name: str, rules: str, secret: str | None = None) -> str:
    policy = mgmt.put("/v1/acl/policy", json={"Name": name, "Rules": rules})
    assert policy.status_code == 200, policy.text
    body: dict = {"Description": name, "Policies": [{"Name": name}]}
    if secret:
        body["SecretID"] = secret
    token = mgmt.put("/v1/acl/token", json=body)
    assert token.status_code == 200, token.text
    return token.json()["SecretID"]


@pytest.fixture(scope="module")
def cluster():
    with SeedCluster(
        extra=[SERVER_HCL],
        servers=SERVERS,
        client_node=CLIENT,
        client_extra=[CLIENT_HCL],
    ) as c:
        mgmt = _mgmt(c.agents["node1"].url)
        _token(mgmt, "agent-node4", AGENT_RULES, AGENT_TOKEN)
        c.tokens = {
            "app": _token(mgmt, "app", APP_RULES),
            "narrow": _token(mgmt, "narrow", NARROW_RULES),
        }
        yield c


def _client(c: SeedCluster, token: str = "") -> consul.Consul:
    return consul.Consul(host=CLIENT[1], port=8500, token=token or None)


def _http(token: str = "") -> httpx.Client:
    headers = {"X-Consul-Token": token} if token else {}
    return httpx.Client(base_url=f"http://{CLIENT[1]}:8500", timeout=10, headers=headers)


def test_node_synced_with_agent_token(cluster):
    """The client's node reaches the catalog: anti-entropy signs with acl.tokens.agent."""
    mgmt = _mgmt(cluster.agents["node1"].url)
    eventually(lambda: mgmt.get("/v1/catalog/node/node4").json(), 30, "node4 in the catalog")


def test_kv_scoped(cluster):
    app = _client(cluster, cluster.tokens["app"])
    assert app.kv.put("app/config", "v1") is True
    index, item = app.kv.get("app/config")
    assert item["Value"] == b"v1"
    assert app.kv.put("app/config", "v2", cas=item["ModifyIndex"]) is True
    assert app.kv.put("app/config", "v3", cas=item["ModifyIndex"]) is False
    assert app.kv.put("app/other", "x") is True
    _, items = app.kv.get("app/", recurse=True)
    assert [i["Key"] for i in items] == ["app/config", "app/other"]
    with pytest.raises(consul.ACLPermissionDenied):
        app.kv.put("elsewhere/key", "x")
    narrow = _client(cluster, cluster.tokens["narrow"])
    assert narrow.kv.get("app/config")[1]["Value"] == b"v2"
    with pytest.raises(consul.ACLPermissionDenied):
        narrow.kv.put("app/config", "nope")
    assert _client(cluster, MGMT).kv.get("app/config")[1]["Value"] == b"v2"
    # A recurse from the root: only the keys the token may read, flagged as filtered.
    _client(cluster, MGMT).kv.put("secret/k", "s")
    with _http(cluster.tokens["narrow"]) as http:
        reply = http.get("/v1/kv/", params={"recurse": ""})
        assert reply.status_code == 200, reply.text
        assert sorted(e["Key"] for e in reply.json()) == ["app/config", "app/other"]
        assert reply.headers.get(HDR) == "true"


def test_services_checks_and_anti_entropy(cluster):
    app = _client(cluster, cluster.tokens["app"])
    check = consul.Check.ttl("30s")
    assert app.agent.service.register("web", service_id="web1", port=8080, check=check)
    with pytest.raises(consul.ACLPermissionDenied):
        app.agent.service.register("db", service_id="db1", port=5432)
    assert "web1" in app.agent.services()
    # Synced to the catalog by the agent (with its own token).
    mgmt = _mgmt(cluster.agents["node2"].url)
    eventually(lambda: mgmt.get("/v1/catalog/service/web").json(), 30, "web in catalog")
    checks = app.agent.checks()
    (check_id,) = [k for k, v in checks.items() if v["ServiceID"] == "web1"]
    app.agent.check.ttl_pass(check_id, "fine")
    assert app.agent.checks()[check_id]["Status"] == "passing"

    def synced_passing():
        entries = mgmt.get("/v1/health/checks/web").json()
        return entries and entries[0]["Status"] == "passing"

    eventually(synced_passing, 30, "check passing in the catalog")
    # The narrow token sees none of the agent's services, nor the node's checks.
    with _http(cluster.tokens["narrow"]) as http:
        reply = http.get("/v1/agent/services")
        assert reply.status_code == 200, reply.text
        assert reply.json() == {}
        assert reply.headers.get(HDR) == "true"
        assert http.get("/v1/agent/checks").json() == {}
        assert http.get("/v1/catalog/services").json() == {}
        health = http.get("/v1/health/service/web")
        assert health.status_code == 200 and health.json() == []
        assert health.headers.get(HDR) == "true"
        bad = http.put("/v1/agent/check/pass/" + check_id)
        assert bad.status_code == 403, bad.text
        assert http.put("/v1/agent/service/deregister/web1").status_code == 403
    # Maintenance mode: its check syncs with the caller's token (the agent token may not
    # write service "web").
    assert app.agent.service.maintenance("web1", True, "deploy")

    def in_maintenance():
        checks = mgmt.get("/v1/health/checks/web").json()
        return any(c["CheckID"] == "_service_maintenance:web1" for c in checks)

    eventually(in_maintenance, 30, "maintenance check in the catalog")
    assert app.agent.service.maintenance("web1", False)
    eventually(lambda: not in_maintenance(), 30, "maintenance check gone")
    # Filtered by ACLs for the app token: it sees web, and all nodes.
    assert "web" in app.catalog.services()[1]
    # The agent token (node:write on node4, service:read only) removes a service of its
    # node, as Consul's vetDeregisterWithACL allows; the narrow token may not.
    agent_http = httpx.Client(
        base_url=cluster.agents["node3"].url, timeout=10, headers={"X-Consul-Token": AGENT_TOKEN}
    )
    with agent_http:
        assert app.agent.service.register("web", service_id="web-extra", port=8081)
        eventually(
            lambda: any(
                e["ServiceID"] == "web-extra" for e in mgmt.get("/v1/catalog/service/web").json()
            ),
            30,
            "web-extra synced",
        )
        body = {"Node": "node4", "ServiceID": "web-extra"}
        with _http(cluster.tokens["narrow"]) as http:
            assert http.put("/v1/catalog/deregister", json=body).status_code == 403
        answer = agent_http.put("/v1/catalog/deregister", json=body)
        assert answer.status_code == 200, answer.text
    assert app.agent.service.deregister("web-extra")
    assert app.agent.service.deregister("web1")
    assert "web1" not in app.agent.services()
    eventually(lambda: mgmt.get("/v1/catalog/service/web").json() == [], 30, "web gone")


def test_sessions_and_locks_patroni_flow(cluster):
    app = _client(cluster, cluster.tokens["app"])
    session = app.session.create(name="patroni", ttl=15, checks=["serfHealth"], behavior="delete")
    assert app.kv.put("app/leader", "node4", acquire=session) is True
    other = app.session.create(name="rival", ttl=15)
    assert app.kv.put("app/leader", "rival", acquire=other) is False
    assert app.session.renew(session)["ID"] == session
    index, item = app.kv.get("app/leader")
    assert item["Session"] == session
    # A blocking read with index and token: returns once the lock is released.
    with _http(cluster.tokens["app"]) as http:
        assert app.kv.put("app/leader", "node4", release=session) is True
        reply = http.get("/v1/kv/app/leader", params={"index": index, "wait": "5s"})
        assert reply.status_code == 200, reply.text
        assert int(reply.headers["X-Consul-Index"]) > int(index)
        assert "Session" not in reply.json()[0]
    narrow = _client(cluster, cluster.tokens["narrow"])
    with pytest.raises(consul.ACLPermissionDenied):
        narrow.session.create(name="nope")
    app.session.destroy(session)
    app.session.destroy(other)


def test_agent_self_and_members(cluster):
    with _http(cluster.tokens["narrow"]) as http:
        assert http.get("/v1/agent/self").status_code == 403
        members = http.get("/v1/agent/members")
        assert members.status_code == 200 and members.json() == []
        assert members.headers.get(HDR) == "true"
    with _http(cluster.tokens["app"]) as http:
        me = http.get("/v1/agent/self")
        assert me.status_code == 200, me.text
        assert me.json()["Config"]["NodeName"] == "node4"
        names = {m["Name"] for m in http.get("/v1/agent/members").json()}
        assert names == {"node1", "node2", "node3", "node4"}


def test_event_fire(cluster):
    app = _client(cluster, cluster.tokens["app"])
    assert app.event.fire("app-deploy", "v1")
    with pytest.raises(consul.ACLPermissionDenied):
        app.event.fire("other-deploy", "v1")
    with _http(cluster.tokens["narrow"]) as http:
        assert http.put("/v1/event/fire/app-deploy").status_code == 403


def _dns(name: str, qtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, qtype)
    return dns.query.udp(query, CLIENT[1], timeout=5, port=8600)


def test_dns_follows_dns_token(cluster):
    """DNS answers with the agent's dns token (else default): anonymous denies everything."""
    app = _client(cluster, cluster.tokens["app"])
    assert app.agent.service.register("web", service_id="web-dns", port=80)
    mgmt = _mgmt(cluster.agents["node1"].url)
    eventually(lambda: mgmt.get("/v1/catalog/service/web").json(), 30, "web in catalog")
    reply = _dns("web.service.consul")
    assert reply.rcode() == dns.rcode.NXDOMAIN and not reply.answer
    assert _dns("node4.node.consul").rcode() == dns.rcode.NXDOMAIN
    dns_token = _token(
        mgmt, "dns", 'service "web" { policy = "read" } node_prefix "" { policy = "read" }'
    )
    with _http(MGMT) as http:
        assert http.put("/v1/agent/token/dns", json={"Token": dns_token}).status_code == 200

    def answered():
        return _dns("web.service.consul").answer

    eventually(answered, 20, "web answered with the dns token")
    assert _dns("node4.node.consul").answer
    with _http(MGMT) as http:
        assert http.put("/v1/agent/token/dns", json={"Token": ""}).status_code == 200
    eventually(lambda: not _dns("web.service.consul").answer, 20, "web hidden again")
    app.agent.service.deregister("web-dns")


def test_deleted_token_stops_within_ttl(cluster):
    mgmt = _mgmt(cluster.agents["node1"].url)
    reply = mgmt.put(
        "/v1/acl/token", json={"Description": "short", "Policies": [{"Name": "narrow"}]}
    )
    accessor, secret = reply.json()["AccessorID"], reply.json()["SecretID"]
    with _http(secret) as http:
        assert http.get("/v1/kv/app/config").status_code == 200
        assert mgmt.delete(f"/v1/acl/token/{accessor}").status_code == 200

        def refused():
            answer = http.get("/v1/agent/services")
            return answer.status_code == 403 and "ACL not found" in answer.text

        eventually(refused, 15, "deleted token refused by the client")


def test_down_policy_extend_cache(cluster):
    """All servers stopped: a token the client resolved recently keeps working locally."""
    token = cluster.tokens["app"]
    with _http(token) as http:
        assert http.get("/v1/agent/services").status_code == 200
        servers = [cluster.agents[name] for name in SERVERS]
        for agent in servers:
            agent.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3)  # past token_ttl: the cached entry is stale, no server answers
            for path in ("/v1/agent/services", "/v1/agent/checks", "/v1/agent/self"):
                answer = http.get(path, timeout=30)
                assert answer.status_code == 200, (path, answer.text)
            # A token never cached: Consul's down authorizer for extend-cache is the
            # default policy (deny), so it sees nothing (not a 403: the list is filtered).
            with _http("00000000-0000-4000-8000-00000000dead") as unknown:
                answer = unknown.get("/v1/agent/services", timeout=30)
                assert answer.status_code == 200 and answer.json() == {}, answer.text
        finally:
            for agent in servers:
                agent.proc.send_signal(signal.SIGCONT)
    cluster.wait_leader(60)


def _on_node4b(mgmt: httpx.Client) -> set[str]:
    return {
        e["ServiceID"] for e in mgmt.get("/v1/catalog/service/web").json() if e["Node"] == "node4b"
    }


def test_agent_token_set_later(cluster):
    """A client started without an agent token: its node info is not synced (the leader's
    gossip record of the node has none of the agent's meta; anonymous may not change it) until
    `PUT /v1/agent/token/agent` gives it one, which starts a sync at once (Consul triggers a full sync; the interval is 60 s), so its
    node info and service reach the catalog well before the next pass. The token persists over a restart (enable_token_persistence): deregistration, which
    always uses the agent token, still works then."""
    old = cluster.agents.pop("node4")
    old.kill()
    name, ip = CLIENT
    args = cluster.client_args("node4", ip, data="node4-later")
    args = [a for a in args if a != CLIENT_HCL] + [f"-hcl=acl {{ {ACL} }}"]
    args[args.index("-node=node4")] = "-node=node4b"
    agent = Agent("node4b", ip, args, cluster.root)
    cluster.agents["node4b"] = agent
    agent.start()
    mgmt = _mgmt(cluster.agents["node1"].url)
    token = _token(
        mgmt,
        "agent-node4b",
        'node "node4b" { policy = "write" } service_prefix "" { policy = "read" }',
    )
    app = _client(cluster, cluster.tokens["app"])
    eventually(lambda: app.agent.service.register("web", service_id="web-late", port=81), 20)

    def node_meta() -> dict:
        found = mgmt.get("/v1/catalog/node/node4b").json()
        return (found or {}).get("Node", {}).get("Meta") or {}

    eventually(lambda: mgmt.get("/v1/catalog/node/node4b").json(), 30, "node4b from gossip")
    time.sleep(3)  # a first sync pass has run by now
    assert "consul-version" not in node_meta()  # anonymous may not write node info
    with _http(MGMT) as http:
        assert http.put("/v1/agent/token/agent", json={"Token": token}).status_code == 200
    eventually(lambda: "consul-version" in node_meta(), 30, "node info synced")
    eventually(lambda: "web-late" in _on_node4b(mgmt), 30, "web-late synced")
    agent.kill(signal.SIGTERM)
    agent = Agent("node4b", ip, args, cluster.root)
    cluster.agents["node4b"] = agent
    agent.start()
    assert app.agent.service.register("web", service_id="web-late2", port=82)
    eventually(lambda: {"web-late", "web-late2"} <= _on_node4b(mgmt), 30, "both synced")
    assert app.agent.service.deregister("web-late")
    eventually(lambda: _on_node4b(mgmt) == {"web-late2"}, 30, "removed with the agent token")
    assert app.agent.service.deregister("web-late2")
