"""How intentions name services, and how much a name counts: precedence. Pure, no imports of
the agent.

An intention joins a source and a destination, each a (namespace, name) pair where either part
may be the wildcard ``*`` (a wildcard namespace only with a wildcard name). Consul orders
intentions by how exact both sides are (``agent/structs/config_entry_intentions.go``,
``computeIntentionPrecedence``): the destination's count of exact parts picks the ceiling (9, 6
or 3) and each wildcard part of the source takes one off. In Consul OSS every namespace is
"default", so only 9 (exact -> exact), 8 (``*`` -> exact), 6 (exact -> ``*``) and 5 (``*`` ->
``*``) occur.

Query strings name services as ``name``, ``ns/name``, ``partition/ns/name``, and for the source
of an exact lookup also ``peer:<peer>/name`` or ``peer:<peer>/ns/name``
(``agent/intentions_endpoint.go``, ``parseIntentionStringComponent``).

The Go-shaped text helpers (``%q`` quoting, go-multierror's list) live here too because every
intention module words its errors with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.connect.errors import IntentionError

__all__ = [
    "DEFAULT_NAMESPACE",
    "WILDCARD",
    "ParsedName",
    "go_quote",
    "multierror",
    "parse_service_name",
    "precedence",
]

WILDCARD = "*"
DEFAULT_NAMESPACE = "default"
_CEILING = {2: 9, 1: 6, 0: 3}


def _exact_parts(namespace: str, name: str) -> int:
    # A wildcard namespace forces a wildcard name, and an exact name needs an exact namespace,
    # so the count is decided by the first wildcard found.
    if namespace == WILDCARD:
        return 0
    if name == WILDCARD:
        return 1
    return 2


def precedence(source_ns: str, source_name: str, dest_ns: str, dest_name: str) -> int:
    """Consul's intention precedence: higher is more specific and is consulted first.

    Pass the namespaces as Consul sees them; in OSS that is always "default" (a stored source
    never carries another), so ``precedence("default", src, "default", dst)``.
    """
    ceiling = _CEILING[_exact_parts(dest_ns, dest_name)]
    return ceiling - (2 - _exact_parts(source_ns, source_name))


@dataclass(frozen=True, slots=True)
class ParsedName:
    """One side of an intention as a query names it; empty strings for the parts not given."""

    name: str
    namespace: str = ""
    partition: str = ""
    peer: str = ""


def parse_service_name(value: str, allow_peer: bool = False) -> ParsedName:
    """Split a query's service name into its parts, with Consul's messages for bad ones.

    The error carries only the inner reason; callers wrap it as Consul does
    (``name "x" is invalid: <reason>``). A namespace left out stays "" here: the RPC side
    fills in "default".
    """
    peer_form = value.startswith("peer:")
    if peer_form and not allow_peer:
        raise IntentionError("cannot specify a peer here")
    parts = value.split("/")
    if len(parts) == 1:
        if peer_form:
            raise IntentionError("need to specify the service name as well")
        return ParsedName(name=parts[0])
    if len(parts) == 2:
        if peer_form:
            return ParsedName(name=parts[1], peer=parts[0][len("peer:") :])
        return ParsedName(name=parts[1], namespace=parts[0])
    if len(parts) == 3:
        if peer_form:
            return ParsedName(name=parts[2], namespace=parts[1], peer=parts[0][len("peer:") :])
        return ParsedName(name=parts[2], namespace=parts[1], partition=parts[0])
    raise IntentionError("input can contain at most two '/'")


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(text: str) -> str:
    """Go's ``%q`` for a string (``strconv.Quote``): printable characters as they are."""
    out = ['"']
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif 0xD800 <= ord(char) <= 0xDFFF:
            # A lone surrogate is not valid UTF-8; Go shows such bytes as U+FFFD's escape.
            out.append("\\ufffd")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def multierror(messages: Iterable[str]) -> str | None:
    """go-multierror's default text for the collected messages, or None when there are none."""
    found = list(messages)
    if not found:
        return None
    if len(found) == 1:
        return f"1 error occurred:\n\t* {found[0]}\n\n"
    points = "\n\t".join(f"* {message}" for message in found)
    return f"{len(found)} errors occurred:\n\t{points}\n\n"
