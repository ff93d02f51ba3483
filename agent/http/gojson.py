"""Request bodies decoded as Consul's Go decoder would decode them, refusals included.

Consul decodes each body into a typed Go struct with `encoding/json`: field names match without
regard to case, `null` leaves a field at its zero value, unknown fields are ignored, and a value
of the wrong JSON kind, or an integer that does not fit the field's Go type, refuses the whole
body with `json: cannot unmarshal number 1e+30 into Go struct field
AgentServiceRegistration.Port of type int`. Clients match on those messages, so the types here
are described the way Go names them (`Struct("structs.RegisterRequest", {...})`, `"uint64"`)
rather than as msgspec Structs: msgspec cannot bound a uint64 and names types its own way.

`parse` is the first step for every body: JSON nested deeper than `MAX_DEPTH` is refused
before anything walks it (no handler needs more than a dozen levels, and recursion on a
`[[[[…` body is how an agent answers 500). `conform` then checks a parsed value against a Go
type and returns it with field names in Go's casing, user maps (`Meta`, `Header`) as sent.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import msgspec

from agent.http.errors import HTTPError

MAX_DEPTH = 64

# Go integer types and their ranges (int is 64 bits on every platform Consul ships for).
INT_RANGES = {
    "int": (-(2**63), 2**63 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint64": (0, 2**64 - 1),
    "uint32": (0, 2**32 - 1),
    "uint16": (0, 2**16 - 1),
    "uint8": (0, 2**8 - 1),
    "uint": (0, 2**64 - 1),
    "time.Duration": (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True, eq=False)
class Struct:
    """A Go struct: its qualified type name and its fields (Go name -> type)."""

    go_type: str
    fields: dict[str, Any]
    # lower-cased (and underscore-free) spelling -> Go field name
    folded: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        folded = {name.lower(): name for name in self.fields}
        folded.update({name.lower().replace("_", ""): name for name in self.fields})
        object.__setattr__(self, "folded", folded)

    @property
    def name(self) -> str:
        return self.go_type.rpartition(".")[2]

    def field_name(self, key: str) -> str | None:
        if key in self.fields:
            return key
        low = key.lower()
        return self.folded.get(low) or self.folded.get(low.replace("_", ""))


@dataclass(frozen=True, eq=False)
class List:
    go_type: str
    item: Any


@dataclass(frozen=True, eq=False)
class Map:
    """A Go map with string keys; its keys are data, kept as sent."""

    go_type: str
    value: Any


@dataclass(frozen=True, eq=False)
class Either:
    """A field Consul decodes from more than one JSON kind (a duration as "10s" or as
    nanoseconds): accepted when any of `kinds` accepts it, named by `go_type` otherwise."""

    go_type: str
    kinds: tuple[Any, ...]


STRINGS = List("[]string", "string")
STRING_MAP = Map("map[string]string", "string")
# Durations Consul reads from a Go duration string or from a number of nanoseconds.
DURATION = Either("time.Duration", ("string", "time.Duration"))
ANY = "interface {}"


# ---------------------------------------------------------------------- parsing


def parse(raw: bytes, prefix: str = "Request decode failed: ", empty: Any = None) -> Any:
    """The JSON value of a body (`empty` for a blank one), refusing malformed or too-deep
    JSON with a 400 that starts with `prefix`."""
    if not raw.strip():
        return empty
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise HTTPError(400, f"{prefix}{exc}") from None
    except RecursionError:
        raise _too_deep(prefix) from None
    # Only a body with more brackets than the bound can exceed it; most never pay the walk.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and depth(value) > MAX_DEPTH:
        raise _too_deep(prefix)
    return value


def _too_deep(prefix: str) -> HTTPError:
    return HTTPError(400, f"{prefix}JSON nested deeper than {MAX_DEPTH} levels")


def depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


# ---------------------------------------------------------------------- conforming


def conform(
    value: Any,
    spec: Any,
    prefix: str = "Request decode failed: ",
    *,
    struct: str | None = None,
    path: str = "",
) -> Any:
    """`value` checked against the Go type `spec` and returned with Go field names.

    A top-level value of the wrong kind is `json: cannot unmarshal array into Go value of
    type structs.RegisterRequest`; a field of the wrong kind or range names the field by its
    path from the top, with the innermost struct's name, as Go does. `struct` and `path`
    place a value that sits inside a struct decoded by hand."""
    try:
        return _conform(value, spec, struct, path)
    except _Mismatch as exc:
        raise HTTPError(400, prefix + exc.message()) from None


class _Mismatch(Exception):
    def __init__(self, value: Any, go_type: str, struct: str | None, path: str) -> None:
        super().__init__(go_type)
        self.value, self.go_type, self.struct, self.path = value, go_type, struct, path

    def message(self) -> str:
        into_int = self.go_type in INT_RANGES
        kind = json_kind(self.value, into_int)
        if self.struct is None:
            return f"json: cannot unmarshal {kind} into Go value of type {self.go_type}"
        return (
            f"json: cannot unmarshal {kind} into Go struct field "
            f"{self.struct}.{self.path} of type {self.go_type}"
        )


def json_kind(value: Any, into_int: bool = False) -> str:
    """How Go's decoder names a JSON value it could not store (a number with its literal
    when the target was an integer)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return f"number {msgspec.json.encode(value).decode()}" if into_int else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def go_name(spec: Any) -> str:
    return spec if isinstance(spec, str) else spec.go_type


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _conform(value: Any, spec: Any, struct: str | None, path: str) -> Any:
    if value is None:
        return None
    if isinstance(spec, Struct):
        if not isinstance(value, dict):
            raise _Mismatch(value, spec.go_type, struct, path)
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = spec.field_name(key)
            if name is None:
                continue  # Go ignores fields it does not know
            conformed = _conform(item, spec.fields[name], spec.name, _join(path, name))
            if conformed is not None:  # null leaves the field at its zero value: absent
                out[name] = conformed
        return out
    if isinstance(spec, List):
        if not isinstance(value, list):
            raise _Mismatch(value, spec.go_type, struct, path)
        return [_element(item, spec.item, struct, path) for item in value]
    if isinstance(spec, Map):
        if not isinstance(value, dict):
            raise _Mismatch(value, spec.go_type, struct, path)
        return {k: _element(v, spec.value, struct, path) for k, v in value.items()}
    if isinstance(spec, Either):
        for kind in spec.kinds:
            try:
                return _conform(value, kind, struct, path)
            except _Mismatch:
                continue
        raise _Mismatch(value, spec.go_type, struct, path)
    if _scalar_fits(value, spec):
        return value
    raise _Mismatch(value, spec, struct, path)


def _element(value: Any, spec: Any, struct: str | None, path: str) -> Any:
    """A list or map element: null there is the element type's zero value, as in Go."""
    conformed = _conform(value, spec, struct, path)
    return zero(spec) if conformed is None else conformed


def zero(spec: Any) -> Any:
    """Go's zero value of a type, as this module returns values (nil slices and maps: None)."""
    if isinstance(spec, Struct):
        return {}
    if isinstance(spec, List | Map | Either) or spec == ANY:
        return None
    if spec == "bool":
        return False
    if spec in INT_RANGES or spec in ("float64", "float32"):
        return 0
    return ""


def _scalar_fits(value: Any, go_type: str) -> bool:
    if go_type == ANY:
        return True
    if go_type == "bool":
        return isinstance(value, bool)
    if go_type in INT_RANGES:
        # Consul reads a duration given as a number through float64, so 1.5e9 is 1.5s.
        number = int | float if go_type == "time.Duration" else int
        if isinstance(value, bool) or not isinstance(value, number):
            return False
        low, high = INT_RANGES[go_type]
        return low <= value <= high
    if go_type in ("float64", "float32"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)  # every other scalar is a Go string type


# ---------------------------------------------------------------------- []byte


def b64decode(value: Any, prefix: str = "Failed to parse body: ") -> bytes:
    """Decode a JSON []byte field the way Go does (std base64, padding required)."""
    if value is None:
        return b""
    if not isinstance(value, str):
        raise HTTPError(
            400,
            f"{prefix}json: cannot unmarshal {json_kind(value)} into Go value of type []uint8",
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPError(
            400, f"{prefix}illegal base64 data at input byte {_first_bad_base64(value)}"
        ) from None


def _first_bad_base64(text: str) -> int:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    for i, ch in enumerate(text):
        if ch == "=":
            return i if len(text) % 4 else max(i, 0)
        if ch not in alphabet:
            return i
    return len(text)
