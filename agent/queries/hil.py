"""HIL, the interpolation language of Consul's prepared query templates (hashicorp/hil).

    parts = parse("${name.prefix}-${match(1)}")      # HILError on a syntax error
    text = render(parts, {"name.prefix": "geo-"}, {"match": (1, fn)})

A template string is literal text with `${ expr }` interpolations (`$$` is a literal `$`).
Expressions are HIL's: string literals (escapes `\\\\`, `\\n`, `\\"`), integers, floats,
`true`/`false`, variables (dotted names such as `name.full`), function calls, `+ - * / %`,
comparisons, `&& || !` and `cond ? a : b`, with HIL's precedence. Evaluation follows HIL too:
every identifier is checked before anything is evaluated, every node is evaluated (no
short-circuit), arithmetic takes the type of its first int or float operand and converts the
others (a string through Go's ParseInt/ParseFloat), integer division truncates and by zero is
an error, a unary minus is `0 - x`, and each part of the output becomes a string as HIL's
builtins print it (Go's strconv). Integers are Go's 64-bit ints: a literal past them is HIL's
"invalid integer", and arithmetic wraps as Go's does. Messages are HIL's, positions
`line:column` counted in characters, since Consul puts them into the errors a client sees.

One limit is this module's own: HIL (Go, growable stacks) parses any depth, but Python's
stack is bounded, so an expression nested deeper than MAX_NESTING (parentheses, calls, unary
operators, conditionals) or whose tree is deeper than MAX_DEPTH (a chain of a thousand `+`)
is refused as a parse error, where it would otherwise end in a RecursionError.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

Value = str | int | float | bool
Function = Callable[[list[Value]], Value]
# name -> (the Python types of its arguments, as HIL's ast.Type list; the callback)
Functions = Mapping[str, tuple[tuple[type, ...], Function]]


MAX_NESTING = 48  # each level costs the parser about nine Python frames
MAX_DEPTH = 200  # each level of the tree costs the checker and the evaluator two frames
_INT_MIN, _INT_SPAN = -(2**63), 2**64


class HILError(ValueError):
    pass


def _int64(value: int) -> int:
    """`value` wrapped to Go's 64-bit int, as Go's arithmetic wraps."""
    return (value - _INT_MIN) % _INT_SPAN + _INT_MIN


@dataclass(frozen=True)
class Node:
    kind: str  # "lit", "var", "call", "arith", "cond"
    pos: str  # "line:column" of the node, as HIL reports it
    value: Any = None  # literal value, variable or function name, operator
    args: tuple[Node, ...] = ()
    depth: int = 1  # of the tree under this node, itself included


Part = str | Node


# ---------------------------------------------------------------------- scanning

_SINGLE = set("()[],.+-*/%?:")
_DOUBLE = {"!=": "!=", "<=": "<=", ">=": ">=", "==": "==", "&&": "&&", "||": "||"}
_IDENT_START = re.compile(r"[^\W\d]", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class _Token:
    kind: str  # "int", "float", "bool", "ident", "op", "oquote", "end", "eof", "invalid"
    text: str
    pos: str

    def __str__(self) -> str:  # as HIL's Token.String names it in an expectation error
        if self.kind == "eof":
            return "end of string"
        if self.kind == "invalid":
            return f"invalid sequence {_go_quote(self.text)}"
        if self.kind == "int":
            return f"integer {self.text}"
        if self.kind == "float":
            return f"float {self.text}"
        if self.kind == "oquote":
            return "opening quote"
        if self.text in ("&&", "||", "!=", ">=", "<="):
            return self.text
        return _go_quote(self.text)


def _go_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class _Scanner:
    """Positions are tracked as HIL's scanner does: lines from 1, columns in characters."""

    def __init__(self, text: str, at: int) -> None:
        self.text = text
        self.at = at

    def pos(self, at: int | None = None) -> str:
        at = self.at if at is None else at
        line = self.text.count("\n", 0, at) + 1
        return f"{line}:{at - (self.text.rfind(chr(10), 0, at) + 1) + 1}"

    def token(self) -> _Token:
        text = self.text
        while self.at < len(text) and text[self.at] in " \t\r\n":
            self.at += 1
        start = self.at
        if start >= len(text):
            return _Token("eof", "", self.pos())
        char, pair = text[start], text[start : start + 2]
        if pair in _DOUBLE:
            self.at += 2
            return _Token("op", pair, self.pos(start))
        if char in _SINGLE or char in "<>!":
            self.at += 1
            return _Token("op", char, self.pos(start))
        if char == "}":
            self.at += 1
            return _Token("end", char, self.pos(start))
        if char == '"':
            self.at += 1
            return _Token("oquote", char, self.pos(start))
        if char.isdigit():
            found = _NUMBER.match(text, start)
            assert found is not None
            self.at = found.end()
            kind = "float" if "." in found.group() else "int"
            return _Token(kind, found.group(), self.pos(start))
        if char == "_" or _IDENT_START.match(char):
            end = start + 1
            while end < len(text) and (text[end] in "_-.*" or text[end].isalnum()):
                end += 1
            self.at = end
            word = text[start:end]
            return _Token("bool" if word in ("true", "false") else "ident", word, self.pos(start))
        self.at += 1
        return _Token("invalid", char, self.pos(start))

    def string(self) -> str:
        """The rest of a quoted string (after its opening quote), escapes applied."""
        text, out, start = self.text, [], self.at
        while self.at < len(text):
            char = text[self.at]
            if char == '"':
                self.at += 1
                return "".join(out)
            if char == "$" and text.startswith("$$", self.at):
                out.append("$")
                self.at += 2
                continue
            if char == "$" and text.startswith("${", self.at):
                raise HILError(
                    f"parse error at {self.pos()}: interpolation inside a quoted string "
                    "is not supported in prepared query templates"
                )
            if char == "\\":
                follow = text[self.at + 1 : self.at + 2]
                if follow in ("\\", "n", '"'):
                    out.append({"\\": "\\", "n": "\n", '"': '"'}[follow])
                    self.at += 2
                    continue
                what = "invalid" if follow else "unfinished"
                raise HILError(f"parse error at {self.pos()}: {what} backslash escape sequence")
            out.append(char)
            self.at += 1
        raise HILError(
            f'parse error at {self.pos(start)}: expected "${{" but found invalid sequence '
            f"{_go_quote(text[start:])}"
        )


# ---------------------------------------------------------------------- parsing

_LEVELS = (("||",), ("&&",), ("==", "!="), (">", ">=", "<", "<="), ("+", "-"), ("*", "/", "%"))


class _Parser:
    def __init__(self, scanner: _Scanner) -> None:
        self.scanner = scanner
        self.ahead: _Token | None = None
        self.nesting = 0

    def node(self, kind: str, pos: str, value: Any = None, args: tuple[Node, ...] = ()) -> Node:
        depth = 1 + max((arg.depth for arg in args), default=0)
        if depth > MAX_DEPTH:
            raise HILError(f"parse error at {pos}: expression nested too deeply")
        return Node(kind, pos, value, args, depth)

    def enter(self, pos: str) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise HILError(f"parse error at {pos}: expression nested too deeply")

    def peek(self) -> _Token:
        if self.ahead is None:
            self.ahead = self.scanner.token()
        return self.ahead

    def take(self) -> _Token:
        token = self.peek()
        self.ahead = None
        return token

    @staticmethod
    def expected(wanted: str, got: _Token) -> HILError:
        return HILError(f"parse error at {got.pos}: expected {wanted} but found {got}")

    def require(self, text: str, wanted: str) -> None:
        token = self.take()
        if token.text != text or token.kind not in ("op", "end"):
            raise self.expected(wanted, token)

    def expression(self) -> Node:
        start = self.peek().pos
        self.enter(start)
        cond = self.binary(0)
        if self.peek().text != "?" or self.peek().kind != "op":
            self.nesting -= 1
            return cond
        self.take()
        yes = self.expression()
        colon = self.take()
        if colon.text != ":":
            raise self.expected(":", colon)
        no = self.expression()
        self.nesting -= 1
        return self.node("cond", start, None, (cond, yes, no))

    def binary(self, level: int) -> Node:
        if level == len(_LEVELS):
            return self.term()
        start = self.peek().pos
        left = self.binary(level + 1)
        while self.peek().kind == "op" and self.peek().text in _LEVELS[level]:
            op = self.take().text
            left = self.node("arith", start, op, (left, self.binary(level + 1)))
        return left

    def term(self) -> Node:
        token = self.peek()
        kind, text, pos = token.kind, token.text, token.pos
        if kind == "op" and text == "(":
            self.take()
            inner = self.expression()
            self.require(")", '")"')
            return inner
        if kind == "oquote":
            self.take()
            return Node("lit", pos, self.scanner.string())
        if kind == "int":
            self.take()
            value = int(text)
            if _int64(value) != value:
                raise HILError(
                    f"parse error at {pos}: invalid integer: strconv.Atoi: parsing "
                    f"{_go_quote(text)}: value out of range"
                )
            return Node("lit", pos, value)
        if kind == "float":
            self.take()
            value = float(text)
            if value in (float("inf"), float("-inf")):
                raise HILError(
                    f"parse error at {pos}: invalid float: strconv.ParseFloat: parsing "
                    f"{_go_quote(text)}: value out of range"
                )
            return Node("lit", pos, value)
        if kind == "bool":
            self.take()
            return Node("lit", pos, text == "true")
        if kind == "op" and text in ("-", "!"):  # HIL's 0 - x and false == x
            self.take()
            self.enter(pos)
            operand = self.term()
            self.nesting -= 1
            zero = Node("lit", pos, 0 if text == "-" else False)
            return self.node("arith", pos, "-" if text == "-" else "==", (zero, operand))
        if kind == "ident":
            return self.scope_interaction()
        raise self.expected("expression", token)

    def scope_interaction(self) -> Node:
        first = self.take()
        if self.peek().text != "(" or self.peek().kind != "op":
            if self.peek().text == "[" and self.peek().kind == "op":
                raise HILError(
                    f"{first.pos}: indexing is not supported in prepared query templates"
                )
            return Node("var", first.pos, first.text)
        self.take()
        args: list[Node] = []
        while not (self.peek().kind == "op" and self.peek().text == ")"):
            args.append(self.expression())
            if self.peek().kind == "op" and self.peek().text == ",":
                self.take()
                continue
            break
        self.require(")", '")"')
        return self.node("call", first.pos, first.text, tuple(args))


def parse(text: str) -> list[Part]:
    """The literal runs and interpolations of a template string; HILError on bad syntax."""
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            literal.append("$")
            i += 2
            continue
        if text.startswith("${", i):
            if literal:
                parts.append("".join(literal))
                literal = []
            parser = _Parser(_Scanner(text, i + 2))
            parts.append(parser.expression())
            parser.require("}", '"}"')
            i = parser.scanner.at
            continue
        literal.append(text[i])
        i += 1
    if literal:
        parts.append("".join(literal))
    return parts


# ---------------------------------------------------------------------- checking


def check_identifiers(parts: list[Part], scope: Mapping[str, Value], functions: Functions) -> None:
    """HIL's IdentifierCheck, run before anything is evaluated: every variable known, every
    function known and called with its number of arguments (first failure, in HIL's order)."""
    for part in parts:
        if isinstance(part, Node):
            _check(part, scope, functions)


def _check(node: Node, scope: Mapping[str, Value], functions: Functions) -> None:
    for child in node.args:
        _check(child, scope, functions)
    if node.kind == "var" and node.value not in scope:
        raise HILError(f"{node.pos}: unknown variable accessed: {node.value}")
    if node.kind == "call":
        if node.value not in functions:
            raise HILError(f"{node.pos}: unknown function called: {node.value}")
        arity = len(functions[node.value][0])
        if len(node.args) != arity:
            raise HILError(
                f"{node.pos}: {node.value}: expected {arity} arguments, got {len(node.args)}"
            )


# ---------------------------------------------------------------------- evaluation

_TYPE_NAMES = {bool: "TypeBool", int: "TypeInt", float: "TypeFloat", str: "TypeString"}
_PRINTABLE = {bool: "type bool", int: "type int", float: "type float", str: "type string"}


def _type_error(node: Node, message: str) -> HILError:
    line, column = node.pos.split(":")
    return HILError(f"At column {column}, line {line}: {message}")


def _go_int(text: str) -> int:
    """Go's strconv.ParseInt(text, 0, 0): a sign, then 0x/0o/0b or a leading 0 (octal)."""
    sign, body = (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)
    try:
        if body != body.strip() or not body:
            raise ValueError(text)
        if len(body) > 1 and body[0] == "0" and body[1] not in "xXoObB":
            value = int(body, 8)
        else:
            value = int(body, 0)
    except ValueError:
        raise HILError(
            f"__builtin_StringToInt: strconv.ParseInt: parsing {_go_quote(text)}: invalid syntax"
        ) from None
    value = -value if sign == "-" else value
    if _int64(value) != value:
        raise HILError(
            f"__builtin_StringToInt: strconv.ParseInt: parsing {_go_quote(text)}: "
            "value out of range"
        )
    return value


def _go_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise HILError(
            f"__builtin_StringToFloat: strconv.ParseFloat: parsing {_go_quote(text)}: "
            "invalid syntax"
        ) from None


def _go_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise HILError(
        f"__builtin_StringToBool: strconv.ParseBool: parsing {_go_quote(text)}: invalid syntax"
    )


def _convert(
    value: Value, kind: type, node: Node, what: str, names: Mapping[type, str] = _TYPE_NAMES
) -> Value:
    """HIL's implicit conversions; anything else is a type error naming both types."""
    have = type(value)
    if have is kind:
        return value
    if kind is str:
        return as_text(value)
    if have is str:
        text = str(value)
        return (
            _go_int(text) if kind is int else _go_float(text) if kind is float else _go_bool(text)
        )
    if kind is int and have is float:
        # Go's conversion of a float past int64 (or NaN, an infinity) gives int64's minimum
        # on amd64; Python's int() would raise
        number = float(value)
        return int(number) if -(2**63) <= number < 2**63 else _INT_MIN
    if kind is float and have is int:
        return float(value)
    raise _type_error(node, what.format(want=names[kind], have=names[have]))


def _arith(node: Node, values: list[Value]) -> Value:
    op = node.value
    if op in ("&&", "||"):
        flags = [
            _convert(v, bool, node, "logical operators require boolean operands, not {have}")
            for v in values
        ]
        return all(flags) if op == "&&" else any(flags)
    if op in ("==", "!=", "<", ">", "<=", ">="):
        kind = type(values[0])
        a, b = (
            _convert(v, kind, node, f"operand {n} should be {{want}}, got {{have}}")
            for n, v in enumerate(values, start=1)
        )
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if kind not in (int, float):
            raise _type_error(node, "<, >, <= and >= may apply only to int and float values")
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]  # type: ignore[operator]
    kind = next((type(v) for v in values if type(v) in (int, float)), int)
    a, b = (
        _convert(v, kind, node, f"operand {n} should be {{want}}, got {{have}}")
        for n, v in enumerate(values, start=1)
    )
    if kind is float and op == "%":
        raise _type_error(node, "modulo cannot be used with floats")
    if op in ("+", "-", "*"):
        result = a + b if op == "+" else a - b if op == "-" else a * b  # type: ignore[operator]
        return _int64(result) if kind is int else result
    if kind is int:
        if b == 0:
            raise HILError("__builtin_IntMath: divide by zero")
        quotient = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)  # type: ignore[operator]
        return _int64(quotient) if op == "/" else a - b * quotient  # type: ignore[operator]
    if b == 0:
        return float("nan") if a == 0 else float("inf") if a > 0 else float("-inf")  # type: ignore[operator]
    return a / b  # type: ignore[operator]


def evaluate(node: Node, scope: Mapping[str, Value], functions: Functions) -> Value:
    """One checked expression's value; every child is evaluated first, as HIL's visitor does."""
    values = [evaluate(child, scope, functions) for child in node.args]
    if node.kind == "lit":
        return node.value
    if node.kind == "var":
        return scope[node.value]
    if node.kind == "call":
        kinds, fn = functions[node.value]
        what = f"{node.value}: argument {{n}} should be {{want}}, got {{have}}"
        args = [
            _convert(v, kind, node, what.replace("{n}", str(n)), _PRINTABLE)
            for n, (v, kind) in enumerate(zip(values, kinds, strict=True), start=1)
        ]
        return fn(args)
    if node.kind == "cond":
        cond = _convert(values[0], bool, node, "condition must be type bool, not {have}")
        return values[1] if cond else values[2]
    return _arith(node, values)


def as_text(value: Value) -> str:
    """A value as HIL's builtins print it (strconv.FormatBool, FormatInt, FormatFloat 'g')."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _format_float(value)
    return str(value)


def _format_float(value: float) -> str:
    """Go's strconv.FormatFloat(v, 'g', -1, 64): the shortest digits that round-trip, in
    exponent form when the exponent is below -4 or at least 6 (e.g. 1e+06, 1.5e-05)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    prefix = "-" if sign else ""
    text = "".join(map(str, digits))
    if text.strip("0") == "":
        return prefix + "0"
    point = len(text) + int(exponent)  # digits before the decimal point
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def render(parts: list[Part], scope: Mapping[str, Value], functions: Functions) -> str:
    """Check, then evaluate, every interpolation and join the output as a string."""
    check_identifiers(parts, scope, functions)
    return "".join(
        part if isinstance(part, str) else as_text(evaluate(part, scope, functions))
        for part in parts
    )
