"""Where Go's `json.Decoder` would stop on a request body, and what it would say.

Consul reads bodies with `json.NewDecoder(body).Decode(&out)`. That call reads one JSON value
and stops: bytes after it are never looked at, and a value that breaks off is `unexpected
EOF` (a body of nothing but white space is `EOF`). Malformed JSON is refused with the
scanner's words: `invalid character 'x' looking for beginning of value`, `... after object
key`, `... in string literal` and so on, naming the byte as Go's quoteChar does.

`first_value(data, max_depth)` walks the bytes the way that scanner does (a stack of
object/array states, string escapes, number and literal spelling) and answers a `Scan`: the
end offset of the first value when it is well formed, else Go's message; nesting beyond
`max_depth` stops the walk (`too_deep`), so a hostile body cannot exhaust the stack. It only
judges syntax; the caller decodes the value itself.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Scan", "first_value", "quote_char"]

_SPACE = b" \t\r\n"
_HEX = b"0123456789abcdefABCDEF"
_LITERALS = {ord("t"): b"true", ord("f"): b"false", ord("n"): b"null"}

# What the scanner expects after a value, by the innermost container being parsed.
_OBJECT_KEY, _OBJECT_VALUE, _ARRAY_VALUE = "key", "value", "array"


@dataclass(frozen=True)
class Scan:
    end: int  # offset just past the first value (meaningful when error is None)
    error: str | None  # Go's message: "EOF", "unexpected EOF" or a syntax error
    too_deep: bool = False  # containers nest deeper than the walk was allowed to go


def quote_char(c: int) -> str:
    """encoding/json's quoteChar: the byte taken as a code point, quoted as strconv.Quote
    quotes it, between single quotes."""
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    escapes = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}
    if c in escapes:
        return f"'{escapes[c]}'"
    if c < 0x20 or c == 0x7F:
        return f"'\\x{c:02x}'"
    if 0x80 <= c <= 0xA0 or c == 0xAD:  # not printable for strconv.IsPrint
        return f"'\\u{c:04x}'"
    return f"'{chr(c)}'"


class _SyntaxError(Exception):
    pass


class _EOF(Exception):
    pass


class _TooDeep(Exception):
    pass


def _invalid(c: int, context: str) -> _SyntaxError:
    return _SyntaxError(f"invalid character {quote_char(c)} {context}")


class _Walker:
    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.i = 0
        self.depth = 0
        self.max_depth = max_depth

    def peek(self) -> int:
        if self.i >= len(self.data):
            raise _EOF
        return self.data[self.i]

    def skip_space(self) -> int:
        while True:
            c = self.peek()
            if c not in _SPACE:
                return c
            self.i += 1

    def value(self, context: str = "looking for beginning of value") -> None:
        c = self.skip_space()
        if c == ord("{"):
            self.i += 1
            self.container(ord("}"), _OBJECT_KEY)
        elif c == ord("["):
            self.i += 1
            self.container(ord("]"), _ARRAY_VALUE)
        elif c == ord('"'):
            self.i += 1
            self.string()
        elif c == ord("-") or ord("0") <= c <= ord("9"):
            self.number()
        elif c in _LITERALS:
            self.literal(_LITERALS[c])
        else:
            raise _invalid(c, context)

    def container(self, close: int, first: str) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise _TooDeep
        c = self.skip_space()
        if c == close:  # an empty object or array
            self.i += 1
            self.depth -= 1
            return
        while True:
            if first == _OBJECT_KEY:
                if c != ord('"'):
                    raise _invalid(c, "looking for beginning of object key string")
                self.i += 1
                self.string()
                c = self.skip_space()
                if c != ord(":"):
                    raise _invalid(c, "after object key")
                self.i += 1
                self.value()
                after = "after object key:value pair"
            else:
                self.value()
                after = "after array element"
            c = self.skip_space()
            self.i += 1
            if c == close:
                self.depth -= 1
                return
            if c != ord(","):
                raise _invalid(c, after)
            c = self.skip_space()

    def string(self) -> None:
        while True:
            c = self.peek()
            self.i += 1
            if c == ord('"'):
                return
            if c < 0x20:
                raise _invalid(c, "in string literal")
            if c == ord("\\"):
                c = self.peek()
                self.i += 1
                if c == ord("u"):
                    for _ in range(4):
                        h = self.peek()
                        if h not in _HEX:
                            raise _invalid(h, "in \\u hexadecimal character escape")
                        self.i += 1
                elif c not in b'"\\/bfnrt':
                    raise _invalid(c, "in string escape code")

    def digits(self) -> None:
        while self.i < len(self.data) and ord("0") <= self.data[self.i] <= ord("9"):
            self.i += 1

    def number(self) -> None:
        if self.data[self.i] == ord("-"):
            self.i += 1
            c = self.peek()
            if not ord("0") <= c <= ord("9"):
                raise _invalid(c, "in numeric literal")
        if self.data[self.i] == ord("0"):
            self.i += 1
        else:
            self.digits()
        if self.i < len(self.data) and self.data[self.i] == ord("."):
            self.i += 1
            c = self.peek()
            if not ord("0") <= c <= ord("9"):
                raise _invalid(c, "after decimal point in numeric literal")
            self.digits()
        if self.i < len(self.data) and self.data[self.i] in b"eE":
            self.i += 1
            c = self.peek()
            if c in b"+-":
                self.i += 1
                c = self.peek()
            if not ord("0") <= c <= ord("9"):
                raise _invalid(c, "in exponent of numeric literal")
            self.digits()

    def literal(self, word: bytes) -> None:
        self.i += 1
        for expected in word[1:]:
            c = self.peek()
            if c != expected:
                spelled = word.decode()
                raise _invalid(c, f"in literal {spelled} (expecting {quote_char(expected)})")
            self.i += 1


def first_value(data: bytes, max_depth: int = 64) -> Scan:
    """Where Go's Decoder.Decode ends the first JSON value of `data`, or its error."""
    walker = _Walker(data, max_depth)
    try:
        walker.value()
    except _TooDeep:
        return Scan(walker.i, None, too_deep=True)
    except _SyntaxError as exc:
        return Scan(walker.i, str(exc))
    except _EOF:
        blank = all(c in _SPACE for c in data)
        return Scan(len(data), "EOF" if blank else "unexpected EOF")
    return Scan(walker.i, None)
