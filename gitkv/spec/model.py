"""The spec as pydantic models: the shape of a gitkv YAML file, and nothing else.

Every model forbids unknown keys and coerces nothing (`strict`), so a typo or a number where a
string belongs is an error with a position, not a silent surprise. Checks that need more than
one field at a time (agents named by services, ACL references, files on disk) live in
`gitkv.spec.checks`; the JSON Schema published for editors is generated from these classes
(`gitkv.spec.schema`), and their docstrings become its descriptions.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from gitkv.resources import canonical_duration
from gitkv.spec.model_objects import (
    INTENTION_KEY,
    AuthMethod,
    Autopilot,
    BindingRule,
    CAConfig,
    ConfigEntries,
    EnvSecret,
    FileSecret,
    IntentionValue,
    OptionalSecret,
    PreparedQuery,
)

__all__ = [
    "Acl",
    "Agent",
    "AgentPorts",
    "Check",
    "CHECK_KINDS",
    "check_ids",
    "Datacenter",
    "EnvSecret",
    "ExternalNode",
    "ExternalService",
    "FileSecret",
    "KVDir",
    "KVFile",
    "KVJson",
    "KVValue",
    "Policy",
    "Role",
    "Service",
    "Spec",
    "Token",
    "http_url",
]

MAX_FLAGS = 2**64 - 1


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, use_attribute_docstrings=True, populate_by_name=False
    )


# --- scalar types -------------------------------------------------------------------------


def _duration(text: str) -> str:
    # canonical_duration is what plan compares with, so accepting exactly what it parses keeps
    # validate and plan in agreement.
    if not text.strip():
        raise ValueError("empty duration (e.g. 10s, 1m30s, 500ms)")
    canonical_duration(text)
    return text


def _ip(text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"invalid IP address {text!r}") from None
    return text


def http_url(text: str) -> str:
    """`host:port` (as `CONSUL_HTTP_ADDR` allows) or an http(s) URL, as a full URL."""
    return text if "://" in text else f"http://{text}"


def _address(text: str) -> str:
    parts = urlsplit(http_url(text))
    problem = ""
    if parts.scheme not in ("http", "https"):
        problem = f"scheme must be http or https, not {parts.scheme!r}"
    elif not parts.hostname:
        problem = "missing host"
    elif parts.path not in ("", "/") or parts.query or parts.fragment:
        problem = "must not have a path, query or fragment"
    else:
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            problem = "invalid port"
    if problem:
        raise ValueError(f"invalid address {text!r}: {problem} (e.g. http://127.0.0.1:8500)")
    return text


def _service_address(text: str) -> str:
    if text in ("0.0.0.0", "::", "[::]"):
        raise ValueError(f"{text!r} is not a service address (leave it empty for the node's)")
    return text


def _kv_key(text: str) -> str:
    if not text:
        raise ValueError("KV key must not be empty")
    if text.startswith("/"):
        raise ValueError(f"KV key {text!r} must not start with '/'")
    return text


_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_ENV_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
_GO_DURATION_RE = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$"

Duration = Annotated[
    str,
    AfterValidator(_duration),
    Field(json_schema_extra={"pattern": _GO_DURATION_RE, "examples": ["10s", "1m30s"]}),
]
IPAddress = Annotated[
    str, AfterValidator(_ip), Field(json_schema_extra={"examples": ["127.0.0.1"]})
]
HttpAddress = Annotated[
    str,
    AfterValidator(_address),
    Field(json_schema_extra={"examples": ["http://127.0.0.1:8500"]}),
]
Name = Annotated[str, Field(pattern=_NAME_RE)]
# Consul's own rule for policy and role names (no dots, unlike node and service names).
AclName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
DCName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$")]
KVKey = Annotated[str, AfterValidator(_kv_key)]
ServiceAddress = Annotated[str, AfterValidator(_service_address)]
NodeAddress = Annotated[str, Field(min_length=1)]
Port = Annotated[int, Field(ge=0, le=65535)]
Flags = Annotated[int, Field(ge=0, le=MAX_FLAGS)]
_META_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _meta(value: dict[str, str]) -> dict[str, str]:
    # Consul's limits on node and service meta, checked here rather than at apply time;
    # `gitkv-` keys are gitkv's own bookkeeping on the services it registers.
    if len(value) > 64:
        raise ValueError(f"at most 64 meta pairs, found {len(value)}")
    for key, val in value.items():
        if not _META_KEY.match(key):
            raise ValueError(f"meta key {key!r} may only hold letters, digits, '_' and '-'")
        if len(key) > 128 or len(val) > 512:
            raise ValueError(f"meta {key!r}: keys are at most 128 characters, values 512")
        if key.startswith(("consul-", "gitkv-")):
            raise ValueError(f"meta key {key!r}: the consul- and gitkv- prefixes are reserved")
    return value


StrMap = Annotated[dict[str, str], AfterValidator(_meta)]


# --- agents -------------------------------------------------------------------------------


class AgentPorts(_Model):
    """Ports of one agent; Consul's defaults."""

    http: Port = 8500
    dns: Port = 8600
    server: Port = 8300
    serf_lan: Port = 8301
    serf_wan: Port = 8302


class Agent(_Model):
    """An agent of the cluster. Its key in `agents` is its node name."""

    server: bool = False
    """A server (takes part in Raft) rather than a client agent."""
    bind: IPAddress = "127.0.0.1"
    """Address for cluster traffic (gossip, RPC)."""
    client: IPAddress | None = None
    """Address of the HTTP and DNS interfaces; defaults to `bind`."""
    ports: AgentPorts = AgentPorts()
    dev: bool = False
    """Run as a `-dev` agent (in-memory single server), for local experiments."""
    ui: bool = True
    bootstrap_expect: Annotated[int, Field(ge=1)] | None = None
    """Servers to wait for before electing a leader; defaults to the number of servers."""
    args: list[str] = []
    """Extra `gitkv agent` flags, e.g. `["-log-level=debug"]`."""

    @property
    def http_address(self) -> str:
        """Where this agent's HTTP API answers (services are registered there)."""
        host = self.client or self.bind
        if host in ("0.0.0.0", "::"):
            host = self.bind
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.ports.http}"


# --- KV -----------------------------------------------------------------------------------


class KVValue(_Model):
    """A literal value with flags."""

    value: str
    flags: Flags = 0
    """Opaque 64-bit number stored with the key."""


class KVFile(_Model):
    """A value read from a file, relative to the spec file that names it."""

    file: str
    flags: Flags = 0


class KVJson(_Model):
    """Any YAML value, stored as JSON text (2-space indented, keys in spec order)."""

    json_value: Any = Field(alias="json")
    flags: Flags = 0


def _kv_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "kv:file" if "file" in value else "kv:json" if "json" in value else "kv:value"
    if isinstance(value, BaseModel):
        return {KVFile: "kv:file", KVJson: "kv:json"}.get(type(value), "kv:value")
    return "kv:string"


KVEntry = Annotated[
    Annotated[str, Tag("kv:string")]
    | Annotated[KVValue, Tag("kv:value")]
    | Annotated[KVFile, Tag("kv:file")]
    | Annotated[KVJson, Tag("kv:json")],
    Discriminator(_kv_kind),
]


class KVDir(_Model):
    """A directory whose files become keys: `<prefix><path relative to the directory>`."""

    path: str
    prefix: str = ""


def _kv_dirs(value: Any) -> Any:
    # One directory may be written as a bare string; the model always holds a list.
    return [value] if isinstance(value, str | dict) else value


def _kv_dirs_schema(schema: dict[str, Any]) -> None:
    # The model always holds a list, but one directory may be written alone; say so to editors.
    items = schema.pop("items")
    schema.pop("type", None)
    schema["anyOf"] = [*items["oneOf"], {"type": "array", "items": items}]


KVDirEntry = Annotated[
    Annotated[str, Tag("dir:string")] | Annotated[KVDir, Tag("dir:object")],
    Discriminator(lambda v: "dir:string" if isinstance(v, str) else "dir:object"),
]


# --- services -----------------------------------------------------------------------------

CHECK_KINDS = ("http", "tcp", "udp", "grpc", "h2ping", "ttl", "args")


class Check(_Model):
    """A health check. Exactly one of http, tcp, udp, grpc, h2ping, ttl or args (a script)."""

    id: str | None = None
    """Check id; defaults as Consul does: `service:<service id>` (`:<n>` when several)."""
    name: str | None = None
    http: str | None = None
    tcp: str | None = None
    udp: str | None = None
    grpc: str | None = None
    h2ping: str | None = None
    ttl: Duration | None = None
    args: list[str] | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    method: str | None = None
    """HTTP method of an http check (default GET)."""
    tls_skip_verify: bool = False
    deregister_critical_service_after: Duration | None = None
    notes: str = ""

    @property
    def kind(self) -> str:
        found = [k for k in CHECK_KINDS if getattr(self, k) is not None]
        return found[0] if found else ""

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        found = [k for k in CHECK_KINDS if getattr(self, k) is not None]
        if len(found) != 1:
            what = "none" if not found else ", ".join(found)
            raise ValueError(
                f"a check needs exactly one of {', '.join(CHECK_KINDS)} (found {what})"
            )
        if found[0] == "ttl" and self.interval is not None:
            raise ValueError("a ttl check takes no interval")
        if found[0] != "ttl" and self.interval is None:
            raise ValueError(f"{found[0]} checks need an interval, e.g. interval: 10s")
        if self.method is not None and found[0] != "http":
            raise ValueError("method applies only to http checks")
        return self


class Service(_Model):
    """A service registered on one of the datacenter's agents."""

    name: Name
    id: Name | None = None
    """Service id, unique per agent; defaults to the name."""
    agent: str
    """Node name of the agent (a key of `agents`) the service is registered on."""
    address: ServiceAddress = ""
    """Service address; empty means the agent's address."""
    port: Port = 0
    tags: list[str] = []
    meta: StrMap = {}
    checks: list[Check] = []

    @property
    def service_id(self) -> str:
        return self.id or self.name


class ExternalService(_Model):
    """A service of an external node."""

    name: Name
    id: Name | None = None
    port: Port = 0
    tags: list[str] = []
    meta: StrMap = {}
    address: ServiceAddress = ""

    @property
    def service_id(self) -> str:
        return self.id or self.name


class ExternalNode(_Model):
    """A node without an agent, registered in the catalog (e.g. a legacy database)."""

    node: Name
    address: NodeAddress
    meta: StrMap = {}
    services: list[ExternalService] = []


# --- ACL ----------------------------------------------------------------------------------


class Policy(_Model):
    """An ACL policy; its key in `policies` is its name."""

    description: str = ""
    rules: str = ""
    """Rules in HCL (`key_prefix "app/" { policy = "read" }`) or JSON."""
    datacenters: list[str] = []
    """Datacenters the policy is valid in; empty means all."""


class Role(_Model):
    """An ACL role linking policies by name."""

    description: str = ""
    policies: list[str] = []


class Token(_Model):
    """An ACL token; its key in `tokens` is gitkv's name for it."""

    description: str | None = None
    """Defaults to `gitkv:<name>`, which is how gitkv recognises its tokens."""
    policies: list[str] = []
    roles: list[str] = []
    local: bool = False
    """Valid only in the datacenter it is created in."""
    secret: OptionalSecret = None
    """Where the SecretID comes from; omit to let the cluster generate one."""


class Acl(_Model):
    """ACL policies, roles and tokens."""

    policies: dict[AclName, Policy] = {}
    roles: dict[AclName, Role] = {}
    tokens: dict[Name, Token] = {}
    auth_methods: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")], AuthMethod] = {}
    """Auth methods by name (login with JWT, OIDC, Kubernetes ...)."""
    binding_rules: list[BindingRule] = []
    """How logins through an auth method become tokens."""


# --- datacenters and the spec -------------------------------------------------------------


class Datacenter(_Model):
    """Everything gitkv manages in one datacenter (its key is the datacenter name)."""

    address: HttpAddress | None = None
    """HTTP address of the cluster; default CONSUL_HTTP_ADDR, else http://127.0.0.1:8500."""
    agents: dict[Name, Agent] = {}
    """The cluster's agents by node name (started by `gitkv up`, checked by `plan`)."""
    kv: dict[KVKey, KVEntry] = {}
    """KV entries: a string, {value, flags}, {file} or {json}."""
    kv_dir: Annotated[
        list[KVDirEntry], BeforeValidator(_kv_dirs), Field(json_schema_extra=_kv_dirs_schema)
    ] = []
    """Directories (relative to the spec file) mapped to keys, one key per file."""
    kv_prefixes: list[str] = []
    """KV prefixes this spec owns; every key must be under one. Default: top-level folders."""
    services: list[Service] = []
    external_services: list[ExternalNode] = []
    acl: Acl = Acl()
    config_entries: ConfigEntries = ConfigEntries()  # type: ignore[valid-type]
    """Config entries by kind, then name, with Consul's field names."""
    intentions: dict[Annotated[str, Field(pattern=INTENTION_KEY)], IntentionValue] = {}
    """`"<source> -> <destination>": allow|deny` (written as service-intentions entries)."""
    prepared_queries: dict[Annotated[str, Field(min_length=1)], PreparedQuery] = {}
    """Prepared queries by name, with Consul's field names."""
    autopilot: Autopilot | None = None
    """Autopilot settings (servers only; the ones named are managed)."""
    ca: CAConfig | None = None
    """Connect CA provider and settings (secrets from {env} or {file})."""


class Spec(_Model):
    """A gitkv spec (one file, or a directory of files merged)."""

    version: Literal[1]
    """Spec format version."""
    name: Annotated[str, Field(pattern=_NAME_RE)] | None = None
    """Ownership ledger name (`gitkv/state/<name>`); defaults to the datacenter name."""
    prune: bool = False
    """Delete managed resources that left the spec (same as `--prune`)."""
    datacenters: Annotated[dict[DCName, Datacenter], Field(min_length=1)]
    """Datacenters by name (lower case, as Consul spells them)."""


def check_ids(service_id: str, explicit: list[str | None]) -> list[str]:
    """Check ids as Consul assigns them: `service:<id>`, or `service:<id>:<n>` (1-based) when
    the service has several checks; an explicit id wins."""
    several = len(explicit) > 1
    return [
        given or (f"service:{service_id}:{i}" if several else f"service:{service_id}")
        for i, given in enumerate(explicit, start=1)
    ]
