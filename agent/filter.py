"""Consul's ``?filter=`` expression language (the go-bexpr dialect), for JSON-shaped items.

An expression is parsed once by :func:`compile_filter` into a tree of closures; the
resulting :class:`Filter` then matches plain dicts exactly as the HTTP API renders them
(Consul's PascalCase field names).

Grammar (a PEG, tried in order, as go-bexpr's ``grammar.peg`` defines it)::

    input      <- _? "(" _? or _? ")" _? EOF / _? or _? EOF
    or         <- and _ "or" _ or / and / collection
    and        <- not _ "and" _ and / not
    not        <- "not" _ not / group
    group      <- "(" _? or _? ")" / match
    collection <- ("any" / "all") _ selector _ "as" _ names _? "{" _? or _? "}"
    match      <- selector op value          op: == != contains, not contains, matches, not matches
                / selector unary             unary: is empty, is not empty, is nil, is not nil
                / value ("in" / "not in") selector
    selector   <- ident ("." ident / "[" string "]" / "." digits)* / '"' ("/" segment)* '"'
    value      <- selector / number / string    (a bare word is its own text)

Keywords need whitespace on both sides (``a == 1 and b == 2``); ``==`` and ``!=`` do not.

Semantics, and where we depart from go-bexpr (it walks Go structs; we walk dicts):

* A selector that names a missing key, or reaches a JSON ``null``, is "not present": ``==``,
  ``in``, ``matches``, ``is not empty`` and ``is not nil`` are false, their negations
  true. go-bexpr does this for missing map keys but errors on unknown struct fields; a dict
  cannot tell the two apart, so every missing key is treated like a missing map key.
* A selector that continues through a list means "any element" (``Checks.Status ==
  passing``), as go-bexpr did before it switched to JSON pointers; a numeric segment
  (``Checks.0.Status``) indexes the list instead, as the JSON-pointer form does.
* The literal is coerced to the type of the value found: booleans accept Go's
  ``strconv.ParseBool`` spellings, integers Go's base-prefixed forms (``0x1F``, ``010``),
  floats Go's float syntax. A literal that cannot be coerced, or an operator that does not
  apply to the value's type (``Port is empty``, ``Tags == x``), raises
  :class:`FilterEvaluationError` from ``matches``/``select``, as go-bexpr returns an error.
  Integers also compare against float literals (lenient: JSON does not keep ``1.0`` apart
  from ``1``).
* ``matches`` uses Go's RE2 syntax, translated to Python ``re`` (unanchored search); the
  pattern is compiled with the filter, so a bad pattern fails at compile time.
* Inside double quotes ``\\"`` is accepted as an escaped quote (go-bexpr always rejects it),
  so every expression go-bexpr accepts means the same here.
* Like go-bexpr, a quoted value that looks like a JSON pointer (``"/a/b"``) is read as a
  selector and becomes the text ``a/b``; backtick strings are taken literally.
* The empty expression matches everything (Consul skips filtering when ``filter`` is empty).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from agent.goregexp import GoRegexpError, compile_go

__all__ = [
    "Filter",
    "FilterError",
    "FilterEvaluationError",
    "compile_filter",
]

T = TypeVar("T")


class FilterError(ValueError):
    """A filter expression that cannot be compiled (or, via the subclass, evaluated).

    ``position`` is the 0-based character offset of the problem in the expression (``None``
    when it has none); ``line`` and ``column`` are the same place, 1-based. ``str(e)`` is a
    one-line message in go-bexpr's form, ``LINE:COL (OFFSET): message``.
    """

    def __init__(self, message: str, position: int | None = None, text: str = "") -> None:
        self.message = message
        self.position = position
        self.line: int | None = None
        self.column: int | None = None
        if position is not None:
            before = text[:position]
            self.line = before.count("\n") + 1
            self.column = position - (before.rfind("\n") + 1) + 1
            full = f"{self.line}:{self.column} ({position}): {message}"
        else:
            full = message
        super().__init__(full.replace("\n", " "))


class FilterEvaluationError(FilterError):
    """The expression is valid but cannot be applied to an item (a type mismatch)."""


# --------------------------------------------------------------------------- AST


class Op(Enum):
    EQ = "=="
    NE = "!="
    IN = "in"
    NOT_IN = "not in"
    IS_EMPTY = "is empty"
    IS_NOT_EMPTY = "is not empty"
    MATCHES = "matches"
    NOT_MATCHES = "not matches"
    IS_NIL = "is nil"
    IS_NOT_NIL = "is not nil"


# What an operator yields when its selector finds nothing (go-bexpr's NotPresentDisposition).
_NOT_PRESENT = {
    Op.EQ: False,
    Op.NE: True,
    Op.IN: False,
    Op.NOT_IN: True,
    Op.IS_EMPTY: True,
    Op.IS_NOT_EMPTY: False,
    Op.MATCHES: False,
    Op.NOT_MATCHES: True,
    Op.IS_NIL: True,
    Op.IS_NOT_NIL: False,
}
_NEGATED = {Op.NE, Op.NOT_IN, Op.IS_NOT_EMPTY, Op.NOT_MATCHES, Op.IS_NOT_NIL}
_POSITIVE = {
    Op.NE: Op.EQ,
    Op.NOT_IN: Op.IN,
    Op.IS_NOT_EMPTY: Op.IS_EMPTY,
    Op.NOT_MATCHES: Op.MATCHES,
    Op.IS_NOT_NIL: Op.IS_NIL,
}


@dataclass(frozen=True, slots=True)
class Selector:
    path: tuple[str, ...]
    pointer: bool  # written as a quoted JSON pointer

    def __str__(self) -> str:
        return "/".join(self.path) if self.pointer else ".".join(self.path)


@dataclass(frozen=True, slots=True)
class Match:
    selector: Selector
    op: Op
    value: str | None
    value_pos: int


@dataclass(frozen=True, slots=True)
class Binary:
    is_and: bool
    operands: tuple[Node, ...]  # two or more


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class Collection:
    is_all: bool
    selector: Selector
    # Names bound per element; go-bexpr's four forms: "x", "i, v", "i, _", "_, v".
    default: str | None
    index: str | None
    value: str | None
    inner: Node
    pos: int


Node = Match | Binary | Not | Collection


# ------------------------------------------------------------------------ parser

_WS = " \t\r\n"
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")
_IDENT_REST = _ALPHA | _DIGITS | frozenset("_/")
_POINTER_PUNCT = frozenset("-_.~:|")


class _Abort(Exception):
    """A grammar rule's own error (go-bexpr's ``&{ return false, err }``): parsing stops."""

    def __init__(self, pos: int, message: str) -> None:
        self.pos = pos
        self.message = message


def _quote(lit: str) -> str:
    return '"' + lit.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Parser:
    """A backtracking PEG parser that mirrors go-bexpr's grammar rule for rule.

    Like pigeon (the generator go-bexpr uses) it remembers the farthest offset at which a
    terminal failed and what was expected there, so a syntax error reads the same. ``or``
    results are memoised by offset so nested parentheses cannot make it exponential.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.fail_pos = -1
        self.expected: set[str] = set()
        self.invert = False  # inside a negative lookahead: successes count as failures
        self.or_memo: dict[int, tuple[Node, int] | None] = {}

    # ---- terminals

    def _record(self, pos: int, want: str) -> None:
        if pos < self.fail_pos:
            return
        if pos > self.fail_pos:
            self.fail_pos = pos
            self.expected = set()
        self.expected.add(want)

    def lit(self, pos: int, s: str) -> int | None:
        if self.text.startswith(s, pos):
            if self.invert:
                self._record(pos, "!" + _quote(s))
            return pos + len(s)
        if not self.invert:
            self._record(pos, _quote(s))
        return None

    def cls(self, pos: int, chars: frozenset[str] | str, desc: str) -> int | None:
        if pos < self.n and self.text[pos] in chars:
            if self.invert:
                self._record(pos, "!" + desc)
            return pos + 1
        if not self.invert:
            self._record(pos, desc)
        return None

    def ws(self, pos: int) -> int | None:
        """``_ <- [ \\t\\r\\n]+``"""
        p = self.cls(pos, _WS, "[ \\t\\r\\n]")
        if p is None:
            return None
        while (q := self.cls(p, _WS, "[ \\t\\r\\n]")) is not None:
            p = q
        return p

    def opt_ws(self, pos: int) -> int:
        p = self.ws(pos)
        return pos if p is None else p

    def eof(self, pos: int) -> bool:
        """``EOF <- !.``"""
        if pos < self.n:
            if not self.invert:
                self._record(pos, "!.")
            return False
        return True

    def not_lit(self, pos: int, s: str) -> bool:
        self.invert = not self.invert
        try:
            return self.lit(pos, s) is None
        finally:
            self.invert = not self.invert

    def seq(self, pos: int | None, *parts: str) -> int | None:
        """Keywords separated by mandatory whitespace: ``_ "not" _ "in" _`` is
        ``seq(p, "_", "not", "_", "in", "_")``; ``"?"`` is optional whitespace."""
        for part in parts:
            if pos is None:
                return None
            if part == "_":
                pos = self.ws(pos)
            elif part == "?":
                pos = self.opt_ws(pos)
            else:
                pos = self.lit(pos, part)
        return pos

    # ---- rules

    def parse(self) -> Node:
        p0 = self.opt_ws(0)
        p = self.seq(p0, "(", "?")
        if p is not None and (r := self.or_expr(p)) is not None:
            q = self.seq(r[1], "?", ")", "?")
            if q is not None and self.eof(q):
                return r[0]
        if (r := self.or_expr(p0)) is not None and self.eof(self.opt_ws(r[1])):
            return r[0]
        raise self._no_match()

    def _no_match(self) -> FilterError:
        wants = sorted(w for w in self.expected if not w.startswith("!"))
        if "!." in self.expected:
            wants.append("EOF")
        wants = wants or ["EOF"]
        listed = wants[0] if len(wants) == 1 else ", ".join(wants[:-1]) + " or " + wants[-1]
        pos = max(self.fail_pos, 0)
        found = self.text[pos:].split(None, 1)
        seen = f'"{found[0][:24]}"' if found and pos < self.n else "end of input"
        msg = f"no match found, expected: {listed}; found {seen}"
        return FilterError(msg, pos, self.text)

    def or_expr(self, pos: int) -> tuple[Node, int] | None:
        if pos in self.or_memo:
            return self.or_memo[pos]
        result = self._or_expr(pos)
        self.or_memo[pos] = result
        return result

    def _or_expr(self, pos: int) -> tuple[Node, int] | None:
        # ``or <- and _ "or" _ or / and / collection``, unrolled into a loop: a chain of
        # any length parses without recursion and means the same (a collection can only
        # close a chain, since nothing may follow it at this level).
        first = self.and_expr(pos)
        if first is None:
            return self.collection(pos)
        terms, end = [first[0]], first[1]
        while (p := self.seq(end, "_", "or", "_")) is not None:
            if (term := self.and_expr(p)) is None:
                term = self.collection(p)
                if term is not None:
                    terms.append(term[0])
                    end = term[1]
                break
            terms.append(term[0])
            end = term[1]
        return (terms[0] if len(terms) == 1 else Binary(False, tuple(terms))), end

    def and_expr(self, pos: int) -> tuple[Node, int] | None:
        # ``and <- not _ "and" _ and / not``, unrolled like ``or``.
        first = self.not_expr(pos)
        if first is None:
            return None
        terms, end = [first[0]], first[1]
        while (p := self.seq(end, "_", "and", "_")) is not None:
            if (term := self.not_expr(p)) is None:
                break
            terms.append(term[0])
            end = term[1]
        return (terms[0] if len(terms) == 1 else Binary(True, tuple(terms))), end

    def not_expr(self, pos: int) -> tuple[Node, int] | None:
        p = self.seq(pos, "not", "_")
        if p is not None and (r := self.not_expr(p)) is not None:
            inner = r[0]
            return (inner.operand if isinstance(inner, Not) else Not(inner)), r[1]
        return self.group(pos)

    def group(self, pos: int) -> tuple[Node, int] | None:
        p = self.seq(pos, "(", "?")
        inner = self.or_expr(p) if p is not None else None
        if inner is not None:
            q = self.seq(inner[1], "?", ")")
            if q is not None:
                return inner[0], q
        if (m := self.match(pos)) is not None:
            return m
        if inner is not None:
            q = self.opt_ws(inner[1])
            if self.not_lit(q, ")"):
                raise _Abort(q, 'rule "grouping": Unmatched parentheses')
        return None

    _BINARY_OPS = (
        (Op.EQ, ("?", "==", "?")),
        (Op.NE, ("?", "!=", "?")),
        (Op.IN, ("_", "contains", "_")),
        (Op.NOT_IN, ("_", "not", "_", "contains", "_")),
        (Op.MATCHES, ("_", "matches", "_")),
        (Op.NOT_MATCHES, ("_", "not", "_", "matches", "_")),
    )
    _UNARY_OPS = (
        (Op.IS_EMPTY, ("_", "is", "_", "empty")),
        (Op.IS_NOT_EMPTY, ("_", "is", "_", "not", "_", "empty")),
        (Op.IS_NIL, ("_", "is", "_", "nil")),
        (Op.IS_NOT_NIL, ("_", "is", "_", "not", "_", "nil")),
    )
    _IN_OPS = (
        (Op.IN, ("_", "in", "_")),
        (Op.NOT_IN, ("_", "not", "_", "in", "_")),
    )

    def _first_op(
        self, pos: int, ops: tuple[tuple[Op, tuple[str, ...]], ...]
    ) -> tuple[Op, int] | None:
        for op, parts in ops:
            if (p := self.seq(pos, *parts)) is not None:
                return op, p
        return None

    def match(self, pos: int) -> tuple[Node, int] | None:
        sel = self.selector(pos)
        if sel is not None:
            op = self._first_op(sel[1], self._BINARY_OPS)
            if op is not None and (val := self.value(op[1])) is not None:
                return Match(sel[0], op[0], val[0], op[1]), val[1]
            op = self._first_op(sel[1], self._UNARY_OPS)
            if op is not None:
                return Match(sel[0], op[0], None, op[1]), op[1]
        val = self.value(pos)
        if val is not None and (op := self._first_op(val[1], self._IN_OPS)) is not None:
            sel = self.selector(op[1])
            if sel is not None:
                return Match(sel[0], op[0], val[0], pos), sel[1]
            raise _Abort(op[1], 'rule "match": Invalid selector')
        return None

    def collection(self, pos: int) -> tuple[Node, int] | None:
        p = self.seq(pos, "any", "_")
        is_all = p is None
        if p is None:
            p = self.seq(pos, "all", "_")
        sel = self.selector(p) if p is not None else None
        if sel is None:
            return None
        p = self.seq(sel[1], "_", "as", "_")
        names = self.bindings(p) if p is not None else None
        if names is None:
            return None
        p = self.seq(names[3], "?", "{", "?")
        inner = self.or_expr(p) if p is not None else None
        if inner is None:
            return None
        end = self.seq(inner[1], "?", "}")
        if end is None:
            return None
        default, index, value, _ = names
        return Collection(is_all, sel[0], default, index, value, inner[0], pos), end

    def bindings(self, pos: int) -> tuple[str | None, str | None, str | None, int] | None:
        first = self.identifier(pos)
        if first is not None:
            p = self.seq(first[1], "?", ",", "?")
            if p is not None:
                if (second := self.identifier(p)) is not None:
                    return None, first[0], second[0], second[1]
                if (q := self.lit(p, "_")) is not None:
                    return None, first[0], None, q
        p = self.seq(self.lit(pos, "_"), "?", ",", "?")
        if p is not None and (second := self.identifier(p)) is not None:
            return None, None, second[0], second[1]
        if first is not None:
            return first[0], None, None, first[1]
        return None

    def identifier(self, pos: int) -> tuple[str, int] | None:
        p = self.cls(pos, _ALPHA, "[a-zA-Z]")
        if p is None:
            return None
        while (q := self.cls(p, _IDENT_REST, "[a-zA-Z0-9_/]")) is not None:
            p = q
        return self.text[pos:p], p

    def selector(self, pos: int) -> tuple[Selector, int] | None:
        first = self.identifier(pos)
        if first is not None:
            path = [first[0]]
            p = first[1]
            while (step := self.selector_step(p)) is not None:
                path.append(step[0])
                p = step[1]
            return Selector(tuple(path), False), p
        p = self.lit(pos, '"')
        if p is None:
            return None
        segments = []
        while (q := self.lit(p, "/")) is not None:
            end = q
            while end < self.n and (self.text[end].isalnum() or self.text[end] in _POINTER_PUNCT):
                end += 1
            self.cls(end, "", "[\\pL\\pN-_.~:|]")  # the class loop's last, failed try
            if end == q:
                break
            segments.append(self.text[q:end].replace("~1", "/").replace("~0", "~"))
            p = end
        q = self.lit(p, '"')
        if q is None:
            return None
        return Selector(tuple(segments) or ("",), True), q

    def selector_step(self, pos: int) -> tuple[str, int] | None:
        p = self.lit(pos, ".")
        if p is not None and (ident := self.identifier(p)) is not None:
            return ident
        if (index := self.index(pos)) is not None:
            return index
        if p is not None and (q := self.cls(p, _DIGITS, "[0-9]")) is not None:
            while (r := self.cls(q, _DIGITS, "[0-9]")) is not None:
                q = r
            return self.text[p:q], q
        return None

    def index(self, pos: int) -> tuple[str, int] | None:
        p = self.seq(pos, "[", "?")
        if p is None:
            return None
        lit = self.string(p)
        if lit is None:
            raise _Abort(p, 'rule "index": Invalid index')
        q = self.opt_ws(lit[1])
        end = self.lit(q, "]")
        if end is None:
            raise _Abort(q, 'rule "index": Unclosed index expression')
        return lit[0], end

    def value(self, pos: int) -> tuple[str, int] | None:
        if (sel := self.selector(pos)) is not None:
            return str(sel[0]), sel[1]
        if (num := self.number(pos)) is not None:
            return num
        return self.string(pos)

    def number(self, pos: int) -> tuple[str, int] | None:
        p = self.lit(pos, "-")
        p = pos if p is None else p
        q = self.lit(p, "0")
        if q is None:
            q = self.cls(p, "123456789", "[1-9]")
            if q is None:
                return None
            while (r := self.cls(q, _DIGITS, "[0-9]")) is not None:
                q = r
        dot = self.lit(q, ".")
        if dot is not None and (r := self.cls(dot, _DIGITS, "[0-9]")) is not None:
            q = r
            while (r := self.cls(q, _DIGITS, "[0-9]")) is not None:
                q = r
        if self.ws(q) is None and not self._at_eof(q) and self.lit(q, ")") is None:
            raise _Abort(q, 'rule "number": Invalid number literal')
        return self.text[pos:q], q

    def _at_eof(self, pos: int) -> bool:
        # ``EOF`` inside the positive lookahead ``&(_ / EOF / ")")``: the ``!.`` inverts.
        self.invert = not self.invert
        try:
            if pos < self.n:
                self._record(pos, "!.")
                return False
            return True
        finally:
            self.invert = not self.invert

    def string(self, pos: int) -> tuple[str, int] | None:
        if self.lit(pos, "`") is not None:
            end = self.text.find("`", pos + 1)
            if end < 0:
                raise _Abort(self.n, 'rule "string": Unterminated string literal')
            return self.text[pos + 1 : end].replace("\r", ""), end + 1
        if self.lit(pos, '"') is None:
            return None
        i = pos + 1
        while i < self.n and self.text[i] != '"':
            i += 2 if self.text[i] == "\\" else 1
        if i >= self.n:
            raise _Abort(self.n, 'rule "string": Unterminated string literal')
        try:
            return _go_unquote(self.text[pos + 1 : i]), i + 1
        except ValueError:
            raise _Abort(pos, 'rule "string": invalid syntax') from None


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
}


def _go_unquote(body: str) -> str:
    """The body of a Go double-quoted string literal, escapes resolved (strconv.Unquote)."""
    if "\\" not in body:
        if "\n" in body:
            raise ValueError("newline in string")
        return body
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == "\n":
            raise ValueError("newline in string")
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        e = body[i + 1] if i + 1 < n else ""
        if e in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[e].encode()
            i += 2
        elif e in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError("bad hex escape")
            code = int(digits, 16)
            if e == "x":
                out.append(code)
            elif code > 0x10FFFF or 0xD800 <= code < 0xE000:
                raise ValueError("bad code point")
            else:
                out += chr(code).encode()
            i += 2 + width
        elif e in "01234567" and e:
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not all(d in "01234567" for d in digits):
                raise ValueError("bad octal escape")
            code = int(digits, 8)
            if code > 255:
                raise ValueError("bad octal escape")
            out.append(code)
            i += 4
        else:
            raise ValueError("unknown escape")
    return out.decode("utf-8", errors="replace")


# ------------------------------------------------------------- literal coercion

_BOOL_WORDS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}
_INT_TEXT = re.compile(r"[+-]?[0-9][0-9a-zA-Z_]*")
_FLOAT_TEXT = re.compile(r"[+-]?[0-9a-zA-Z_.]+(?:[eEpP][+-]?[0-9_]+)?")


def _go_int(raw: str) -> int | None:
    """``strconv.ParseInt(raw, 0, 64)``: decimal, 0x/0o/0b prefixes, leading-0 octal."""
    if not _INT_TEXT.fullmatch(raw):
        return None
    sign = -1 if raw[0] == "-" else 1
    body = raw.lstrip("+-")
    try:
        if len(body) > 1 and body[0] == "0" and body[1] not in "xXbBoO":
            value = int(body[1:].lstrip("_"), 8)
        else:
            value = int(body, 0)
    except ValueError:
        return None
    value *= sign
    return value if -(2**63) <= value < 2**64 else None


def _go_float(raw: str) -> float | None:
    """``strconv.ParseFloat(raw, 64)``, closely enough: no surrounding spaces allowed."""
    if not _FLOAT_TEXT.fullmatch(raw):
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    if "0x" not in raw.lower():
        return None
    try:
        return float.fromhex(raw)  # Go accepts hexadecimal floats such as 0x1p-2
    except ValueError:
        return None


# -------------------------------------------------------------------- compiler

_MISSING: Any = object()
Leaf = Callable[[Any], bool]
Pred = Callable[[Any, dict[str, tuple[Any, bool]] | None], bool]


def _kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map"
    return "slice" if isinstance(value, Sequence) else type(value).__name__


class _Literal:
    """A match literal, pre-coerced to every type it may be compared with."""

    __slots__ = ("raw", "boolean", "integer", "real")

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.boolean = _BOOL_WORDS.get(raw)
        self.integer = _go_int(raw)
        self.real = _go_float(raw)

    def equals(self, value: Any, where: str) -> bool:
        """go-bexpr's doMatchEqual: the literal coerced to the value's type."""
        t = type(value)
        if t is str:
            return value == self.raw
        if t is bool:
            if self.boolean is None:
                raise self._coerce_error("bool", where)
            return value is self.boolean
        if t is int:
            if self.integer is not None:
                return value == self.integer
            if self.real is not None:
                return value == self.real
            raise self._coerce_error("int", where)
        if t is float:
            if self.real is None:
                raise self._coerce_error("float64", where)
            return value == self.real
        # Subclasses (str/int enums and the like) compare as their base type.
        for base in (str, bool, int, float):
            if isinstance(value, base):
                return self.equals(base(value), where)
        raise FilterEvaluationError(
            f"unable to compare {_kind(value)} at selector {where!r} with a single value"
        )

    def element_equals(self, value: Any, where: str) -> bool:
        """One element of a list for ``in``: mismatched literal types just don't match."""
        if value is None:
            return False
        try:
            return self.equals(value, where)
        except FilterEvaluationError:
            if isinstance(value, Mapping | list | tuple):
                raise
            return False

    def _coerce_error(self, kind: str, where: str) -> FilterEvaluationError:
        return FilterEvaluationError(
            f"error getting match value in expression: cannot use {self.raw!r} as {kind} "
            f"for selector {where!r}"
        )


def _positive_leaf(op: Op, literal: _Literal | None, regex: Any, where: str) -> Leaf:
    if op is Op.EQ:
        assert literal is not None
        equals = literal.equals
        raw = literal.raw
        # Strings are by far the most common field type: compare them without a call.
        return lambda v: v == raw if type(v) is str else equals(v, where)
    if op is Op.IN:
        assert literal is not None
        raw = literal.raw
        element = literal.element_equals

        def contains(v: Any) -> bool:
            t = type(v)
            if t is dict:
                return raw in v
            if t is list:
                return any(element(e, where) for e in v)
            if t is str:
                return raw in v
            if isinstance(v, Mapping):
                return raw in v
            if isinstance(v, str):
                return raw in v
            if isinstance(v, Sequence):
                return any(element(e, where) for e in v)
            raise FilterEvaluationError(
                f"cannot perform in/contains operations on type {_kind(v)} for selector: {where!r}"
            )

        return contains
    if op is Op.IS_EMPTY:

        def empty(v: Any) -> bool:
            if isinstance(v, str | Mapping | Sequence):
                return len(v) == 0
            raise FilterEvaluationError(
                f"cannot perform is-empty operations on type {_kind(v)} for selector: {where!r}"
            )

        return empty
    if op is Op.MATCHES:
        assert regex is not None
        search = regex.search

        def matches(v: Any) -> bool:
            if isinstance(v, str):
                return search(v) is not None
            raise FilterEvaluationError(
                f"value of type {_kind(v)} at selector {where!r} cannot be matched "
                "against a regular expression"
            )

        return matches
    assert op is Op.IS_NIL

    def nil(v: Any) -> bool:
        if isinstance(v, Mapping | Sequence) and not isinstance(v, str):
            return False
        raise FilterEvaluationError(
            f"cannot perform is-nil operations on type {_kind(v)} for selector: {where!r}"
        )

    return nil


def _walker(path: tuple[str, ...], leaf: Leaf, absent: bool, where: str) -> Leaf:
    """Follow ``path`` from a value and apply ``leaf`` at its end.

    Dict keys are looked up; a list fans out ("any element") unless the segment is an
    index; a missing key or ``null`` on the way yields ``absent``.
    """
    indexes = tuple(int(s) if s.isdigit() else None for s in path)
    n = len(path)

    def walk(v: Any, i: int) -> bool:
        while i < n:
            t = type(v)
            if t is dict:
                v = v.get(path[i], _MISSING)
                if v is _MISSING:
                    return absent
                i += 1
                continue
            if v is None:
                return absent
            if t is list or (isinstance(v, Sequence) and not isinstance(v, str | bytes)):
                idx = indexes[i]
                if idx is None:
                    return any(walk(e, i) for e in v)
                if idx >= len(v):
                    return absent
                v = v[idx]
                i += 1
                continue
            if isinstance(v, Mapping):
                v = v.get(path[i], _MISSING)
                if v is _MISSING:
                    return absent
                i += 1
                continue
            raise FilterEvaluationError(
                f"value at selector {'.'.join(path[:i])!r} with type {_kind(v)} does not "
                "support nested field selection"
            )
        if v is None:
            return absent
        return leaf(v)

    if n == 1:
        # The common case (``Service == web``) without the loop.
        key = path[0]

        def walk_one(v: Any, i: int) -> bool:
            if type(v) is dict:
                v = v.get(key, _MISSING)
                if v is _MISSING or v is None:
                    return absent
                return leaf(v)
            return walk(v, i)

        return walk_one
    if n == 2 and indexes[1] is None:
        # ``NodeMeta.env``, ``Service.Tags``: two dict lookups, no loop.
        key0, key1 = path

        def walk_two(v: Any, i: int) -> bool:
            if type(v) is dict:
                inner = v.get(key0)
                if type(inner) is dict:
                    v = inner.get(key1, _MISSING)
                    if v is _MISSING or v is None:
                        return absent
                    return leaf(v)
                if inner is None:
                    return absent
            return walk(v, i)

        return walk_two
    return walk


def _resolve(path: tuple[str, ...], obj: Any, where: str) -> tuple[bool, Any]:
    """A value by path without fanning out over lists (for ``any``/``all``)."""
    v = obj
    for seg in path:
        if v is None:
            return False, None
        if isinstance(v, Mapping):
            v = v.get(seg, _MISSING)
            if v is _MISSING:
                return False, None
        elif isinstance(v, Sequence) and not isinstance(v, str):
            if not seg.isdigit():
                raise FilterEvaluationError(f"selector {where!r}: {seg!r} is not a list index")
            if int(seg) >= len(v):
                return False, None
            v = v[int(seg)]
        else:
            raise FilterEvaluationError(f"selector {where!r}: {_kind(v)} has no field {seg!r}")
    return (v is not None), v


def _junction(is_and: bool, preds: list[Pred]) -> Pred:
    """``and``/``or`` over two or more predicates, short-circuiting left to right."""
    if len(preds) == 2:
        a, b = preds
        if is_and:
            return lambda o, env: a(o, env) and b(o, env)
        return lambda o, env: a(o, env) or b(o, env)
    if is_and:
        return lambda o, env: all(p(o, env) for p in preds)
    return lambda o, env: any(p(o, env) for p in preds)


class _Compiler:
    def __init__(self, text: str) -> None:
        self.text = text

    def compile(self, node: Node, scope: frozenset[str]) -> Pred:
        if isinstance(node, Binary):
            return _junction(node.is_and, [self.compile(n, scope) for n in node.operands])
        if isinstance(node, Not):
            operand = self.compile(node.operand, scope)
            return lambda o, env: not operand(o, env)
        if isinstance(node, Collection):
            return self.collection(node, scope)
        return self.match(node, scope)

    def match(self, node: Match, scope: frozenset[str]) -> Pred:
        op = node.op
        where = str(node.selector)
        literal = _Literal(node.value) if node.value is not None else None
        regex = None
        if op in (Op.MATCHES, Op.NOT_MATCHES):
            assert node.value is not None
            try:
                regex = compile_go(node.value)
            except GoRegexpError as exc:
                raise FilterError(
                    f"failed to compile regular expression {node.value!r}: {exc}",
                    node.value_pos,
                    self.text,
                ) from None
        positive = _POSITIVE.get(op, op)
        leaf = _positive_leaf(positive, literal, regex, where)
        if op in _NEGATED:
            inner = leaf
            leaf = lambda v: not inner(v)  # noqa: E731
        path = node.selector.path
        absent = _NOT_PRESENT[op]
        if path[0] not in scope:
            walk = _walker(path, leaf, absent, where)
            return lambda o, env: walk(o, 0)
        walk_rest = _walker(path[1:], leaf, absent, where) if len(path) > 1 else None

        def local(o: Any, env: dict[str, tuple[Any, bool]] | None) -> bool:
            assert env is not None
            value, is_key = env[path[0]]
            if walk_rest is None:
                return absent if value is None else leaf(value)
            if is_key:
                raise FilterEvaluationError(
                    f"{path[0]!r} is a key or index, so {where!r} selects nothing"
                )
            return walk_rest(value, 0)

        return local

    def collection(self, node: Collection, scope: frozenset[str]) -> Pred:
        if node.index is not None and node.index == node.value:
            raise FilterError(
                f"{node.index!r} cannot be used as a placeholder for both the index and the value",
                node.pos,
                self.text,
            )
        names = {node.default, node.index, node.value} - {None}
        inner = self.compile(node.inner, scope | names)  # type: ignore[arg-type]
        path = node.selector.path
        where = str(node.selector)
        from_env = path[0] in scope
        is_all = node.is_all
        default, index, value_name = node.default, node.index, node.value

        def run(o: Any, env: dict[str, tuple[Any, bool]] | None) -> bool:
            if from_env:
                assert env is not None
                root, is_key = env[path[0]]
                if is_key and len(path) > 1:
                    raise FilterEvaluationError(f"{path[0]!r} is a key or index: {where!r}")
                present, coll = _resolve(path[1:], root, where)
            else:
                present, coll = _resolve(path, o, where)
            if not present:
                return is_all
            if isinstance(coll, Mapping):
                pairs: Iterable[tuple[Any, Any]] = coll.items()
                keyed = True
            elif isinstance(coll, Sequence) and not isinstance(coll, str):
                pairs = enumerate(coll)
                keyed = False
            else:
                raise FilterEvaluationError(f"{where} is not a list or a map")
            for k, v in pairs:
                scope_env = dict(env) if env else {}
                if default is not None:
                    scope_env[default] = (k, True) if keyed else (v, False)
                if index is not None:
                    scope_env[index] = (k, True)
                if value_name is not None:
                    scope_env[value_name] = (v, False)
                if inner(o, scope_env) != is_all:
                    return not is_all
            return is_all

        return run


# ---------------------------------------------------------------------- public


class Filter:
    """A compiled filter expression; cheap to apply to many items."""

    __slots__ = ("expression", "_pred")

    def __init__(self, expression: str, pred: Pred) -> None:
        self.expression = expression
        self._pred = pred

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether ``obj`` satisfies the expression; raises FilterEvaluationError on a
        type mismatch (see the module docstring)."""
        return self._pred(obj, None)

    def select(self, items: Iterable[T]) -> list[T]:
        """The items that match, in order."""
        pred = self._pred
        return [item for item in items if pred(item, None)]

    def select_values(self, items: Mapping[Any, T]) -> dict[Any, T]:
        """For endpoints that answer a map (``/agent/services``): keep matching values."""
        pred = self._pred
        return {k: v for k, v in items.items() if pred(v, None)}

    def __repr__(self) -> str:
        return f"Filter({self.expression!r})"


def _match_all(obj: Any, env: Any) -> bool:
    return True


def parse(expression: str) -> Node:
    """The syntax tree of an expression; raises FilterError."""
    parser = _Parser(expression)
    try:
        return parser.parse()
    except _Abort as exc:
        raise FilterError(exc.message, exc.pos, expression) from None
    except RecursionError:
        raise FilterError("expression is nested too deeply", None, expression) from None


def compile_filter(expression: str) -> Filter:
    """Compile a go-bexpr expression; raises FilterError for a malformed one.

    Compiled filters are immutable, so recent ones are shared (the same ``?filter=`` tends
    to come back with every blocking query); errors are not cached.
    """
    return _compile_cached(expression)


@functools.lru_cache(maxsize=256)
def _compile_cached(expression: str) -> Filter:
    if expression == "":
        return Filter(expression, _match_all)
    tree = parse(expression)
    try:
        pred = _Compiler(expression).compile(tree, frozenset())
    except RecursionError:
        raise FilterError("expression is nested too deeply", None, expression) from None
    return Filter(expression, pred)
