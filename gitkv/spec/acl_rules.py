"""Syntax and vocabulary check of ACL policy rules, in HCL or JSON.

Consul parses rules when a policy is written; checking them here turns a failed apply into a
validate error with a position. The HCL reader is deliberately small: it knows the subset rules
use (attributes, labelled blocks, strings, lists, comments) and is tolerant of HCL1 spellings
such as `key = { "app/" = { policy = "read" } }`.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["RuleProblem", "check_rules"]

_NAMED = ("agent", "event", "identity", "key", "node", "query", "service", "session")
NAMED_RESOURCES = frozenset(_NAMED + tuple(f"{r}_prefix" for r in _NAMED))
SINGLE_RESOURCES = frozenset({"acl", "keyring", "operator", "mesh", "peering"})
ENTERPRISE = frozenset({"namespace", "namespace_prefix", "partition", "partition_prefix"})
LEVELS = ("read", "write", "deny")


@dataclass(frozen=True)
class RuleProblem:
    """A problem at a 1-based line/col of the rules text."""

    line: int
    col: int
    message: str


class _SyntaxProblem(Exception):
    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.problem = RuleProblem(line, col, message)


# --- HCL subset reader ----------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_\-]*)
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
  | (?P<punct>[={}\[\],:])
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
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
            char = text[pos]
            what = "unterminated string" if char == '"' else f"unexpected character {char!r}"
            raise _SyntaxProblem(line, col, what)
        kind = m.lastgroup or ""
        if kind not in ("ws", "comment"):
            out.append(_Tok(kind, m.group(), line, col))
        newlines = m.group().count("\n")
        if newlines:
            line += newlines
            line_start = m.start() + m.group().rindex("\n") + 1
        pos = m.end()
    out.append(_Tok("eof", "", line, pos - line_start + 1))
    return out


@dataclass
class _Item:
    """`name [labels...] = value` or `name [labels...] { body }`, with its position."""

    name: str
    labels: list[str]
    value: Any  # str | float | bool | list | list[_Item] (a body)
    line: int
    col: int
    value_line: int
    value_col: int


class _Parser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self.toks = tokens
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> _Tok:
        tok = self.take()
        if tok.text != text or tok.kind not in ("punct",):
            raise _SyntaxProblem(tok.line, tok.col, f"expected {text!r}, found {_show(tok)}")
        return tok

    def body(self, closing: str | None) -> list[_Item]:
        items: list[_Item] = []
        while True:
            tok = self.peek()
            if tok.kind == "eof":
                if closing is None:
                    return items
                raise _SyntaxProblem(tok.line, tok.col, f"missing {closing!r}")
            if closing is not None and tok.text == closing and tok.kind == "punct":
                self.take()
                return items
            if tok.text == "," and tok.kind == "punct":
                self.take()
                continue
            items.append(self.item())

    def item(self) -> _Item:
        head = self.take()
        if head.kind not in ("ident", "string"):
            raise _SyntaxProblem(head.line, head.col, f"expected a name, found {_show(head)}")
        labels: list[str] = []
        while self.peek().kind == "string":
            labels.append(_unquote(self.take()))
        nxt = self.take()
        if nxt.kind == "punct" and nxt.text in ("=", ":"):
            start = self.peek()
            return _Item(
                _name(head), labels, self.value(), head.line, head.col, start.line, start.col
            )
        if nxt.kind == "punct" and nxt.text == "{":
            return _Item(
                _name(head), labels, self.body("}"), head.line, head.col, nxt.line, nxt.col
            )
        raise _SyntaxProblem(nxt.line, nxt.col, f"expected '=' or '{{', found {_show(nxt)}")

    def value(self) -> Any:
        tok = self.take()
        if tok.kind == "string":
            return _unquote(tok)
        if tok.kind == "number":
            return float(tok.text)
        if tok.kind == "ident" and tok.text in ("true", "false"):
            return tok.text == "true"
        if tok.kind == "punct" and tok.text == "{":
            return self.body("}")
        if tok.kind == "punct" and tok.text == "[":
            values: list[Any] = []
            while not (self.peek().kind == "punct" and self.peek().text == "]"):
                if self.peek().kind == "eof":
                    end = self.peek()
                    raise _SyntaxProblem(end.line, end.col, "unterminated list, expected ']'")
                values.append(self.value())
                if self.peek().kind == "punct" and self.peek().text == ",":
                    self.take()
            self.take()
            return values
        raise _SyntaxProblem(tok.line, tok.col, f"expected a value, found {_show(tok)}")


def _show(tok: _Tok) -> str:
    return "end of rules" if tok.kind == "eof" else repr(tok.text)


def _unquote(tok: _Tok) -> str:
    try:
        return str(json.loads(tok.text))
    except ValueError:
        return tok.text[1:-1]


def _name(tok: _Tok) -> str:
    return _unquote(tok) if tok.kind == "string" else tok.text


# --- JSON form, turned into the same items ------------------------------------------------


def _from_json(value: Any) -> list[_Item]:
    if not isinstance(value, dict):
        raise _SyntaxProblem(1, 1, "JSON rules must be an object")
    return [_Item(k, [], _json_value(v), 1, 1, 1, 1) for k, v in value.items()]


def _json_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _from_json(value)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


# --- vocabulary -----------------------------------------------------------------------------


def _check_item(item: _Item, out: list[RuleProblem]) -> None:
    name = item.name
    if name in ENTERPRISE:
        out.append(RuleProblem(item.line, item.col, f"{name!r} rules need Consul Enterprise"))
    elif name in SINGLE_RESOURCES:
        if item.labels or isinstance(item.value, list):
            out.append(RuleProblem(item.line, item.col, f'{name} takes a level: {name} = "read"'))
        else:
            _check_level(name, "policy", item.value, item.value_line, item.value_col, out)
    elif name in NAMED_RESOURCES:
        for label, body, line, col in _named_rules(item, out):
            _check_body(name, label, body, line, col, out)
    else:
        known = sorted(NAMED_RESOURCES | SINGLE_RESOURCES)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        out.append(RuleProblem(item.line, item.col, f"unknown ACL resource {name!r}{hint}"))


def _named_rules(item: _Item, out: list[RuleProblem]) -> list[tuple[str, list[_Item], int, int]]:
    """The `(label, body)` pairs of a named resource, in block or object form."""
    body = item.value
    if len(item.labels) == 1 and isinstance(body, list) and _is_body(body):
        return [(item.labels[0], body, item.line, item.col)]
    objects = isinstance(body, list) and all(
        isinstance(v, _Item) and not v.labels and isinstance(v.value, list) and _is_body(v.value)
        for v in body
    )
    if not item.labels and objects:
        # HCL1/JSON object form: key_prefix = { "app/" = { policy = "read" } }
        return [(inner.name, inner.value, inner.line, inner.col) for inner in body]
    out.append(
        RuleProblem(item.line, item.col, f'expected {item.name} "<name>" {{ policy = "read" }}')
    )
    return []


def _is_body(value: list[Any]) -> bool:
    return all(isinstance(v, _Item) for v in value)


def _check_body(
    resource: str, label: str, body: list[_Item], line: int, col: int, out: list[RuleProblem]
) -> None:
    allowed = {"policy"} | ({"intentions"} if resource.startswith("service") else set())
    seen: set[str] = set()
    for attr in body:
        if attr.name not in allowed or attr.labels:
            out.append(
                RuleProblem(
                    attr.line, attr.col, f"unknown attribute {attr.name!r} in {resource} rule"
                )
            )
            continue
        seen.add(attr.name)
        _check_level(resource, attr.name, attr.value, attr.value_line, attr.value_col, out)
    if "policy" not in seen and "intentions" not in seen:
        out.append(
            RuleProblem(line, col, f'{resource} "{label}" needs a policy, e.g. policy = "read"')
        )


def _check_level(
    resource: str, attr: str, value: Any, line: int, col: int, out: list[RuleProblem]
) -> None:
    levels = LEVELS + (("list",) if resource.startswith("key") and attr == "policy" else ())
    if value not in levels:
        choices = ", ".join(levels)
        out.append(
            RuleProblem(line, col, f"invalid {attr} {value!r} for {resource} (one of {choices})")
        )


def check_rules(text: str) -> list[RuleProblem]:
    """Every problem found in `text` (HCL or JSON rules); empty when the rules are valid."""
    try:
        if text.lstrip().startswith("{"):
            try:
                items = _from_json(json.loads(text))
            except json.JSONDecodeError as exc:
                return [RuleProblem(exc.lineno, exc.colno, f"invalid JSON rules: {exc.msg}")]
        else:
            items = _Parser(_tokens(text)).body(None)
    except _SyntaxProblem as exc:
        return [exc.problem]
    out: list[RuleProblem] = []
    for item in items:
        _check_item(item, out)
    return out
