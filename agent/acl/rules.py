"""ACL policy rules: the HCL subset Consul accepts, and the equivalent JSON, parsed to values.

Why a small parser of our own: python-hcl2 reads HCL2, whose expression language accepts
`policy = read` (a bare identifier) and hands strings back with their quotes, so it neither
rejects what Consul's HCL1 parser rejects nor reports positions in HCL1's terms. Rules use a
tiny part of HCL1 (attributes, blocks with one string label, strings, comments, optional
commas), which this module reads exactly, reporting errors as `At <line>:<col>: <what>`.

    rules = parse_rules('key_prefix "" { policy = "read" }')
    rules.named[("key", "", True)] == "read"
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LEVELS",
    "NAMED",
    "SINGLE",
    "ParsedRules",
    "RuleError",
    "parse_rules",
]

NAMED = ("agent", "event", "identity", "key", "node", "query", "service", "session")
SINGLE = ("acl", "keyring", "operator", "mesh", "peering")
LEVELS = ("deny", "read", "list", "write")
# Attributes a block may carry besides `policy`, ignored by enforcement here.
_EXTRA_BLOCK_KEYS = {"service": ("intentions",), "identity": ("intentions",)}


class RuleError(ValueError):
    """Rules that cannot be parsed or name unknown things; `line`/`col` are 1-based (0: none)."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        self.line, self.col, self.detail = line, col, message
        super().__init__(f"At {line}:{col}: {message}" if line else message)


@dataclass(frozen=True)
class ParsedRules:
    """`named[(resource, name, is_prefix)] = level`; `single[resource] = level`."""

    named: dict[tuple[str, str, bool], str] = field(default_factory=dict)
    single: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------ HCL reader

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_\-\.]*)
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
  | (?P<punct>[={}\[\],])
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # string | ident | number | punct | eof
    text: str
    line: int
    col: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        col = pos - line_start + 1
        if m is None:
            if text[pos] == '"':
                raise RuleError("literal not terminated", line, col)
            if text.startswith("/*", pos):
                raise RuleError("comment not terminated", line, col)
            raise RuleError(f"illegal char {text[pos]!r}", line, col)
        kind = m.lastgroup or ""
        chunk = m.group()
        if kind not in ("ws", "comment"):
            out.append(_Tok(kind, chunk, line, col))
        newlines = chunk.count("\n")
        if newlines:
            line += newlines
            line_start = pos + chunk.rfind("\n") + 1
        pos = m.end()
    out.append(_Tok("eof", "", line, pos - line_start + 1))
    return out


def _unquote(tok: _Tok) -> str:
    try:
        value = json.loads(tok.text)
    except ValueError:
        raise RuleError("invalid string escape", tok.line, tok.col) from None
    return str(value)


class _Parser:
    """Recursive descent over: body := (ident ( '=' value | string* '{' body '}' ))*."""

    # Rules nest three levels at most; a bound keeps `a { a { a { ...` from exhausting the
    # interpreter's stack (which would surface as a 500, not a refusal).
    MAX_NESTING = 32

    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.nesting = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> _Tok:
        tok = self.take()
        if tok.text != text or tok.kind not in ("punct",):
            raise RuleError(f"expected {text!r}, got {_show(tok)}", tok.line, tok.col)
        return tok

    def body(self, closing: bool) -> list[tuple[_Tok, list[str], Any]]:
        """Items as (key token, labels, value); a block's value is its own item list."""
        self.nesting += 1
        try:
            return self._items(closing)
        finally:
            self.nesting -= 1

    def _items(self, closing: bool) -> list[tuple[_Tok, list[str], Any]]:
        if self.nesting > self.MAX_NESTING:
            tok = self.peek()
            raise RuleError(f"blocks nested deeper than {self.MAX_NESTING}", tok.line, tok.col)
        items: list[tuple[_Tok, list[str], Any]] = []
        while True:
            tok = self.peek()
            if tok.kind == "eof":
                if closing:
                    raise RuleError("expected '}', got end of input", tok.line, tok.col)
                return items
            if tok.kind == "punct" and tok.text == "}" and closing:
                self.take()
                return items
            if tok.kind == "punct" and tok.text == ",":
                self.take()
                continue
            if tok.kind not in ("ident", "string"):
                raise RuleError(f"expected a name, got {_show(tok)}", tok.line, tok.col)
            key = self.take()
            labels: list[str] = []
            while self.peek().kind == "string":
                labels.append(_unquote(self.take()))
            nxt = self.peek()
            if nxt.kind == "punct" and nxt.text == "=" and not labels:
                self.take()
                items.append((key, [], self.value()))
            elif nxt.kind == "punct" and nxt.text == "{":
                self.take()
                items.append((key, labels, self.body(closing=True)))
            else:
                raise RuleError(
                    f"expected '=' or '{{' after {key.text}, got {_show(nxt)}", nxt.line, nxt.col
                )

    def value(self) -> Any:
        tok = self.take()
        if tok.kind == "string":
            return (tok, _unquote(tok))
        if tok.kind == "number":
            return (tok, tok.text)
        if tok.kind == "ident" and tok.text in ("true", "false"):
            return (tok, tok.text)
        if tok.kind == "punct" and tok.text == "{":
            return self.body(closing=True)
        if tok.kind == "punct" and tok.text == "[":
            values = []
            while True:
                nxt = self.peek()
                if nxt.kind == "punct" and nxt.text == "]":
                    self.take()
                    return (tok, values)
                if nxt.kind == "punct" and nxt.text == ",":
                    self.take()
                    continue
                values.append(self.value())
        raise RuleError(f"expected a value, got {_show(tok)}", tok.line, tok.col)


def _show(tok: _Tok) -> str:
    return "end of input" if tok.kind == "eof" else repr(tok.text)


# ------------------------------------------------------------------------------ semantics


def _level(resource: str, value: Any, where: _Tok) -> str:
    tok, text = value if isinstance(value, tuple) else (where, None)
    if not isinstance(text, str):
        raise RuleError(f"{resource}: policy must be a string", tok.line, tok.col)
    allowed = LEVELS if resource == "key" else ("deny", "read", "write")
    if text not in allowed:
        raise RuleError(f'Invalid {resource} policy: "{text}"', tok.line, tok.col)
    return text


def _from_hcl(items: list[tuple[_Tok, list[str], Any]]) -> ParsedRules:
    out = ParsedRules()
    for key, labels, value in items:
        name = key.text if key.kind == "ident" else _unquote(key)
        if name in SINGLE:
            if labels or not isinstance(value, tuple):
                raise RuleError(f"{name} must be assigned a string", key.line, key.col)
            out.single[name] = _level(name, value, key)
            continue
        base = name.removesuffix("_prefix")
        if base not in NAMED:
            raise RuleError(f"unknown ACL resource {name!r}", key.line, key.col)
        prefix = name.endswith("_prefix")
        # HCL1 also allows `key = { "a/" = { policy = "read" } }`: one entry per inner key.
        if not labels and isinstance(value, list):
            entries = [(k.text if k.kind == "ident" else _unquote(k), v, k) for k, lab, v in value]
        elif len(labels) == 1 and isinstance(value, list):
            entries = [(labels[0], value, key)]
        else:
            raise RuleError(f"{name} needs one label and a block", key.line, key.col)
        for label, block, at in entries:
            if not isinstance(block, list):
                raise RuleError(f"{name} {label!r} must be a block", at.line, at.col)
            level = None
            for attr, attr_labels, attr_value in block:
                attr_name = attr.text if attr.kind == "ident" else _unquote(attr)
                if attr_name == "policy" and not attr_labels:
                    level = _level(base, attr_value, attr)
                elif attr_name in _EXTRA_BLOCK_KEYS.get(base, ()):
                    _level(base, attr_value, attr)
                else:
                    raise RuleError(
                        f"unknown attribute {attr_name!r} in {name}", attr.line, attr.col
                    )
            if level is None:
                raise RuleError(f"{name} {label!r} has no policy", at.line, at.col)
            out.named[(base, label, prefix)] = level
    return out


def _from_json(doc: Any) -> ParsedRules:
    if not isinstance(doc, dict):
        raise RuleError("JSON rules must be an object")
    out = ParsedRules()
    for name, value in doc.items():
        if name in SINGLE:
            if not isinstance(value, str):
                raise RuleError(f"{name} must be a string")
            out.single[name] = _json_level(name, value)
            continue
        base = name.removesuffix("_prefix")
        if base not in NAMED:
            raise RuleError(f"unknown ACL resource {name!r}")
        # HCL-to-JSON of repeated blocks yields a list of one-key objects: accept both.
        blocks = value if isinstance(value, list) else [value]
        for block in blocks:
            if not isinstance(block, dict):
                raise RuleError(f"{name} must be an object of name -> {{policy}}")
            for label, attrs in block.items():
                if not isinstance(attrs, dict) or "policy" not in attrs:
                    raise RuleError(f"{name} {label!r} has no policy")
                for attr in attrs:
                    if attr != "policy" and attr not in _EXTRA_BLOCK_KEYS.get(base, ()):
                        raise RuleError(f"unknown attribute {attr!r} in {name}")
                out.named[(base, label, name.endswith("_prefix"))] = _json_level(
                    base, attrs["policy"]
                )
    return out


def _json_level(resource: str, value: Any) -> str:
    allowed = LEVELS if resource == "key" else ("deny", "read", "write")
    if value not in allowed:
        raise RuleError(f'Invalid {resource} policy: "{value}"')
    return str(value)


def parse_rules(text: str) -> ParsedRules:
    """Rules text (HCL, or JSON when it starts with `{`) -> ParsedRules; RuleError if invalid."""
    if not text.strip():
        return ParsedRules()
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RuleError(exc.msg, exc.lineno, exc.colno) from None
        except RecursionError:
            raise RuleError("JSON rules nested too deeply") from None
        return _from_json(doc)
    return _from_hcl(_Parser(text).body(closing=False))
