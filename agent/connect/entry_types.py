"""Config entries as Consul's Go structs describe them: one field table per struct.

Consul decodes a config entry with mapstructure into its Go struct and writes it back with
encoding/json, so both directions are decided by the struct: field names and their order, the
Go type of each field (which weak conversions apply, what an error names), the snake_case
`alias` tags, `omitempty`, whether a nested struct is a pointer (present even when empty) or a
value (always written, never "absent"), and the few fields a custom MarshalJSON writes as a
duration string. The tables here carry exactly that, as data; `agent.connect.entry_decode`
and `agent.connect.entry_render` are the two walks over them.

Stored entries are plain dicts with the Go field names. A field a user left at its Go zero value
is simply absent (Go cannot tell the two apart either), except under a pointer, where presence
is the point: `"Redirect": {}` is a redirect, and an empty one.

The tables shared by several kinds (mesh gateway, transparent proxy, TLS settings, resource
references, ...) live here too; each kind family's module adds its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ANY",
    "BOOL",
    "BYTES",
    "DURATION",
    "FLOAT32",
    "INT",
    "STRING",
    "STRINGS",
    "STRING_MAP",
    "TIME",
    "UINT32",
    "UINT64",
    "F",
    "Field",
    "KindSpec",
    "Map",
    "Ptr",
    "Scalar",
    "Slice",
    "Struct",
    "named",
]


@dataclass(frozen=True)
class Scalar:
    """A Go scalar type. `kind` picks the conversion rules: string, bool, int, uint, float,
    duration (an int64 also read from "10s"), time (RFC 3339 text), bytes ([]byte, written as
    base64) or any (interface{}, kept as sent)."""

    go_type: str
    kind: str
    bits: int = 64


@dataclass(frozen=True)
class Ptr:
    elem: Any


@dataclass(frozen=True)
class Slice:
    item: Any


@dataclass(frozen=True)
class Map:
    """A Go map with string keys; its keys are data and stay as sent."""

    value: Any


@dataclass(frozen=True)
class Field:
    name: str
    type: Any
    # lower-case snake_case spellings from the `alias` tag
    aliases: tuple[str, ...] = ()
    # `json:",omitempty"`: left out when zero (a value struct is written regardless, as in Go)
    omitempty: bool = True
    # a duration that the struct's MarshalJSON writes as a Go string, ahead of the other fields
    text: bool = False
    # `json:"-"`: decoded from a request, never written
    hidden: bool = False


def F(
    name: str,
    type: Any,
    alias: str = "",
    *,
    keep: bool = False,
    text: bool = False,
    hidden: bool = False,
) -> Field:
    """A field; `keep` marks the ones without omitempty."""
    aliases = tuple(a.strip().lower() for a in alias.split(",") if a.strip())
    return Field(name, type, aliases, omitempty=not keep, text=text, hidden=hidden)


@dataclass(frozen=True, eq=False)
class Struct:
    go_type: str
    fields: tuple[Field, ...]
    # HookTranslateKeys' rules: lower-case alias -> lower-case field name
    aliases: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rules = {alias: f.name.lower() for f in self.fields for alias in f.aliases}
        object.__setattr__(self, "aliases", rules)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


def named(go_type: str) -> Scalar:
    """A named Go string type (`structs.ProxyMode`, `types.TLSVersion`)."""
    return Scalar(go_type, "string")


STRING = Scalar("string", "string")
BOOL = Scalar("bool", "bool")
INT = Scalar("int", "int", 64)
UINT32 = Scalar("uint32", "uint", 32)
UINT64 = Scalar("uint64", "uint", 64)
FLOAT32 = Scalar("float32", "float", 32)
DURATION = Scalar("time.Duration", "duration", 64)
TIME = Scalar("time.Time", "time")
BYTES = Scalar("[]uint8", "bytes")
ANY = Scalar("interface {}", "any")
STRINGS = Slice(STRING)
STRING_MAP = Map(STRING)
OPAQUE = Map(ANY)


@dataclass(frozen=True)
class KindSpec:
    """One config-entry kind: its struct, whether that struct has Kind and Name fields (mesh,
    exported-services and sameness-group get Kind from their MarshalJSON; mesh has no Name),
    and its Normalize and Validate steps (both take the entry as a mutable dict)."""

    kind: str
    table: Struct
    normalize: Callable[[dict], None]
    validate: Callable[[dict], None]
    has_kind: bool = True
    has_name: bool = True


# --------------------------------------------------------------------- shared structs

MESH_GATEWAY = Struct("MeshGatewayConfig", (F("Mode", named("structs.MeshGatewayMode")),))
TRANSPARENT_PROXY = Struct(
    "TransparentProxyConfig",
    (
        F("OutboundListenerPort", INT, "outbound_listener_port"),
        F("DialedDirectly", BOOL, "dialed_directly"),
    ),
)
EXPOSE_PATH = Struct(
    "ExposePath",
    (
        F("ListenerPort", INT, "listener_port"),
        F("Path", STRING),
        F("LocalPathPort", INT, "local_path_port"),
        F("Protocol", STRING),
        F("ParsedFromCheck", BOOL, "parsed_from_check"),
    ),
)
EXPOSE = Struct("ExposeConfig", (F("Checks", BOOL), F("Paths", Slice(EXPOSE_PATH))))
ACCESS_LOGS = Struct(
    "AccessLogsConfig",
    (
        F("Enabled", BOOL, "enabled"),
        F("DisableListenerLogs", BOOL, "disable_listener_logs"),
        F("Type", named("structs.LogSinkType"), "type"),
        F("Path", STRING, "path"),
        F("JSONFormat", STRING, "json_format"),
        F("TextFormat", STRING, "text_format"),
    ),
)
ENVOY_EXTENSION = Struct(
    "EnvoyExtension",
    (
        F("Name", STRING, keep=True),
        F("Required", BOOL, keep=True),
        F("Arguments", OPAQUE, keep=True),
        F("ConsulVersion", STRING, keep=True),
        F("EnvoyVersion", STRING, keep=True),
    ),
)
ENVOY_EXTENSIONS = Slice(ENVOY_EXTENSION)
HEADER_MODIFIERS = Struct(
    "HTTPHeaderModifiers",
    (F("Add", STRING_MAP), F("Set", STRING_MAP), F("Remove", STRINGS)),
)
PASSIVE_HEALTH_CHECK = Struct(
    "PassiveHealthCheck",
    (
        F("Interval", DURATION),
        F("MaxFailures", UINT32, "max_failures"),
        F("EnforcingConsecutive5xx", Ptr(UINT32), "enforcing_consecutive_5xx"),
        F("MaxEjectionPercent", Ptr(UINT32), "max_ejection_percent"),
        F("BaseEjectionTime", Ptr(DURATION), "base_ejection_time"),
    ),
)
FAILOVER_POLICY = Struct(
    "ServiceResolverFailoverPolicy", (F("Mode", STRING), F("Regions", STRINGS))
)
PRIORITIZE_BY_LOCALITY = Struct("ServiceResolverPrioritizeByLocality", (F("Mode", STRING),))
TLS_VERSION = named("types.TLSVersion")
CIPHER_SUITES = Slice(named("types.TLSCipherSuite"))
RESOURCE_REFERENCE = Struct(
    "ResourceReference",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F("SectionName", STRING, keep=True),
    ),
)
CONDITION = Struct(
    "Condition",
    (
        F("Type", STRING, keep=True),
        F("Status", named("structs.ConditionStatus"), keep=True),
        F("Reason", STRING, keep=True),
        F("Message", STRING, keep=True),
        F("Resource", Ptr(RESOURCE_REFERENCE), keep=True),
        F("LastTransitionTime", Ptr(TIME), keep=True),
    ),
)
STATUS = Struct("Status", (F("Conditions", Slice(CONDITION), keep=True),))
# Every entry embeds RaftIndex without `squash`, so mapstructure sees a field of that name;
# Consul then ignores top-level CreateIndex/ModifyIndex keys. Decoded, never kept.
RAFT_INDEX = Struct("RaftIndex", (F("CreateIndex", UINT64), F("ModifyIndex", UINT64)))
RAFT_INDEX_FIELD = F("RaftIndex", RAFT_INDEX, hidden=True)
META_FIELD = F("Meta", STRING_MAP)
# Consul 1.17+ stores a hashstructure hash of the entry; a request may carry one (it is
# recomputed). We accept it and do not keep it: see entries.normalize.
HASH_FIELD = F("Hash", UINT64, hidden=True)


def zero_of(t: Any) -> Any:
    """The Go zero value of a type as stored here (None for nil pointers, slices and maps)."""
    if isinstance(t, Struct):
        return {}
    if isinstance(t, Scalar):
        return {"string": "", "bool": False, "float": 0.0, "bytes": "", "time": None}.get(
            t.kind, None if t.kind == "any" else 0
        )
    return None


def is_zero(value: Any) -> bool:
    """Whether a decoded value equals its Go zero value (absent and zero are one thing)."""
    if value is None or value is False:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str | dict | list | tuple | Mapping):
        return len(value) == 0
    return False
