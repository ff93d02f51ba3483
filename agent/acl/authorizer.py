"""From parsed rules to allow/deny answers, with Consul's precedence.

For a named resource (`key`, `service`, ...) the most specific rule decides: an exact rule on
the name beats any prefix rule, and among prefix rules the longest wins. When several policies
of one token name the same rule, they merge with `deny` winning, then `write`, `list`, `read`
(Consul's policy merger). A request nothing matches falls to the agent's default policy,
except ACL management itself (`acl`, snapshots), which `default_policy = allow` never grants.

A level grants: write -> write, list, read; list -> list, read (keys only); read -> read.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.acl.rules import ParsedRules
from agent.state.acl import MANAGEMENT_POLICY_ID, READ_ONLY_POLICY_ID

__all__ = [
    "BUILTIN_POLICIES",
    "MANAGEMENT_RULES",
    "READ_ONLY_RULES",
    "Authorizer",
    "merge_rules",
]

# The built-in global-management policy, as rules: everything, at write.
MANAGEMENT_RULES = """acl = "write"
agent_prefix "" { policy = "write" }
event_prefix "" { policy = "write" }
identity_prefix "" { policy = "write" }
key_prefix "" { policy = "write" }
keyring = "write"
node_prefix "" { policy = "write" }
operator = "write"
mesh = "write"
peering = "write"
query_prefix "" { policy = "write" }
service_prefix "" { policy = "write" }
session_prefix "" { policy = "write" }
"""

# builtin/global-read-only: everything, at read (Consul 1.2x creates it next to management).
READ_ONLY_RULES = """acl = "read"
agent_prefix "" { policy = "read" }
event_prefix "" { policy = "read" }
key_prefix "" { policy = "read" }
keyring = "read"
node_prefix "" { policy = "read" }
operator = "read"
mesh = "read"
peering = "read"
query_prefix "" { policy = "read" }
service_prefix "" {
  policy = "read"
  intentions = "read"
}
session_prefix "" { policy = "read" }
"""

# The policies every ACL-enabled datacenter has: their rules cannot change, nor can they be
# deleted (a rename or a new description is allowed).
BUILTIN_POLICIES: dict[str, dict[str, str]] = {
    MANAGEMENT_POLICY_ID: {
        "Name": "global-management",
        "Description": "Builtin Policy that grants unlimited access",
        "Rules": MANAGEMENT_RULES,
    },
    READ_ONLY_POLICY_ID: {
        "Name": "builtin/global-read-only",
        "Description": "Builtin Policy that grants unlimited read-only access to all components",
        "Rules": READ_ONLY_RULES,
    },
}

_PRECEDENCE = {"deny": 4, "write": 3, "list": 2, "read": 1}
_GRANTS = {"write": {"write", "list", "read"}, "list": {"list", "read"}, "read": {"read"}}


def _stronger(a: str, b: str) -> str:
    return a if _PRECEDENCE[a] >= _PRECEDENCE[b] else b


def merge_rules(all_rules: Iterable[ParsedRules]) -> ParsedRules:
    merged = ParsedRules()
    for rules in all_rules:
        for key, level in rules.named.items():
            old = merged.named.get(key)
            merged.named[key] = level if old is None else _stronger(old, level)
        for key, level in rules.single.items():
            old = merged.single.get(key)
            merged.single[key] = level if old is None else _stronger(old, level)
    return merged


class Authorizer:
    """Answers `allowed(resource, name, level)` for one token's merged rules.

    :param rules: the merged rules of the token's policies, roles and identities.
    :param default_allow: the agent's `acl.default_policy == "allow"`.
    :param management: the token holds global-management (allows everything).
    """

    def __init__(self, rules: ParsedRules, default_allow: bool, management: bool = False) -> None:
        self.default_allow = default_allow
        self.management = management
        self.single = dict(rules.single)
        self.exact: dict[str, dict[str, str]] = {}
        self.prefixes: dict[str, list[tuple[str, str]]] = {}
        for (resource, name, is_prefix), level in rules.named.items():
            if is_prefix:
                self.prefixes.setdefault(resource, []).append((name, level))
            else:
                self.exact.setdefault(resource, {})[name] = level
        for entries in self.prefixes.values():
            entries.sort(key=lambda item: -len(item[0]))

    def rule_for(self, resource: str, name: str) -> str | None:
        """The level of the rule governing `name`, or None when no rule matches."""
        level = self.exact.get(resource, {}).get(name)
        if level is not None:
            return level
        for prefix, level in self.prefixes.get(resource, ()):
            if name.startswith(prefix):
                return level
        return None

    def allowed(self, resource: str, name: str, level: str) -> bool:
        """May this token use `resource` `name` at `level` (read, list or write)?"""
        if self.management:
            return True
        if resource in ("acl", "keyring", "operator", "mesh", "peering"):
            return self.allowed_single(resource, level)
        rule = self.rule_for(resource, name)
        if rule is None:
            return self.default_allow
        return level in _GRANTS.get(rule, ())

    def allowed_single(self, resource: str, level: str) -> bool:
        if self.management:
            return True
        rule = self.single.get(resource)
        if rule is None and resource in ("mesh", "peering"):
            rule = self.single.get("operator")  # Consul: mesh and peering fall back to operator
        if rule is None:
            # default allow never hands out ACL management (Consul's allow-all authorizer).
            return self.default_allow and resource != "acl"
        return level in _GRANTS.get(rule, ())

    def key_write_prefix(self, prefix: str) -> bool:
        """Write on every key under `prefix` (recursive delete): no rule below may forbid it."""
        if self.management:
            return True
        below = [
            level for name, level in self.exact.get("key", {}).items() if name.startswith(prefix)
        ]
        below += [level for name, level in self.prefixes.get("key", ()) if name.startswith(prefix)]
        if any(level != "write" for level in below):
            return False
        covering = next(
            (level for name, level in self.prefixes.get("key", ()) if prefix.startswith(name)),
            None,
        )
        if covering is not None:
            return covering == "write"
        if below and not self.default_allow:
            # Only some of the subtree is covered, the rest falls to default deny.
            return False
        return self.default_allow

    @property
    def is_management(self) -> bool:
        return self.management or self.single.get("acl") == "write"
