"""The FSM's commands: typed values, one msgspec Struct per command, tagged by `Type`.

A handler builds a command (`KV(Verb="set", Key=..., Value=...)`), the agent encodes it once
(`encode`, msgpack) and those bytes are what enters the Raft log and what a follower forwards
to the leader. The FSM decodes each entry against the tagged union (`decode`), so an entry of
the wrong shape is a refusal (the same on every server and on every replay of the log), never
an exception halfway through an apply, and every handler then reads typed attributes.

On the wire a command is the msgpack map it always was (`{"Type": "kv", "Verb": ..., ...}`),
so logs and snapshots written before commands were typed still decode. Fields a command does
not declare are ignored on decode; `None` is accepted wherever a handler reads a value with a
default. Records the store keeps as maps (ACL tokens, policies, roles) declare every field the
HTTP layer writes, since a field not declared here would be dropped on the way to the log.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

import msgspec

from agent.errors import CommandRefused
from agent.state.structs import ConnectProxyConfig, Locality, ServiceConnect

I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# msgspec cannot express uint64's upper bound; msgpack cannot encode an int above it either,
# so a larger value never leaves the proposer (`encode` raises OverflowError).
U64 = Annotated[int, msgspec.Meta(ge=0)]
StrMap = dict[str, str]
KV_VERBS = frozenset(
    {
        "set",
        "cas",
        "lock",
        "unlock",
        "delete",
        "delete-tree",
        "delete-cas",
        "get",
        "get-tree",
        "check-index",
        "check-session",
        "check-not-exists",
    }
)
KV_READ_VERBS = frozenset({"get", "get-tree", "check-index", "check-session", "check-not-exists"})


class Invalid(CommandRefused):
    """A log entry or command that no handler may apply (its shape, not the state it meets)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "invalid")


class _Part(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


# ---------------------------------------------------------------------- catalog records


class Weights(_Part):
    Passing: I64 | None = None
    Warning: I64 | None = None


class ServiceAddress(_Part):
    Address: str | None = None
    Port: I64 | None = None


class NodeRecord(_Part):
    Node: str | None = None
    Address: str | None = None
    ID: str | None = None
    Datacenter: str | None = None
    TaggedAddresses: StrMap | None = None
    NodeMeta: StrMap | None = None
    Meta: StrMap | None = None
    ModifyIndex: U64 | None = None


class ServiceRecord(_Part):
    ID: str | None = None
    Service: str | None = None
    Tags: list[str] | None = None
    Address: str | None = None
    TaggedAddresses: dict[str, ServiceAddress] | None = None
    Meta: StrMap | None = None
    Port: I64 | None = None
    Weights: Weights | None = None
    EnableTagOverride: bool | None = None
    Kind: str | None = None
    # The Connect settings are the store's own records: what the HTTP layer decoded and
    # validated is what the FSM keeps.
    SocketPath: str | None = None
    Locality: Locality | None = None
    Proxy: ConnectProxyConfig | None = None
    Connect: ServiceConnect | None = None
    ModifyIndex: U64 | None = None


class CheckRecord(_Part):
    Node: str | None = None
    CheckID: str | None = None
    Name: str | None = None
    Status: str | None = None
    Notes: str | None = None
    Output: str | None = None
    ServiceID: str | None = None
    ServiceName: str | None = None
    ServiceTags: list[str] | None = None
    Type: str | None = None
    Interval: str | None = None
    Timeout: str | None = None
    ExposedPort: I64 | None = None
    Definition: dict[str, Any] | None = None
    ModifyIndex: U64 | None = None


# ---------------------------------------------------------------------- txn operations


class KVOp(_Part):
    Verb: str = ""
    Key: str = ""
    Value: bytes | None = None
    Flags: U64 = 0
    Index: U64 = 0
    Session: str = ""


class NodeOp(_Part):
    Verb: str = ""
    Node: NodeRecord | None = None


class ServiceOp(_Part):
    Verb: str = ""
    Node: str = ""
    Service: ServiceRecord | None = None


class CheckOp(_Part):
    Verb: str = ""
    Check: CheckRecord | None = None


class TxnOp(_Part):
    KV: KVOp | None = None
    Node: NodeOp | None = None
    Service: ServiceOp | None = None
    Check: CheckOp | None = None


# ---------------------------------------------------------------------- commands


class _Command(msgspec.Struct, tag_field="Type", kw_only=True, omit_defaults=True):
    pass


class KV(_Command, tag="kv"):
    Verb: str
    Key: str = ""
    Value: bytes | None = None
    Flags: U64 = 0
    Index: U64 = 0
    Session: str = ""


class Txn(_Command, tag="txn"):
    Ops: list[TxnOp]


class Register(_Command, tag="register"):
    Node: str
    Address: str | None = None
    ID: str | None = None
    Datacenter: str | None = None
    TaggedAddresses: StrMap | None = None
    NodeMeta: StrMap | None = None
    Service: ServiceRecord | None = None
    Check: CheckRecord | None = None
    Checks: list[CheckRecord] | None = None
    SkipNodeUpdate: bool | None = None


class Deregister(_Command, tag="deregister"):
    Node: str
    ServiceID: str | None = None
    CheckID: str | None = None


class Noop(_Command, tag="noop"):
    pass


class Restore(_Command, tag="restore"):
    State: bytes


class CoordinateUpdate(_Part):
    Node: str
    Segment: str | None = None
    Coord: dict[str, Any] | None = None


class Coordinate(_Command, tag="coordinate"):
    Updates: list[CoordinateUpdate]


class Autopilot(_Command, tag="autopilot"):
    Config: dict[str, Any]
    CAS: U64 | None = None


class ServiceCheckRef(_Part):
    ID: str
    Namespace: str | None = None


class SessionRecord(_Part):
    ID: str
    Name: str | None = None
    Node: str | None = None
    LockDelay: I64 | None = None
    Behavior: str | None = None
    TTL: str | None = None
    NodeChecks: list[str] | None = None
    ServiceChecks: list[ServiceCheckRef] | None = None


class SessionCommand(_Command, tag="session"):
    Op: str
    Session: SessionRecord | None = None
    ID: str | None = None


# ---------------------------------------------------------------------- ACL records
#
# The store keeps these as maps, with every field (`as_record`); they are not omit_defaults,
# so a stored record always carries each field, as the HTTP layer renders it. `None` is
# accepted where records written by older versions (or cloned from them) may hold it.


class _Record(msgspec.Struct, kw_only=True):
    pass


class Link(_Record, omit_defaults=True):  # kept as the body gave it
    ID: str
    Name: str | None = None


class ServiceIdentity(_Record, omit_defaults=True):
    ServiceName: str
    Datacenters: list[str] | None = None


class NodeIdentity(_Record, omit_defaults=True):
    NodeName: str
    Datacenter: str | None = ""


class TemplatedPolicyVariables(_Record, omit_defaults=True):
    name: str | None = None  # Consul's JSON spelling of the variable


class TemplatedPolicy(_Record, omit_defaults=True):
    TemplateName: str
    TemplateID: str | None = ""
    TemplateVariables: TemplatedPolicyVariables | None = None
    Datacenters: list[str] | None = None


class TokenRecord(_Record):
    AccessorID: str
    SecretID: str
    Description: str | None = ""
    Policies: list[Link] | None = []
    Roles: list[Link] | None = []
    ServiceIdentities: list[ServiceIdentity] | None = []
    NodeIdentities: list[NodeIdentity] | None = []
    TemplatedPolicies: list[TemplatedPolicy] | None = []
    Local: bool | None = False
    AuthMethod: str | None = ""
    ExpirationTime: str | None = ""
    CreateTime: str | None = ""
    Hash: str | None = ""


class PolicyRecord(_Record):
    ID: str
    Name: str
    Description: str | None = ""
    Rules: str | None = ""
    Datacenters: list[str] | None = []
    Hash: str | None = ""


class RoleRecord(_Record):
    ID: str
    Name: str
    Description: str | None = ""
    Policies: list[Link] | None = []
    ServiceIdentities: list[ServiceIdentity] | None = []
    NodeIdentities: list[NodeIdentity] | None = []
    TemplatedPolicies: list[TemplatedPolicy] | None = []
    Hash: str | None = ""


class AuthMethodRecord(_Record):
    """An auth method as Consul stores it; `MaxTokenTTL` in nanoseconds (a Go duration),
    `Config` the type's settings as the body gave them (validated by agent/acl/auth_methods)."""

    Name: str
    Type: str
    DisplayName: str | None = ""
    Description: str | None = ""
    MaxTokenTTL: I64 | None = 0
    TokenLocality: str | None = ""
    Config: dict[str, Any] | None = None


class BindingRuleRecord(_Record):
    ID: str
    AuthMethod: str
    Description: str | None = ""
    Selector: str | None = ""
    BindType: str | None = ""
    BindName: str | None = ""
    BindVars: TemplatedPolicyVariables | None = None  # {"name": ...}, as Consul spells it


class ACLInit(_Command, tag="acl-init"):
    Policies: list[PolicyRecord] | None = None
    Tokens: list[TokenRecord] | None = None
    InitialManagement: str | None = None


class ACLBootstrap(_Command, tag="acl-bootstrap"):
    Token: TokenRecord
    ResetIndex: U64 | None = None


class ACLTokenSet(_Command, tag="acl-token-set"):
    Token: TokenRecord
    # A token made by `POST /v1/acl/login` (Consul's AllowMissingLinks + ProhibitUnprivileged):
    # role and policy links that vanished meanwhile are kept but refused if nothing is left.
    Login: bool | None = None


class ACLTokenDelete(_Command, tag="acl-token-delete"):
    AccessorID: str


class ACLTokenBatchDelete(_Command, tag="acl-token-batch-delete"):
    """The leader's reaping of expired tokens (it decides which; the FSM reads no clock)."""

    AccessorIDs: list[str]


class ACLPolicySet(_Command, tag="acl-policy-set"):
    Policy: PolicyRecord


class ACLPolicyDelete(_Command, tag="acl-policy-delete"):
    ID: str


class ACLRoleSet(_Command, tag="acl-role-set"):
    Role: RoleRecord


class ACLRoleDelete(_Command, tag="acl-role-delete"):
    ID: str


class ACLAuthMethodSet(_Command, tag="acl-auth-method-set"):
    AuthMethod: AuthMethodRecord


class ACLAuthMethodDelete(_Command, tag="acl-auth-method-delete"):
    """Deletes the method, its binding rules and every token it made (as Consul does)."""

    Name: str


class ACLBindingRuleSet(_Command, tag="acl-binding-rule-set"):
    BindingRule: BindingRuleRecord


class ACLBindingRuleDelete(_Command, tag="acl-binding-rule-delete"):
    ID: str


# ---------------------------------------------------------------------- the service mesh
#
# Entries and the CA state arrive normalized and validated by the HTTP layer
# (agent/connect/); the FSM adds indexes, checks CAS and the cross-entry rules.


class ConfigEntrySet(_Command, tag="config-entry-set"):
    Entry: dict[str, Any]
    CAS: U64 | None = None  # 0: only if absent; n: only if its ModifyIndex is n


class ConfigEntryDelete(_Command, tag="config-entry-delete"):
    EntryKind: str
    Name: str
    CAS: U64 | None = None


class CASet(_Command, tag="connect-ca-set"):
    """The whole CA state at once (roots and configuration change together, as Consul
    writes them atomically on a rotation)."""

    ClusterID: str
    Config: dict[str, Any]
    Roots: list[dict[str, Any]]
    CAS: U64 | None = None  # the ModifyIndex of the CA state this was computed from


class FederationStateSet(_Command, tag="federation-state-set"):
    """A datacenter's federation state as the leader computed it: `Datacenter`,
    `MeshGateways` (health-service JSON, or None), `UpdatedAt`, `PrimaryModifyIndex`."""

    State: dict[str, Any]


class ServiceVirtualIPSet(_Command, tag="service-virtual-ip-set"):
    """A service's manual virtual IPs (`PUT /v1/internal/service-virtual-ip`): IPv4 addresses,
    checked by the HTTP layer; each is taken from any other service that had it."""

    Service: str
    ManualIPs: list[str] = []


# ---------------------------------------------------------------------- prepared queries
#
# The query arrives decoded and validated by the HTTP layer (agent/queries/definition.py),
# with its ID; the FSM adds indexes and checks what depends on the state (name and ID
# uniqueness, the session, the template compiling). Every field is declared, so the stored
# record carries each one, as Consul renders it.


class QueryTemplateRecord(_Record):
    Type: str = ""
    Regexp: str = ""
    RemoveEmptyTags: bool = False


class QueryFailoverTargetRecord(_Record):
    Peer: str = ""
    Datacenter: str = ""


class QueryFailoverRecord(_Record):
    NearestN: I64 = 0
    Datacenters: list[str] | None = None
    Targets: list[QueryFailoverTargetRecord] | None = None


class ServiceQueryRecord(_Record):
    Service: str = ""
    SamenessGroup: str = ""
    Failover: QueryFailoverRecord = msgspec.field(default_factory=QueryFailoverRecord)
    OnlyPassing: bool = False
    IgnoreCheckIDs: list[str] | None = None
    Near: str = ""
    Tags: list[str] | None = None
    NodeMeta: StrMap | None = None
    ServiceMeta: StrMap | None = None
    Connect: bool = False
    Peer: str = ""


class QueryDNSRecord(_Record):
    TTL: str = ""


class PreparedQueryRecord(_Record):
    ID: str
    Name: str = ""
    Session: str = ""
    Token: str = ""
    Template: QueryTemplateRecord = msgspec.field(default_factory=QueryTemplateRecord)
    Service: ServiceQueryRecord = msgspec.field(default_factory=ServiceQueryRecord)
    DNS: QueryDNSRecord = msgspec.field(default_factory=QueryDNSRecord)


class PreparedQuerySet(_Command, tag="prepared-query-set"):
    """Create or update (the same in the log, as in Consul's state store)."""

    Query: PreparedQueryRecord


class PreparedQueryDelete(_Command, tag="prepared-query-delete"):
    ID: str


Command = (
    KV
    | Txn
    | Register
    | Deregister
    | Noop
    | Restore
    | Coordinate
    | Autopilot
    | SessionCommand
    | ACLInit
    | ACLBootstrap
    | ACLTokenSet
    | ACLTokenDelete
    | ACLPolicySet
    | ACLPolicyDelete
    | ACLRoleSet
    | ACLRoleDelete
    | ACLTokenBatchDelete
    | ACLAuthMethodSet
    | ACLAuthMethodDelete
    | ACLBindingRuleSet
    | ACLBindingRuleDelete
    | ConfigEntrySet
    | ConfigEntryDelete
    | CASet
    | ServiceVirtualIPSet
    | FederationStateSet
    | PreparedQuerySet
    | PreparedQueryDelete
)
ACL_COMMANDS = (
    ACLInit,
    ACLBootstrap,
    ACLTokenSet,
    ACLTokenDelete,
    ACLPolicySet,
    ACLPolicyDelete,
    ACLRoleSet,
    ACLRoleDelete,
    ACLTokenBatchDelete,
    ACLAuthMethodSet,
    ACLAuthMethodDelete,
    ACLBindingRuleSet,
    ACLBindingRuleDelete,
)
COMMAND_TYPES: tuple[type[msgspec.Struct], ...] = get_args(Command)
TYPES = frozenset(cls.__struct_config__.tag for cls in COMMAND_TYPES)
# Converting against the union costs ~50x converting against the one class (msgspec rebuilds
# the union's decoder each call): a map (from a peer that forwards maps) is converted by tag.
_BY_TYPE = {cls.__struct_config__.tag: cls for cls in COMMAND_TYPES}
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Command)


def tag(command: Command) -> str:
    return str(type(command).__struct_config__.tag)


def encode(command: Command) -> bytes:
    """The log entry for `command`. Raises Invalid for a command that fails its checks, and
    OverflowError for an integer msgpack cannot carry (beyond 64 bits).

    Building a Struct checks no types, so the entry is decoded again here: what enters the
    log is exactly what every FSM will accept (a few microseconds per write)."""
    entry = _encoder.encode(command)
    decode(entry)
    return entry


def decode(entry: bytes) -> Command:
    """The command a log entry holds; Invalid when no handler may apply it."""
    try:
        command = _decoder.decode(entry)
    except msgspec.ValidationError as exc:
        raise Invalid(_described(exc, entry)) from None
    except msgspec.DecodeError as exc:
        raise Invalid(f"undecodable command: {exc}") from None
    why = problem(command)
    if why is not None:
        raise Invalid(why)
    return command


def from_map(raw: Any) -> Command:
    """A command received as a map (a forwarded write from a peer); Invalid when malformed."""
    if not isinstance(raw, dict):
        raise Invalid("command is not a map")
    kind = raw.get("Type")
    schema = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise Invalid(f"unknown command type {kind!r}")
    try:
        command = msgspec.convert(raw, schema)
    except msgspec.ValidationError as exc:
        raise Invalid(f"invalid {kind} command: {exc}") from None
    why = problem(command)
    if why is not None:
        raise Invalid(why)
    return command


def typed(kind: Any, raw: Any) -> Any:
    """`raw` (maps and lists a handler decoded from a body) as `kind`, a command's part or a
    list of them; Invalid, naming the field, when it does not fit."""
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise Invalid(f"invalid command: {exc}") from None


def as_record(record: msgspec.Struct) -> dict[str, Any]:
    """A record as the map the store keeps (bytes stay bytes)."""
    return msgspec.to_builtins(record, builtin_types=(bytes,))


def _described(exc: msgspec.ValidationError, entry: bytes) -> str:
    """Name the command type in a validation error, as the map path alone does not."""
    try:
        raw = msgspec.msgpack.decode(entry)
    except msgspec.DecodeError:
        raw = None
    kind = raw.get("Type") if isinstance(raw, dict) else None
    if not isinstance(kind, str) or kind not in _BY_TYPE:
        if not isinstance(raw, dict):
            return "command is not a map"
        return f"unknown command type {kind!r}"
    return f"invalid {kind} command: {exc}"


def problem(command: Command) -> str | None:
    """Why a well-typed `command` may still not be applied (its verbs and op shapes), or None."""
    if isinstance(command, KV):
        return _verb_problem(command.Verb, KV_VERBS, "KV")
    if isinstance(command, Txn):
        return _txn_problem(command)
    if isinstance(command, ConfigEntrySet):
        kind, name = command.Entry.get("Kind"), command.Entry.get("Name")
        if not isinstance(kind, str) or not kind or not isinstance(name, str):
            return "invalid config-entry-set command: the entry needs a Kind and a Name"
    if isinstance(command, SessionCommand):
        if command.Op == "create" and command.Session is None:
            return "invalid session command: create without a Session"
        if command.Op == "destroy" and not command.ID:
            return "invalid session command: destroy without an ID"
        if command.Op not in ("create", "destroy"):
            return f"unknown session operation {command.Op!r}"
    return None


def _verb_problem(verb: str, allowed: frozenset[str], what: str) -> str | None:
    return None if verb in allowed else f'unknown {what} verb "{verb}"'


def _txn_problem(txn: Txn) -> str | None:
    for i, op in enumerate(txn.Ops):
        kinds = [k for k in ("KV", "Node", "Service", "Check") if getattr(op, k) is not None]
        if len(kinds) != 1:
            return f"invalid txn command: operation {i} must hold exactly one of KV, Node, Service or Check"
        # A catalog op's unknown verb is one of the txn's own errors (its 409 answer, from the
        # dry run); an unknown KV verb is refused before, as Consul refuses it.
        if op.KV is not None and (why := _verb_problem(op.KV.Verb, KV_VERBS, "KV")):
            return f"invalid txn command: operation {i}: {why}"
    return None
