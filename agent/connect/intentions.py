"""Intentions: who may connect to whom, read from the stored service-intentions entries. Pure.

This module answers the read side of ``/v1/connect/intentions`` and the decision of
``/v1/agent/connect/authorize``, and gathers the package's intention API in one place:

* names and precedence: :mod:`agent.connect.intention_names`;
* the Intention JSON of stored entries, lookups by legacy ID: :mod:`agent.connect.intention_view`;
* writes, legacy and exact: :mod:`agent.connect.intention_writes`.

Matching follows Consul OSS (``agent/consul/state/config_entry_intention.go``,
``agent/connect/authz.go``): a name matches intentions naming it or ``*``; partitions play no
part; results are in precedence order (``IntentionPrecedenceSorter``). The query helpers turn a
request's query (``{name: [values]}``) into what the RPC would work on, raising Consul's
refusals in Consul's order, so the caller can put its ACL check right after them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.connect.errors import IntentionError
from agent.connect.intention_names import (
    DEFAULT_NAMESPACE,
    WILDCARD,
    ParsedName,
    go_quote,
    multierror,
    parse_service_name,
    precedence,
)
from agent.connect.intention_view import (
    KIND,
    Entries,
    find_legacy,
    intention_entries,
    intention_of,
    intention_order,
    intention_string,
    intentions_view,
    legacy_hash,
)
from agent.connect.intention_writes import (
    check_apply_body,
    check_legacy_request,
    create_legacy,
    delete_exact,
    delete_legacy,
    legacy_destination,
    normalize_intentions,
    rfc3339,
    update_legacy,
    upsert_exact,
    validate_legacy,
)

__all__ = [
    "ACL_DEFAULT_REASON",
    "DEFAULT_POLICY_REASON",
    "KIND",
    "CheckQuery",
    "Decision",
    "Entries",
    "ExactQuery",
    "MatchQuery",
    "ParsedName",
    "all_intentions",
    "check_apply_body",
    "check_legacy_request",
    "check_query",
    "create_legacy",
    "decide",
    "delete_exact",
    "delete_legacy",
    "exact_query",
    "find_legacy",
    "get_exact",
    "get_legacy",
    "intention_of",
    "intention_string",
    "intentions_view",
    "legacy_destination",
    "legacy_hash",
    "match",
    "match_query",
    "normalize_intentions",
    "parse_service_name",
    "precedence",
    "rfc3339",
    "update_legacy",
    "upsert_exact",
    "validate_legacy",
]

NOT_FOUND = "Intention not found"
# The authorize endpoint's reasons when no intention matches: the agent's
# default_intention_policy when it is set, else the ACL default policy.
DEFAULT_POLICY_REASON = "Default intention policy"
ACL_DEFAULT_REASON = "Default behavior configured by ACLs"
_BY = ("source", "destination")


def _sorted(intentions: list[dict]) -> list[dict]:
    return sorted(intentions, key=intention_order)


def all_intentions(entries: Entries) -> list[dict]:
    """``GET /v1/connect/intentions``: every intention, in precedence order (``[]`` if none)."""
    found: list[dict] = []
    for entry in intention_entries(entries):
        found.extend(intentions_view(entry))
    return _sorted(found)


def _candidates(name: str) -> tuple[str, ...]:
    return (name,) if name == WILDCARD else (name, WILDCARD)


def _by_destination(entries: Entries, name: str) -> list[dict]:
    found: list[dict] = []
    for candidate in _candidates(name):
        entry = entries.get((KIND, candidate))
        if entry is not None:
            found.extend(intentions_view(entry))
    return _sorted(found)


def _by_source(entries: Entries, name: str) -> list[dict]:
    found: list[dict] = []
    for candidate in _candidates(name):
        for entry in intention_entries(entries):
            sources = entry.get("Sources") or ()
            # Consul's source index holds local sources only; an entry it finds then gives
            # every source of that name, a peered one included.
            if not any(
                s.get("Name") == candidate and not s.get("Peer") and not s.get("SamenessGroup")
                for s in sources
            ):
                continue
            found.extend(intention_of(entry, s) for s in sources if s.get("Name") == candidate)
    return _sorted(found)


def match(entries: Entries, by: str, names: Sequence[str]) -> dict[str, list[dict] | None]:
    """``GET /v1/connect/intentions/match``: for each queried name (the raw query value, which
    may be ``ns/name``), the intentions matching it on the `by` side, in precedence order.

    A name nothing matches maps to None: Consul's map holds a nil list there and its JSON is
    ``null``, not ``[]``. Bad input raises as :func:`match_query` does.
    """
    query = match_query({"by": [by], "name": list(names)})
    lookup = _by_source if query.by == "source" else _by_destination
    out: dict[str, list[dict] | None] = {}
    for raw, target in zip(query.names, query.targets, strict=True):
        out[raw] = lookup(entries, target.name) or None
    return out


def match_service(entries: Entries, by: str, name: str) -> list[dict]:
    """The intentions matching the service `name` itself on the `by` side, in precedence
    order: what Consul's state store matches for a structs.ServiceName it is handed (the UI's
    topology), the name taken as it is, never parsed as `ns/name`."""
    return (_by_source if by == "source" else _by_destination)(entries, name)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one connection: whether it is allowed, the authorize endpoint's
    reason, and the intention that decided it (None when the default did)."""

    allowed: bool
    reason: str
    matched: dict | None


def _side_matches(ixn: Mapping[str, Any], side: str, namespace: str, name: str) -> bool:
    ixn_ns, ixn_name = ixn.get(f"{side}NS", ""), ixn.get(f"{side}Name", "")
    return ixn_ns in (WILDCARD, namespace) and ixn_name in (WILDCARD, name)


def decide(
    entries: Entries,
    source: str,
    destination: str,
    default_allow: bool,
    default_reason: str = ACL_DEFAULT_REASON,
    *,
    source_ns: str = DEFAULT_NAMESPACE,
    destination_ns: str = DEFAULT_NAMESPACE,
) -> Decision:
    """Whether `source` may connect to `destination`: the first intention, in precedence
    order, whose both sides match decides. An L4 intention allows when its Action is allow;
    an L7 one (with Permissions) is a deny here, since no request is being judged. Without a
    match the caller's default decides, with `default_reason`.

    This is ``/v1/agent/connect/authorize`` (pass the client certificate's namespace as
    `source_ns`; reasons ``Matched L4 intention: ...``/``Matched L7 intention: ...``) and
    ``/v1/connect/intentions/check`` (use ``allowed``; :func:`check_query` gives the names).
    Consul's two paths look the candidates up from opposite ends but pick the same one.
    A peered source never matches: both endpoints judge local callers.
    """
    for ixn in _by_destination(entries, destination):
        if ixn.get("SourcePeer"):
            continue
        if not _side_matches(ixn, "Source", source_ns, source):
            continue
        if not _side_matches(ixn, "Destination", destination_ns, destination):
            continue
        if ixn.get("Permissions"):
            return Decision(False, f"Matched L7 intention: {intention_string(ixn)}", ixn)
        allowed = ixn.get("Action") == "allow"
        return Decision(allowed, f"Matched L4 intention: {intention_string(ixn)}", ixn)
    return Decision(default_allow, default_reason, None)


# -- lookups of one intention ----------------------------------------------------------------


def get_legacy(entries: Entries, legacy_id: str) -> dict:
    """``GET /v1/connect/intentions/:id``: the intention, or 400 for a malformed ID, 404
    ``Intention not found``."""
    found = find_legacy(entries, legacy_id)
    if found is None:
        raise IntentionError(NOT_FOUND, 404)
    return intention_of(*found)


def get_exact(entries: Entries, source: ParsedName, destination: ParsedName) -> dict:
    """``GET /v1/connect/intentions/exact`` after :func:`exact_query`: the intention from
    `source` (which may name a peer) to `destination`, or Consul's refusals (404 when none)."""
    for what, namespace in (
        ("SourceNS", source.namespace),
        ("DestinationNS", destination.namespace),
    ):
        if namespace and namespace.lower() != DEFAULT_NAMESPACE:
            raise IntentionError(
                f"Invalid {what} {go_quote(namespace)}: Namespaces is a Consul Enterprise feature"
            )
    missing = [
        f"{what} is missing"
        for what, value in (("SourceName", source.name), ("DestinationName", destination.name))
        if not value
    ]
    text = multierror(missing)
    if text is not None:
        raise IntentionError(text)
    entry = entries.get((KIND, destination.name))
    for candidate in (entry or {}).get("Sources") or ():
        if candidate.get("Name") == source.name and (candidate.get("Peer") or "") == source.peer:
            return intention_of(entry, candidate)
    raise IntentionError(NOT_FOUND, 404)


# -- query parameters ------------------------------------------------------------------------


Query = Mapping[str, Sequence[str]]


def _parsed(what: str, value: str, allow_peer: bool = False) -> ParsedName:
    try:
        return parse_service_name(value, allow_peer)
    except IntentionError as err:
        raise IntentionError(f"{what} {go_quote(value)} is invalid: {err.message}") from None


def _enterprise(value: str, default: str) -> bool:
    return value == "" or value.lower() == default


@dataclass(frozen=True, slots=True)
class MatchQuery:
    by: str
    names: tuple[str, ...]  # as queried: the keys of the answer
    targets: tuple[ParsedName, ...]  # parsed; ACL needs intention:read on each target's name


def match_query(query: Query) -> MatchQuery:
    """The ``match`` endpoint's parameters, or its refusals (all 500): ``by`` given once and
    one of source/destination, at least one ``name``, each well formed and in the default
    namespace and partition."""
    by = query.get("by")
    if not by or len(by) != 1:
        raise IntentionError("required query parameter 'by' not set")
    if by[0] not in _BY:
        raise IntentionError("'by' parameter must be one of 'source' or 'destination'")
    names = tuple(query.get("name") or ())
    if not names:
        raise IntentionError("required query parameter 'name' not set")
    targets = tuple(_parsed("name", name) for name in names)
    for target in targets:
        if not _enterprise(target.namespace, DEFAULT_NAMESPACE):
            raise IntentionError(
                f"Invalid match entry namespace {go_quote(target.namespace)}: "
                "Namespaces is a Consul Enterprise feature"
            )
        if not _enterprise(target.partition, "default"):
            raise IntentionError(
                f"Invalid match entry partition {go_quote(target.partition)}: "
                "Partitions is a Consul Enterprise feature"
            )
    return MatchQuery(by[0], names, targets)


def _one(query: Query, key: str, allow_empty: bool = True) -> str:
    values = query.get(key)
    if not values or len(values) != 1 or (not allow_empty and values[0] == ""):
        raise IntentionError(f"required query parameter '{key}' not set")
    return values[0]


@dataclass(frozen=True, slots=True)
class CheckQuery:
    source: str
    destination: str
    destination_ns: str  # pass on to decide(); the source's namespace plays no part in OSS


def check_query(query: Query) -> CheckQuery:
    """The ``check`` endpoint's parameters, or its refusals (500), before its ACL check
    (``service:read`` on the destination)."""
    source_type = "consul"
    if query.get("source-type"):
        source_type = query["source-type"][0]
    raw_source = _one(query, "source")
    raw_destination = _one(query, "destination")
    source = ParsedName(name=raw_source)
    if source_type == "consul":
        source = _parsed("source", raw_source)
    destination = _parsed("destination", raw_destination)
    for what, namespace in (("source", source.namespace), ("destination", destination.namespace)):
        if not _enterprise(namespace, DEFAULT_NAMESPACE):
            raise IntentionError(
                f"Invalid {what} namespace {go_quote(namespace)}: "
                "Namespaces is a Consul Enterprise feature"
            )
    if source_type != "consul":
        raise IntentionError(f"unsupported SourceType: {go_quote(source_type)}")
    # The RPC compares the destination's namespace as written (it passed the check above in
    # any case, e.g. "Default"), so a differently spelled one matches nothing.
    return CheckQuery(source.name, destination.name, destination.namespace or DEFAULT_NAMESPACE)


@dataclass(frozen=True, slots=True)
class ExactQuery:
    source: ParsedName
    destination: ParsedName


def exact_query(query: Query, write: bool = False) -> ExactQuery:
    """The ``exact`` endpoint's ``source`` and ``destination``, or its refusals (500).

    GET (`write` false) lets the source name a peer (``peer:<name>/svc``) and leaves empty
    names to :func:`get_exact`; PUT and DELETE refuse empty values and peers.
    """
    raw_source = _one(query, "source", allow_empty=not write)
    raw_destination = _one(query, "destination", allow_empty=not write)
    source = _parsed("source", raw_source, allow_peer=not write)
    return ExactQuery(source, _parsed("destination", raw_destination))
