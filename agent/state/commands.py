"""The schema of every FSM command: what may reach the Raft log, and what the FSM will apply.

Commands travel as plain dicts (msgpack on the log). Before the FSM touches the store it checks
the command against its schema here, so a command of the wrong shape is a refusal (the same on
every server and on every replay of the log), never an exception halfway through an apply. The
agent checks the same schema before proposing, so a bad command normally never reaches the log
at all; the FSM's check is what keeps a log written by an older, laxer version from poisoning
the store.

The schemas are msgspec Structs tagged by the command's `Type`. They list the fields the FSM
reads, with the types the store's records need (a node name is a string, a port an int64, an
index a non-negative integer); fields the FSM does not read are not listed and pass through.
`None` is accepted wherever the FSM reads a value with a default.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

import msgspec

I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# msgspec cannot express uint64's upper bound; msgpack cannot encode an int above it either,
# so a larger value never leaves the proposer.
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


class _Part(msgspec.Struct, forbid_unknown_fields=False):
    pass


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


class _Command(msgspec.Struct, tag_field="Type", forbid_unknown_fields=False):
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


class Link(_Part):
    ID: str
    Name: str | None = None


class TokenRecord(_Part):
    AccessorID: str
    SecretID: str
    Description: str | None = None
    Policies: list[Link] | None = None
    Roles: list[Link] | None = None
    Local: bool | None = None
    ExpirationTime: str | None = None


class PolicyRecord(_Part):
    ID: str
    Name: str
    Description: str | None = None
    Rules: str | None = None
    Datacenters: list[str] | None = None


class RoleRecord(_Part):
    ID: str
    Name: str
    Description: str | None = None
    Policies: list[Link] | None = None


class ACLInit(_Command, tag="acl-init"):
    Policies: list[PolicyRecord] | None = None
    Tokens: list[TokenRecord] | None = None
    InitialManagement: str | None = None


class ACLBootstrap(_Command, tag="acl-bootstrap"):
    Token: TokenRecord
    ResetIndex: U64 | None = None


class ACLTokenSet(_Command, tag="acl-token-set"):
    Token: TokenRecord


class ACLTokenDelete(_Command, tag="acl-token-delete"):
    AccessorID: str


class ACLPolicySet(_Command, tag="acl-policy-set"):
    Policy: PolicyRecord


class ACLPolicyDelete(_Command, tag="acl-policy-delete"):
    ID: str


class ACLRoleSet(_Command, tag="acl-role-set"):
    Role: RoleRecord


class ACLRoleDelete(_Command, tag="acl-role-delete"):
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
)
# Converting against the union costs ~50x converting against the one class (msgspec rebuilds
# the union's decoder each call), and KV sets apply by the hundred thousand: pick by tag.
_BY_TYPE: dict[str, type[msgspec.Struct]] = {
    cls.__struct_config__.tag: cls for cls in get_args(Command)
}
TYPES = frozenset(_BY_TYPE)


def problem(command: Any) -> str | None:
    """Why `command` may not be applied (its shape, not the state it meets), or None."""
    if not isinstance(command, dict):
        return "command is not a map"
    kind = command.get("Type")
    schema = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if schema is None:
        return f"unknown command type {kind!r}"
    try:
        typed = msgspec.convert(command, schema)
    except msgspec.ValidationError as exc:
        return f"invalid {kind} command: {exc}"
    if isinstance(typed, KV):
        return _verb_problem(typed.Verb, KV_VERBS, "KV")
    if isinstance(typed, Txn):
        return _txn_problem(typed)
    if isinstance(typed, SessionCommand):
        if typed.Op == "create" and typed.Session is None:
            return "invalid session command: create without a Session"
        if typed.Op == "destroy" and not typed.ID:
            return "invalid session command: destroy without an ID"
        if typed.Op not in ("create", "destroy"):
            return f"unknown session operation {typed.Op!r}"
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
