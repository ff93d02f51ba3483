"""A request body decoded into a config entry's struct table the way Consul's
`structs.DecodeConfigEntry` does it: mapstructure with weak typing and Consul's hooks.

The rules, all visible to clients through what is accepted and the errors' text:

- Field names match exactly, else case-insensitively (Go's `strings.EqualFold`); snake_case
  spellings match only through a field's `alias` tag (`HookTranslateKeys`). An alias is moved
  to the lower-cased field name unless that exact key is already there, so sending both
  `MeshGateway` and `mesh_gateway` leaves a stray `meshgateway` key, refused as unknown.
- Weak typing: numbers and bools become strings ("5", "1"), strings become numbers and bools
  (`strconv` syntax, base prefixes included), a single value becomes a one-element list, an
  empty list an empty map; a one-element list where a non-list is expected is unwrapped
  (`HookWeakDecodeFromSlice`, for HCL's repeated blocks). Duration fields read Go duration
  text; time fields RFC 3339 text.
- JSON numbers are float64 in Go: an integer field truncates 1.9 to 1, and wraps as Go's
  reflect setters do.
- A wrong kind of value is an error per field, collected and sorted as mapstructure's
  `Error` prints them: ``2 error(s) decoding:\\n\\n* 'Port' expected type 'int', ...``.
- Keys no field takes are collected with their path (``Splits[0].Foo``), nested ones first, and
  refused afterwards by Consul's `validateUnusedKeys`, in go-multierror's text; top-level
  Kind/kind/CreateIndex/ModifyIndex are exempt. (Go visits map keys in random order; we keep
  the body's order.)

`decode_struct` returns the struct as a dict of Go field names, zero values left out except
under a pointer; it raises `DecodeFailed` with the whole message after
``Request decoding failed: ``.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from agent.connect import weak
from agent.connect.entry_types import Map, Ptr, Scalar, Slice, Struct, is_zero
from agent.connect.intention_names import go_quote, multierror
from agent.connect.weak import f32, go_kind, go_value_text
from agent.durations import DurationError, parse_nanoseconds

__all__ = ["DecodeFailed", "decode_struct", "f32", "go_kind", "go_value_text"]


class DecodeFailed(ValueError):
    """The text Consul puts after ``Request decoding failed: ``."""


class _Failed(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(errors)
        self.errors = errors


_ABSENT = object()
_EXEMPT = frozenset({"Kind", "kind", "CreateIndex", "ModifyIndex"})


# --------------------------------------------------------------------- time and names


_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _parse_time(text: str) -> str:
    """time.Parse(time.RFC3339, text), kept as the RFC 3339 text Go writes back (offset kept,
    fraction trimmed). The error names the whole input where Go names the failing part."""
    match = _RFC3339.fullmatch(text)
    ok = match is not None
    if match:
        year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
        ok = 1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60
    if not ok:
        raise ValueError(
            f'parsing time {go_quote(text)} as "2006-01-02T15:04:05Z07:00": '
            f'cannot parse {go_quote(text)} as "2006"'
        )
    assert match is not None
    fraction = (match.group(7) or "").rstrip("0")
    fraction = "" if fraction == "." else fraction
    zone = match.group(8)
    if zone in ("+00:00", "-00:00"):
        zone = "Z"
    return text[: match.start(7) if match.group(7) else match.end(6)] + fraction + zone


def _fold_equal(key: str, name: str) -> bool:
    # Field names are ASCII; the only non-ASCII letters EqualFold matches to them.
    return key.replace("\u212a", "k").replace("\u017f", "s").lower() == name.lower()


# --------------------------------------------------------------------- the walk


class _Decoder:
    def __init__(self) -> None:
        self.unused: list[str] = []

    def value(self, name: str, data: Any, t: Any) -> Any:
        if data is None:
            return _ABSENT
        data = self._hooks(name, data, t)
        if data is None:
            return _ABSENT
        if isinstance(t, Ptr):
            return self.value(name, data, t.elem)
        if isinstance(t, Struct):
            if not isinstance(data, dict):
                raise _Failed([f"'{name}' expected a map, got '{go_kind(data)}'"])
            return self.struct(name, data, t)
        if isinstance(t, Map):
            return self.map(name, data, t)
        if isinstance(t, Slice):
            return self.slice(name, data, t)
        return self.scalar(name, data, t)

    def _hooks(self, name: str, data: Any, t: Any) -> Any:
        # HookWeakDecodeFromSlice: a one-element list where Go wants no slice is unwrapped
        # (twice into an interface{}); []byte is a slice to Go.
        is_slice = isinstance(t, Slice) or (isinstance(t, Scalar) and t.kind == "bytes")
        if isinstance(data, list) and not is_slice and len(data) == 1:
            data = data[0]
            if isinstance(t, Scalar) and t.kind == "any":
                data = data[0] if isinstance(data, list) and len(data) == 1 else data
        if isinstance(t, Struct) and isinstance(data, dict) and t.aliases:
            data = _translate(data, t.aliases)
        if isinstance(t, Scalar) and isinstance(data, str):
            try:
                if t.kind == "duration":
                    return parse_nanoseconds(data)
                if t.kind == "time":
                    return _Time(_parse_time(data))
            except (DurationError, ValueError) as err:
                raise _Failed([f"error decoding '{name}': {err}"]) from None
        return data

    def struct(self, name: str, data: dict, t: Struct) -> dict:
        keys = [k for k in data if isinstance(k, str)]
        unused = dict.fromkeys(keys)
        out: dict[str, Any] = {}
        errors: list[str] = []
        for fld in t.fields:
            key = fld.name if fld.name in data else None
            if key is None:
                key = next((k for k in keys if _fold_equal(k, fld.name)), None)
                if key is None:
                    continue
            unused.pop(key, None)
            path = f"{name}.{fld.name}" if name else fld.name
            try:
                value = self.value(path, data[key], fld.type)
            except _Failed as failed:
                errors.extend(failed.errors)
                continue
            if value is _ABSENT or (not isinstance(fld.type, Ptr) and is_zero(value)):
                continue
            out[fld.name] = value
        if errors:
            raise _Failed(errors)
        self.unused.extend(f"{name}.{key}" if name else key for key in unused)
        return out

    def map(self, name: str, data: Any, t: Map) -> dict:
        if isinstance(data, list):
            merged: dict[str, Any] = {}
            for i, item in enumerate(data):
                part = self.value(f"{name}[{i}]", item, t)
                if part is not _ABSENT:
                    merged.update(part)
            return merged
        if not isinstance(data, dict):
            raise _Failed([f"'{name}' expected a map, got '{go_kind(data)}'"])
        out: dict[str, Any] = {}
        errors: list[str] = []
        for key, item in data.items():
            try:
                value = self.value(f"{name}[{key}]", item, t.value)
            except _Failed as failed:
                errors.extend(failed.errors)
                continue
            out[key] = _zero_item(t.value) if value is _ABSENT else value
        if errors:
            raise _Failed(errors)
        return out

    def slice(self, name: str, data: Any, t: Slice) -> list:
        if not isinstance(data, list):
            if isinstance(data, dict) and not data:
                return []
            data = [data]
        out: list[Any] = []
        errors: list[str] = []
        for i, item in enumerate(data):
            try:
                value = self.value(f"{name}[{i}]", item, t.item)
            except _Failed as failed:
                errors.extend(failed.errors)
                continue
            out.append(_zero_item(t.item) if value is _ABSENT else value)
        if errors:
            raise _Failed(errors)
        return out

    def scalar(self, name: str, data: Any, t: Scalar) -> Any:
        try:
            return _SCALARS[t.kind](self, name, data, t)
        except weak.Mismatch:
            raise _Failed([weak.mismatch_text(name, t.go_type, data)]) from None
        except ValueError as err:
            what = {"int": "int", "duration": "int", "uint": "uint"}.get(t.kind, t.kind)
            raise _Failed([weak.parse_failure_text(name, what, err)]) from None

    # scalar kinds ------------------------------------------------------------------------

    def _string(self, name: str, data: Any, t: Scalar) -> str:
        return weak.to_string(data)

    def _bool(self, name: str, data: Any, t: Scalar) -> bool:
        return weak.to_bool(data)

    def _int(self, name: str, data: Any, t: Scalar) -> int:
        return weak.to_int(data, t.bits)

    def _uint(self, name: str, data: Any, t: Scalar) -> int:
        return weak.to_uint(data, t.bits)

    def _float(self, name: str, data: Any, t: Scalar) -> float:
        return weak.to_float(data, t.bits)

    def _time(self, name: str, data: Any, t: Scalar) -> str:
        if isinstance(data, _Time):
            return data.text
        if isinstance(data, dict):
            # time.Time has no exported fields: every key is left over
            self.unused.extend(f"{name}.{key}" for key in data)
            return "0001-01-01T00:00:00Z"
        raise _Failed([f"'{name}' expected a map, got '{go_kind(data)}'"])

    def _bytes(self, name: str, data: Any, t: Scalar) -> str:
        if isinstance(data, str):
            raw = data.encode("utf-8", "surrogatepass")
        else:
            if isinstance(data, dict) and not data:
                return ""
            items = data if isinstance(data, list) else [data]
            octet = Scalar("uint8", "uint", 8)
            raw = bytes(
                self.scalar(f"{name}[{i}]", item, octet) if item is not None else 0
                for i, item in enumerate(items)
            )
        return base64.b64encode(raw).decode("ascii")

    def _any(self, name: str, data: Any, t: Scalar) -> Any:
        return data


class _Time:
    """A time the hook already parsed (kept apart from plain strings)."""

    def __init__(self, text: str) -> None:
        self.text = text


_SCALARS = {
    "string": _Decoder._string,
    "bool": _Decoder._bool,
    "int": _Decoder._int,
    "duration": _Decoder._int,
    "uint": _Decoder._uint,
    "float": _Decoder._float,
    "time": _Decoder._time,
    "bytes": _Decoder._bytes,
    "any": _Decoder._any,
}


def _zero_item(t: Any) -> Any:
    """A null list or map element: the element type's zero value (a nil pointer: an empty
    struct here, since a nil element would only make Consul's Normalize panic)."""
    while isinstance(t, Ptr):
        t = t.elem
    if isinstance(t, Struct):
        return {}
    if isinstance(t, Scalar):
        return {"string": "", "bool": False, "float": 0.0, "bytes": "", "any": None}.get(t.kind, 0)
    return None


def _translate(data: dict, rules: dict[str, str]) -> dict:
    """HookTranslateKeys on a copy: alias keys move to the lower-cased field name."""
    out = dict(data)
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        canonical = rules.get(key.lower())
        if canonical is None:
            continue
        out.pop(key, None)
        if canonical not in out:
            out[canonical] = value
    return out


def _unused_problems(keys: list[str]) -> list[str]:
    problems = []
    for key in keys:
        if key in _EXEMPT:
            continue
        lowered = key.lower()
        if lowered.endswith("namespace"):
            problems.append(
                f"invalid config key {go_quote(key)}, namespaces are a consul enterprise feature"
            )
        elif "jwt" in lowered:
            problems.append(
                f"invalid config key {go_quote(key)}, "
                "api-gateway jwt validation is a consul enterprise feature"
            )
        else:
            problems.append(f"invalid config key {go_quote(key)}")
    return problems


def decode_struct(data: dict, table: Struct) -> dict:
    """`data` (a JSON object) decoded into `table`, or DecodeFailed with Consul's text."""
    decoder = _Decoder()
    try:
        out = decoder.value("", data, table)
    except _Failed as failed:
        points = sorted(f"* {error}" for error in failed.errors)
        raise DecodeFailed(f"{len(points)} error(s) decoding:\n\n" + "\n".join(points)) from None
    text = multierror(_unused_problems(decoder.unused))
    if text is not None:
        raise DecodeFailed(text)
    return out
