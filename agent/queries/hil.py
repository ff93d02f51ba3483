"""HIL, the interpolation language of Consul's prepared query templates (hashicorp/hil).

    parts = parse("${name.prefix}-${match(1)}")      # HILError on a syntax error
    text = render(parts, {"name.prefix": "geo-"}, {"match": fn})

A template string is literal text with `${ expr }` interpolations (`$${` is a literal `${`).
Expressions are what HIL's grammar allows: string, integer, float and boolean literals,
variables (dotted names such as `name.full`), function calls, `+ - * / %`, comparisons,
`&& || !` and `cond ? a : b`. Every part of the result is turned into a string, as HIL's
type checker converts an output of several parts (and of one non-list part) to a string.
Errors carry HIL's position (`1:3: unknown variable accessed: name.nope`), since Consul puts
its text into the message a client sees.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Value = str | int | float | bool
Function = Callable[[list[Value]], Value]


class HILError(ValueError):
    pass


@dataclass(frozen=True)
class Node:
    kind: str  # "lit", "var", "call", "unary", "binary", "cond"
    pos: str  # "line:column" of the node, 1-based, as HIL reports it
    value: Any = None  # literal value, variable or function name, operator
    args: tuple[Node, ...] = ()


Part = str | Node

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<float>\d+\.\d+)
    | (?P<int>\d+)
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<ident>[A-Za-z_][A-Za-z0-9_\-.*]*)
    | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:(),])
    | (?P<end>\})
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}
_BINARY_LEVELS = (
    ("||",),
    ("&&",),
    ("==", "!="),
    ("<", ">", "<=", ">="),
    ("+", "-"),
    ("*", "/", "%"),
)


def _position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{column}"


class _Parser:
    def __init__(self, text: str, start: int) -> None:
        self.text = text
        self.pos = start
        self.tokens: list[tuple[str, Any, int]] = []
        self.at = 0
        self._scan()

    def _scan(self) -> None:
        text, pos = self.text, self.pos
        while True:
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                where = _position(text, pos)
                if pos >= len(text) or not text[pos:].strip():
                    raise HILError(f"parse error at {where}: expected expression end")
                raise HILError(f"parse error at {where}: invalid character {text[pos]!r}")
            kind = match.lastgroup or ""
            start = match.start(kind)
            self.tokens.append((kind, match.group(kind), start))
            pos = match.end()
            if kind == "end":
                self.pos = pos
                return

    def peek(self) -> tuple[str, Any, int]:
        return self.tokens[self.at]

    def take(self) -> tuple[str, Any, int]:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def fail(self, token: tuple[str, Any, int], what: str) -> HILError:
        return HILError(f"parse error at {_position(self.text, token[2])}: {what}")

    def expect(self, op: str) -> None:
        token = self.take()
        if token[1] != op:
            raise self.fail(token, f"expected {op!r}, found {token[1]!r}")

    def expression(self) -> Node:
        cond = self.binary(0)
        kind, value, _ = self.peek()
        if kind == "op" and value == "?":
            self.take()
            yes = self.expression()
            self.expect(":")
            no = self.expression()
            return Node("cond", cond.pos, None, (cond, yes, no))
        return cond

    def binary(self, level: int) -> Node:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            kind, value, _ = self.peek()
            if kind != "op" or value not in _BINARY_LEVELS[level]:
                return left
            self.take()
            right = self.binary(level + 1)
            left = Node("binary", left.pos, value, (left, right))

    def unary(self) -> Node:
        kind, value, offset = self.peek()
        if kind == "op" and value in ("-", "!"):
            self.take()
            return Node("unary", _position(self.text, offset), value, (self.unary(),))
        return self.primary()

    def primary(self) -> Node:
        token = self.take()
        kind, value, offset = token
        pos = _position(self.text, offset)
        if kind == "int":
            return Node("lit", pos, int(value))
        if kind == "float":
            return Node("lit", pos, float(value))
        if kind == "string":
            return Node("lit", pos, _unquote(value))
        if kind == "ident":
            if value in ("true", "false"):
                return Node("lit", pos, value == "true")
            if self.peek()[1] == "(":
                self.take()
                args: list[Node] = []
                if self.peek()[1] != ")":
                    args.append(self.expression())
                    while self.peek()[1] == ",":
                        self.take()
                        args.append(self.expression())
                self.expect(")")
                return Node("call", pos, value, tuple(args))
            return Node("var", pos, value)
        if kind == "op" and value == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if kind == "end":
            raise self.fail(token, "expected expression")
        raise self.fail(token, f"unexpected {value!r}")


def _unquote(literal: str) -> str:
    out, i, body = [], 0, literal[1:-1]
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], "\\" + body[i + 1]))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def parse(text: str) -> list[Part]:
    """The literal runs and interpolations of a template string; HILError on bad syntax."""
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$${", i):
            literal.append("${")
            i += 3
            continue
        if text.startswith("${", i):
            if literal:
                parts.append("".join(literal))
                literal = []
            parser = _Parser(text, i + 2)
            node = parser.expression()
            last = parser.take()
            if last[0] != "end":
                raise parser.fail(last, "expected expression end")
            parts.append(node)
            i = parser.pos
            continue
        literal.append(text[i])
        i += 1
    if literal:
        parts.append("".join(literal))
    return parts


# ---------------------------------------------------------------------- evaluation


def as_text(value: Value) -> str:
    """A value as HIL converts it to a string (Go's strconv formatting)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value == int(value) and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return str(value)


def _number(value: Value, node: Node) -> int | float:
    if isinstance(value, bool):
        raise HILError(f"{node.pos}: cannot use a bool in arithmetic")
    if isinstance(value, int | float):
        return value
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            raise HILError(f"{node.pos}: cannot parse {value!r} as a number") from None


def _truth(value: Value, node: Node) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise HILError(f"{node.pos}: expected a bool, got {as_text(value)!r}")


def _arith(op: str, a: int | float, b: int | float, node: Node) -> Value:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise HILError(f"{node.pos}: divide by zero")
    if op == "/":
        return int(a / b) if isinstance(a, int) and isinstance(b, int) else a / b
    return int(a - b * int(a / b)) if isinstance(a, int) and isinstance(b, int) else a % b


def evaluate(
    node: Node, scope: Mapping[str, Value], functions: Mapping[str, tuple[int, Function]]
) -> Value:
    kind = node.kind
    if kind == "lit":
        return node.value
    if kind == "var":
        if node.value not in scope:
            raise HILError(f"{node.pos}: unknown variable accessed: {node.value}")
        return scope[node.value]
    if kind == "call":
        if node.value not in functions:
            raise HILError(f"{node.pos}: unknown function called: {node.value}")
        arity, fn = functions[node.value]
        if len(node.args) != arity:
            raise HILError(
                f"{node.pos}: {node.value}: expected {arity} arguments, got {len(node.args)}"
            )
        return fn([evaluate(arg, scope, functions) for arg in node.args])
    if kind == "unary":
        value = evaluate(node.args[0], scope, functions)
        if node.value == "!":
            return not _truth(value, node)
        return -_number(value, node)
    if kind == "cond":
        cond = _truth(evaluate(node.args[0], scope, functions), node)
        return evaluate(node.args[1] if cond else node.args[2], scope, functions)
    op = node.value
    left = evaluate(node.args[0], scope, functions)
    if op in ("&&", "||"):
        first = _truth(left, node)
        if (op == "&&" and not first) or (op == "||" and first):
            return first
        return _truth(evaluate(node.args[1], scope, functions), node)
    right = evaluate(node.args[1], scope, functions)
    if op in ("==", "!="):
        same = as_text(left) == as_text(right)
        return same if op == "==" else not same
    a, b = _number(left, node), _number(right, node)
    if op in ("<", ">", "<=", ">="):
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
    return _arith(op, a, b, node)


def render(
    parts: list[Part], scope: Mapping[str, Value], functions: Mapping[str, tuple[int, Function]]
) -> str:
    return "".join(
        part if isinstance(part, str) else as_text(evaluate(part, scope, functions))
        for part in parts
    )
