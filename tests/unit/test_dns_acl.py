"""DNS under ACLs on a server: lookups use the agent's dns token (else default, else
anonymous), as Consul's DNS server does; what that token may not read is not there."""

from __future__ import annotations

import asyncio
import random

import dns.message
import dns.rcode

from agent.acl.enforce import ACLRuntime, new_token
from agent.config import load_config
from agent.dns import resolve
from agent.dns_server import StoreCatalog
from agent.dns_settings import DNSSettings
from agent.state.acl import ANONYMOUS_ACCESSOR, MANAGEMENT_POLICY_ID
from agent.state.fsm import FSM
from agent.state.store import Store
from agent.state.structs import Node, Service
from tests.harness.entries import apply_entry

RULES = 'service "web" { policy = "read" } node "n1" { policy = "read" }'


def _catalog() -> tuple[StoreCatalog, ACLRuntime]:
    store = Store()
    fsm = FSM(store)
    anonymous = new_token(ANONYMOUS_ACCESSOR, "anonymous", "Anonymous Token", [], "t")
    apply_entry(
        fsm,
        1,
        {
            "Type": "acl-init",
            "Policies": [{"ID": MANAGEMENT_POLICY_ID, "Name": "global-management", "Rules": ""}],
            "Tokens": [anonymous],
            "InitialManagement": "",
        },
    )
    policy = {"ID": "p1", "Name": "dns", "Rules": RULES}
    apply_entry(fsm, 2, {"Type": "acl-policy-set", "Policy": policy})
    token = new_token("a1", "dns-secret", "", [{"ID": "p1"}], "t")
    apply_entry(fsm, 3, {"Type": "acl-token-set", "Token": token})
    store.ensure_node(4, Node("n1", "10.0.0.1", Datacenter="dc1"))
    store.ensure_node(5, Node("n2", "10.0.0.2", Datacenter="dc1"))
    for index, (node, sid, name) in enumerate(
        [("n1", "web1", "web"), ("n2", "web2", "web"), ("n1", "db1", "db")], start=6
    ):
        store.ensure_service(index, node, Service(sid, name, Port=80))
    cfg = load_config(["-dev", '-hcl=acl { enabled = true default_policy = "deny" }'])
    acl = ACLRuntime(store, cfg.acl, None, "n1", None, lambda: True)  # type: ignore[arg-type]
    return StoreCatalog(store, acl=acl), acl


def ask(catalog: StoreCatalog, name: str) -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    return asyncio.run(resolve(query, catalog, DNSSettings(), tcp=False, rng=random.Random(1)))


def addresses(msg: dns.message.Message) -> list[str]:
    return sorted(r.address for rrset in msg.answer for r in rrset)


def test_anonymous_sees_nothing() -> None:
    catalog, _ = _catalog()
    assert ask(catalog, "web.service.consul.").rcode() == dns.rcode.NXDOMAIN
    assert ask(catalog, "n1.node.consul.").rcode() == dns.rcode.NXDOMAIN


def test_dns_token_reads_what_its_rules_allow() -> None:
    catalog, acl = _catalog()
    acl.tokens["dns"] = "dns-secret"
    # web on n1 only: the instance on n2 needs node:read on n2 as well
    assert addresses(ask(catalog, "web.service.consul.")) == ["10.0.0.1"]
    assert ask(catalog, "db.service.consul.").rcode() == dns.rcode.NXDOMAIN
    assert addresses(ask(catalog, "n1.node.consul.")) == ["10.0.0.1"]
    assert ask(catalog, "n2.node.consul.").rcode() == dns.rcode.NXDOMAIN


def test_default_token_when_no_dns_token_and_unknown_token_is_servfail() -> None:
    catalog, acl = _catalog()
    acl.tokens["default"] = "dns-secret"
    assert addresses(ask(catalog, "web.service.consul.")) == ["10.0.0.1"]
    acl.tokens["dns"] = "no-such-secret"
    assert ask(catalog, "web.service.consul.").rcode() == dns.rcode.SERVFAIL


def test_acls_off_answers_everything() -> None:
    catalog, _ = _catalog()
    catalog.acl = None
    assert addresses(ask(catalog, "web.service.consul.")) == ["10.0.0.1", "10.0.0.2"]
