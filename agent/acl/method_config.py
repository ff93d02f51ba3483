"""An auth method's `Config` map decoded as Consul decodes it (mapstructure, weakly typed,
unknown keys refused), into plain values by field kind.

Consul's words: `error decoding config: 1 error(s) decoding:\\n\\n* '' has invalid keys: Foo`.
Field names match case-insensitively, as mapstructure matches them. Weak typing as
mapstructure's: a number or bool where a string is wanted becomes its text, a single value
where a list is wanted becomes a one-element list. Durations (Go `time.Duration`) are a number
of nanoseconds or, beyond what Consul accepts, a Go duration string ("60s").
"""

from __future__ import annotations

from typing import Any

from agent.durations import DurationError, parse_nanoseconds

__all__ = ["ConfigError", "decode_config"]

# field kind -> Go type name, for the error texts
_GO_TYPES = {
    "string": "string",
    "strings": "[]string",
    "map": "map[string]string",
    "duration": "time.Duration",
}


class ConfigError(ValueError):
    """A config the method cannot use; `str()` is the text after "Invalid Auth Method: "."""


def _go_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return "interface {}"


def _weak_string(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value).removesuffix(".0") if value.is_integer() else repr(value)
    return None


def _decode(name: str, kind: str, value: Any) -> tuple[Any, str | None]:
    unconvertible = (
        f"'{name}' expected type '{_GO_TYPES[kind]}', got unconvertible type "
        f"'{_go_kind(value)}', value: '{value}'"
    )
    if kind == "string":
        text = _weak_string(value)
        return (text, None) if text is not None else (None, unconvertible)
    if kind == "strings":
        items = value if isinstance(value, list) else [value]
        out = []
        for i, item in enumerate(items):
            text = _weak_string(item)
            if text is None:
                return None, (
                    f"'{name}[{i}]' expected type 'string', got unconvertible type "
                    f"'{_go_kind(item)}', value: '{item}'"
                )
            out.append(text)
        return out, None
    if kind == "map":
        if not isinstance(value, dict):
            return None, unconvertible
        mapped = {}
        for key, item in value.items():
            text = _weak_string(item)
            if text is None:
                return None, (
                    f"'{name}[{key}]' expected type 'string', got unconvertible type "
                    f"'{_go_kind(item)}', value: '{item}'"
                )
            mapped[str(key)] = text
        return mapped, None
    # duration
    if isinstance(value, bool):
        return (1 if value else 0), None
    if isinstance(value, int | float):
        return int(value), None
    if isinstance(value, str):
        try:
            return parse_nanoseconds(value), None
        except DurationError:
            try:
                return int(value, 0), None
            except ValueError:
                return None, (
                    f"cannot parse '{name}' as int: strconv.ParseInt: parsing "
                    f'"{value}": invalid syntax'
                )
    return None, unconvertible


def decode_config(raw: Any, fields: dict[str, str]) -> dict[str, Any]:
    """`raw` (the method's Config) decoded into `fields` (Go name -> kind: "string",
    "strings", "map" or "duration"); absent fields are left out. Raises ConfigError."""
    raw = raw or {}  # the body decoder has made it a map (or left it out)
    by_lower = {name.lower(): name for name in fields}
    out: dict[str, Any] = {}
    errors: list[str] = []
    unknown: list[str] = []
    for key, value in raw.items():
        name = by_lower.get(str(key).lower())
        if name is None:
            unknown.append(str(key))
            continue
        if value is None:
            continue
        decoded, error = _decode(name, fields[name], value)
        if error is not None:
            errors.append(error)
        else:
            out[name] = decoded
    if unknown:
        errors.append(f"'' has invalid keys: {', '.join(sorted(unknown))}")
    if errors:
        listed = "\n".join(f"* {e}" for e in errors)
        raise ConfigError(f"error decoding config: {len(errors)} error(s) decoding:\n\n{listed}")
    return out
