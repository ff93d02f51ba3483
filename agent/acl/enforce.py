"""ACL decisions and the agent's ACL runtime, independent of HTTP.

`decide(identity, resource, name, level)` is the whole rule: an identity's authorizer, asked
about one resource. `resolve_secret` turns a token's secret into that identity. The per-agent
`ACLRuntime` holds the resolver, the agent's runtime token slots (`PUT /v1/agent/token/<kind>`)
and the one-time creation of the built-in records (global-management policy, anonymous
token, initial management token). The request side (the token a request carries, 403s,
filtering of lists) is `agent/http/authz.py`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.acl.authorizer import BUILTIN_POLICIES, Authorizer
from agent.acl.remote import Fetch, RemoteTokens
from agent.acl.resolve import Identity, Resolver
from agent.acl.rules import ParsedRules
from agent.errors import AgentError
from agent.state.acl import (
    ANONYMOUS_ACCESSOR,
    ANONYMOUS_SECRET,
    MANAGEMENT_POLICY_ID,
    POLICY_HASH_FIELDS,
    TOKEN_HASH_FIELDS,
    record_hash,
)
from agent.state.commands import ACLInit, PolicyRecord, TokenRecord, typed

if TYPE_CHECKING:
    from agent.ports import Writer
    from agent.state.store import Store

log = logging.getLogger("agent.acl")

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


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class ACLRuntime:
    """ACL state of one agent process that is not in the replicated store: the resolver,
    the agent's token slots, and the one-time creation of the built-in records.

    It gets what it uses, not the agent: the store (read), the ACL settings, where to keep
    persisted tokens, this node's name, a writer for the built-ins, whether this server
    leads (only the leader writes them), and its datacenter (for datacenter-limited
    policies)."""

    def __init__(
        self,
        store: Store,
        cfg: Any,
        data_dir: Path | None,
        node_name: str,
        writer: Writer,
        is_leader: Callable[[], bool],
        datacenter: str = "",
        server: bool = True,
        remote_fetch: Fetch | None = None,
    ) -> None:
        self.store = store
        self.server = server  # holds the replicated ACL tables (a client agent does not)
        self.cfg = cfg
        self.node_name = node_name
        self.writer = writer
        self.is_leader = is_leader
        self.resolver = Resolver(store, cfg.default_policy, datacenter)
        # A client agent resolves through a server (agent/acl/remote.py).
        self.remote: RemoteTokens | None = None
        if not server and remote_fetch is not None:
            self.remote = RemoteTokens(
                remote_fetch, self.resolver.compiler, cfg.token_ttl, cfg.down_policy
            )
        self.tokens: dict[str, str] = {
            kind: getattr(cfg.tokens, kind, None) or "" for kind in TOKEN_KINDS
        }
        # Called with a slot's kind when PUT /v1/agent/token/<kind> changes it (the agent
        # starts a sync then, as Consul does for the default and agent tokens).
        self.on_token_change: Callable[[str], None] | None = None
        self._initialized_for: object = None  # the ACL tables object checked last
        self._init_lock = asyncio.Lock()
        self._persist_path = (
            Path(data_dir) / "acl-tokens.json"
            if cfg.enable_token_persistence and data_dir is not None
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
        changed = self.tokens.get(kind, "") != secret
        self.tokens[kind] = secret
        if changed and self.on_token_change is not None:
            self.on_token_change(kind)
        if self._persist_path is None:
            return
        tmp = self._persist_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v for k, v in self.tokens.items() if v}))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self._persist_path)

    # ------------------------------------------------------------------ built-ins

    async def prefetch(self, secret: str) -> None:
        """On a client agent, fetch what `resolve_secret(self, secret)` will need."""
        if self.remote is not None:
            secret = self.effective_secret(secret)
            if secret is not None:
                await self.remote.prefetch(secret)

    def effective_secret(self, secret: str) -> str | None:
        """The secret a request stands for (None: the agent recovery token)."""
        if not secret:
            secret = self.tokens.get("default") or ANONYMOUS_SECRET
        recovery = self.tokens.get("agent_recovery")
        return None if recovery and secret == recovery else secret

    async def ensure_initialized(self) -> None:
        """Write the built-in records once, on the leader (a no-op when they exist)."""
        if self._initialized_for is self.store.acl:
            return  # a snapshot restore installs a new tables object: look again then
        if not self.is_leader():
            return
        async with self._init_lock:
            if self._initialized_for is self.store.acl:
                return
            command = self.init_command()
            if command is not None:
                try:
                    await self.writer.write(command)
                except AgentError as exc:
                    log.warning("could not create the built-in ACL records: %s", exc)
                    return
            self._initialized_for = self.store.acl

    def init_command(self) -> ACLInit | None:
        acl = self.store.acl
        policies, tokens = [], []
        created = now_rfc3339()
        for ident, builtin in BUILTIN_POLICIES.items():
            if ident in acl.policies:
                continue
            policy = {"ID": ident, **builtin, "Datacenters": []}
            policy["Hash"] = record_hash(policy, POLICY_HASH_FIELDS)
            policies.append(policy)
        if ANONYMOUS_ACCESSOR not in acl.tokens:
            tokens.append(
                new_token(ANONYMOUS_ACCESSOR, ANONYMOUS_SECRET, "Anonymous Token", [], created)
            )
        initial = self.cfg.tokens.initial_management
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
        return ACLInit(
            Policies=typed(list[PolicyRecord], policies),
            Tokens=typed(list[TokenRecord], tokens),
            InitialManagement=initial_accessor,
        )


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


def resolve_secret(rt: ACLRuntime, secret: str) -> Identity:
    """The identity a token's secret stands for (the default token when none is sent; the
    agent recovery token without asking the store). Raises ACLNotFound for an unknown one."""
    effective = rt.effective_secret(secret)
    if effective is None:
        return agent_recovery_identity(rt.node_name)
    if rt.remote is not None:
        return rt.remote.resolve(effective)
    return rt.resolver.resolve(effective)


def decide(ident: Identity, resource: str, name: str | None, level: str) -> bool:
    """Whether `ident` may act at `level` on `resource` `name` (None: single-valued)."""
    if name is None:
        return ident.authz.allowed_single(resource, level)
    return ident.authz.allowed(resource, name, level)


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
