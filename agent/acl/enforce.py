"""Enforcement helpers for HTTP handlers: who is asking, may they, and filtering of lists.

    require(req, "key", key, "write")              # 403 with Consul's text when not allowed
    items = filter_items(req, items, lambda e: ("key", e["Key"]))

All of it is a no-op when ACLs are disabled. The per-agent `ACLRuntime` holds the resolver,
the agent's runtime token slots (`PUT /v1/agent/token/<kind>`) and the one-time creation of
the built-in records (global-management policy, anonymous token, initial management token).

The agent's own writes (anti-entropy in agent/local.py, node registration at start) go to
consensus directly, never through the HTTP layer, so they need no token: they are the
in-process equivalent of Consul's agent token. Requests that reach this layer always carry
(or default to) a token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agent.acl.authorizer import MANAGEMENT_RULES, Authorizer
from agent.acl.resolve import ACLNotFound, Identity, Resolver, token_from_request
from agent.acl.rules import ParsedRules
from agent.errors import AgentError
from agent.http.app import HTTPError, Request
from agent.state.acl import (
    ANONYMOUS_ACCESSOR,
    ANONYMOUS_SECRET,
    MANAGEMENT_POLICY_ID,
    POLICY_HASH_FIELDS,
    TOKEN_HASH_FIELDS,
    record_hash,
)

if TYPE_CHECKING:
    from agent.agent import Agent

log = logging.getLogger("agent.acl")

T = TypeVar("T")
TOKEN_KINDS = (
    "default",
    "agent",
    "agent_recovery",
    "replication",
    "config_file_service_registration",
    "dns",
)
# Older spellings accepted by PUT /v1/agent/token/<kind>.
TOKEN_KIND_ALIASES = {
    "acl_token": "default",
    "acl_agent_token": "agent",
    "agent_master": "agent_recovery",
    "acl_agent_master_token": "agent_recovery",
    "acl_replication_token": "replication",
}
_SCOPE_KEY = "acl.identity"
_FILTERED_KEY = "acl.filtered"


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class ACLRuntime:
    """ACL state of one agent process that is not in the replicated store."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        cfg = agent.config.acl
        self.resolver = Resolver(agent.store, cfg.default_policy)
        self.tokens: dict[str, str] = {
            kind: getattr(cfg.tokens, kind, None) or "" for kind in TOKEN_KINDS
        }
        self._initialized_for: object = None  # the ACL tables object checked last
        self._init_lock = asyncio.Lock()
        self._persist_path = (
            Path(agent.data_dir) / "acl-tokens.json"
            if cfg.enable_token_persistence and getattr(agent, "data_dir", None)
            else None
        )
        self._load_persisted()

    # ------------------------------------------------------------------ agent token slots

    def _load_persisted(self) -> None:
        if self._persist_path is None or not self._persist_path.exists():
            return
        try:
            saved = json.loads(self._persist_path.read_text())
        except (OSError, ValueError):
            log.warning("ignoring unreadable %s", self._persist_path)
            return
        for kind in TOKEN_KINDS:
            if saved.get(kind):
                self.tokens[kind] = saved[kind]

    def set_token(self, kind: str, secret: str) -> None:
        self.tokens[kind] = secret
        if self._persist_path is None:
            return
        tmp = self._persist_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v for k, v in self.tokens.items() if v}))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self._persist_path)

    # ------------------------------------------------------------------ built-ins

    async def ensure_initialized(self) -> None:
        """Write the built-in records once, on the leader (a no-op when they exist)."""
        if self._initialized_for is self.agent.store.acl:
            return  # a snapshot restore installs a new tables object: look again then
        consensus = getattr(self.agent, "consensus", None)
        if consensus is None or not getattr(consensus, "is_leader", False):
            return
        async with self._init_lock:
            if self._initialized_for is self.agent.store.acl:
                return
            command = self.init_command()
            if command is not None:
                try:
                    await self.agent.write(command)
                except AgentError as exc:
                    log.warning("could not create the built-in ACL records: %s", exc)
                    return
            self._initialized_for = self.agent.store.acl

    def init_command(self) -> dict | None:
        acl = self.agent.store.acl
        policies, tokens = [], []
        created = now_rfc3339()
        if MANAGEMENT_POLICY_ID not in acl.policies:
            policy = {
                "ID": MANAGEMENT_POLICY_ID,
                "Name": "global-management",
                "Description": "Builtin Policy that grants unlimited access",
                "Rules": MANAGEMENT_RULES,
                "Datacenters": [],
            }
            policy["Hash"] = record_hash(policy, POLICY_HASH_FIELDS)
            policies.append(policy)
        if ANONYMOUS_ACCESSOR not in acl.tokens:
            tokens.append(
                new_token(ANONYMOUS_ACCESSOR, ANONYMOUS_SECRET, "Anonymous Token", [], created)
            )
        initial = self.agent.config.acl.tokens.initial_management
        initial_accessor = ""
        if initial and acl.token_by_secret(initial) is None:
            initial_accessor = str(uuid.uuid4())
            tokens.append(
                new_token(
                    initial_accessor,
                    initial,
                    "Initial Management Token",
                    [{"ID": MANAGEMENT_POLICY_ID}],
                    created,
                )
            )
        if not policies and not tokens:
            return None
        return {
            "Type": "acl-init",
            "Policies": policies,
            "Tokens": tokens,
            "InitialManagement": initial_accessor,
        }


def new_token(
    accessor: str, secret: str, description: str, policies: list[dict], created: str
) -> dict:
    token: dict[str, Any] = {
        "AccessorID": accessor,
        "SecretID": secret,
        "Description": description,
        "Policies": policies,
        "Roles": [],
        "ServiceIdentities": [],
        "NodeIdentities": [],
        "Local": False,
        "CreateTime": created,
    }
    token["Hash"] = record_hash(token, TOKEN_HASH_FIELDS)
    return token


def runtime(agent: Agent) -> ACLRuntime:
    rt = getattr(agent, "_acl_runtime", None)
    if rt is None:
        rt = ACLRuntime(agent)
        agent._acl_runtime = rt  # type: ignore[attr-defined]
    return rt


def enabled(req: Request) -> bool:
    return bool(req.agent.config.acl.enabled)


# ---------------------------------------------------------------------- per request


def identity(req: Request) -> Identity:
    """The request's identity (resolved once per request); 403 `ACL not found` if unknown."""
    found = req.scope.get(_SCOPE_KEY)
    if found is not None:
        return found
    rt = runtime(req.agent)
    secret = token_from_request(req.query if req.raw_query else {}, req.headers)
    if not secret:
        secret = rt.tokens.get("default") or ANONYMOUS_SECRET
    recovery = rt.tokens.get("agent_recovery")
    if recovery and secret == recovery:
        found = agent_recovery_identity(req.agent.node_name)
    else:
        try:
            found = rt.resolver.resolve(secret)
        except ACLNotFound:
            raise HTTPError(403, "ACL not found") from None
    req.scope[_SCOPE_KEY] = found
    return found


def agent_recovery_identity(node_name: str) -> Identity:
    """`acl.tokens.agent_recovery`: works with no servers; this agent's node only (Consul's)."""
    rules = ParsedRules()
    rules.named[("agent", node_name, False)] = "write"
    rules.named[("node", "", True)] = "read"
    return Identity("agent-recovery", Authorizer(rules, default_allow=False), None)


def denied_message(ident: Identity, resource: str, name: str | None, level: str) -> str:
    on = f' on "{name}"' if name is not None else ""
    if ident.anonymous:
        return (
            f"Permission denied: anonymous token lacks permission '{resource}:{level}'{on}. "
            "The anonymous token is used implicitly when a request does not specify a token."
        )
    return (
        f"Permission denied: token with AccessorID '{ident.accessor}' lacks permission "
        f"'{resource}:{level}'{on}"
    )


def allowed(req: Request, resource: str, name: str, level: str) -> bool:
    if not enabled(req):
        return True
    return identity(req).authz.allowed(resource, name, level)


def require(req: Request, resource: str, name: str | None, level: str) -> None:
    """403 unless the request's token has `level` on `resource` `name` (None: single-valued)."""
    if not enabled(req):
        return
    ident = identity(req)
    if name is None:
        ok = ident.authz.allowed_single(resource, level)
    else:
        ok = ident.authz.allowed(resource, name, level)
    if not ok:
        raise HTTPError(403, denied_message(ident, resource, name, level))


def require_management(req: Request) -> None:
    require(req, "acl", None, "write")


def filter_items(
    req: Request,
    items: Iterable[T],
    resources_of: Callable[[T], Iterable[tuple[str, str]] | tuple[str, str]],
    level: str = "read",
) -> list[T]:
    """Items the token may read (every (resource, name) of an item must be readable)."""
    items = list(items)
    if not enabled(req):
        return items
    authz = identity(req).authz
    kept = []
    for item in items:
        needs = resources_of(item)
        if isinstance(needs, tuple) and len(needs) == 2 and isinstance(needs[0], str):
            needs = [needs]  # type: ignore[list-item]
        if all(authz.allowed(res, name, level) for res, name in needs):  # type: ignore[misc]
            kept.append(item)
    if len(kept) != len(items):
        mark_filtered(req)
    return kept


def mark_filtered(req: Request) -> None:
    req.scope[_FILTERED_KEY] = True


def filtered_headers(req: Request) -> list[tuple[bytes, bytes]]:
    """`X-Consul-Results-Filtered-By-ACLs: true` when something was removed for a real token."""
    if not req.scope.get(_FILTERED_KEY):
        return []
    ident = req.scope.get(_SCOPE_KEY)
    if ident is None or ident.anonymous:
        return []
    return [(b"x-consul-results-filtered-by-acls", b"true")]
