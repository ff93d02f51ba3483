"""The small values a compiled discovery chain is made of, written as Consul writes them.

Stored config entries reach the compiler as plain dicts with Consul's PascalCase keys. A few of
their values need care to come out of the chain exactly as Consul's JSON does:

- Durations. A stored duration may be a Go duration string ("5s") or integer nanoseconds (the
  entries module may keep either); `nanoseconds` reads both. Consul's chain writes the
  resolver's and the target's ConnectTimeout, and a route's RequestTimeout/IdleTimeout, as Go
  duration strings, but a resolver node's RequestTimeout and a cookie TTL as integer
  nanoseconds (those structs have no custom marshaller).
- Split weights are Go float32s: Consul rounds them to 0.01 in float32 arithmetic and encodes
  the float32's shortest decimal form. `split_weight` and `weight_json` reproduce both, giving
  an int for whole weights so that Python's json writes `90`, as Go does, not `90.0`.
- Definitions (a router's routes, a splitter's splits, a resolver's load balancer) are the
  entry's structs marshalled again: Go field order, `omitempty` fields dropped when empty, a
  present pointer kept even when its struct is empty, map keys sorted. `render` does that from a
  field table.

Also here: target IDs and SNIs (`agent/connect/sni.go`), and CustomizationHash, which is
mitchellh/hashstructure (the 2017 revision Consul pins: FNV-64, XOR of per-field hashes) over
the overrides that changed something, first 8 hex digits of the unpadded `%x`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from agent.durations import DurationError, format_nanoseconds, parse_nanoseconds

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_NAMESPACE",
    "DEFAULT_PARTITION",
    "FAILOVER_POLICY",
    "HEADER_MODIFIERS",
    "LOAD_BALANCER",
    "ROUTE",
    "SPLIT",
    "Table",
    "chain_id",
    "customization_hash",
    "duration_text",
    "merge_header_modifiers",
    "nanoseconds",
    "render",
    "scaled_product",
    "service_sni",
    "split_weight",
    "weight_json",
]

DEFAULT_NAMESPACE = "default"
DEFAULT_PARTITION = "default"
DEFAULT_CONNECT_TIMEOUT = 5_000_000_000

# --- durations -------------------------------------------------------------------------------


def nanoseconds(value: Any) -> int:
    """A stored duration as integer nanoseconds: a Go duration string or a number; 0 if absent.

    A string that is not a Go duration counts as 0: entries reach the compiler already
    validated, and Consul's decoder would have refused it before it was stored.
    """
    if value is None or value == "" or isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return parse_nanoseconds(value)
        except DurationError:
            return 0
    return 0


def duration_text(value: Any) -> str:
    """Go's `Duration.String` of a stored duration ("" for zero, which omitempty then drops)."""
    ns = nanoseconds(value)
    return format_nanoseconds(ns) if ns else ""


# --- float32 split weights -------------------------------------------------------------------


def _f32(value: float) -> float:
    """`value` rounded to the nearest float32, as a Python float."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def split_weight(value: Any) -> float:
    """Consul's NormalizeServiceSplitWeight: float32 weight rounded to 0.01, still a float32."""
    weight = _f32(float(value or 0))
    hundredths = _f32(weight * 100.0)
    scaled = math.copysign(math.floor(abs(hundredths) + 0.5), hundredths)  # Go's math.Round
    return _f32(scaled / 100.0)


def scaled_product(outer: float, inner: float) -> float:
    """The effective weight of an inner split reached through an outer one (float32 maths)."""
    return split_weight(_f32(_f32(outer * inner) / 100.0))


def weight_json(weight: float) -> int | float:
    """The float32 weight as Go's encoder writes it: the shortest decimal that reads back."""
    text = repr(weight)
    for digits in range(1, 10):
        candidate = f"{weight:.{digits}g}"
        if _f32(float(candidate)) == weight:
            text = candidate
            break
    number = float(text)
    return int(number) if number.is_integer() else number


# --- definitions as Go marshals them ---------------------------------------------------------

# A field table is a sequence of (key, kind). Kinds: "str"/"bool"/"int"/"list"/"map" are
# omitempty; a trailing "!" keeps the field when empty (no omitempty in Go); "dur" is a
# duration written as a Go string, "dur_ns" one written as integer nanoseconds; "f32" a split
# weight; a nested table is a pointer to a struct (kept when present, even if empty); a
# one-element list holding a table is a slice of such structs.
Table = Sequence[tuple[str, Any]]

HEADER_MODIFIERS: Table = (("Add", "map"), ("Set", "map"), ("Remove", "list"))
_HEADER_MATCH: Table = (
    ("Name", "str!"),
    ("Present", "bool"),
    ("Exact", "str"),
    ("Prefix", "str"),
    ("Suffix", "str"),
    ("Regex", "str"),
    ("Invert", "bool"),
)
_QUERY_MATCH: Table = (("Name", "str!"), ("Present", "bool"), ("Exact", "str"), ("Regex", "str"))
_HTTP_MATCH: Table = (
    ("PathExact", "str"),
    ("PathPrefix", "str"),
    ("PathRegex", "str"),
    ("Header", [_HEADER_MATCH]),
    ("QueryParam", [_QUERY_MATCH]),
    ("Methods", "list"),
)
# ServiceRouteDestination's MarshalJSON puts its two duration strings ahead of the rest.
_DESTINATION: Table = (
    ("RequestTimeout", "dur"),
    ("IdleTimeout", "dur"),
    ("Service", "str"),
    ("ServiceSubset", "str"),
    ("Namespace", "str"),
    ("Partition", "str"),
    ("PrefixRewrite", "str"),
    ("NumRetries", "int"),
    ("RetryOnConnectFailure", "bool"),
    ("RetryOn", "list"),
    ("RetryOnStatusCodes", "list"),
    ("RequestHeaders", HEADER_MODIFIERS),
    ("ResponseHeaders", HEADER_MODIFIERS),
)
ROUTE: Table = (("Match", (("HTTP", _HTTP_MATCH),)), ("Destination", _DESTINATION))
SPLIT: Table = (
    ("Weight", "f32"),
    ("Service", "str"),
    ("ServiceSubset", "str"),
    ("Namespace", "str"),
    ("Partition", "str"),
    ("RequestHeaders", HEADER_MODIFIERS),
    ("ResponseHeaders", HEADER_MODIFIERS),
)
_COOKIE: Table = (("Session", "bool"), ("TTL", "dur_ns"), ("Path", "str"))
_HASH_POLICY: Table = (
    ("Field", "str"),
    ("FieldValue", "str"),
    ("CookieConfig", _COOKIE),
    ("SourceIP", "bool"),
    ("Terminal", "bool"),
)
LOAD_BALANCER: Table = (
    ("Policy", "str"),
    ("RingHashConfig", (("MinimumRingSize", "int"), ("MaximumRingSize", "int"))),
    ("LeastRequestConfig", (("ChoiceCount", "int"),)),
    ("HashPolicies", [_HASH_POLICY]),
)
FAILOVER_POLICY: Table = (("Mode", "str"), ("Regions", "list"))


def _field(kind: Any, value: Any) -> tuple[bool, Any]:
    """(keep, rendered) for one field value of the given kind."""
    if isinstance(kind, list):
        items = [render(kind[0], item) for item in value or () if isinstance(item, Mapping)]
        return bool(items), items
    if not isinstance(kind, str):
        if not isinstance(value, Mapping):
            return False, None
        return True, render(kind, value)
    always = kind.endswith("!")
    kind = kind.rstrip("!")
    if kind == "dur":
        text = duration_text(value)
        return bool(text), text
    if kind == "dur_ns":
        ns = nanoseconds(value)
        return bool(ns), ns
    if kind == "f32":
        return True, weight_json(split_weight(value))
    if kind == "map":
        items = dict(sorted((value or {}).items()))
        return bool(items) or always, items
    if kind == "list":
        items = list(value or ())
        return bool(items) or always, items
    if kind == "bool":
        return bool(value) or always, bool(value)
    if kind == "int":
        return bool(value) or always, int(value or 0)
    text = "" if value is None else str(value)
    return bool(text) or always, text


def render(table: Table, value: Mapping[str, Any]) -> dict[str, Any]:
    """`value` (a stored struct) as Go's encoding/json writes the struct `table` describes."""
    out: dict[str, Any] = {}
    for key, kind in table:
        keep, rendered = _field(kind, value.get(key))
        if keep:
            out[key] = rendered
    return out


def _copy_modifiers(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = dict(value)
    for key in ("Add", "Set"):
        if out.get(key) is not None:
            out[key] = dict(out[key])
    if out.get("Remove") is not None:
        out["Remove"] = list(out["Remove"])
    return out


def merge_header_modifiers(
    base: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Consul's MergeHTTPHeaderModifiers: `overrides` wins on Add/Set; Remove is the union.

    Removes already in `base` are not repeated; those in `overrides` are appended as they come.
    """
    if base is None and overrides is None:
        return None
    if base is None or overrides is None:
        return _copy_modifiers(base if base is not None else overrides or {})
    merged = _copy_modifiers(base)
    for key in ("Add", "Set"):
        if overrides.get(key):
            merged[key] = {**(merged.get(key) or {}), **overrides[key]}
    removed = set(merged.get("Remove") or ())
    extra = [name for name in overrides.get("Remove") or () if name not in removed]
    if extra:
        merged["Remove"] = [*(merged.get("Remove") or ()), *extra]
    return merged


# --- target names ----------------------------------------------------------------------------


def chain_id(service: str, subset: str, namespace: str, partition: str, dc: str, peer: str) -> str:
    """A target's ID: `[subset.]service.ns.partition.dc`, or `service.ns.partition.external.peer`."""
    if peer:
        return f"{service}.{namespace}.{partition}.external.{peer}"
    if subset:
        return f"{subset}.{service}.{namespace}.{partition}.{dc}"
    return f"{service}.{namespace}.{partition}.{dc}"


def service_sni(
    service: str, subset: str, namespace: str, partition: str, dc: str, trust_domain: str
) -> str:
    """Connect's SNI for a service target; a non-default partition uses the "internal-v1" form."""
    namespace = namespace or DEFAULT_NAMESPACE
    partition = partition or DEFAULT_PARTITION
    prefix = [subset] if subset else []
    if partition == DEFAULT_PARTITION:
        parts = [*prefix, service, namespace, dc, "internal", trust_domain]
    else:
        parts = [*prefix, service, namespace, partition, dc, "internal-v1", trust_domain]
    return ".".join(parts)


# --- CustomizationHash -----------------------------------------------------------------------

_MASK = (1 << 64) - 1


def _fnv64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = (value * 0x100000001B3) & _MASK
        value ^= byte
    return value


def _text_hash(text: str) -> int:
    return _fnv64(text.encode("utf-8"))


def _pair_hash(first: int, second: int) -> int:
    return _fnv64(struct.pack("<QQ", first, second))


def _struct_hash(type_name: str, fields: Sequence[tuple[str, int]]) -> int:
    # hashstructure starts from the type's name and XORs in one ordered hash per field, so
    # field order does not matter but names and the (anonymous) type name do.
    value = _text_hash(type_name)
    for name, field_hash in fields:
        value ^= _pair_hash(_text_hash(name), field_hash)
    return value


def customization_hash(mesh_gateway_mode: str, protocol: str, connect_timeout_ns: int) -> str:
    """CustomizationHash of the overrides that changed the chain (pass "" / 0 for the others).

    Consul hashes an anonymous struct {OverrideMeshGateway MeshGatewayConfig{Mode};
    OverrideProtocol string; OverrideConnectTimeout time.Duration}.
    """
    mesh_gateway = _struct_hash("MeshGatewayConfig", [("Mode", _text_hash(mesh_gateway_mode))])
    timeout = _fnv64(struct.pack("<q", connect_timeout_ns))
    value = _struct_hash(
        "",
        [
            ("OverrideMeshGateway", mesh_gateway),
            ("OverrideProtocol", _text_hash(protocol)),
            ("OverrideConnectTimeout", timeout),
        ],
    )
    return format(value, "x")[:8]
