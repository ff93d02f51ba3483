"""Who is asking: the request's token secret -> token record -> Authorizer.

Order (Consul's): `?token=`, then `X-Consul-Token`, then `Authorization: Bearer <tok>`; with
none of them the agent's default token (`acl.tokens.default`, or one set through
`PUT /v1/agent/token/default`), else the anonymous token. An unknown (or expired) secret is
refused with `ACL not found` rather than downgraded to anonymous, as Consul does.

A token's permissions are the union of its policies, its roles' policies, and the synthetic
policies Consul makes from service and node identities and templated policies (each role's as
well as the token's own). A policy, identity or templated policy limited to `Datacenters`
counts only in those (a node identity only in its `Datacenter`), as Consul filters them.

Authorizers are cached per secret and dropped whenever any ACL table's index moves, so a
token or policy change takes effect on the next request without any explicit invalidation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.acl.authorizer import Authorizer, merge_rules
from agent.acl.rules import ParsedRules, RuleError, parse_rules
from agent.acl.templated import BUILTINS, render_rules
from agent.state.acl import (
    ACL_TABLES,
    ANONYMOUS_ACCESSOR,
    ANONYMOUS_SECRET,
    MANAGEMENT_POLICY_ID,
    ACLTables,
)

if TYPE_CHECKING:
    from agent.state.store import Store

__all__ = [
    "ACLNotFound",
    "Compiler",
    "Identity",
    "Resolver",
    "tables_of",
    "token_bundle",
    "identity_rules",
    "token_expired",
    "token_from_request",
]


class ACLNotFound(Exception):
    """The presented secret names no (live) token."""


@dataclass(frozen=True)
class Identity:
    accessor: str
    authz: Authorizer
    token: dict | None

    @property
    def anonymous(self) -> bool:
        return self.accessor == ANONYMOUS_ACCESSOR


def token_from_request(query: dict[str, list[str]], headers: dict[bytes, bytes]) -> str:
    """The secret a request presents, or "" (first non-empty of query, header, bearer)."""
    values = query.get("token")
    if values and values[0]:
        return values[0]
    raw = headers.get(b"x-consul-token")
    if raw:
        return raw.decode("latin-1").strip()
    raw = headers.get(b"authorization")
    if raw:
        parts = raw.decode("latin-1").split()
        if len(parts) >= 2 and parts[0].lower() == "bearer":
            return parts[1]
    return ""


def identity_rules(services: list[dict], nodes: list[dict]) -> ParsedRules:
    """The rules Consul synthesises for service and node identities."""
    rules = ParsedRules()
    for ident in services:
        name = ident.get("ServiceName", "")
        rules.named[("service", name, False)] = "write"
        rules.named[("service", f"{name}-sidecar-proxy", False)] = "write"
        rules.named[("service", "", True)] = "read"
        rules.named[("node", "", True)] = "read"
    for ident in nodes:
        rules.named[("node", ident.get("NodeName", ""), False)] = "write"
        rules.named[("service", "", True)] = "read"
    return rules


def token_expired(token: dict, now: dt.datetime | None = None) -> bool:
    """Whether the token's ExpirationTime has passed (it is then gone, as in Consul, even
    before the leader reaps it)."""
    return _expired(token, now or dt.datetime.now(dt.UTC))


def _expired(token: dict, now: dt.datetime) -> bool:
    raw = token.get("ExpirationTime")
    if not raw:
        return False
    try:
        when = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when <= now


class Compiler:
    """A token's records -> its Authorizer, with the parsed rules of policies and templated
    policies kept between calls (shared by the store's resolver and a client agent's)."""

    def __init__(self, default_policy: str, datacenter: str = "") -> None:
        self.default_allow = default_policy == "allow"
        # "" (no datacenter known, as in unit tests): datacenter limits are not applied.
        self.datacenter = datacenter
        self._parsed: dict[tuple[str, int], ParsedRules] = {}
        self._templated: dict[tuple[str, str], ParsedRules] = {}

    def anonymous(self) -> Identity:
        """The anonymous token before it is written (first moments after start)."""
        return Identity(ANONYMOUS_ACCESSOR, Authorizer(ParsedRules(), self.default_allow), None)

    def identity(self, acl: ACLTables, token: dict) -> Identity:
        return Identity(token["AccessorID"], self.authorizer(acl, token), token)

    def authorizer(self, acl: ACLTables, token: dict) -> Authorizer:
        policy_ids = [link["ID"] for link in token.get("Policies") or []]
        services = list(token.get("ServiceIdentities") or [])
        nodes = list(token.get("NodeIdentities") or [])
        templated = list(token.get("TemplatedPolicies") or [])
        for link in token.get("Roles") or []:
            role = acl.roles.get(link["ID"])
            if role is None:
                continue
            policy_ids += [p["ID"] for p in role.get("Policies") or []]
            services += role.get("ServiceIdentities") or []
            nodes += role.get("NodeIdentities") or []
            templated += role.get("TemplatedPolicies") or []
        services = [s for s in services if self._here(s.get("Datacenters"))]
        nodes = [n for n in nodes if self._here([n["Datacenter"]] if n.get("Datacenter") else [])]
        parsed = [identity_rules(services, nodes)]
        parsed += [self._templated_rules(t) for t in templated if self._here(t.get("Datacenters"))]
        for ident in policy_ids:
            policy = acl.policies.get(ident)
            if policy is not None and self._here(policy.get("Datacenters")):
                parsed.append(self._rules(policy))
        management = MANAGEMENT_POLICY_ID in policy_ids
        return Authorizer(merge_rules(parsed), self.default_allow, management)

    def _here(self, datacenters: list[str] | None) -> bool:
        """Whether something limited to `datacenters` (none: everywhere) counts here."""
        return not datacenters or not self.datacenter or self.datacenter in datacenters

    def _templated_rules(self, templated: dict) -> ParsedRules:
        template = BUILTINS.get(templated.get("TemplateName", ""))
        if template is None:
            return ParsedRules()  # checked on write; an unknown template grants nothing
        name = str((templated.get("TemplateVariables") or {}).get("name") or "")
        key = (template.name, name)
        rules = self._templated.get(key)
        if rules is None:
            try:
                rules = parse_rules(render_rules(template, templated.get("TemplateVariables")))
            except RuleError:
                rules = ParsedRules()  # names are checked on write; a bad one grants nothing
            if len(self._templated) > 4096:
                self._templated.clear()
            self._templated[key] = rules
        return rules

    def _rules(self, policy: dict) -> ParsedRules:
        key = (policy["ID"], policy.get("ModifyIndex", 0))
        rules = self._parsed.get(key)
        if rules is None:
            try:
                rules = parse_rules(policy.get("Rules") or "")
            except RuleError:
                rules = ParsedRules()  # validated on write; a bad stored policy grants nothing
            if len(self._parsed) > 4096:
                self._parsed.clear()
            self._parsed[key] = rules
        return rules


class Resolver:
    """Secret -> Identity over one store, with a cache keyed on the ACL tables' index."""

    def __init__(self, store: Store, default_policy: str, datacenter: str = "") -> None:
        self.store = store
        self.compiler = Compiler(default_policy, datacenter)
        self._cache: dict[str, Identity] = {}
        self._cache_key: tuple[int, int] = (0, -1)

    @property
    def default_allow(self) -> bool:
        return self.compiler.default_allow

    def resolve(self, secret: str, now: dt.datetime | None = None) -> Identity:
        # A snapshot restore swaps the tables object; its indexes alone might repeat.
        key = (id(self.store.acl), self.store.table_index(*ACL_TABLES))
        if key != self._cache_key:
            self._cache.clear()
            self._cache_key = key
        found = self._cache.get(secret)
        if found is not None:
            # A token with an ExpirationTime (every login token of a method with MaxTokenTTL)
            # stays cached; only its expiry is looked at again.
            if found.token is None or not found.token.get("ExpirationTime"):
                return found
            if _expired(found.token, now or dt.datetime.now(dt.UTC)):
                raise ACLNotFound(secret)
            return found
        acl = self.store.acl
        token = acl.token_by_secret(secret)
        if token is None and secret == ANONYMOUS_SECRET:
            found = self.compiler.anonymous()
            self._cache[secret] = found
            return found
        if token is None or _expired(token, now or dt.datetime.now(dt.UTC)):
            raise ACLNotFound(secret)
        found = self.compiler.identity(acl, token)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[secret] = found
        return found


def token_bundle(acl: ACLTables, secret: str) -> dict[str, Any] | None:
    """What a client agent needs to resolve `secret` itself: the token and the roles and
    policies it links (directly or through its roles). None for an unknown secret."""
    token = acl.token_by_secret(secret)
    if token is None:
        return None
    roles = [acl.roles[r["ID"]] for r in token.get("Roles") or [] if r["ID"] in acl.roles]
    policy_ids = {p["ID"] for p in token.get("Policies") or []}
    for role in roles:
        policy_ids.update(p["ID"] for p in role.get("Policies") or [])
    policies = [acl.policies[i] for i in sorted(policy_ids) if i in acl.policies]
    return {"Token": token, "Roles": roles, "Policies": policies}


def tables_of(bundle: dict[str, Any]) -> ACLTables:
    """A bundle from `token_bundle` as tables the `Compiler` reads."""
    tables = ACLTables()
    token = bundle["Token"]
    tables.tokens[token["AccessorID"]] = token
    tables.by_secret[token["SecretID"]] = token["AccessorID"]
    tables.roles = {r["ID"]: r for r in bundle.get("Roles") or []}
    tables.policies = {p["ID"]: p for p in bundle.get("Policies") or []}
    return tables


def describe(identity: Any) -> str:
    return "anonymous token" if identity.anonymous else f"token {identity.accessor}"
