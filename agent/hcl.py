"""HCL1, the dialect Consul reads for agent config files and ACL rules, with source positions.

`parse(text)` gives the document as a tree of `Item`s that remember where each key and value
starts, which the ACL rule checkers need to point at the bad policy; `loads(text)` gives the
same document as plain dicts and lists, as `json.loads` would, which config loading needs.

    parse('key "a/" { policy = "read" }').items[0].labels == ("a/",)
    loads("ports { http = 8501 }") == {"ports": {"http": 8501}}

Why a reader of our own: pyhcl (the HCL1 parser on PyPI) was tried against the cases our
parsers pass and does not hold. It leaves `\\n` and `\\u00e9` undecoded in strings, accepts
`\\q`, drops a heredoc's last newline and does not strip `<<-` indentation, accepts a bare
identifier (`policy = read`) that Consul refuses, merges repeated blocks into one object and
keeps only the last of a repeated key, and hands back plain dicts with no positions (most
errors have none either, and the rest count columns from 0). python-hcl2 reads HCL2, whose
expression language accepts `policy = read` and keeps quotes on strings. The grammar Consul
needs is small:

    body  := (item ","?)*
    item  := key label* "{" body "}"  |  key "=" value
    key   := identifier | string           label := identifier | string
    value := string | heredoc | number | true | false | "[" (value ("," value)* ","?)? "]"
           | "{" body "}"

Identifiers may hold `-`, `.` and `:`; numbers may be negative, hexadecimal or have an
exponent; comments are `#`, `//` and `/* */`; strings know JSON's escapes; `<<EOF` and `<<-EOF`
heredocs end at a line holding only the marker. Blocks and lists nest at most `MAX_DEPTH`
deep, so hostile input is refused instead of exhausting the interpreter's stack.

Errors are `HCLError(message, line, col)` (1-based), whose `str()` is HCL1's own
`At <line>:<col>: <message>`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_DEPTH", "HCLError", "Item", "Object", "loads", "parse"]

# Consul's documents nest a handful of levels (ACL rules three); 32 leaves room for any real
# config while keeping the recursion far from Python's limit.
MAX_DEPTH = 32


class HCLError(ValueError):
    """Text that is not HCL1; `line`/`col` are 1-based, `detail` is the message alone."""

    def __init__(self, message: str, line: int, col: int) -> None:
        self.line, self.col, self.detail = line, col, message
        super().__init__(f"At {line}:{col}: {message}")


@dataclass(frozen=True)
class Object:
    """A body: the document itself, a block's `{ ... }` or an object value, at its `{`."""

    items: tuple[Item, ...]
    line: int
    col: int


@dataclass(frozen=True)
class Item:
    """`key label... { ... }` or `key = value`; a block's value is its `Object`.

    `value` is a str, int, float, bool, list of values, or `Object`.
    """

    key: str
    labels: tuple[str, ...]
    value: Any
    line: int
    col: int
    value_line: int
    value_col: int


# ------------------------------------------------------------------------------ tokens

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<heredoc><<-?(?P<marker>[A-Za-z_][A-Za-z0-9_]*)[ \t]*\r?\n)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?(?:0[xX][0-9a-fA-F]+|[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?))
  | (?P<punct>[{}\[\]=,])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_\-.:]*)
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_SIMPLE_ESCAPES = frozenset('nrtbf"\\/')


@dataclass(frozen=True)
class _Tok:
    kind: str  # string | number | ident | punct | eof
    text: str
    value: Any
    line: int
    col: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        col = pos - line_start + 1
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _bad_char(text, pos, line, col)
        kind = match.lastgroup or ""
        end = match.end()
        if kind == "heredoc":
            value, end = _heredoc(text, end, match["marker"], match[0][2] == "-", line, col)
            out.append(_Tok("string", text[pos:end], value, line, col))
        elif kind == "string":
            out.append(_Tok(kind, match[0], _unquote(match[0], line, col), line, col))
        elif kind == "number":
            out.append(_Tok(kind, match[0], _number(match[0]), line, col))
        elif kind in ("punct", "ident"):
            out.append(_Tok(kind, match[0], match[0], line, col))
        newlines = text.count("\n", pos, end)
        if newlines:
            line += newlines
            line_start = text.rindex("\n", pos, end) + 1
        pos = end
    out.append(_Tok("eof", "", None, line, pos - line_start + 1))
    return out


def _bad_char(text: str, pos: int, line: int, col: int) -> HCLError:
    if text[pos] == '"':
        return HCLError("literal not terminated", line, col)
    if text.startswith("/*", pos):
        return HCLError("comment not terminated", line, col)
    return HCLError(f"illegal char {text[pos]!r}", line, col)


def _unquote(raw: str, line: int, col: int) -> str:
    for match in _ESCAPE.finditer(raw):
        escape = match[1]
        if len(escape) == 1 and escape not in _SIMPLE_ESCAPES:
            raise HCLError(f"invalid escape \\{escape}", line, col)
    return str(json.loads(raw, strict=False))  # the escapes left are JSON's


def _number(text: str) -> int | float:
    digits = text.lstrip("-")
    if digits[:2] in ("0x", "0X"):
        return int(text, 16)
    if digits.isdigit():
        return int(text, 10)
    return float(text)


def _heredoc(
    text: str, pos: int, marker: str, indented: bool, line: int, col: int
) -> tuple[str, int]:
    """The body after `<<MARKER\\n` and the offset of the end of the closing marker's line."""
    lines: list[str] = []
    while pos <= len(text):
        end = text.find("\n", pos)
        end = len(text) if end == -1 else end
        current = text[pos:end]
        if current.strip() == marker:
            if indented:
                margin = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
                lines = [x[margin:] for x in lines]
            return "\n".join(lines) + ("\n" if lines else ""), end
        lines.append(current)
        pos = end + 1
    raise HCLError(f"heredoc {marker} is not terminated", line, col)


# ------------------------------------------------------------------------------ parser


def _show(tok: _Tok) -> str:
    return "end of input" if tok.kind == "eof" else repr(tok.text)


class _Parser:
    """Recursive descent over the grammar in the module docstring, `MAX_DEPTH` deep at most."""

    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def is_punct(self, text: str) -> bool:
        tok = self.toks[self.i]
        return tok.kind == "punct" and tok.text == text

    def nested(self, opener: _Tok) -> None:
        if self.depth >= MAX_DEPTH:
            raise HCLError(f"nested deeper than {MAX_DEPTH} blocks", opener.line, opener.col)

    def document(self) -> Object:
        return Object(self.items(None), 1, 1)

    def block(self, opener: _Tok) -> Object:
        self.nested(opener)
        self.depth += 1
        items = self.items(opener)
        self.depth -= 1
        return Object(items, opener.line, opener.col)

    def items(self, opener: _Tok | None) -> tuple[Item, ...]:
        """Items up to the `}` matching `opener`, or to the end of input for the document."""
        items: list[Item] = []
        while True:
            tok = self.peek()
            if tok.kind == "eof":
                if opener is None:
                    return tuple(items)
                raise HCLError(f"expected '}}', got {_show(tok)}", tok.line, tok.col)
            if opener is not None and self.is_punct("}"):
                self.take()
                return tuple(items)
            if self.is_punct(","):
                self.take()
                continue
            items.append(self.item())

    def item(self) -> Item:
        key = self.take()
        if key.kind not in ("ident", "string"):
            raise HCLError(f"expected a name, got {_show(key)}", key.line, key.col)
        labels: list[str] = []
        while self.peek().kind in ("ident", "string"):
            labels.append(str(self.take().value))
        nxt = self.take()
        if nxt.kind == "punct" and nxt.text == "=" and not labels:
            start = self.peek()
            value = self.value()
            return Item(str(key.value), (), value, key.line, key.col, start.line, start.col)
        if nxt.kind == "punct" and nxt.text == "{":
            body = self.block(nxt)
            return Item(str(key.value), tuple(labels), body, key.line, key.col, nxt.line, nxt.col)
        raise HCLError(
            f"expected '=' or '{{' after {key.text}, got {_show(nxt)}", nxt.line, nxt.col
        )

    def value(self) -> Any:
        tok = self.take()
        if tok.kind in ("string", "number"):
            return tok.value
        if tok.kind == "ident" and tok.text in ("true", "false"):
            return tok.text == "true"
        if tok.kind == "punct" and tok.text == "{":
            return self.block(tok)
        if tok.kind == "punct" and tok.text == "[":
            return self.list(tok)
        raise HCLError(f"expected a value, got {_show(tok)}", tok.line, tok.col)

    def list(self, opener: _Tok) -> list[Any]:
        self.nested(opener)
        self.depth += 1
        values: list[Any] = []
        while not self.is_punct("]"):
            values.append(self.value())
            if self.is_punct(","):
                self.take()
            elif not self.is_punct("]"):
                tok = self.peek()
                raise HCLError(f"expected ',' or ']', got {_show(tok)}", tok.line, tok.col)
        self.take()
        self.depth -= 1
        return values


def parse(text: str) -> Object:
    """The document as a tree with positions; raises `HCLError`."""
    return _Parser(text).document()


# ------------------------------------------------------------------------------ plain data


class _Repeated(list[Any]):
    """The values of a key given more than once in one object, in order."""


def _add(out: dict[str, Any], key: str, value: Any) -> None:
    if key not in out:
        out[key] = value
    elif isinstance(out[key], _Repeated):
        out[key].append(value)
    elif isinstance(out[key], list) and isinstance(value, list):
        out[key] = out[key] + value
    else:
        out[key] = _Repeated([out[key], value])


def _plain(value: Any) -> Any:
    if isinstance(value, Object):
        out: dict[str, Any] = {}
        for item in value.items:
            inner = _plain(item.value)
            for label in reversed(item.labels):
                inner = {label: inner}
            _add(out, item.key, inner)
        return {key: list(v) if isinstance(v, _Repeated) else v for key, v in out.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def loads(text: str) -> dict[str, Any]:
    """The document as plain data: blocks are objects (`a "b" { }` is `{"a": {"b": {}}}`), a
    key given twice collects its values in a list, and lists given twice are joined.
    """
    return _plain(parse(text))
