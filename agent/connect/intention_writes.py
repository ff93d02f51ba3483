"""Writing intentions: each write turns the destination's service-intentions entry into a new
one (or None: delete the entry). Inputs are never changed; the state store applies the result.

Two families, as in Consul (``agent/consul/intention_endpoint.go`` for the RPC checks,
``agent/consul/state/intention.go`` for how the entry changes):

* **Exact** (``PUT``/``DELETE /v1/connect/intentions/exact``) is a config-entry write by
  another door: the source is upserted or removed by name, then the whole entry is normalized
  the non-legacy way, which drops the legacy IDs and times of *every* source. The caller still
  runs the config-entry validation (``agent.connect.entries.validate``) and the graph checks
  on the result, exactly as for ``PUT /v1/config``; their refusals are Consul's for this path.
* **Legacy** (the deprecated UUID API) keeps an ID, a create and an update time and its own
  Meta per source, is validated the old way (all problems in one go-multierror text) and then
  checked again as a legacy entry. It refuses to touch an entry that any non-legacy write has
  touched.

The order of checks matters because the caller's ACL check sits in the middle. Per endpoint:

* ``POST /v1/connect/intentions``: decode (500 ``Failed to decode request body: ...``);
  ``check_legacy_request(body)``; ``intention:write`` on the body's ``DestinationName`` (an
  empty one is always denied: Consul's ``CanWrite``); ``create_legacy(entry, ...)`` with the
  destination's current entry; answer ``{"ID": new_id}``.
* ``PUT /v1/connect/intentions/:id``: decode (400 ``Request decode failed: ...``);
  ``check_legacy_request(body, update=True)``; ``legacy_destination(entries, id)``;
  ``intention:write`` on that destination; ``update_legacy``.
* ``DELETE /v1/connect/intentions/:id``: ``legacy_destination(entries, id, deleting=True)``;
  ACL; ``delete_legacy``.
* ``PUT .../exact``: query (``exact_query``); decode (400); ``check_apply_body(body)``; ACL on
  the destination; ``upsert_exact``; entries.validate and the graph checks.
* ``DELETE .../exact``: query; ACL; ``delete_exact`` (``result is entry``: nothing to do).

Every refusal here is an :class:`IntentionError`, 500 unless noted (Consul's RPC errors).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agent.connect.entry_checks import byte_len, meta_problems
from agent.connect.errors import IntentionError
from agent.connect.intention_names import (
    DEFAULT_NAMESPACE,
    WILDCARD,
    go_quote,
    multierror,
    precedence,
)
from agent.connect.intention_view import KIND, Entries, find_legacy
from agent.limits import META_VALUE_MAX_LENGTH
from agent.memdb_uuid import uuid_index_problem

__all__ = [
    "check_apply_body",
    "check_legacy_request",
    "create_legacy",
    "delete_exact",
    "delete_legacy",
    "legacy_destination",
    "normalize_intentions",
    "rfc3339",
    "update_legacy",
    "upsert_exact",
    "validate_legacy",
]

_ACTIONS = ("allow", "deny")
_SOURCE_TYPE = "consul"
_SOURCE_KEYS = (
    "Name",
    "Action",
    "Permissions",
    "Precedence",
    "LegacyID",
    "Type",
    "Description",
    "LegacyMeta",
    "LegacyCreateTime",
    "LegacyUpdateTime",
    "Namespace",
    "Partition",
    "Peer",
    "SamenessGroup",
)
_NOT_ENTERPRISE = "Namespaces is a Consul Enterprise feature"


def rfc3339(moment: datetime) -> str:
    """A time as Go's JSON writes a UTC ``time.Time`` (RFC 3339, trailing zeros trimmed)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _field(body: Mapping[str, Any], key: str) -> Any:
    """A body field the way Go's decoder finds it: any case, the last spelling wins."""
    found = None
    lowered = key.lower()
    for name, value in body.items():
        if isinstance(name, str) and name.lower() == lowered:
            found = value
    return found


def _text(body: Mapping[str, Any], key: str) -> str:
    value = _field(body, key)
    return value if isinstance(value, str) else ""


def _go_upper(text: str) -> str:
    # Go's ToUpper maps rune by rune; Python's full mapping can grow a character ("ß" -> "SS").
    return "".join(up if len(up := char.upper()) == 1 else char for char in text)


# -- checks before the caller's ACL check ----------------------------------------------------


def check_apply_body(body: Mapping[str, Any]) -> None:
    """The first refusal of every intention write RPC, before its ACL check."""
    if _text(body, "SourcePeer"):
        raise IntentionError(
            "SourcePeer field is not supported on this endpoint. Use config entries instead"
        )


def check_legacy_request(body: Mapping[str, Any], *, update: bool = False) -> None:
    """What the HTTP handlers of ``POST /v1/connect/intentions`` (and, with `update`,
    ``PUT /v1/connect/intentions/:id``) refuse before the RPC, then ``check_apply_body``."""
    for key, what in (("DestinationPartition", "destination"), ("SourcePartition", "source")):
        value = _text(body, key)
        if value and value != "default":
            raise IntentionError(f"Cannot specify a {what} partition with this endpoint", 400)
    if not update:
        # Only the create handler checks namespaces itself (400); an update meets the RPC's
        # own check (500) in update_legacy.
        for key in ("SourceNS", "DestinationNS"):
            value = _text(body, key)
            if value and value.lower() != DEFAULT_NAMESPACE:
                raise IntentionError(f"Invalid {key}({value}): {_NOT_ENTERPRISE}", 400)
    check_apply_body(body)


def legacy_destination(entries: Entries, legacy_id: str, *, deleting: bool = False) -> str:
    """The destination of the legacy intention an update (or delete) names, for the caller's
    ACL check; Consul's refusals when there is none."""
    entry, _source = _find_for_write(entries, legacy_id, deleting)
    return entry["Name"]


def _find_for_write(entries: Entries, legacy_id: str, deleting: bool) -> tuple[dict, dict]:
    problem = uuid_index_problem(legacy_id)
    if problem is not None:
        raise IntentionError(f"Intention lookup failed: failed config entry lookup: {problem}")
    found = find_legacy(entries, legacy_id)
    if found is None:
        verb = "delete" if deleting else "modify"
        raise IntentionError(f"Cannot {verb} non-existent intention: '{legacy_id}'")
    return found


# -- legacy validation -----------------------------------------------------------------------


def _wildcard_problems(kind: str, namespace: str, name: str) -> list[str]:
    problems = []
    if namespace != WILDCARD and WILDCARD in namespace:
        problems.append(f"{kind}NS: wildcard character '*' cannot be used with partial values")
    if name != WILDCARD:
        if WILDCARD in name:
            problems.append(
                f"{kind}Name: wildcard character '*' cannot be used with partial values"
            )
        if namespace == WILDCARD:
            problems.append(f"{kind}Name: exact value cannot follow wildcard namespace")
    return problems


def validate_legacy(body: Mapping[str, Any]) -> None:
    """``Intention.Validate``, the legacy API's check: every problem, as one multierror text.

    It reads the body as given; the write helpers call it after Consul's defaults (namespaces
    "default", SourceType "consul"), so "must be set" for a namespace rarely shows.
    """
    source_ns, source = _text(body, "SourceNS"), _text(body, "SourceName")
    dest_ns, dest = _text(body, "DestinationNS"), _text(body, "DestinationName")
    problems = [
        f"{field} must be set"
        for field, value in (
            ("SourceNS", source_ns),
            ("SourceName", source),
            ("DestinationNS", dest_ns),
            ("DestinationName", dest),
        )
        if value == ""
    ]
    problems += _wildcard_problems("Source", source_ns, source)
    problems += _wildcard_problems("Destination", dest_ns, dest)
    if byte_len(_text(body, "Description")) > META_VALUE_MAX_LENGTH:
        problems.append(f"Description exceeds maximum length {META_VALUE_MAX_LENGTH}")
    problems += meta_problems(_field(body, "Meta") or {})
    if _text(body, "Action") not in _ACTIONS:
        problems.append("Action must be set to 'allow' or 'deny'")
    if _field(body, "Permissions"):
        problems.append("Permissions must not be set when using the legacy APIs")
    if _text(body, "SourceType") != _SOURCE_TYPE:
        problems.append("SourceType must be set to 'consul'")
    text = multierror(problems)
    if text is not None:
        raise IntentionError(text)


def _check_entry_legacy(entry: Mapping[str, Any]) -> None:
    """``ServiceIntentionsConfigEntry.LegacyValidate`` on the entry a legacy write produces.

    Its permission and JWT checks are left out: a legacy source never has permissions (the
    Action checks below refuse one that does first) and a legacy-only entry no JWT.
    """
    name = entry.get("Name") or ""
    if not name:
        raise IntentionError("Name is required")
    if name != WILDCARD and WILDCARD in name:
        raise IntentionError("Name: wildcard character '*' cannot be used with partial values")
    if entry.get("Meta"):
        raise IntentionError("Meta must be omitted for legacy intention writes")
    sources = entry.get("Sources") or []
    if not sources:
        raise IntentionError("At least one source is required")
    seen: set[tuple[str, str, str]] = set()
    for i, source in enumerate(sources):
        _check_source_legacy(i, source, destination_wild=name == WILDCARD)
        src_name, peer = source.get("Name") or "", source.get("Peer") or ""
        group = source.get("SamenessGroup") or ""
        if (src_name, peer, group) in seen:
            raise IntentionError(f"Sources[{i}] defines {go_quote(src_name)} more than once")
        seen.add((src_name, peer, group))


def _check_source_legacy(i: int, source: Mapping[str, Any], destination_wild: bool) -> None:
    at = f"Sources[{i}]."
    name = source.get("Name") or ""
    if not name:
        raise IntentionError(f"{at}Name is required")
    if source.get("SamenessGroup"):
        # Consul's format leaves a space at the end of this one.
        raise IntentionError(
            f"{at}SamenessGroup: Sameness groups are a Consul Enterprise feature. "
        )
    if name != WILDCARD and WILDCARD in name:
        raise IntentionError(f"{at}Name: wildcard character '*' cannot be used with partial values")
    peer = source.get("Peer") or ""
    if WILDCARD in peer:
        raise IntentionError(f"{at}Peer: cannot use wildcard '*' in peer")
    if byte_len(source.get("Description") or "") > META_VALUE_MAX_LENGTH:
        raise IntentionError(f"{at}Description exceeds maximum length {META_VALUE_MAX_LENGTH}")
    if peer:
        raise IntentionError(f"{at}Peer cannot be set by legacy intentions")
    problems = meta_problems(source.get("LegacyMeta") or {}, at)
    if problems:
        raise IntentionError(problems[0])
    for field in ("LegacyCreateTime", "LegacyUpdateTime", "LegacyID"):
        if not source.get(field):
            raise IntentionError(f"{at}{field} must be set")
    if source.get("Action") not in _ACTIONS:
        raise IntentionError(f"{at}Action must be set to 'allow' or 'deny'")
    if source.get("Permissions"):
        raise IntentionError(f"{at}Action must be omitted if Permissions are specified")
    if source.get("Type") != _SOURCE_TYPE:
        raise IntentionError(f"{at}Type must be set to 'consul'")


def _check_all_legacy(entry: Mapping[str, Any]) -> None:
    if all(source.get("LegacyID") for source in entry.get("Sources") or ()):
        return
    raise IntentionError(
        "cannot use legacy intention API to edit intentions with a destination of "
        f"{go_quote(entry.get('Name') or '')} after editing them via a service-intentions "
        "config entry"
    )


# -- normalization ---------------------------------------------------------------------------


def _ordered(source: Mapping[str, Any]) -> dict:
    out = {key: source[key] for key in _SOURCE_KEYS if key in source}
    out.update((key, value) for key, value in source.items() if key not in out)
    return out


def _normalize_source(source: dict, destination: str, legacy: bool) -> dict:
    if not source.get("Type"):
        source["Type"] = _SOURCE_TYPE
    # OSS: a source's namespace and partition are always the destination's ("default", "").
    source["Precedence"] = precedence(
        DEFAULT_NAMESPACE, source.get("Name") or "", DEFAULT_NAMESPACE, destination
    )
    if not legacy:
        for key in ("LegacyID", "LegacyCreateTime", "LegacyUpdateTime"):
            source.pop(key, None)
    # Consul keeps non-empty LegacyMeta on a non-legacy write so that validation refuses it
    # (data would be lost); an empty one means nothing either way.
    if not source.get("LegacyMeta"):
        source.pop("LegacyMeta", None)
    for permission in source.get("Permissions") or ():
        http = permission.get("HTTP") if isinstance(permission, dict) else None
        if isinstance(http, dict) and isinstance(http.get("Methods"), list):
            http["Methods"] = [_go_upper(m) if isinstance(m, str) else m for m in http["Methods"]]
    return _ordered(source)


def _normalize(entry: dict, legacy: bool) -> dict:
    entry["Kind"] = KIND
    destination = entry.get("Name") or ""
    sources = [_normalize_source(s, destination, legacy) for s in entry.get("Sources") or ()]
    # Highest precedence first; equal ones keep their order (Go's sort.SliceStable).
    sources.sort(key=lambda source: -source["Precedence"])
    entry["Sources"] = sources
    return entry


def normalize_intentions(entry: Mapping[str, Any], legacy: bool = False) -> dict:
    """``Normalize`` (or, with `legacy`, ``LegacyNormalize``) of a service-intentions entry:
    a new dict with Kind set, source Type defaulted, every Precedence recomputed, HTTP methods
    upper-cased and Sources stably sorted by precedence, highest first. The non-legacy form
    also drops the sources' legacy IDs and times."""
    return _normalize(copy.deepcopy(dict(entry)), legacy)


# -- legacy writes ---------------------------------------------------------------------------


def _filled(body: Mapping[str, Any], legacy_id: str) -> dict:
    """The intention the legacy RPC validates: Consul's defaults applied to the body."""
    ixn = {
        key: _text(body, key)
        for key in (
            "Description",
            "SourceNS",
            "SourceName",
            "DestinationNS",
            "DestinationName",
            "SourceSamenessGroup",
            "SourceType",
            "Action",
        )
    }
    ixn["ID"] = legacy_id
    ixn["SourceNS"] = ixn["SourceNS"] or DEFAULT_NAMESPACE
    ixn["DestinationNS"] = ixn["DestinationNS"] or DEFAULT_NAMESPACE
    ixn["SourceType"] = ixn["SourceType"] or _SOURCE_TYPE
    ixn["Meta"] = dict(_field(body, "Meta") or {})
    ixn["Permissions"] = _field(body, "Permissions")
    return ixn


def _check_namespaces(ixn: Mapping[str, str]) -> None:
    # The RPC's own enterprise check (partitions are cleared before it, so only namespaces).
    for key, what in (("SourceNS", "source"), ("DestinationNS", "destination")):
        value = ixn[key]
        if value and value.lower() != DEFAULT_NAMESPACE:
            raise IntentionError(f"Invalid {what} namespace {go_quote(value)}: {_NOT_ENTERPRISE}")


def _legacy_source(ixn: Mapping[str, Any], created: str, updated: str) -> dict:
    source: dict[str, Any] = {"Name": ixn["SourceName"]}
    if ixn["Action"]:
        source["Action"] = ixn["Action"]
    source["Precedence"] = 0
    source["LegacyID"] = ixn["ID"]
    source["Type"] = ixn["SourceType"]
    if ixn["Description"]:
        source["Description"] = ixn["Description"]
    if ixn["Meta"]:
        source["LegacyMeta"] = dict(ixn["Meta"])
    source["LegacyCreateTime"] = created
    source["LegacyUpdateTime"] = updated
    if ixn["SourceSamenessGroup"]:
        source["SamenessGroup"] = ixn["SourceSamenessGroup"]
    return source


def _finish_legacy(entry: dict) -> dict:
    _normalize(entry, legacy=True)
    _check_entry_legacy(entry)
    return entry


def create_legacy(
    entry: Mapping[str, Any] | None, body: Mapping[str, Any], new_id: str, now: datetime
) -> dict:
    """A legacy create (``POST /v1/connect/intentions``) into the destination's current entry
    (None if it has none): the new entry, holding the new source with ID `new_id`."""
    check_apply_body(body)
    if _text(body, "ID"):
        raise IntentionError("ID must be empty when creating a new intention")
    ixn = _filled(body, new_id)
    _check_namespaces(ixn)
    validate_legacy(ixn)
    stamp = rfc3339(now)
    source = _legacy_source(ixn, stamp, stamp)
    if entry is None:
        new: dict[str, Any] = {"Kind": KIND, "Name": ixn["DestinationName"], "Sources": [source]}
    else:
        _check_all_legacy(entry)
        new = copy.deepcopy(dict(entry))
        new["Sources"] = [*(new.get("Sources") or ()), source]
    return _finish_legacy(new)


def update_legacy(
    entries: Entries, legacy_id: str, body: Mapping[str, Any], now: datetime
) -> tuple[str, dict]:
    """A legacy update (``PUT /v1/connect/intentions/:id``): (destination, its new entry).

    The source with that ID is replaced by the body; its create time is kept (Consul's
    ``UpdateOver``), its update time is `now`.
    """
    check_apply_body(body)
    entry, old = _find_for_write(entries, legacy_id, deleting=False)
    ixn = _filled(body, legacy_id)
    if ixn["DestinationName"] != entry["Name"]:
        raise IntentionError(
            "Cannot modify Destination partition/namespace/name for an intention once it exists."
        )
    _check_namespaces(ixn)
    validate_legacy(ixn)
    _check_all_legacy(entry)
    stamp = rfc3339(now)
    source = _legacy_source(ixn, old.get("LegacyCreateTime") or stamp, stamp)
    new = copy.deepcopy(dict(entry))
    sources = list(new.get("Sources") or ())
    at = next(i for i, s in enumerate(sources) if s.get("LegacyID") == legacy_id)
    sources[at] = source
    new["Sources"] = sources
    return entry["Name"], _finish_legacy(new)


def delete_legacy(entries: Entries, legacy_id: str) -> tuple[str, dict | None]:
    """A legacy delete (``DELETE /v1/connect/intentions/:id``): (destination, its new entry,
    or None when that was its last source and the entry goes)."""
    entry, _old = _find_for_write(entries, legacy_id, deleting=True)
    _check_all_legacy(entry)
    new = copy.deepcopy(dict(entry))
    sources = list(new.get("Sources") or ())
    at = next(i for i, s in enumerate(sources) if s.get("LegacyID") == legacy_id)
    del sources[at]
    if not sources:
        return entry["Name"], None
    new["Sources"] = sources
    return entry["Name"], _finish_legacy(new)


# -- exact writes ----------------------------------------------------------------------------


def _same_meta(current: Mapping[str, str] | None, given: Mapping[str, str]) -> bool:
    current = current or {}
    return len(current) == len(given) and all(
        key in current and current[key] == value for key, value in given.items()
    )


def upsert_exact(
    entry: Mapping[str, Any] | None,
    source: str,
    destination: str,
    body: Mapping[str, Any],
    now: datetime | None = None,
) -> dict:
    """``PUT /v1/connect/intentions/exact``: the destination's entry with `source` written
    from the body (Action or Permissions, Description, Type, SourceSamenessGroup).

    The identity comes from the query, not the body, and the body's ID is ignored (the HTTP
    handler clears it, so the RPC's "ID must not be specified" cannot arise). Meta belongs to
    the entry: it may only be sent back unchanged. An existing source of that name is replaced
    where it stands (matched by name alone, so a peered source of that name too, as Consul
    does). `now` is unused: these writes carry no times.
    """
    del now
    check_apply_body(body)
    meta = _field(body, "Meta") or {}
    if meta:
        if entry is None:
            raise IntentionError("Meta must not be specified")
        if not _same_meta(entry.get("Meta"), meta):
            raise IntentionError(
                "Meta must not be specified, or should be unchanged during an update."
            )
    written: dict[str, Any] = {"Name": source}
    if _text(body, "Action"):
        written["Action"] = _text(body, "Action")
    if _field(body, "Permissions"):
        written["Permissions"] = copy.deepcopy(list(_field(body, "Permissions")))
    written["Precedence"] = 0
    written["Type"] = _text(body, "SourceType")
    if _text(body, "Description"):
        written["Description"] = _text(body, "Description")
    if _text(body, "SourceSamenessGroup"):
        written["SamenessGroup"] = _text(body, "SourceSamenessGroup")
    if entry is None:
        return _normalize({"Kind": KIND, "Name": destination, "Sources": [written]}, legacy=False)
    new = copy.deepcopy(dict(entry))
    sources = list(new.get("Sources") or ())
    at = next((i for i, s in enumerate(sources) if s.get("Name") == source), None)
    if at is None:
        sources.append(written)
    else:
        sources[at] = written
    new["Sources"] = sources
    return _normalize(new, legacy=False)


def delete_exact(entry: Mapping[str, Any] | None, source: str) -> Mapping[str, Any] | None:
    """``DELETE /v1/connect/intentions/exact``: the destination's entry without `source`.

    Returns `entry` itself when there is nothing to delete (Consul answers ``true`` without a
    write), None when the source was the last one (the entry is deleted), else the new entry,
    normalized the non-legacy way.
    """
    if entry is None:
        return None
    sources = list(entry.get("Sources") or ())
    # Consul looks for a local source of that name first, then removes the first source of
    # that name, peered or not.
    if not any(s.get("Name") == source and not s.get("Peer") for s in sources):
        return entry
    at = next(i for i, s in enumerate(sources) if s.get("Name") == source)
    new = copy.deepcopy(dict(entry))
    del new["Sources"][at]
    if not new["Sources"]:
        return None
    return _normalize(new, legacy=False)
