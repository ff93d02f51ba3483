"""Go's regular expressions (RE2 syntax, Go's `regexp` package): checked as Go checks them,
run by RE2 itself.

    pattern = compile_go(r"^geo-(.+)$")    # GoRegexpError with Go's text when RE2 refuses it
    found = pattern.search(name)           # linear time in the name, as Go's is

The matching is Google's RE2 (the `re2` module of google-re2), the engine Go's package
mirrors: the same syntax and meaning (`$` is the end of the text, `\\d` `\\w` `\\s` ASCII), and
time linear in the input. Python's `re` backtracks: `^(a|a)*$` against a name of thirty `a`s
and a `!` would take minutes, with the agent's event loop (and so its Raft) stalled, on a
template any client may create under a default-allow ACL policy.

A template's `Regexp` must also be refused where Consul refuses it, with Go's words (RE2's C++
messages are not Go's), so it is first checked with Python's `re` on a translation: the pattern
is walked once (escapes, character classes, groups and repetitions) and rewritten where the two
dialects differ: `$` is the end of the text unless `(?m)` is set (Python's also matches before
a final newline), `\\z` is Python's `\\Z`, `\\d` `\\w` `\\s` `\\b` are ASCII (re.ASCII), POSIX
classes (`[[:alpha:]]`) become ranges, `\\Q...\\E` is quoted text, `(?<name>` is a named group,
and a `{` that does not open a repetition is a literal (Python reads `a{,3}` as one); Unicode
classes (`\\pL`, `\\p{Greek}`) and the ungreedy flag `(?U)`, which Python lacks, are left to
RE2 to judge. What RE2 does not have is refused with Go's message (`error parsing regexp:
invalid or unsupported Perl syntax: ` + "`(?=`"): lookarounds, atomic groups, backreferences,
possessive repetitions, repeat counts over 1000. Python's remaining refusals are translated to
Go's wording.
"""

from __future__ import annotations

import re

import re2

_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7F",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1F\\x7F",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_FLAGS = re.compile(r"\(\?([imsU]*)(?:-[imsU]*)?[:)]")
_PYTHON_CODES = (
    ("missing ), unterminated subpattern", "missing closing )"),
    ("unbalanced parenthesis", "unexpected )"),
    ("nothing to repeat", "missing argument to repetition operator"),
    ("multiple repeat", "invalid nested repetition operator"),
    ("unterminated character set", "missing closing ]"),
    ("bad escape", "invalid escape sequence"),
    ("bad character range", "invalid character class range"),
    ("min repeat greater than max repeat", "invalid repeat count"),
    ("unknown flag", "invalid or unsupported Perl syntax"),
    ("missing flag", "missing argument to repetition operator"),
)


_MAX_NESTING = 1000  # Go's syntax.maxHeight: deeper is "expression nests too deeply"
_RE2_CODES = {  # RE2's words -> Go's
    "invalid repetition size": "invalid repeat count",
    "missing )": "missing closing )",
    "missing ]": "missing closing ]",
}
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refusal is raised to the caller, not logged to stderr


class GoRegexpError(ValueError):
    """RE2 refuses the pattern; `str()` is Go's `error parsing regexp: <code>: `x``."""

    def __init__(self, code: str, fragment: str) -> None:
        super().__init__(f"error parsing regexp: {code}: `{fragment}`")


def compile_go(pattern: str) -> re2._Regexp:
    """The pattern compiled by RE2, after Go's syntax checks; GoRegexpError with Go's text."""
    translated = _translate(pattern)
    try:
        re.compile(translated, re.ASCII)
    except re.error as exc:
        for python, go in _PYTHON_CODES:
            if exc.msg.startswith(python):
                fragment = _fragment(pattern, go)
                if python == "bad character range":  # Go quotes the range alone, as Python
                    fragment = exc.msg.removeprefix(python).strip() or fragment
                raise GoRegexpError(go, fragment) from None
        raise GoRegexpError(exc.msg, pattern) from None
    except (RecursionError, OverflowError, MemoryError):  # sre's own limits, not Go's
        if _nesting(pattern) > _MAX_NESTING:
            raise GoRegexpError("expression nests too deeply", pattern) from None
        # deeper than sre can check but within Go's limit: RE2 alone judges the syntax
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:  # what the translation let through and RE2 does not take
        why = exc.args[0] if exc.args else ""
        text = why.decode("utf-8", "replace") if isinstance(why, bytes) else str(why)
        if "too large" in text:
            raise GoRegexpError("expression too large", pattern) from None
        code, _, fragment = text.partition(": ")  # RE2's "<code>: <fragment>", as Go's
        raise GoRegexpError(_RE2_CODES.get(code, code), fragment or pattern) from None


def _nesting(pattern: str) -> int:
    """How deep the pattern's groups nest (escaped parentheses aside)."""
    depth = deepest = 0
    escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth = max(0, depth - 1)
    return deepest


def _fragment(pattern: str, code: str) -> str:
    """What Go quotes for a refusal found only by Python: the whole pattern for unbalanced
    groups, else the first piece that fits the code."""
    if code == "missing closing ]":
        start = pattern.find("[")
        return pattern[start:] if start >= 0 else pattern
    if code == "missing argument to repetition operator":
        found = re.search(r"(?:^|[(|])([*+?]|\{\d)", pattern)
        return found.group(1)[0] if found else pattern
    if code == "invalid nested repetition operator":
        found = re.search(r"[*+?}][*+?]", pattern)
        return found.group() if found else pattern
    return pattern


def _translate(pattern: str) -> str:
    multiline = any("m" in f.group(1) for f in _FLAGS.finditer(pattern))
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            piece, i = _escape(pattern, i)
            out.append(piece)
            continue
        if char == "[":
            piece, i = _char_class(pattern, i)
            out.append(piece)
            continue
        if char == "(" and pattern.startswith("(?", i):
            out.append(_group_open(pattern, i))
            i += 2
            if pattern.startswith("(?<", i - 2) and not pattern.startswith(("(?<=", "(?<!"), i - 2):
                out[-1] = "(?P<"
                i += 1
            continue
        if char in "*+?":
            out.append(char)
            i += 1
            if i < n and pattern[i] == "+":
                raise GoRegexpError("invalid nested repetition operator", char + "+")
            continue
        if char == "{":
            repeat = _REPEAT.match(pattern, i)
            if repeat is None:
                out.append("\\{")  # not a repetition: a literal brace, as in RE2
                i += 1
                continue
            low, high = int(repeat.group(1)), repeat.group(3)
            if low > 1000 or (high and int(high) > 1000):
                raise GoRegexpError("invalid repeat count", repeat.group())
            if high and int(high) < low:
                raise GoRegexpError("invalid repeat count", repeat.group())
            out.append(repeat.group())
            i = repeat.end()
            if i < n and pattern[i] == "+":
                raise GoRegexpError("invalid nested repetition operator", repeat.group() + "+")
            continue
        if char == "$" and not multiline:
            out.append("\\Z")
            i += 1
            continue
        out.append(char)
        i += 1
    return _FLAGS.sub(_without_ungreedy, "".join(out))


def _without_ungreedy(found: re.Match[str]) -> str:
    """A flag group with Go's `U` (ungreedy, which Python lacks) dropped, for the check."""
    text = found.group()
    if "U" not in text:
        return text
    on, dash, off = text[2:-1].partition("-")
    on, off = on.replace("U", ""), off.replace("U", "")
    flags = on + (dash if off else "") + off
    end = text[-1]
    return f"(?{flags}{end}" if flags else ("(?:" if end == ":" else "(?:)")


def _group_open(pattern: str, i: int) -> str:
    for perl in ("(?=", "(?!", "(?<=", "(?<!", "(?>", "(?#", "(?(", "(?|"):
        if pattern.startswith(perl, i):
            raise GoRegexpError("invalid or unsupported Perl syntax", perl)
    return "(?"


def _escape(pattern: str, i: int, in_class: bool = False) -> tuple[str, int]:
    if i + 1 >= len(pattern):
        raise GoRegexpError("trailing backslash at end of expression", "")
    follow = pattern[i + 1]
    if follow in "123456789" or follow in "Z":
        raise GoRegexpError("invalid escape sequence", pattern[i : i + 2])
    if follow == "z" and not in_class:
        return "\\Z", i + 2
    if follow in "pP":  # a Unicode class: RE2 knows the names, Python's re none of them
        end = pattern.find("}", i + 2) + 1 if pattern.startswith("{", i + 2) else i + 3
        if end <= 0 or end > len(pattern):
            raise GoRegexpError("invalid character class range", pattern[i:])
        return "x", end  # a stand-in for the check; RE2 refuses an unknown name
    if follow == "x" and pattern.startswith("{", i + 2):  # \x{10FFFF}: Go's, not Python's
        end = pattern.find("}", i + 3)
        digits = pattern[i + 3 : end] if end > 0 else ""
        if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise GoRegexpError(
                "invalid escape sequence", pattern[i : end + 1 if end > 0 else None]
            )
        if int(digits, 16) > 0x10FFFF:
            raise GoRegexpError("invalid escape sequence", pattern[i : end + 1])
        return "x", end + 1  # a stand-in for the check; RE2 reads the escape itself
    if follow == "Q" and not in_class:
        end = pattern.find("\\E", i + 2)
        stop = len(pattern) if end < 0 else end
        quoted = re.escape(pattern[i + 2 : stop])
        return quoted, (stop if end < 0 else end + 2)
    return pattern[i : i + 2], i + 2


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """A `[...]` class, POSIX classes expanded; an unclosed one is Go's missing-] error."""
    out, start, n = ["["], i, len(pattern)
    i += 1
    if i < n and pattern[i] == "^":
        out.append("^")
        i += 1
    first = True
    while i < n:
        char = pattern[i]
        if char == "]" and not first:
            out.append("]")
            return "".join(out), i + 1
        first = False
        if char == "\\":
            piece, i = _escape(pattern, i, in_class=True)
            out.append(piece)
            continue
        if pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2 : end] if end > 0 else ""
            ranges = _POSIX.get(name.removeprefix("^"))
            if ranges is None and end > 0 and re.fullmatch(r"\^?[a-z]+", name):
                raise GoRegexpError("invalid character class range", pattern[i : end + 2])
            whole = out == ["["] and pattern.startswith("]", end + 2)
            if ranges is not None and (not name.startswith("^") or whole):
                # [[:^alpha:]] alone is [^A-Za-z]; a negated one among others has no
                # Python spelling and stays as written
                out.append(("^" if name.startswith("^") else "") + ranges)
                i = end + 2
                continue
        if char == "[":
            out.append("\\[")  # a bracket inside a class is a literal in RE2
            i += 1
            continue
        out.append(char)
        i += 1
    raise GoRegexpError("missing closing ]", pattern[start:])
