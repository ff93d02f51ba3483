"""Names inside our domain, taken apart the way Consul does: which zone a name is in, the
query kind (`service`, `node`, `addr`, ...) found scanning from the right, the locality
labels after it, and RFC 2782 service/tag pairs. Pure text work, no records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.dns_records import SRV

if TYPE_CHECKING:
    from agent.dns_settings import DNSSettings

__all__ = [
    "QUERY_KINDS",
    "Query",
    "in_zone",
    "labels_of",
    "parse_locality",
    "parse_query",
    "relative_labels",
    "response_domain",
    "service_and_tag",
]

QUERY_KINDS = ("service", "connect", "virtual", "ingress", "node", "query", "addr")


@dataclass(frozen=True)
class Query:
    """A parsed question inside our domain."""

    kind: str  # one of QUERY_KINDS, or "invalid"
    parts: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()


def in_zone(qname: str, settings: DNSSettings) -> str | None:
    """Which of our domains the lower-cased name is in ("" for `arpa.`), None if neither."""
    domains = [settings.domain] + ([settings.alt_domain] if settings.alt_domain else [])
    best = None
    for domain in domains:
        if (qname == domain or qname.endswith("." + domain)) and (
            best is None or len(domain) > len(best)
        ):
            best = domain
    if best is not None:
        return best
    if qname == "arpa." or qname.endswith(".arpa."):
        return ""
    return None


def labels_of(text: str) -> list[str]:
    """The labels of a name, absolute or not (the root has none)."""
    return [label for label in text.rstrip(".").split(".") if label]


def relative_labels(qname: str, domain: str) -> list[str]:
    """The lower-cased labels of the name in front of the domain."""
    labels = labels_of(qname.lower())
    return labels[: len(labels) - len(labels_of(domain))]


def parse_query(labels: Sequence[str], qtype: int) -> Query:
    """Find the query kind scanning from the right, as Consul does; for SRV questions an
    `_`-prefixed label implies `service`."""
    for i in range(len(labels) - 1, -1, -1):
        label = labels[i]
        if label in QUERY_KINDS:
            return Query(label, tuple(labels[:i]), tuple(labels[i + 1 :]))
        if qtype == SRV and label.startswith("_"):
            return Query("service", tuple(labels[: i + 1]), tuple(labels[i + 1 :]))
    return Query("invalid")


def parse_locality(suffixes: Sequence[str]) -> tuple[str, str] | None:
    """`(datacenter, peer)` from the labels after the kind: `[<dc>]`, or pairs of
    `<dc>.dc` / `<peer>.peer` / `<name>.port`; None when malformed."""
    if not suffixes:
        return "", ""
    if len(suffixes) == 1:
        return suffixes[0], ""
    if len(suffixes) not in (2, 4, 6):
        return None
    dc = peer = ""
    for value, key in zip(suffixes[::2], suffixes[1::2], strict=True):
        if key == "dc":
            dc = value
        elif key == "peer":
            peer = value
        elif key != "port":
            return None
    if dc and peer:
        return None
    return dc, peer


def service_and_tag(parts: Sequence[str]) -> tuple[str, str]:
    """`_svc._tag` (RFC 2782, `_tcp` = any tag) or `[tag.]svc` (dots allowed in the tag)."""
    if len(parts) == 2 and parts[0].startswith("_") and parts[1].startswith("_"):
        tag = parts[1][1:]
        return parts[0][1:], "" if tag == "tcp" else tag
    return parts[-1], ".".join(parts[:-1])


def response_domain(qname: str, domain: str) -> str:
    """Our domain with the question's own spelling (Consul answers in the asker's case)."""
    count = len(labels_of(domain))
    asked = labels_of(qname)
    return ".".join(asked[len(asked) - count :]) + "." if count else "."
