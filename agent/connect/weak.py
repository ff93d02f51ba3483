"""mapstructure's weak scalar conversion and the Go texts its errors print, shared by the
config-entry decoder (`entry_decode`) and the CA provider settings (`ca_config`).

Both decode JSON through Consul's mapstructure with WeaklyTypedInput, so a value that does
not fit must fail with the same words in both places: `strconv`'s syntax and range messages,
Go's kind and type names, fmt's %v of the value. The converters raise `Mismatch` when no weak
rule applies and ValueError (strconv's text) when a string does not parse; `mismatch_text` and
`parse_failure_text` wrap those as mapstructure's per-field error lines.
"""

from __future__ import annotations

import math
import re
import struct as _struct
from decimal import Decimal
from typing import Any

from agent.connect.intention_names import go_quote

__all__ = [
    "Mismatch",
    "f32",
    "float_to_int",
    "format_f",
    "go_kind",
    "go_type_name",
    "go_value_text",
    "mismatch_text",
    "parse_bool",
    "parse_failure_text",
    "parse_float",
    "parse_int",
    "parse_uint",
    "to_bool",
    "to_float",
    "to_int",
    "to_string",
    "to_uint",
    "wrap",
]


class Mismatch(Exception):
    """No weak rule turns this kind of value into the field's type."""


# ------------------------------------------------------------ Go's names for values


def go_kind(value: Any) -> str:
    """reflect.Kind of a JSON value as Go holds it."""
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "float64"


def go_type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return go_kind(value)


def _digits(x: float) -> tuple[str, int, bool]:
    """Shortest decimal digits of x and the decimal point's position (Go's `decimal`)."""
    sign, digits, exp = Decimal(repr(abs(x))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    point = len(digits) + int(exp)
    return text, point, math.copysign(1.0, x) < 0


def format_f(x: float) -> str:
    """strconv.FormatFloat(x, 'f', -1, 64)."""
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    text, point, negative = _digits(x)
    if point <= 0:
        body = "0." + "0" * -point + text
    elif point >= len(text):
        body = text + "0" * (point - len(text))
    else:
        body = text[:point] + "." + text[point:]
    return ("-" if negative else "") + body


def _format_v(x: float) -> str:
    """fmt's %v of a float64 (%g with the shortest digits, exponent from 1e+06 on)."""
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    text, point, negative = _digits(x)
    exp = point - 1
    sign = "-" if negative else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{sign}{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    return format_f(x)


def go_value_text(value: Any) -> str:
    """fmt's %v of a JSON value as Go decoded it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _format_v(float(value))
    if isinstance(value, list):
        return "[" + " ".join(go_value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{k}:{go_value_text(value[k])}" for k in sorted(value))
        return "map[" + " ".join(pairs) + "]"
    return str(value)


# --------------------------------------------------------------------- strconv


def underscore_ok(text: str) -> bool:
    saw, i = "^", 0
    if text[:1] in ("+", "-"):
        text = text[1:]
    hexa = False
    if len(text) >= 2 and text[0] == "0" and text[1].lower() in "box":
        i, saw, hexa = 2, "0", text[1].lower() == "x"
    while i < len(text):
        char = text[i]
        if char.isascii() and (char.isdigit() or (hexa and char.lower() in "abcdef")):
            saw = "0"
        elif char == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
        i += 1
    return saw != "_"


def parse_uint(text: str, bits: int, func: str, original: str) -> int:
    """strconv.ParseUint(text, 0, bits); errors name `func` and quote `original`."""
    syntax = f"strconv.{func}: parsing {go_quote(original)}: invalid syntax"
    if not text:
        raise ValueError(syntax)
    base, body = 10, text
    if text[0] == "0" and len(text) >= 3 and text[1].lower() in "box":
        base, body = {"b": 2, "o": 8, "x": 16}[text[1].lower()], text[2:]
    elif text[0] == "0":
        base, body = 8, text[1:]
    if "_" in text and not underscore_ok(text):
        raise ValueError(syntax)
    body = body.replace("_", "")
    if body == "" and base == 8:
        return 0
    allowed = "0123456789abcdef"[:base]
    if not body or any(c.lower() not in allowed or not c.isascii() for c in body):
        raise ValueError(syntax)
    value = int(body, base)
    if value >= 1 << bits:
        raise ValueError(f"strconv.{func}: parsing {go_quote(original)}: value out of range")
    return value


def parse_int(text: str, bits: int) -> int:
    negative = text[:1] == "-"
    body = text[1:] if text[:1] in ("+", "-") else text
    magnitude = parse_uint(body, 64, "ParseInt", text)
    limit = 1 << (bits - 1)
    if (not negative and magnitude >= limit) or (negative and magnitude > limit):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return -magnitude if negative else magnitude


_FLOAT = re.compile(
    r"[+-]?(?:(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][+-]?\d+)?|\d[\d_]*\.(?:[eE][+-]?\d+)?"
    r"|inf|infinity|nan)",
    re.IGNORECASE,
)


def f32(value: float) -> float:
    try:
        return _struct.unpack("<f", _struct.pack("<f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def parse_float(text: str, bits: int) -> float:
    if not _FLOAT.fullmatch(text) or ("_" in text and not underscore_ok(text)):
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: invalid syntax")
    value = float(text.replace("_", ""))
    narrowed = f32(value) if bits == 32 else value
    if math.isinf(narrowed) and not math.isinf(value):
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: value out of range")
    return narrowed


def parse_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"strconv.ParseBool: parsing {go_quote(text)}: invalid syntax")


def wrap(value: int, bits: int, signed: bool) -> int:
    """What reflect's SetInt/SetUint leave in a field of that width."""
    value &= (1 << bits) - 1
    if signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def float_to_int(value: float) -> int:
    # Go's int64(f) on amd64: out of range (or NaN) gives the minimum int64.
    if math.isnan(value) or not -(2**63) <= value < 2**63:
        return -(2**63)
    return int(value)


# ------------------------------------------------------------------ weak conversion


def to_string(data: Any) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, bool):
        return "1" if data else "0"
    if isinstance(data, int | float):
        return format_f(float(data))
    raise Mismatch


def to_bool(data: Any) -> bool:
    if isinstance(data, bool):
        return data
    if isinstance(data, int | float):
        return float(data) != 0
    if isinstance(data, str):
        return False if data == "" else parse_bool(data)
    raise Mismatch


def to_int(data: Any, bits: int) -> int:
    if isinstance(data, bool):
        return int(data)
    if isinstance(data, int | float):
        return wrap(float_to_int(float(data)), bits, signed=True)
    if isinstance(data, str):
        return parse_int(data or "0", bits)
    raise Mismatch


def to_uint(data: Any, bits: int) -> int:
    if isinstance(data, bool):
        return int(data)
    if isinstance(data, int | float):
        return wrap(float_to_int(float(data)), bits, signed=False)
    if isinstance(data, str):
        text = data or "0"
        return parse_uint(text, bits, "ParseUint", text)
    raise Mismatch


def to_float(data: Any, bits: int) -> float:
    if isinstance(data, bool):
        return 1.0 if data else 0.0
    if isinstance(data, int | float):
        return f32(float(data)) if bits == 32 else float(data)
    if isinstance(data, str):
        return parse_float(data, bits)
    raise Mismatch


def mismatch_text(name: str, go_type: str, data: Any) -> str:
    return (
        f"'{name}' expected type '{go_type}', got unconvertible type "
        f"'{go_type_name(data)}', value: '{go_value_text(data)}'"
    )


def parse_failure_text(name: str, what: str, err: ValueError) -> str:
    """`what` is mapstructure's word for the target: int, uint, float or bool."""
    return f"cannot parse '{name}' as {what}: {err}"
