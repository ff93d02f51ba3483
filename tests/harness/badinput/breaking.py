"""Breaking a well-formed body: fields given a wrong type, dropped or respelled; the body
encoded, then maybe broken whole; request paths and queries percent-encoded as drawn."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from tests.harness.badinput.values import (
    Big,
    Deep,
    Draw,
    S,
    deep,
    u64s,
    weighted,
    wrong,
    wrong_protected,
)

# ------------------------------------------------------------------ breaking an object


def snake(name: str) -> str:
    """ServiceID -> service_id, TaggedAddresses -> tagged_addresses, TTL -> ttl."""
    out = []
    for i, ch in enumerate(name):
        after_lower = i and name[i - 1].islower()
        before_lower = i and i + 1 < len(name) and name[i + 1].islower() and name[i - 1].isupper()
        if ch.isupper() and (after_lower or before_lower):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def respell(name: str, how: int) -> str:
    return (name.lower(), name.upper(), snake(name), name[:1].lower() + name[1:])[how % 4]


class F:
    """One field of a body: its good values, and whether it may be dropped, nulled or renamed."""

    __slots__ = ("good", "protected")

    def __init__(self, good: S, protected: bool = False) -> None:
        self.good, self.protected = good, protected


# What happens to a broken field (weights by repetition).
_FATES = ("wrong", "wrong", "wrong", "drop", "respell", "both", "wrong")


def obj(**fields: S | F) -> S:
    """A body with these fields, a few of them broken: a wrong type, dropped, respelled, or
    given twice under two spellings that disagree. Some bodies come out whole and valid.

    Protected fields are never dropped or null, and only respelled in ways Go's
    case-insensitive decoder still matches.
    """
    spec = [(name, f if isinstance(f, F) else F(f)) for name, f in fields.items()]
    index = st.integers(0, len(spec) - 1)
    fate_of = st.sampled_from(_FATES)
    how_many = st.sampled_from((1, 0, 1, 2, 1, 3, 1))  # broken fields per body

    @st.composite
    def build(draw: Draw) -> dict:
        fates = {draw(index): draw(fate_of) for _ in range(draw(how_many))}
        out: dict[str, Any] = {}
        for i, (name, field) in enumerate(spec):
            fate = fates.get(i)
            if fate is None:
                out[name] = draw(field.good)
                continue
            bad = wrong_protected if field.protected else wrong
            if fate == "wrong":
                out[name] = draw(bad)
            elif fate == "drop" and not field.protected:
                continue
            elif fate == "respell" or fate == "drop":
                how = draw(st.integers(0, 3))
                if field.protected and how == 2:
                    how = 0
                out[respell(name, how)] = draw(field.good)
            else:  # both: Go keeps the last one it reads
                out[name] = draw(field.good)
                out[respell(name, draw(st.integers(0, 3)))] = draw(bad)
        if not fates and draw(st.integers(0, 7)) == 0:  # a field Consul does not know
            out[draw(st.sampled_from(("Unknown", "__proto__", "", "constructor")))] = draw(wrong)
        return out

    return build()


# --------------------------------------------------------------------------- encoding


def encode(value: Any, ascii: bool = False) -> bytes:
    """JSON with `Deep` and `Big` placeholders expanded.

    Without `ascii`, a lone surrogate becomes invalid UTF-8 bytes; with it, a `\\ud800` escape.
    NaN and Infinity are written as such (malformed JSON, which is wanted here).
    """
    spliced: list[str] = []

    def default(v: Any) -> str:
        if isinstance(v, Deep):
            spliced.append(v.text())
            return f"\x01SPLICE{len(spliced) - 1}\x01"
        if isinstance(v, Big):
            return v.text()
        raise TypeError(type(v).__name__)

    out = json.dumps(value, default=default, ensure_ascii=ascii)
    for i, nest in enumerate(spliced):
        out = out.replace(json.dumps(f"\x01SPLICE{i}\x01"), nest, 1)
    return out.encode("utf-8", "surrogatepass")


def text_of(value: Any) -> str:
    return value.text() if isinstance(value, Big) else str(value)


@st.composite
def _malformed(draw: Draw, good: bytes) -> bytes:
    how = draw(st.integers(0, 9))
    if how == 0 and good:
        return good[: draw(st.integers(0, len(good) - 1))]  # truncated
    if how == 1:
        return good + draw(st.sampled_from((b"}", b"]", b",", b"x", b"{}", b" []", b"\x00")))
    if how == 2:
        return good.replace(b'"', b"'")
    if how == 3:
        return good.replace(b":", b"=", 1)
    if how == 4:
        return b"\xef\xbb\xbf" + good  # UTF-8 BOM
    if how == 5:
        return good.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass")
    if how == 6:
        return good.replace(b"}", b",}", 1).replace(b"]", b",]", 1)  # trailing commas
    if how == 7:
        return b"/* c */" + good
    if how == 8:
        return draw(st.sampled_from((b"NaN", b"[NaN]", b'{"a":Infinity}', b"-", b"0x10", b"{,}")))
    return draw(st.binary(max_size=48))


@st.composite
def _non_utf8(draw: Draw, good: bytes) -> bytes:
    junk = draw(
        st.sampled_from((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80", b"\xf4\x90\x80\x80"))
    )
    at = good.find(b'": "')
    return junk + good if at < 0 else good[: at + 4] + junk + good[at + 4 :]


_OTHER_TOPS = {"object": (b"[]", b"[{}]", b"[[]]"), "array": (b"{}", b'{"KV":{}}', b"[[]]")}


def body(value: S, top: str = "object") -> S:
    """The body of a JSON endpoint: mostly `value` with broken fields, else broken whole."""
    encoded = st.one_of(value.map(encode), value.map(lambda v: encode(v, ascii=True)))
    whole = st.one_of(
        encoded.flatmap(_malformed),
        encoded.flatmap(_non_utf8),
        deep.map(lambda d: d.text().encode()),
        st.sampled_from((*_OTHER_TOPS[top], b'"x"', b"1", b"null", b"true", b"", b" ", b"\n")),
    )
    return weighted((3, encoded), (1, whole))


# ------------------------------------------------------------------------ paths & queries


def seg(value: Any) -> str:
    """One path segment or query value, percent-encoded (`/` too), lone surrogates kept."""
    return quote(text_of(value).encode("utf-8", "surrogatepass"), safe="")


def query(**params: S) -> S:
    """`?a=1&b=...`: each parameter present or not, as drawn; a None value is a bare name."""
    names = list(params)

    @st.composite
    def build(draw: Draw) -> str:
        present = draw(st.sets(st.sampled_from(names), max_size=len(names)))
        parts = []
        for name in names:  # in a stable order
            if name in present:
                value = draw(params[name])
                parts.append(name if value is None else f"{name}={seg(value)}")
        return "?" + "&".join(parts) if parts else ""

    return build()


qnum = st.one_of(
    u64s, st.sampled_from(("", "abc", "-1", "1e3", "0x10", " 1", "+1", "1.0", "١", None))
)
qbool = st.sampled_from(("true", "false", "1", "0", "", "yes", "TRUE", "t", "2", None))
