"""A stored config entry written as Consul's encoding/json writes its Go struct.

Per field, from the table: value structs are always written (`"MeshGateway": {}`), pointers
and omitempty fields only when set, fields without omitempty always (`null` for a nil slice or
pointer, `""`/`0`/`false` otherwise), map keys sorted, durations as integer nanoseconds except
where a custom MarshalJSON writes Go duration text (those come first, as the wrapper struct
puts them), float32 weights in their shortest decimal form, times as RFC 3339 text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.connect.chain_values import duration_text, nanoseconds, weight_json
from agent.connect.entry_types import Map, Ptr, Scalar, Slice, Struct, is_zero, zero_of

__all__ = ["render_struct"]


def _sorted_any(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _sorted_any(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted_any(item) for item in value]
    return value


def _scalar(value: Any, t: Scalar) -> Any:
    if t.kind == "float":
        return weight_json(float(value or 0))
    if t.kind == "duration":
        return nanoseconds(value)
    if t.kind in ("int", "uint"):
        return int(value or 0)
    if t.kind == "bool":
        return bool(value)
    if t.kind == "any":
        return _sorted_any(value)
    return "" if value is None else value


def _value(value: Any, t: Any) -> Any:
    """A present value of type `t` (a nil pointer or collection element: null)."""
    if isinstance(t, Ptr):
        return None if value is None else _value(value, t.elem)
    if isinstance(t, Struct):
        return render_struct(t, value or {})
    if isinstance(t, Slice):
        return None if value is None else [_value(item, t.item) for item in value]
    if isinstance(t, Map):
        if value is None:
            return None
        return {key: _value(value[key], t.value) for key in sorted(value)}
    return _scalar(value, t)


def render_struct(table: Struct, value: Mapping[str, Any]) -> dict[str, Any]:
    """`value` (a stored struct) as Go's encoding/json writes the struct `table` describes."""
    out: dict[str, Any] = {}
    leading = [f for f in table.fields if f.text]
    for fld in leading + [f for f in table.fields if not f.text]:
        if fld.hidden:
            continue
        t = fld.type
        if fld.text:
            text = duration_text(value.get(fld.name))
            if text:
                out[fld.name] = text
            continue
        if isinstance(t, Struct):
            out[fld.name] = render_struct(t, value.get(fld.name) or {})
            continue
        present = fld.name in value and value[fld.name] is not None
        if not present:
            if fld.omitempty:
                continue
            zero = zero_of(t)
            out[fld.name] = None if zero is None else _value(zero, t)
            continue
        item = value[fld.name]
        if fld.omitempty and not isinstance(t, Ptr) and is_zero(item):
            continue
        out[fld.name] = _value(item, t)
    return out
