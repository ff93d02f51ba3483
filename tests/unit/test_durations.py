"""agent.durations: Go's time.ParseDuration and Duration.String, and the float-seconds pair."""

from __future__ import annotations

import pytest

from agent.durations import (
    DurationError,
    format_duration,
    format_nanoseconds,
    parse_duration,
    parse_nanoseconds,
)

S = 1_000_000_000
INT64_MAX = 2**63 - 1


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("-0", 0),
        ("+0", 0),
        ("10s", 10 * S),
        ("1m30s", 90 * S),
        ("100ms", 100_000_000),
        ("1.5h", 5400 * S),
        (".5s", S // 2),
        ("5.s", 5 * S),
        ("-2s", -2 * S),
        ("+3m", 180 * S),
        ("1h2m3.5s", 3723 * S + S // 2),
        ("10us", 10_000),
        ("10µs", 10_000),  # U+00B5
        ("10μs", 10_000),  # U+03BC
        ("7ns", 7),
        ("72h", 259_200 * S),
        ("0.1ns", 0),  # fractions below a nanosecond are dropped
        ("000000000000000000000000001s", S),  # leading zeros do not overflow
        ("1.00000000000000000000000000001s", S),  # digits past uint64 are ignored
        (f"{INT64_MAX}ns", INT64_MAX),
        (f"-{INT64_MAX + 1}ns", -(INT64_MAX + 1)),  # int64's minimum is reachable, as in Go
        ("2562047h", 2562047 * 3600 * S),
    ],
)
def test_parse_nanoseconds(text: str, ns: int) -> None:
    assert parse_nanoseconds(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("abc", 'time: invalid duration "abc"'),
        ("10", 'time: missing unit in duration "10"'),
        ("10x", 'time: unknown unit "x" in duration "10x"'),
        ("1.s.", 'time: invalid duration "1.s."'),
        ("-", 'time: invalid duration "-"'),
        (".s", 'time: invalid duration ".s"'),
        (" 1s", 'time: invalid duration " 1s"'),  # no trimming, as in Go
        ("1 s", 'time: unknown unit " s" in duration "1 s"'),
        ("1s2", 'time: missing unit in duration "1s2"'),
        # Go's quote: non-ASCII and control characters as the bytes of their UTF-8 form
        ("1µ", 'time: unknown unit "\\xc2\\xb5" in duration "1\\xc2\\xb5"'),
        ("1s\n", 'time: unknown unit "s\\x0a" in duration "1s\\x0a"'),
        ('1"', 'time: unknown unit "\\"" in duration "1\\""'),
        # beyond int64 nanoseconds (about 292 years)
        (f"{INT64_MAX + 1}ns", f'time: invalid duration "{INT64_MAX + 1}ns"'),
        (f"-{INT64_MAX + 2}ns", f'time: invalid duration "-{INT64_MAX + 2}ns"'),
        ("2562048h", 'time: invalid duration "2562048h"'),
        ("99999999h", 'time: invalid duration "99999999h"'),
        ("9" * 5000 + "s", f'time: invalid duration "{"9" * 5000}s"'),
    ],
)
def test_parse_nanoseconds_errors(text: str, message: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_nanoseconds(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (10 * S, "10s"),
        (90 * S, "1m30s"),
        (3600 * S, "1h0m0s"),
        (S + S // 2, "1.5s"),
        (100_000_000, "100ms"),
        (1_500, "1.5µs"),
        (42, "42ns"),
        (-2 * S, "-2s"),
        (3723 * S + S // 2, "1h2m3.5s"),
        (90 * S + S // 2, "1m30.5s"),
    ],
)
def test_format_nanoseconds(ns: int, text: str) -> None:
    assert format_nanoseconds(ns) == text
    if ns:
        assert parse_nanoseconds(text) == ns


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("10s", 10.0), ("300ms", 0.3), ("2us", 2e-6), ("-5s", -5.0), ("72h", 259200.0)],
)
def test_parse_duration_is_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (0.2, "200ms"), (30, "30s"), (1e-7, "100ns")]
)
def test_format_duration_takes_seconds(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
