"""Go's `time.Duration` text form ("300ms", "1m30s", "-1.5h"), which Consul uses everywhere.

`parse_nanoseconds` is Go's `time.ParseDuration` step for step: the same grammar, the same
int64 range (values beyond about 292 years are refused, as Go refuses them), the same float
rounding of fractions and the same error texts, so an API answer or a config error reads as
Consul's would. `format_nanoseconds` is Go's `Duration.String`. The `*_duration` pair works
in float seconds for the callers that feed timers and asyncio.

    parse_nanoseconds("1m30s") == 90_000_000_000
    parse_duration("1m30s") == 90.0
    format_nanoseconds(1_500_000) == "1.5ms"
"""

from __future__ import annotations

__all__ = [
    "NS_PER_SECOND",
    "DurationError",
    "format_duration",
    "format_nanoseconds",
    "parse_duration",
    "parse_nanoseconds",
]

NS_PER_SECOND = 1_000_000_000
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": NS_PER_SECOND,
    "m": 60 * NS_PER_SECOND,
    "h": 3600 * NS_PER_SECOND,
}
_DIGITS = frozenset("0123456789")
_LIMIT = 1 << 63  # magnitudes are counted in uint64 and checked against int64 at the end


class DurationError(ValueError):
    """Not a Go duration; `str()` is Go's message (`time: invalid duration "soon"`)."""


def _quote(text: str) -> str:
    """Go's `time.quote`: double quotes, and every byte of a non-ASCII or control char as \\xNN."""
    out = ['"']
    for char in text:
        if char < " " or char >= "\x80":
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
        else:
            out.append("\\" + char if char in '"\\' else char)
    out.append('"')
    return "".join(out)


def _digits(text: str, pos: int) -> int:
    """The end of the run of ASCII digits starting at `pos`."""
    while pos < len(text) and text[pos] in _DIGITS:
        pos += 1
    return pos


def _fraction(digits: str) -> tuple[int, float]:
    """Go's `leadingFraction`: digits past uint64 precision are read but no longer counted."""
    value, scale = 0, 1.0
    for digit in digits:
        if value > (_LIMIT - 1) // 10 or value * 10 + int(digit) > _LIMIT:
            break
        value, scale = value * 10 + int(digit), scale * 10
    return value, scale


def parse_nanoseconds(text: str) -> int:
    """Nanoseconds in a Go duration string; a bare "0" (signed or not) is allowed, as in Go.

    :raises DurationError: with Go's message: invalid duration, missing unit, unknown unit.
    """
    invalid = DurationError(f"time: invalid duration {_quote(text)}")
    rest, negative = text, False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total, pos = 0, 0
    while pos < len(rest):
        if rest[pos] != "." and rest[pos] not in _DIGITS:
            raise invalid
        end = _digits(rest, pos)
        whole = rest[pos:end]
        significant = whole.lstrip("0")
        if len(significant) > 19 or int(significant or "0") > _LIMIT:
            raise invalid  # Go's leadingInt overflows
        pos, frac, scale, has_frac = end, 0, 1.0, False
        if rest[pos : pos + 1] == ".":
            end = _digits(rest, pos + 1)
            frac, scale = _fraction(rest[pos + 1 : end])
            has_frac, pos = end > pos + 1, end
        if not whole and not has_frac:
            raise invalid  # no digits at all, e.g. ".s"
        end = pos
        while end < len(rest) and rest[end] != "." and rest[end] not in _DIGITS:
            end += 1
        unit_text, pos = rest[pos:end], end
        if not unit_text:
            raise DurationError(f"time: missing unit in duration {_quote(text)}")
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise DurationError(
                f"time: unknown unit {_quote(unit_text)} in duration {_quote(text)}"
            )
        value = int(whole or "0")
        if value > _LIMIT // unit:
            raise invalid
        value *= unit
        if frac:
            # Go adds the fraction through float64, which rounds the way Consul's values do.
            value += int(float(frac) * (float(unit) / scale))
        total += value
        if value > _LIMIT or total > _LIMIT:
            raise invalid
    if negative:
        return -total
    if total > _LIMIT - 1:
        raise invalid
    return total


def _fraction_text(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    width = len(str(unit)) - 1
    return f"{whole}.{str(frac).rjust(width, '0').rstrip('0')}"


def format_nanoseconds(ns: int) -> str:
    """Go's `Duration.String`: "1m30s", "1.5ms", "0s", "-2h0m0s"."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    magnitude = abs(ns)
    if magnitude < 1_000:
        return f"{sign}{magnitude}ns"
    if magnitude < 1_000_000:
        return f"{sign}{_fraction_text(magnitude, 1_000)}µs"
    if magnitude < NS_PER_SECOND:
        return f"{sign}{_fraction_text(magnitude, 1_000_000)}ms"
    hours, rest = divmod(magnitude, 3600 * NS_PER_SECOND)
    minutes, rest = divmod(rest, 60 * NS_PER_SECOND)
    seconds = _fraction_text(rest, NS_PER_SECOND) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return f"{sign}{seconds}"


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string (`parse_nanoseconds`, scaled)."""
    return parse_nanoseconds(text) / NS_PER_SECOND


def format_duration(seconds: float) -> str:
    """Go's `Duration.String` of a number of seconds, rounded to the nanosecond."""
    return format_nanoseconds(round(seconds * NS_PER_SECOND))
