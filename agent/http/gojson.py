"""Request bodies decoded as Consul's Go decoder would decode them, refusals included, as 400s.

The Go types and the walk that checks a value against them are `agent.gojson`'s (config files
use them too); this module is what a request adds. `parse` is the first step for every body:
JSON nested deeper than `MAX_DEPTH` is refused before anything walks it (no handler needs more
than a dozen levels, and recursion on a `[[[[…` body is how an agent answers 500); JSON that
does not parse is refused in json.Decoder's words (`unexpected EOF`, `invalid character 'x'
after object key`, from `agent.gojson_syntax`), and what follows a complete first value is
ignored, as that decoder never reads past it (a body over `WALK_LIMIT` is judged by msgspec
alone, in its words, to keep the walk off the event loop). `conform`
then checks the parsed value against a Go type, refusing it with a 400 whose text starts with
the endpoint's own words (`Request decode failed: `, `Failed to parse body: `). `b64decode`
reads a `[]byte` field. The type vocabulary is re-exported so an area imports one module.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import msgspec

from agent import gojson as go
from agent.gojson import ANY, DURATION, STRING_MAP, STRINGS, Either, List, Map, Struct
from agent.gojson_syntax import first_value
from agent.http.errors import HTTPError

__all__ = [
    "ANY",
    "DURATION",
    "MAX_DEPTH",
    "STRINGS",
    "STRING_MAP",
    "Either",
    "List",
    "Map",
    "Struct",
    "b64decode",
    "conform",
    "depth",
    "parse",
]

MAX_DEPTH = 64
# Bodies up to this size that msgspec refuses are walked byte by byte (gojson_syntax) for
# Go's exact words. The walk is a Python loop on the event loop: a malformed 4 MiB body
# (JSON_BODY_LIMIT) held the loop for over a second, so beyond this msgspec's answer stands.
WALK_LIMIT = 64 * 1024
_TRAILING = re.compile(r"trailing characters \(byte (\d+)\)")


# ---------------------------------------------------------------------- parsing


def parse(raw: bytes, prefix: str = "Request decode failed: ", empty: Any = None) -> Any:
    """The JSON value of a body (`empty` for a blank one), refusing malformed or too-deep
    JSON with a 400 that starts with `prefix`."""
    if not raw.strip():
        return empty
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        value = _as_go_decodes(raw, prefix, exc)
    except RecursionError:
        raise _too_deep(prefix) from None
    # Only a body with more brackets than the bound can exceed it; most never pay the walk.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and depth(value) > MAX_DEPTH:
        raise _too_deep(prefix)
    return value


def _as_go_decodes(raw: bytes, prefix: str, exc: msgspec.DecodeError) -> Any:
    """What Consul's json.Decoder makes of a body msgspec refused: its own syntax error
    (`unexpected EOF`, `invalid character 'x' after object key`, ...), or the first value
    when only what follows it is wrong (the decoder never reads past that value)."""
    if len(raw) > WALK_LIMIT:
        return _as_msgspec_decodes(raw, prefix, exc)
    scan = first_value(raw, MAX_DEPTH)
    if scan.too_deep:
        raise _too_deep(prefix)
    if scan.error is not None:
        raise HTTPError(400, f"{prefix}{scan.error}")
    if scan.end < len(raw):
        try:
            return msgspec.json.decode(raw[: scan.end])
        except msgspec.DecodeError:
            pass
    raise HTTPError(400, f"{prefix}{exc}")


def _as_msgspec_decodes(raw: bytes, prefix: str, exc: msgspec.DecodeError) -> Any:
    """A large refused body, judged by msgspec alone: the first value when only trailing
    bytes are wrong (msgspec names where they start), else msgspec's own message."""
    trailing = _TRAILING.search(str(exc))
    if trailing is not None:  # msgspec counts that byte from 1
        try:
            return msgspec.json.decode(raw[: int(trailing.group(1)) - 1])
        except msgspec.DecodeError:
            pass
    raise HTTPError(400, f"{prefix}{exc}")


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
    """`agent.gojson.conform`, with a refusal as a 400 whose text starts with `prefix`."""
    try:
        return go.conform(value, spec, struct=struct, path=path)
    except go.Mismatch as exc:
        raise HTTPError(400, f"{prefix}{exc}") from None


# ---------------------------------------------------------------------- []byte


def b64decode(value: Any, prefix: str = "Failed to parse body: ") -> bytes:
    """Decode a JSON []byte field the way Go does (std base64, padding required)."""
    if value is None:
        return b""
    if not isinstance(value, str):
        raise HTTPError(400, f"{prefix}{go.Mismatch(value, '[]uint8')}")
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
