"""Whole Consul API objects as plain values: config entries, prepared queries, auth methods,
binding rules, the autopilot and CA configuration.

KV pairs and services have hand-made dataclasses (`gitkv.resources`); these kinds are JSON
documents with dozens of optional fields, so gitkv keeps them as their Consul JSON `body` in a
canonical form (`canonical`) that the spec side and the live side both go through:

- zero values (`""`, `0`, `false`, `null`, `[]`, `{}`) are dropped, at every depth: Consul
  omits or zero-fills them as its Go structs do, and a spec never needs to spell them;
- durations (fields whose name says so: `...Timeout`, `...Interval`, `...TTL`, ...) become
  Go's `time.Duration` string (`90s` and `1m30s` and 90000000000 are all `1m30s`);
- each kind's own defaults (what Consul's Normalize fills in) are dropped where they hold the
  default, by the kind's module (`gitkv.kinds.*`), before `canonical` is called.

Two canonical bodies are compared with `==`. Secrets (a prepared query's token, an auth
method's client secret, a CA provider's private key) are never part of `body`: they are
`SecretRef`s in `secrets`, read only when apply sends them, and not compared (Consul either
hides them or they are write-only in practice), like a token's SecretID.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gitkv.resources import SecretRef, canonical_duration

__all__ = ["ApiObject", "DURATION_SUFFIXES", "canonical", "flatten", "is_zero"]

# Field names Consul gives its durations (ConnectTimeout, RequestTimeout, Interval,
# BaseEjectionTime, CacheDuration, LastContactThreshold, LeafCertTTL, TTL ...). Integer fields
# carry their unit in the name (ConnectTimeoutMs, ClockSkewSeconds) and do not match.
DURATION_SUFFIXES = ("Timeout", "Interval", "TTL", "Time", "Duration", "Threshold")


def is_zero(value: Any) -> bool:
    """What Go's `omitempty` leaves out (and what a missing field decodes to)."""
    return value is None or value is False or value == "" or value == 0 or value in ([], {})


def _duration_field(key: str) -> bool:
    return key.endswith(DURATION_SUFFIXES)


def canonical(value: Any, key: str = "") -> Any:
    """`value` with zero values dropped and durations canonical (see the module docstring).

    Booleans stay booleans; whole-number floats become ints.
    """
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            c = canonical(v, str(k))
            if not is_zero(c):
                out[str(k)] = c
        return out
    if isinstance(value, list | tuple):
        return [canonical(v, key) for v in value]
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Consul prints a weight of 50 as 50: so does the spec side
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if _duration_field(key) and (number or (isinstance(value, str) and value.strip())):
        try:
            return canonical_duration(value)
        except ValueError:
            return value  # not a duration after all: compared as given
    return value


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Leaf paths of a canonical body: `("Splits[0].Weight", 90)`, for field-level diffs.

    Opaque maps (proxy Config, Meta) are flattened too, which is what a reviewer wants to see.
    """
    if isinstance(value, Mapping) and value:
        for k in value:
            yield from flatten(value[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, value


@dataclass(frozen=True)
class ApiObject:
    """One managed Consul object. `kind` is gitkv's resource kind (`config_entry`, ...),
    `id` its key there (`service-defaults/web`, a query's name, ...), `body` the canonical
    Consul JSON without secrets, `secrets` the `(field, SecretRef)` pairs apply fills in.

    Equality ignores `secrets` on purpose: they are never read back, so they cannot drift.
    """

    kind: str
    id: str
    body: Mapping[str, Any]
    secrets: tuple[tuple[str, SecretRef], ...] = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ApiObject):
            return NotImplemented
        return (self.kind, self.id, self.body) == (other.kind, other.id, other.body)

    def __hash__(self) -> int:
        return hash((self.kind, self.id))
