"""The desired and live cluster as plain values.

Both sides of a plan are expressed with these types: `gitkv.spec.desired` converts a spec into
`Resources`, and `gitkv.state` converts what the `/v1` API returns into the same values, so a
diff is plain `==` on frozen dataclasses. Nothing here does I/O; the only place that ever reads
a secret is `SecretRef.resolve()`, which apply calls at the last moment.

Canonical forms (so that spec and live compare equal):

- tags, policy/role names and datacenter lists are sorted tuples;
- string maps (meta) are sorted tuples of `(key, value)` pairs — see `frozen_map`;
- durations are Go-style strings as Consul prints them (`10s`, `1m30s`) — see
  `canonical_duration`, which every producer must use.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.durations import DurationError, format_nanoseconds, parse_nanoseconds

__all__ = [
    "AclPolicy",
    "AclRole",
    "AclToken",
    "AgentSpec",
    "CheckDef",
    "ExternalNode",
    "ExternalService",
    "KVPair",
    "Resources",
    "SecretRef",
    "SecretUnavailable",
    "ServiceReg",
    "CHECKS_DIGEST_META",
    "canonical_duration",
    "checks_digest",
    "derive_prefixes",
    "frozen_map",
    "service_key",
]

Meta = tuple[tuple[str, str], ...]


def frozen_map(items: Mapping[str, str] | None) -> Meta:
    """A string map as a sorted tuple of pairs: hashable, and equal regardless of order."""
    return tuple(sorted((str(k), str(v)) for k, v in (items or {}).items()))


def canonical_duration(text: str | int | float | None) -> str:
    """A duration in the form Consul prints it (Go's `time.Duration.String()`).

    `"90s"`, `"1m30s"` and `90_000_000_000` (nanoseconds, as the API allows) all give
    `"1m30s"`; empty/None/0 give `""` so "unset" compares equal however it was spelt.

    :raises ValueError: for text that is not a duration, or a negative one.
    """
    if text is None or text == "" or text == 0:
        return ""
    if isinstance(text, int | float):
        total = int(text)
    else:
        try:
            total = parse_nanoseconds(text.strip())
        except DurationError:
            total = -1
        if total < 0:
            raise ValueError(f"invalid duration {text!r} (expected e.g. 10s, 1m30s, 500ms)")
    return format_nanoseconds(total) if total else ""


class SecretUnavailable(Exception):
    """A `SecretRef` could not be read (env variable unset, file missing)."""


@dataclass(frozen=True)
class SecretRef:
    """Where a secret comes from — never the secret itself.

    Exactly one of `env` (an environment variable name) or `file` (a path, relative paths
    already resolved against the spec's directory by the loader) is set. The value is read
    only by `resolve()`, at apply time; `repr`/`str` print the reference, and plans, the
    ownership ledger and every rendering store `describe()`, never the value.
    """

    env: str | None = None
    file: str | None = None

    def __post_init__(self) -> None:
        if (self.env is None) == (self.file is None):
            raise ValueError("SecretRef needs exactly one of env= or file=")

    def describe(self) -> str:
        """A printable, secret-free description such as `env:WEB_TOKEN`."""
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"

    def resolve(self) -> str:
        """The secret value. Call only when sending it to the cluster."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise SecretUnavailable(f"environment variable {self.env} is not set")
            return value
        try:
            return Path(self.file or "").read_text().strip()
        except OSError as exc:
            raise SecretUnavailable(f"cannot read secret file {self.file}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SecretRef({self.describe()}, value=***)"

    __str__ = __repr__


@dataclass(frozen=True)
class KVPair:
    """One KV entry: key, raw value bytes and the opaque 64-bit `flags`."""

    key: str
    value: bytes
    flags: int = 0


@dataclass(frozen=True)
class CheckDef:
    """A health check definition in canonical form.

    `kind` is the Consul check type (`http`, `tcp`, `ttl`, `grpc`, `script`, ...), `target`
    what it points at (URL, `host:port`, gRPC target, joined script args; `""` for ttl).
    `id` is the CheckID; producers default it as Consul does (`service:<svc-id>`, with a
    `:<n>` suffix, 1-based, when a service has several checks). Durations go through
    `canonical_duration`.
    """

    id: str
    name: str
    kind: str
    target: str = ""
    interval: str = ""
    timeout: str = ""
    ttl: str = ""
    method: str = ""
    tls_skip_verify: bool = False
    deregister_critical_after: str = ""
    notes: str = ""


@dataclass(frozen=True)
class ServiceReg:
    """A service registered on an agent (it lives and dies with that agent).

    `agent` is the node name of the agent it is registered on; the agent's HTTP address is
    found through `AgentSpec.http_address` or the catalog. `address` is `""` when the service
    uses the node's address. `checks` is sorted by check id.
    """

    agent: str
    id: str
    name: str
    tags: tuple[str, ...] = ()
    address: str = ""
    port: int = 0
    meta: Meta = ()
    checks: tuple[CheckDef, ...] = ()
    checks_digest: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return service_key(self.agent, self.id)


# Consul's agent API does not return a check's target (URL, TTL, method, ...), only its id,
# name, type, interval, timeout and notes. gitkv therefore stores a digest of the full check
# definitions in the service's meta when registering, and compares that digest (see
# `ServiceReg.checks_digest`, filled by `gitkv.state`; never set by the spec).
CHECKS_DIGEST_META = "gitkv-checks"


def checks_digest(checks: Iterable[CheckDef]) -> str:
    """A short, stable digest of full check definitions (stored as service meta)."""
    doc = [[getattr(c, f.name) for f in fields(c)] for c in checks]
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()[:16]


def service_key(node: str, service_id: str) -> str:
    """The id under which a service is keyed in `Resources.services`: `<node>/<service-id>`."""
    return f"{node}/{service_id}"


@dataclass(frozen=True)
class ExternalService:
    """A service of an external node (catalog only, no agent, no active checks)."""

    id: str
    name: str
    tags: tuple[str, ...] = ()
    address: str = ""
    port: int = 0
    meta: Meta = ()


@dataclass(frozen=True)
class ExternalNode:
    """A catalog node without an agent (`PUT /v1/catalog/register`), e.g. a legacy database.

    `services` is sorted by service id.
    """

    node: str
    address: str
    meta: Meta = ()
    services: tuple[ExternalService, ...] = ()


@dataclass(frozen=True)
class AclPolicy:
    """An ACL policy, keyed by name. `rules` is HCL or JSON text, compared verbatim after
    stripping surrounding whitespace; `datacenters` empty means all."""

    name: str
    description: str = ""
    rules: str = ""
    datacenters: tuple[str, ...] = ()


@dataclass(frozen=True)
class AclRole:
    """An ACL role, keyed by name, linking policies by name."""

    name: str
    description: str = ""
    policies: tuple[str, ...] = ()


@dataclass(frozen=True)
class AclToken:
    """An ACL token, keyed by its spec name.

    Consul identifies tokens by AccessorID; gitkv finds its tokens by `description`, which the
    spec defaults to `gitkv:<name>`, and remembers the AccessorID in the ownership ledger.
    `secret` says where the SecretID comes from (None: Consul generates one). SecretIDs are
    immutable in Consul, so they are set on create and never diffed.
    """

    name: str
    description: str = ""
    policies: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    local: bool = False
    secret: SecretRef | None = None

    @property
    def effective_description(self) -> str:
        """The description stored in Consul: the spec's, else `gitkv:<name>`."""
        return self.description or f"gitkv:{self.name}"


@dataclass(frozen=True)
class AgentSpec:
    """An agent the spec expects in the cluster (read-only drift against `/v1/agent/members`).

    `http_address` is where its HTTP API answers (e.g. `http://127.0.0.14:8500`), used to
    register services on it; None means "find it through the catalog/members".
    """

    name: str
    server: bool = False
    bind: str = ""
    http_address: str | None = None


@dataclass(frozen=True)
class Resources:
    """Everything gitkv should manage in one datacenter.

    Each kind is a mapping keyed by the resource id: KV by key, services by
    `service_key(agent, id)`, external nodes by node name, ACL objects and agents by name.

    :param datacenter: the datacenter's name in the spec (display, and the default ledger
        name; requests go to `address` without `?dc=`).
    :param address: the HTTP address to talk to (None: `CONSUL_HTTP_ADDR`, else
        `http://127.0.0.1:8500`).
    :param prefixes: KV prefixes gitkv reads with one recursive GET each. Keys in `kv` must
        all fall under one of them; use `derive_prefixes` when the spec names none.
    :param prune: delete managed resources that left the spec (`prune: true` in the spec).
    :param name: ownership ledger name: the ledger lives at `gitkv/state/<name>`.
    :param digest: a digest of the spec documents (recorded in the ledger).
    :param revision: the Git commit/revision the spec came from, if known.
    :param objects: whole Consul objects (`gitkv.objects.ApiObject`) by resource kind
        (`config_entry`, `prepared_query`, `acl_auth_method`, ...), then by id.
    """

    datacenter: str = "dc1"
    address: str | None = None
    kv: Mapping[str, KVPair] = field(default_factory=dict)
    services: Mapping[str, ServiceReg] = field(default_factory=dict)
    external_nodes: Mapping[str, ExternalNode] = field(default_factory=dict)
    policies: Mapping[str, AclPolicy] = field(default_factory=dict)
    roles: Mapping[str, AclRole] = field(default_factory=dict)
    tokens: Mapping[str, AclToken] = field(default_factory=dict)
    agents: Mapping[str, AgentSpec] = field(default_factory=dict)
    objects: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    prefixes: tuple[str, ...] = ()
    prune: bool = False
    name: str = ""
    digest: str = ""
    revision: str = ""

    @property
    def ledger_name(self) -> str:
        return self.name or self.datacenter

    @property
    def kv_prefixes(self) -> tuple[str, ...]:
        """The declared prefixes, or ones derived from the keys when none are declared."""
        return self.prefixes or derive_prefixes(self.kv)

    @property
    def has_acl(self) -> bool:
        acl_objects = self.objects.get("acl_auth_method") or self.objects.get("acl_binding_rule")
        return bool(self.policies or self.roles or self.tokens or acl_objects)

    def objects_of(self, kind: str) -> Mapping[str, Any]:
        return self.objects.get(kind) or {}


def derive_prefixes(keys: Iterable[str]) -> tuple[str, ...]:
    """The first path segment of each key (`app/web/x` -> `app/`), sorted and de-duplicated.

    A key without `/` is its own prefix. Using top-level folders keeps the number of recursive
    reads small while still only reading trees the spec talks about.
    """
    out: set[str] = set()
    for key in keys:
        head, sep, _ = key.partition("/")
        out.add(head + sep)
    # Drop prefixes covered by a shorter one (a bare key "app" vs folder "app/").
    ordered = sorted(out)
    kept: list[str] = []
    for p in ordered:
        if not any(p.startswith(k) and k.endswith("/") for k in kept):
            kept.append(p)
    return tuple(kept)
