"""pydantic validation errors -> positioned diagnostics a user can act on."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, Tag, ValidationError

from gitkv.errors import Diagnostic
from gitkv.spec.model import Spec
from gitkv.spec.model_objects import INTENTION_KEY
from gitkv.spec.source import Source

__all__ = ["pydantic_diagnostics"]

_KV_HINT = (
    'a KV value must be a string (quote numbers and booleans, e.g. "3"), '
    "or one of {value: ...}, {file: ...}, {json: ...}"
)


_DURATIONS = frozenset({"interval", "timeout", "ttl", "deregister_critical_service_after"})


def pydantic_diagnostics(exc: ValidationError, root: Source) -> list[Diagnostic]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        node, matched = root.find(loc)
        if err["type"] == "extra_forbidden" or (loc and loc[-1] == "[key]"):
            pos = node.anchor
        elif node.children is None:
            pos = node.value
        else:
            pos = node.anchor
        out.append(pos.diag(_message(err, loc, matched)))
    return out


def _message(err: Any, loc: tuple[Any, ...], matched: list[Any]) -> str:
    kind, msg = err["type"], str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if kind == "extra_forbidden":
        return f"unknown field {loc[-1]!r}{_did_you_mean(loc)}"
    if kind == "missing":
        return f"missing required field {loc[-1]!r}"
    if loc and loc[-1] == "[key]":
        if kind == "string_pattern_mismatch":
            return f"invalid name {err['input']!r}: {_pattern_hint(err)}"
        if kind == "string_type":
            return f"key {err['input']!r} must be a string (quote it)"
        return msg
    if kind == "string_type" and "kv:string" in loc:
        return _KV_HINT
    if kind == "string_type" and matched and matched[-1] in _DURATIONS:
        return f"{matched[-1]}: expected a duration such as 10s or 1m30s, got {err['input']!r}"
    if kind == "literal_error" and loc == ("version",):
        return f"unsupported spec version {err['input']!r} (this gitkv reads version 1)"
    if kind == "too_short" and loc == ("datacenters",):
        return "at least one datacenter is needed"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        msg = f"expected a mapping, got {_yaml_type(err['input'])}"
    elif kind == "list_type":
        msg = f"expected a list, got {_yaml_type(err['input'])}"
    elif kind == "string_pattern_mismatch":
        msg = f"invalid value {err['input']!r}: {_pattern_hint(err)}"
    label = _label(matched)
    return f"{label}: {msg}" if label else msg


def _label(matched: list[Any]) -> str:
    """`interval`, `checks[0]`, ... — the innermost named place of the error."""
    for i in range(len(matched) - 1, -1, -1):
        part = matched[i]
        if isinstance(part, int):
            continue
        index = "".join(f"[{p}]" for p in matched[i + 1 :])
        return f"{part}{index}"
    return ""


def _pattern_hint(err: Any) -> str:
    pattern = str(err.get("ctx", {}).get("pattern", ""))
    if pattern == INTENTION_KEY:
        return "write an intention as '<source> -> <destination>' (names or *)"
    if pattern.startswith("^[a-z0-9]"):
        return "use lower-case letters, digits, '_', '.' and '-'"
    if pattern.endswith("{1,128}$"):
        return "ACL names use letters, digits, '_' and '-' (at most 128)"
    if pattern.startswith("^[A-Za-z_]"):
        return "an environment variable name (letters, digits and '_')"
    return "use letters, digits, '_', '.' and '-', starting with a letter or digit"


def _yaml_type(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    fields = _fields_at(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model reached by following `loc` from `Spec` (empty if unknown)."""
    current: Any = Spec
    for part in loc:
        model = _model_of(current)
        if model is not None and isinstance(part, str):
            field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
            if field is not None:
                current = field.annotation
                continue
        current = _element_of(current, part)
        if current is None:
            return []
    model = _model_of(current)
    return [f.alias or n for n, f in model.model_fields.items()] if model else []


def _model_of(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    models = [_model_of(a) for a in _args(tp)]
    models = [m for m in models if m is not None]
    return models[0] if len(models) == 1 else None


def _element_of(tp: Any, part: Any) -> Any:
    """The type one `loc` step below `tp`: a list/dict element, or a union member by tag."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _element_of(typing.get_args(tp)[0], part)
    if origin in (list, dict):
        return typing.get_args(tp)[-1]
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            tags = getattr(arg, "__metadata__", ())
            if any(isinstance(m, Tag) and m.tag == part for m in tags):
                return typing.get_args(arg)[0]
        for arg in typing.get_args(tp):
            found = _element_of(arg, part)
            if found is not None:
                return found
    return None


def _args(tp: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return (typing.get_args(tp)[0],)
    if origin in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return ()
