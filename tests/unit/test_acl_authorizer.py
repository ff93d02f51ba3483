"""Authorizer precedence: exact over prefix, longest prefix, deny, merging, default policy."""

from __future__ import annotations

from agent.acl.authorizer import MANAGEMENT_RULES, Authorizer, merge_rules
from agent.acl.rules import parse_rules


def authz(*policies: str, default_allow: bool = False) -> Authorizer:
    return Authorizer(merge_rules(parse_rules(p) for p in policies), default_allow)


def test_exact_beats_prefix() -> None:
    a = authz('key_prefix "app/" { policy = "write" }\nkey "app/secret" { policy = "deny" }')
    assert a.allowed("key", "app/x", "write")
    assert not a.allowed("key", "app/secret", "read")
    assert a.allowed("key", "app/secret/below", "write")  # exact only covers the exact name


def test_longest_prefix_wins() -> None:
    a = authz(
        'key_prefix "" { policy = "read" }\n'
        'key_prefix "app/" { policy = "write" }\n'
        'key_prefix "app/locked/" { policy = "deny" }'
    )
    assert a.allowed("key", "other", "read") and not a.allowed("key", "other", "write")
    assert a.allowed("key", "app/x", "write")
    assert not a.allowed("key", "app/locked/x", "read")


def test_levels_grant_lower_levels() -> None:
    a = authz(
        'key_prefix "w/" { policy = "write" }\n'
        'key_prefix "l/" { policy = "list" }\n'
        'key_prefix "r/" { policy = "read" }'
    )
    assert all(a.allowed("key", "w/x", lvl) for lvl in ("read", "list", "write"))
    assert a.allowed("key", "l/x", "list") and a.allowed("key", "l/x", "read")
    assert not a.allowed("key", "l/x", "write")
    assert a.allowed("key", "r/x", "read") and not a.allowed("key", "r/x", "list")


def test_merge_deny_wins_then_write() -> None:
    a = authz('key "k" { policy = "read" }', 'key "k" { policy = "deny" }')
    assert not a.allowed("key", "k", "read")
    b = authz('key "k" { policy = "read" }', 'key "k" { policy = "write" }', 'operator = "read"')
    assert b.allowed("key", "k", "write")
    assert b.allowed_single("operator", "read") and not b.allowed_single("operator", "write")


def test_merge_across_different_rules_keeps_specificity() -> None:
    a = authz('key_prefix "" { policy = "write" }', 'key "x" { policy = "read" }')
    assert a.allowed("key", "y", "write")
    assert not a.allowed("key", "x", "write")


def test_default_policy_for_unmatched() -> None:
    deny = authz('service "web" { policy = "read" }')
    assert deny.allowed("service", "web", "read")
    assert not deny.allowed("service", "db", "read")
    assert not deny.allowed_single("operator", "read")
    allow = authz('service "web" { policy = "read" }', default_allow=True)
    assert allow.allowed("service", "db", "write")
    assert not allow.allowed("service", "web", "write")
    assert allow.allowed_single("operator", "write")
    # default allow never grants ACL management
    assert not allow.allowed_single("acl", "read")


def test_management_rules_allow_everything() -> None:
    a = Authorizer(merge_rules([parse_rules(MANAGEMENT_RULES)]), default_allow=False)
    assert a.allowed("key", "anything", "write") and a.allowed_single("acl", "write")
    assert a.is_management


def test_key_write_prefix() -> None:
    a = authz('key_prefix "app/" { policy = "write" }\nkey "app/keep" { policy = "read" }')
    assert a.key_write_prefix("app/sub/")
    assert not a.key_write_prefix("app/")  # a key below may not be written
    assert not a.key_write_prefix("")  # the rest of the tree falls to default deny
    b = authz('key_prefix "" { policy = "write" }')
    assert b.key_write_prefix("")
    c = authz('key_prefix "app/" { policy = "write" }', default_allow=True)
    assert c.key_write_prefix("")


def test_mesh_falls_back_to_operator_and_intentions_follow_service_blocks() -> None:
    auth = Authorizer(parse_rules('operator = "write"\nservice "web" { policy = "write" }'), False)
    assert auth.allowed("mesh", "", "write")
    assert auth.allowed("intention", "web", "read")
    assert not auth.allowed("intention", "web", "write")
    own = Authorizer(parse_rules('operator = "write"\nmesh = "read"'), False)
    assert own.allowed("mesh", "", "read") and not own.allowed("mesh", "", "write")
