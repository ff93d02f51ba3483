"""Leaf values: edge numbers, odd strings, wrong types, and the small pools names come from.

Large values are placeholders (`Big`, `Deep`) expanded at encoding: a 70 KB string held by a
strategy would make Hypothesis repr it, again and again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

Request = tuple[str, str, bytes]
S = st.SearchStrategy
Draw = Callable[[S], Any]

KNOWN_KV_PREFIX = "known/"  # the generators never write outside fz/ (checked by the test)
KNOWN_SERVICE = "known-svc"

# Integers at and past the edges of Go's int64/uint64, and the ones JSON decoders choke on.
EDGE_INTS = (
    0, 1, -1, 255, 65535, 65536, 2**31 - 1, 2**31, 2**32, 2**53 + 1,
    2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 1, -(2**63), -(2**63) - 1, 10**30, 2**200,
)  # fmt: skip
EDGE_FLOATS = (0.5, -0.0, 1.5, 1e-320, 1.8e19, 1e308, -1e308, 3.0, -2.5)


class Big:
    """`n` copies of `unit`, built when encoded (Hypothesis reprs what a strategy holds)."""

    __slots__ = ("n", "unit")

    def __init__(self, n: int, unit: str) -> None:
        self.n, self.unit = n, unit

    def text(self) -> str:
        return self.unit * self.n

    def __repr__(self) -> str:
        return f"Big({self.n}, {self.unit!r})"


class Deep:
    """`depth` levels of `[` or `{"a":` around a 1, spliced in by `encode`."""

    __slots__ = ("depth", "opener")

    def __init__(self, depth: int, opener: str) -> None:
        self.depth, self.opener = depth, opener

    def text(self) -> str:
        closer = "]" if self.opener == "[" else "}"
        return self.opener * self.depth + "1" + closer * self.depth

    def __repr__(self) -> str:
        return f"Deep({self.depth}, {self.opener!r})"


def mix(common: tuple, rare: tuple = (), times: int = 1) -> S:
    """One draw (one choice, the cheapest kind) from `common`, weighted `times`, or `rare`.
    Rare values sit in the middle, so the first element, the engine's simplest example, and
    the last, a bound it likes to try, are common ones."""
    half = common * max(1, times // 2)
    return st.sampled_from(half + tuple(rare) + common * max(1, times - times // 2))


def weighted(*pairs: tuple[int, S]) -> S:
    """A weighted one_of. Repeating a branch in `st.one_of` does not weigh it: one_of drops
    the repeats (and flattens nested one_ofs, which skews the weights of their branches)."""
    return st.sampled_from([s for weight, s in pairs for _ in range(weight)]).flatmap(lambda s: s)


ODD_STRINGS = (
    "", " ", "\x00", "a\x00b", "\ud800", "\udfff", "..", "../..", "/", "a/b", ".",
    "\u202e", "💥", "ǅ", "%00", "%", "null", "true", "1", "-1", "1e3", "0x10",
    "99999999h", "-5s", "1.5", "\t\n", "\\", '"', "<script>", "é", "ﬀ", "K",
)  # fmt: skip
BIGS = tuple(Big(n, unit) for n in (257, 1024, 65_536, 70_000) for unit in ("n", "é", "/"))
DEEPS = tuple(Deep(d, o) for d in (64, 999, 3000, 10_000, 100_000) for o in ("[", '{"a":'))
deep = st.one_of(mix(DEEPS), st.builds(Deep, st.integers(32, 5000), st.just("[")))
DURATIONS_OK = ("10s", "1m", "0s", "15s", "1h", "500ms", "1h2m3s", "2562047h")
DURATIONS_BAD = (
    "99999999h", "-1s", "-10s", "1x", "10", "s", "1e3s", "9223372036854775808ns", "1.5.5s",
    "2562048h", "—1s", "",
)  # fmt: skip
TEXTS = ("", "a", "note", "fz text", "é", "line\nbreak", "\x7f", "x" * 40, "日本", "\u0301")


def pool(*values: Any) -> S:
    """Mostly values from a small pool (state stays bounded), now and then an odd string."""
    return mix(values, ODD_STRINGS + BIGS[:3], times=len(ODD_STRINGS) // len(values) * 3)


NAMES = pool("fz-a", "fz-b", "fz-c", "fz-web", "fz-db", "fz-a.b", "fz-ns/x")
NODES = pool("fz-n1", "fz-n2", "fz-n3")
IDS = st.one_of(
    NAMES,
    st.sampled_from(
        ("00000000-0000-0000-0000-000000000002", "11111111-2222-3333-4444-555555555555")
    ),
    st.uuids().map(str),
)
text = st.one_of(mix(TEXTS, ODD_STRINGS + BIGS, times=4), st.text(max_size=5))
u64s = st.one_of(st.integers(0, 1000), st.integers(0, 2**64 - 1), st.sampled_from(EDGE_INTS))
ports = st.one_of(st.integers(0, 65535), st.sampled_from(EDGE_INTS))
durations = st.one_of(st.sampled_from(DURATIONS_OK), st.sampled_from(DURATIONS_BAD), u64s)
str_maps = st.sampled_from(
    (
        {},
        {"a": "b"},
        {"": "x"},
        {"k": ""},
        {"é": "\x00"},
        {"a": 1},
        {"a": ["b"]},
        {"\ud800": "x"},
        {"k" * 300: "v"},
        {str(i): "v" for i in range(70)},
        {"a": "b", "A": "c"},
    )
)
tags = st.sampled_from(([], ["a"], ["a", "a"], [""], ["\x00"], ["é", "b"], ["a"] * 100, [None]))
addresses = st.sampled_from(("127.0.0.98", "", "::1", "not an address", "127.0.0.256", "1.2.3"))

# Any JSON value that is not what a field wants: the "wrong type" of every field.
# NaN and Infinity come out as malformed JSON, which is wanted too.
WRONG = (
    None, True, False, *EDGE_INTS, *EDGE_FLOATS, float("nan"), float("inf"), "", "x", "fz-a",
    ["x"], [1], [None], [[]], [[["x"]]], [{}], {}, {"a": 1}, {"Node": ["x"]}, {"ID": {"ID": None}},
    [2**64], ["x", 1], [[1, [2, [3]]]], {"": {"": []}}, [True], "[]", "{}",
)  # fmt: skip
wrong = st.one_of(mix(WRONG, DEEPS[:6] + BIGS[:2], times=3), st.sampled_from(ODD_STRINGS))
# For protected fields: a wrong type, but never null or a string (those would be good or "").
wrong_protected = mix(
    tuple(v for v in WRONG if v is not None and not isinstance(v, str)), DEEPS[:4], times=2
)
