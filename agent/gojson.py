"""Values checked against Go types the way Consul's `encoding/json` decoder checks them.

Consul decodes each body and definition into a typed Go struct: field names match without
regard to case, `null` leaves a field at its zero value, unknown fields are ignored, and a
value of the wrong JSON kind, or an integer that does not fit the field's Go type, refuses the
whole value with `json: cannot unmarshal number 1e+30 into Go struct field
AgentServiceRegistration.Port of type int`. Clients match on those messages, so the types here
are described the way Go names them (`Struct("structs.RegisterRequest", {...})`, `"uint64"`)
rather than as msgspec Structs: msgspec cannot bound a uint64 and names types its own way.

Two walks share the tables: `conform` checks kinds and ranges and returns the value with Go's
field names (unknown fields dropped, as Go drops them); `fold` only renames the fields a table
knows and keeps the rest as sent. Both raise nothing HTTP-specific: a refusal is a `Mismatch`,
whose text is Go's, for the caller to prefix (`agent.http.gojson` makes it a 400; the check
decoder of config files and the agent API makes it a `CheckDecodeError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

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
        """The Go field a JSON key lands in: any casing, and snake_case, match."""
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


class Mismatch(ValueError):
    """A value of the wrong kind or range for its Go type; `str()` is Go's message.

    `struct` and `path` name the field (innermost struct, path from the top); without a
    struct the value was the top-level one."""

    def __init__(self, value: Any, go_type: str, struct: str | None = None, path: str = "") -> None:
        self.value, self.go_type, self.struct, self.path = value, go_type, struct, path
        super().__init__(self._message())

    def _message(self) -> str:
        kind = json_kind(self.value, into_int=self.go_type in INT_RANGES)
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
    if isinstance(value, list | tuple):
        return "array"
    return "object"


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


# ---------------------------------------------------------------------- conforming


def conform(value: Any, spec: Any, *, struct: str | None = None, path: str = "") -> Any:
    """`value` checked against the Go type `spec` and returned with Go field names.

    A top-level value of the wrong kind is `json: cannot unmarshal array into Go value of
    type structs.RegisterRequest`; a field of the wrong kind or range names the field by its
    path from the top, with the innermost struct's name, as Go does. `struct` and `path`
    place a value that sits inside a struct decoded by hand. Raises `Mismatch`."""
    if value is None:
        return None
    if isinstance(spec, Struct):
        if not isinstance(value, dict):
            raise Mismatch(value, spec.go_type, struct, path)
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = spec.field_name(key)
            if name is None:
                continue  # Go ignores fields it does not know
            conformed = conform(item, spec.fields[name], struct=spec.name, path=_join(path, name))
            if conformed is not None:  # null leaves the field at its zero value: absent
                out[name] = conformed
        return out
    if isinstance(spec, List):
        if not isinstance(value, list):
            raise Mismatch(value, spec.go_type, struct, path)
        return [_element(item, spec.item, struct, path) for item in value]
    if isinstance(spec, Map):
        if not isinstance(value, dict):
            raise Mismatch(value, spec.go_type, struct, path)
        return {k: _element(v, spec.value, struct, path) for k, v in value.items()}
    if isinstance(spec, Either):
        for kind in spec.kinds:
            try:
                return conform(value, kind, struct=struct, path=path)
            except Mismatch:
                continue
        raise Mismatch(value, spec.go_type, struct, path)
    if _scalar_fits(value, spec):
        return value
    raise Mismatch(value, spec, struct, path)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _element(value: Any, spec: Any, struct: str | None, path: str) -> Any:
    """A list or map element: null there is the element type's zero value, as in Go."""
    conformed = conform(value, spec, struct=struct, path=path)
    return zero(spec) if conformed is None else conformed


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


# ---------------------------------------------------------------------- folding


def fold(value: Any, spec: Any) -> Any:
    """`value` with the field names `spec` knows in Go's casing, everything else as sent.

    Nothing is checked or dropped: a key no table knows, a value of an unexpected kind, a
    null, all stay, so that a value kept for later (a registration persisted to disk)
    loses nothing the caller sent. User maps (`Meta`, `Header`) keep their keys."""
    if isinstance(spec, Struct) and isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = spec.field_name(key)
            if name is None:
                out[key] = item
            else:
                out[name] = fold(item, spec.fields[name])
        return out
    if isinstance(spec, List) and isinstance(value, list):
        return [fold(item, spec.item) for item in value]
    if isinstance(spec, Map) and isinstance(value, dict):
        return {key: fold(item, spec.value) for key, item in value.items()}
    return value
