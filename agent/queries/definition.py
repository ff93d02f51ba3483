"""A prepared query's definition: decoded and checked as Consul's `PreparedQuery.Apply` does.

    query = decode(body)          # Go's encoding/json rules; QueryError(400) when it cannot
    validate(query)               # parseQuery/parseService/parseDNS; QueryError(500)

A query is a plain dict with Consul's wire field names (structs.PreparedQuery), every field
present at its Go zero value (nil slices and maps as None), so what the store keeps, what the
HTTP layer renders and what a template renders are the same shape. Consul answers a failed
check with a plain RPC error, which its HTTP layer turns into a 500 carrying the text; a body
Go cannot decode is the endpoint's own 400 (`Request decode failed: ...`).

The ACL side (`acl_prefix`, `REDACTED`) is Consul's too: a query with a name, or any template,
is guarded by `query` rules on its name; an unnamed plain query by nothing but its ID.
"""

from __future__ import annotations

import copy
from typing import Any

from agent import gojson as go
from agent.durations import DurationError, parse_nanoseconds
from agent.gojson import STRING_MAP, STRINGS, List, Struct
from agent.limits import meta_error

NAME_PREFIX_MATCH = "name_prefix_match"  # the only template type Consul knows
REDACTED = "<hidden>"  # what a token looks like to a reader without acl:write
DECODE_PREFIX = "Request decode failed: "

_TEMPLATE = Struct(
    "structs.QueryTemplateOptions",
    {"Type": "string", "Regexp": "string", "RemoveEmptyTags": "bool"},
)
_TARGET = Struct("structs.QueryFailoverTarget", {"Peer": "string", "Datacenter": "string"})
_FAILOVER = Struct(
    "structs.QueryFailoverOptions",
    {
        "NearestN": "int",
        "Datacenters": STRINGS,
        "Targets": List("[]structs.QueryFailoverTarget", _TARGET),
    },
)
_SERVICE = Struct(
    "structs.ServiceQuery",
    {
        "Service": "string",
        "SamenessGroup": "string",
        "Failover": _FAILOVER,
        "OnlyPassing": "bool",
        "IgnoreCheckIDs": List("[]types.CheckID", "types.CheckID"),
        "Near": "string",
        "Tags": STRINGS,
        "NodeMeta": STRING_MAP,
        "ServiceMeta": STRING_MAP,
        "Connect": "bool",
        "Peer": "string",
    },
)
_DNS = Struct("structs.QueryDNSOptions", {"TTL": "string"})
PREPARED_QUERY = Struct(
    "structs.PreparedQuery",
    {
        "ID": "string",
        "Name": "string",
        "Session": "string",
        "Token": "string",
        "Template": _TEMPLATE,
        "Service": _SERVICE,
        "DNS": _DNS,
        "CreateIndex": "uint64",
        "ModifyIndex": "uint64",
    },
)


class QueryError(Exception):
    """A refusal with the status Consul's HTTP layer answers it with, and its text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------- shape


def _filled(value: dict[str, Any] | None, spec: Struct) -> dict[str, Any]:
    """Every field of `spec` present: what was sent, else Go's zero value."""
    value = value or {}
    out: dict[str, Any] = {}
    for name, kind in spec.fields.items():
        item = value.get(name)
        if isinstance(kind, Struct):
            out[name] = _filled(item, kind)
        elif isinstance(kind, List) and isinstance(kind.item, Struct) and item is not None:
            out[name] = [_filled(element, kind.item) for element in item]
        else:
            out[name] = go.zero(kind) if item is None else item
    return out


def blank() -> dict[str, Any]:
    """A query with every field at its zero value."""
    return _filled(None, PREPARED_QUERY)


def complete(query: dict[str, Any]) -> dict[str, Any]:
    """`query` (already of the right kinds) with every missing field at its zero value."""
    return _filled(query, PREPARED_QUERY)


def decode(body: Any) -> dict[str, Any]:
    """A parsed JSON body as the query Go would decode it into: field names in any case,
    unknown fields ignored, null as the zero value; a value of the wrong kind or range is a
    400 naming the field as Go does."""
    try:
        fields = go.conform(body, PREPARED_QUERY)
    except go.Mismatch as exc:
        raise QueryError(400, f"{DECODE_PREFIX}{exc}") from None
    return complete(fields or {})


def copy_query(query: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(query)


# ---------------------------------------------------------------------- checks


def id_problem(query_id: str) -> str | None:
    """Why Consul's UUID index cannot even look `query_id` up (go-memdb's parse of it)."""
    if len(query_id) != 36:
        return "UUID must be 36 characters"
    hyphens = query_id.count("-")
    if hyphens > 4:
        return f'UUID should have maximum of 4 "-"; got {hyphens}'
    digits = query_id.replace("-", "")
    if len(digits) % 2:
        return "Input (without hyphens) must be even length"
    for char in digits:
        if char not in "0123456789abcdefABCDEF":
            return f"Invalid UUID: encoding/hex: invalid byte: {_go_rune(char)}"
    return None


def _go_rune(char: str) -> str:
    """A character as Go's %#U prints it (encoding/hex's InvalidByteError)."""
    # hex decodes bytes: a multi-byte character fails on its first byte, printed as a rune
    code = char.encode("utf-8", "surrogatepass")[0]
    shown = chr(code)
    return f"U+{code:04X} '{shown}'" if shown.isprintable() else f"U+{code:04X}"


def is_template(query: dict[str, Any]) -> bool:
    return bool(query["Template"]["Type"])


def acl_prefix(query: dict[str, Any]) -> str | None:
    """The name `query` rules are checked against, or None when none apply (Consul's
    GetACLPrefix: a named query or any template; an unnamed template's prefix is "")."""
    if query["Name"] or is_template(query):
        return str(query["Name"])
    return None


def validate(query: dict[str, Any]) -> None:
    """Consul's parseQuery for a create or update; QueryError(500) with its text."""
    why = _query_problem(query)
    if why is not None:
        raise QueryError(500, f"Invalid prepared query: {why}")


def _query_problem(query: dict[str, Any]) -> str | None:
    if not query["Name"] and not is_template(query) and not query["Session"]:
        return "Must be bound to a session"
    if query["Token"] == REDACTED:
        return (
            f"Bad Token '{REDACTED}', it looks like a query definition with a redacted "
            "token was submitted"
        )
    return _service_problem(query["Service"]) or _dns_problem(query["DNS"])


def _service_problem(service: dict[str, Any]) -> str | None:
    if not service["Service"]:
        return "Must provide a Service name to query"
    failover = service["Failover"]
    if failover["NearestN"] < 0:
        return f"Bad NearestN '{failover['NearestN']}', must be >= 0"
    if failover["Targets"] and (failover["NearestN"] or failover["Datacenters"]):
        return "Targets cannot be populated with NearestN or Datacenters"
    if service["SamenessGroup"]:  # Consul CE's parseSameness
        return "sameness-groups are an enterprise-only feature"
    return meta_error(service["NodeMeta"], allow_consul_prefix=True)


def _dns_problem(dns: dict[str, Any]) -> str | None:
    ttl = dns["TTL"]
    if not ttl:
        return None
    try:
        ns = parse_nanoseconds(ttl)
    except DurationError as exc:
        return f"Bad DNS TTL '{ttl}': {exc}"
    if ns < 0:
        return f"DNS TTL '{ns}', must be >=0"
    return None
