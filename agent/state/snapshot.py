"""The store's snapshot bytes: how a state is framed, and how it is decoded back, strictly.

A snapshot is a sequence of frames, each a big-endian u32 length and a msgpack body. The first
frame is the header (every table but KV, plus the indexes); the KV table follows in frames of
`SNAPSHOT_CHUNK` entries, so neither the writer nor the reader ever holds it all twice.

Decoding is all or nothing. Every record is decoded into its Struct (a string where a node name
belongs, an unsigned integer where an index belongs), and the tables the store keeps as plain
dicts (ACL records, coordinates, autopilot settings, config entries, the CA, prepared
queries, virtual IPs) are checked against the fields the store
and its readers rely on. Anything else raises `SnapshotInvalid` before a single table of the
live store is replaced: a snapshot from a laxer version, a damaged file or a foreign archive
must never leave a store that answers 500 to every reader.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, BinaryIO

import msgspec
from sortedcontainers import SortedDict

from agent.queries.definition import QueryError, complete
from agent.queries.template import compile_template
from agent.state.structs import HealthCheck, KVEntry, Node, Service, Session

SNAPSHOT_CHUNK = 16384  # KV entries per frame: bounds the extra memory of a snapshot
_FRAME = struct.Struct(">I")
_READ_PIECE = 8 << 20
_KV_ENCODER = msgspec.msgpack.Encoder()
_KV_DECODER = msgspec.msgpack.Decoder(list[KVEntry])

# Raft indexes are Go uint64s. msgspec cannot bound an int above int64, and msgpack cannot carry
# an integer above 2**64 - 1 anyway, so "not negative" is the whole check.
U64 = Annotated[int, msgspec.Meta(ge=0)]


class SnapshotInvalid(ValueError):
    """The bytes are not a snapshot this store can load: truncated, damaged, foreign, or a
    record of the wrong type. Raised before any state is replaced."""


class CapturedState:
    """A store snapshot waiting to be encoded: the header already encoded, the KV table a list
    of references (records are replaced, never changed in place, so encoding it later, on
    another thread, still yields the instant of the capture)."""

    def __init__(self, header: bytes, kv: list[KVEntry]) -> None:
        self.header = header
        self.kv = kv

    def chunks(self) -> Iterator[bytes]:
        yield _FRAME.pack(len(self.header)) + self.header
        kv = self.kv
        for start in range(0, len(kv), SNAPSHOT_CHUNK):
            body = _KV_ENCODER.encode(kv[start : start + SNAPSHOT_CHUNK])
            yield _FRAME.pack(len(body)) + body


# ---------------------------------------------------------------------- schema


class _Header(msgspec.Struct):
    last_index: U64
    indexes: dict[str, U64]
    service_index: dict[str, U64]
    tombstones: list[tuple[str, U64]]
    nodes: list[Node]
    services: list[tuple[str, list[Service]]]
    checks: list[HealthCheck]
    sessions: list[Session] = []
    acl: dict[str, Any] = {}
    coordinates: list[dict[str, Any]] = []
    autopilot: dict[str, Any] = {}
    mesh: dict[str, Any] = {}
    queries: list[dict[str, Any]] = []
    vips: dict[str, Any] = {}
    federation_states: list[dict[str, Any]] = []


class _Loose(msgspec.Struct, forbid_unknown_fields=False):
    """A check of a plain-dict record: the listed fields must have these types, any other
    field passes through untouched (the record itself is kept as the dict it was)."""


class _Link(_Loose):
    ID: str


class _Token(_Loose):
    AccessorID: str
    SecretID: str
    Description: str = ""
    Policies: list[_Link] = []
    Roles: list[_Link] = []
    Local: bool = False
    CreateIndex: U64 = 0
    ModifyIndex: U64 = 0


class _Policy(_Loose):
    ID: str
    Name: str
    Rules: str = ""
    Datacenters: list[str] = []
    CreateIndex: U64 = 0
    ModifyIndex: U64 = 0


class _Role(_Loose):
    ID: str
    Name: str
    Policies: list[_Link] = []
    CreateIndex: U64 = 0
    ModifyIndex: U64 = 0


class _AuthMethod(_Loose):
    Name: str
    Type: str
    Config: dict[str, Any] | None = None
    CreateIndex: U64 = 0
    ModifyIndex: U64 = 0


class _BindingRule(_Loose):
    ID: str
    AuthMethod: str
    CreateIndex: U64 = 0
    ModifyIndex: U64 = 0


class _ACL(_Loose):
    tokens: list[_Token] = []
    policies: list[_Policy] = []
    roles: list[_Role] = []
    auth_methods: list[_AuthMethod] = []
    binding_rules: list[_BindingRule] = []
    bootstrap_index: U64 = 0


class _Coord(_Loose):
    Vec: list[float] = []
    Error: float = 0.0
    Adjustment: float = 0.0
    Height: float = 0.0


class _Coordinate(_Loose):
    Node: str
    Segment: str = ""
    Coord: _Coord | None = None


class _Autopilot(_Loose):
    CleanupDeadServers: bool = True
    LastContactThreshold: str = ""
    MaxTrailingLogs: U64 = 0
    MinQuorum: U64 = 0
    ServerStabilizationTime: str = ""
    RedundancyZoneTag: str = ""
    DisableUpgradeMigration: bool = False
    UpgradeVersionTag: str = ""
    CreateIndex: U64 = 0
    ModifyIndex: U64 = 0


class _Entry(_Loose):
    Kind: str
    Name: str
    CreateIndex: U64 = 0
    ModifyIndex: U64 = 0


class _Root(_Loose):
    ID: str
    RootCert: str
    Active: bool = False
    SigningKey: str = ""
    IntermediateCerts: list[str] | None = None


class _CA(_Loose):
    ClusterID: str
    Config: dict[str, Any] = {}
    Roots: list[_Root] = []
    CreateIndex: U64 = 0
    ModifyIndex: U64 = 0


class _QueryTemplate(_Loose):
    Type: str = ""
    Regexp: str = ""
    RemoveEmptyTags: bool = False


class _Failover(_Loose):
    NearestN: int = 0
    Datacenters: list[str] | None = None
    Targets: list[dict[str, str]] | None = None


class _ServiceQuery(_Loose):
    Service: str
    Failover: _Failover
    Tags: list[str] | None = None
    IgnoreCheckIDs: list[str] | None = None
    NodeMeta: dict[str, str] | None = None
    ServiceMeta: dict[str, str] | None = None


class _Query(_Loose):
    ID: str
    Name: str
    Session: str
    Token: str
    Template: _QueryTemplate
    Service: _ServiceQuery
    DNS: dict[str, Any]
    CreateIndex: U64 = 0
    ModifyIndex: U64 = 0


class _Mesh(_Loose):
    entries: list[_Entry] = []
    ca: dict[str, Any] = {}  # empty until the CA is initialized, else a _CA


class _VirtualIP(_Loose):
    Service: str
    Offset: U64
    ManualIPs: list[str] = []
    CreateIndex: U64 = 0
    ModifyIndex: U64 = 0


class _FederationState(_Loose):
    Datacenter: str
    MeshGateways: list[dict[str, Any]] | None = None
    UpdatedAt: str = ""
    PrimaryModifyIndex: U64 = 0
    CreateIndex: U64 = 0
    ModifyIndex: U64 = 0


class _VirtualIPs(_Loose):
    assigned: list[_VirtualIP] = []
    freed: list[U64] = []
    counter: U64 = 0


# ---------------------------------------------------------------------- decoding


@dataclass(slots=True)
class DecodedState:
    """Fresh tables, fully decoded and checked, not yet part of any store."""

    last_index: int
    indexes: dict[str, int]
    service_index: dict[str, int]
    kv: SortedDict
    tombstones: SortedDict
    nodes: dict[str, Node]
    services: dict[str, dict[str, Service]]
    checks: dict[str, dict[str, HealthCheck]]
    sessions: list[Session]
    acl: dict[str, Any]
    coordinates: dict[str, dict]
    autopilot: dict[str, Any]
    mesh: dict[str, Any]
    queries: list[dict[str, Any]]
    vips: dict[str, Any]
    federation_states: list[dict[str, Any]]


def decode_state(stream: BinaryIO) -> DecodedState:
    """Read a whole snapshot stream (see `CapturedState.chunks`) into fresh tables; raises
    `SnapshotInvalid` naming the first bad frame or record."""
    header = _decode(_read_frame(stream), _Header, "snapshot header")
    _check(header.acl, _ACL, "acl")
    for n, coordinate in enumerate(header.coordinates):
        _check(coordinate, _Coordinate, f"coordinates[{n}]")
    _check(header.autopilot, _Autopilot, "autopilot")
    _check(header.mesh, _Mesh, "mesh")
    _check(header.vips, _VirtualIPs, "vips")
    for n, state in enumerate(header.federation_states):
        _check(state, _FederationState, f"federation_states[{n}]")
    if header.mesh.get("ca"):
        _check(header.mesh["ca"], _CA, "mesh.ca")
    for n, query in enumerate(header.queries):
        _check(query, _Query, f"queries[{n}]")
        if query["Template"]["Type"]:  # Consul's restore compiles every template again
            try:
                compile_template(complete(query))
            except QueryError as exc:
                raise SnapshotInvalid(f"queries[{n}]: {exc.message}") from None
    kv: SortedDict = SortedDict()
    frame_no = 0
    while (frame := _read_frame(stream, allow_end=True)) is not None:
        frame_no += 1
        try:
            entries = _KV_DECODER.decode(frame)
        except msgspec.MsgspecError as exc:
            raise SnapshotInvalid(f"KV frame {frame_no}: {exc}") from None
        for entry in entries:
            kv[entry.Key] = entry
    checks: dict[str, dict[str, HealthCheck]] = {}
    for check in header.checks:
        checks.setdefault(check.Node, {})[check.CheckID] = check
    return DecodedState(
        last_index=header.last_index,
        indexes=header.indexes,
        service_index=header.service_index,
        kv=kv,
        tombstones=SortedDict(header.tombstones),
        nodes={n.Node: n for n in header.nodes},
        services={node: {s.ID: s for s in svcs} for node, svcs in header.services},
        checks=checks,
        sessions=header.sessions,
        acl=header.acl,
        coordinates={c["Node"]: c for c in header.coordinates},
        autopilot=header.autopilot,
        mesh=header.mesh,
        queries=header.queries,
        vips=header.vips,
        federation_states=header.federation_states,
    )


def _decode(frame: bytes, kind: type, what: str) -> Any:
    try:
        return msgspec.msgpack.decode(frame, type=kind)
    except msgspec.ValidationError as exc:
        raise SnapshotInvalid(str(exc)) from None  # its path ($.nodes[1].Node) says where
    except msgspec.DecodeError as exc:
        raise SnapshotInvalid(f"{what} is not msgpack: {exc}") from None


def _check(record: Any, kind: type, what: str) -> None:
    try:
        msgspec.convert(record, kind)
    except msgspec.ValidationError as exc:
        # The record was checked on its own: put its place in the header into the path.
        message = str(exc)
        if "`$" in message:
            message = message.replace("`$", f"`$.{what}", 1)
        else:
            message = f"{message} - at `$.{what}`"
        raise SnapshotInvalid(message) from None


def _read_frame(stream: BinaryIO, allow_end: bool = False) -> bytes | None:
    head = stream.read(_FRAME.size)
    if not head and allow_end:
        return None
    if len(head) != _FRAME.size:
        raise SnapshotInvalid("snapshot is truncated" if head or allow_end else "snapshot is empty")
    (length,) = _FRAME.unpack(head)
    # Read in pieces: a damaged length must not make the reader allocate gigabytes up front.
    parts, have = [], 0
    while have < length:
        part = stream.read(min(length - have, _READ_PIECE))
        if not part:
            raise SnapshotInvalid(f"snapshot is truncated (a frame of {length} bytes has {have})")
        parts.append(part)
        have += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)
