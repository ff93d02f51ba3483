"""Sources made into one tree, in precedence order.

Each source is first checked against the key catalogue (`agent.config_keys`): unknown keys and
wrong kinds are refused, keys are matched case-insensitively and HCL's one-element block lists
unwrapped. Deprecated spellings are then folded into their new keys, and the sources merged:
scalars override, lists append, maps merge key by key. `View` is the result; it remembers
which source set each value, for error messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from agent import config_keys as keys
from agent.config_errors import ConfigError
from agent.config_keys import ListOf, MapOf
from agent.config_sources import Source, where
from agent.durations import parse_duration

__all__ = [
    "Shaper",
    "View",
    "apply_renames",
    "leaf_paths",
    "merge",
]


# --- shape check against the catalogue


_LIST_KINDS = {keys.STRINGS, keys.OBJECTS, keys.SERVICE, keys.CHECK}
# Inside service/check definitions these keys hold lists of objects; every
# other single-element list of one object is an HCL block and is unwrapped.
_DEFINITION_LISTS = {"checks", "upstreams", "paths", "services"}


class Shaper:
    """Check one source against the catalogue and canonicalise its keys."""

    def __init__(self, src: Source) -> None:
        self.src = src

    def fail(self, dotted: str, message: str) -> ConfigError:
        return ConfigError(f"{where(self.src, dotted)}: {message}")

    def block(self, schema: dict[str, keys.Kind], value: Any, path: str) -> dict[str, Any]:
        value = self._one_object(value, path)
        out: dict[str, Any] = {}
        lowered = {k.lower(): k for k in schema}
        for raw_key, item in value.items():
            key = raw_key if raw_key in schema else lowered.get(str(raw_key).lower())
            dotted = f"{path}.{raw_key}" if path else str(raw_key)
            if key is None:
                raise ConfigError(f"{self.src.label}: invalid config key {dotted}")
            if item is None:
                continue  # JSON null: as if the key were absent (Consul)
            dotted = f"{path}.{key}" if path else key
            out[key] = self.value(schema[key], item, dotted)
        return out

    def value(self, kind: keys.Kind, value: Any, path: str) -> Any:
        if isinstance(kind, dict):
            return self.block(kind, value, path)
        if isinstance(kind, ListOf):
            items = value if isinstance(value, list) else [value]
            return [self.block(kind.item, x, f"{path}[{i}]") for i, x in enumerate(items)]
        if isinstance(kind, MapOf):
            named = self._one_object(value, path)
            return {str(k): self.block(kind.item, v, f"{path}.{k}") for k, v in named.items()}
        if kind not in _LIST_KINDS and isinstance(value, list) and len(value) == 1:
            value = value[0]  # Consul's weak decode: [x] -> x (HCL blocks)
        return self.leaf(kind, value, path)

    def _one_object(self, value: Any, path: str) -> dict[str, Any]:
        if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            merged: dict[str, Any] = {}
            for part in value:
                merged.update(part)
            value = merged
        if not isinstance(value, dict):
            raise self.fail(path, f"expected object, got {_type_name(value)}")
        return value

    def leaf(self, kind: str, value: Any, path: str) -> Any:
        checks: dict[str, Callable[[Any], bool]] = {
            keys.STR: lambda v: isinstance(v, str),
            keys.BOOL: lambda v: isinstance(v, bool),
            keys.INT: lambda v: (
                (isinstance(v, int) and not isinstance(v, bool))
                or (isinstance(v, float) and v.is_integer())
            ),
            keys.FLOAT: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            keys.DURATION: lambda v: isinstance(v, str),
            keys.STRINGS: lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
            keys.STRMAP: lambda v: (
                isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
            ),
            keys.ANY: lambda v: True,
        }
        if kind == keys.STRMAP:
            value = self._one_object(value, path) if isinstance(value, list) else value
        if kind in (keys.OBJECTS, keys.SERVICE, keys.CHECK):
            return self.definitions(value, path)
        if kind == keys.ANY and isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not checks[kind](value):
            raise self.fail(path, f"expected {kind}, got {_type_name(value)}")
        if kind == keys.INT:
            return int(value)
        if kind == keys.DURATION:
            try:
                parse_duration(value)
            except ValueError as exc:
                raise self.fail(path, str(exc)) from None
        return value

    def definitions(self, value: Any, path: str) -> list[dict[str, Any]]:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(x, dict) for x in items):
            raise self.fail(path, "expected an object or a list of objects")
        return [_unwrap_blocks(x) for x in items]


def _unwrap_blocks(value: Any, key: str = "") -> Any:
    """Turn HCL's [ {block} ] into {block} inside service/check definitions."""
    if isinstance(value, dict):
        return {k: _unwrap_blocks(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        items = [_unwrap_blocks(v) for v in value]
        plural = key.lower().replace("_", "") in _DEFINITION_LISTS
        if len(items) == 1 and isinstance(items[0], dict) and not plural:
            return items[0]
        return items
    return value


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --- deprecated spellings


def _get(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _pop(data: dict[str, Any], dotted: str) -> Any:
    parts = dotted.split(".")
    node: Any = data
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return None
    return node.pop(parts[-1], None)


def apply_renames(data: dict[str, Any]) -> list[str]:
    warnings: list[str] = []
    for old, new in keys.RENAMED.items():
        value = _pop(data, old)
        if value is None:
            continue
        if _get(data, new) is None:
            _set(data, new, value)
        warnings.append(f"The '{old}' field is deprecated. Use the '{new}' field instead.")
        if old == "acl_replication_token":
            _set(data, "acl.enable_token_replication", True)
        if old == "acl_datacenter":
            _set(data, "acl.enabled", True)
    for old in sorted(keys.DROPPED):
        if _pop(data, old) is not None:
            warnings.append(f"config key {old!r} is deprecated and should be removed")
    # a single service/check block joins the list, as Consul does
    for single, plural in (("service", "services"), ("check", "checks")):
        if single in data:
            data[plural] = data.get(plural, []) + data.pop(single)
    return warnings


def leaf_paths(data: dict[str, Any], schema: keys.Kind, prefix: str = "") -> Iterator[str]:
    """Dotted paths of everything a source sets (blocks are descended)."""
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        kind = schema.get(key) if isinstance(schema, dict) else None
        if isinstance(kind, dict) and isinstance(value, dict):
            yield from leaf_paths(value, kind, dotted + ".")
        else:
            yield dotted


# --- merging


def merge(
    dst: dict[str, Any],
    src: dict[str, Any],
    schema: dict[str, keys.Kind],
    origin: dict[str, Source],
    source: Source,
    prefix: str = "",
) -> None:
    for key, value in src.items():
        dotted = prefix + key
        kind = schema.get(key)
        if isinstance(kind, dict):
            merge(dst.setdefault(key, {}), value, kind, origin, source, dotted + ".")
            continue
        if isinstance(kind, ListOf) or (isinstance(kind, str) and kind in _LIST_KINDS):
            dst[key] = list(dst.get(key, [])) + list(value)
        elif (isinstance(kind, MapOf) or kind in (keys.STRMAP, keys.ANY)) and isinstance(
            value, dict
        ):
            base = dst.get(key)
            dst[key] = {**(base if isinstance(base, dict) else {}), **value}
        else:
            dst[key] = value
        origin[dotted] = source


class View:
    """Merged values plus where each came from, for error messages."""

    def __init__(self, merged: dict[str, Any], origin: dict[str, Source]) -> None:
        self.merged = merged
        self.origin = origin

    def get(self, dotted: str, default: Any = None) -> Any:
        value = _get(self.merged, dotted)
        return default if value is None else value

    def is_set(self, dotted: str) -> bool:
        src = self.origin.get(dotted)
        return src is not None and src.user

    def where(self, dotted: str) -> str:
        src = self.origin.get(dotted)
        return dotted if src is None else where(src, dotted)

    def fail(self, dotted: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where(dotted)}: {message}")

    def seconds(self, dotted: str) -> float:
        value = self.get(dotted)
        return 0.0 if value is None else parse_duration(value)
