"""service-intentions as a config entry: its struct, the non-legacy Normalize (shared with the
intention APIs, `agent.connect.intention_writes.normalize_intentions`) and Validate
(`config_entry_intentions.go`, `validate(legacyWrite=false)`).

Normalize recomputes every source's Precedence, defaults Type to consul, upper-cases L7
methods, drops the legacy IDs and times and stably sorts the sources, highest precedence
first. Validate stops at the first problem; the JWT provider checks and Meta's come as
go-multierror texts.
"""

from __future__ import annotations

from agent.connect.entry_checks import (
    META_VALUE_MAX_LENGTH,
    WILDCARD,
    byte_len,
    fail,
    go_quote,
    raise_all,
    raise_meta,
)
from agent.connect.entry_kinds_chain import methods_problem
from agent.connect.entry_types import (
    BOOL,
    HASH_FIELD,
    INT,
    META_FIELD,
    RAFT_INDEX_FIELD,
    STRING,
    STRING_MAP,
    STRINGS,
    TIME,
    F,
    KindSpec,
    Ptr,
    Slice,
    Struct,
    named,
)
from agent.connect.intention_writes import normalize_intentions

__all__ = ["SERVICE_INTENTIONS"]

_JWT_REQUIREMENT = Struct(
    "IntentionJWTRequirement",
    (
        F(
            "Providers",
            Slice(
                Ptr(
                    Struct(
                        "IntentionJWTProvider",
                        (
                            F("Name", STRING),
                            F(
                                "VerifyClaims",
                                Slice(
                                    Ptr(
                                        Struct(
                                            "IntentionJWTClaimVerification",
                                            (F("Path", STRINGS), F("Value", STRING)),
                                        )
                                    )
                                ),
                                "verify_claims",
                            ),
                        ),
                    )
                )
            ),
        ),
    ),
)
_HEADER_PERMISSION = Struct(
    "IntentionHTTPHeaderPermission",
    (
        F("Name", STRING, keep=True),
        F("Present", BOOL),
        F("Exact", STRING),
        F("Prefix", STRING),
        F("Suffix", STRING),
        F("Regex", STRING),
        F("Invert", BOOL),
    ),
)
_PERMISSION = Struct(
    "IntentionPermission",
    (
        F("Action", named("structs.IntentionAction"), keep=True),
        F(
            "HTTP",
            Ptr(
                Struct(
                    "IntentionHTTPPermission",
                    (
                        F("PathExact", STRING, "path_exact"),
                        F("PathPrefix", STRING, "path_prefix"),
                        F("PathRegex", STRING, "path_regex"),
                        F("Header", Slice(_HEADER_PERMISSION)),
                        F("Methods", STRINGS),
                    ),
                )
            ),
        ),
        F("JWT", Ptr(_JWT_REQUIREMENT)),
    ),
)
_SOURCE = Struct(
    "SourceIntention",
    (
        F("Name", STRING, keep=True),
        F("Action", named("structs.IntentionAction")),
        F("Permissions", Slice(Ptr(_PERMISSION))),
        F("Precedence", INT, keep=True),
        F("LegacyID", STRING, "legacy_id"),
        F("Type", named("structs.IntentionSourceType"), keep=True),
        F("Description", STRING),
        F("LegacyMeta", STRING_MAP, "legacy_meta"),
        F("LegacyCreateTime", Ptr(TIME), "legacy_create_time"),
        F("LegacyUpdateTime", Ptr(TIME), "legacy_update_time"),
        F("Peer", STRING),
        F("SamenessGroup", STRING, "sameness_group"),
    ),
)
INTENTIONS_TABLE = Struct(
    "ServiceIntentionsConfigEntry",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F("Sources", Slice(Ptr(_SOURCE)), keep=True),
        F("JWT", Ptr(_JWT_REQUIREMENT)),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)
_ACTIONS = ("allow", "deny")


def _normalize(entry: dict) -> None:
    normalized = normalize_intentions(entry)
    entry.clear()
    entry.update(normalized)


def _wildcard_problem(name: str, peer: str = "", group: str = "") -> str | None:
    """validateIntentionWildcards in CE (the namespace is always "default")."""
    if name != WILDCARD and WILDCARD in name:
        return "Name: wildcard character '*' cannot be used with partial values"
    if WILDCARD in peer:
        return "Peer: cannot use wildcard '*' in peer"
    if WILDCARD in group:
        return "SamenessGroup: cannot use wildcard '*' in sameness group"
    return None


def _providers_problems(requirement: dict | None) -> list[str]:
    providers = (requirement or {}).get("Providers") or ()
    return ["JWT provider name is required" for p in providers if not p.get("Name")]


def _permission_problem(i: int, j: int, permission: dict) -> str | None:
    if permission.get("Action") not in _ACTIONS:
        return f"Sources[{i}].Permissions[{j}].Action must be set to 'allow' or 'deny'"
    at = f"Sources[{i}].Permissions[{j}].HTTP"
    http = permission.get("HTTP")
    if http is None:
        return f"{at} is required"
    parts = 0
    for key in ("PathExact", "PathPrefix"):
        if http.get(key):
            parts += 1
            if not http[key].startswith("/"):
                return f"{at}.{key} doesn't start with '/': {go_quote(http[key])}"
    parts += 1 if http.get("PathRegex") else 0
    if parts > 1:
        return f"{at} should only contain at most one of PathExact, PathPrefix, or PathRegex"
    for k, header in enumerate(http.get("Header") or ()):
        if not header.get("Name"):
            return f"{at}.Header[{k}] missing required Name field"
        if (
            sum(1 for key in ("Present", "Exact", "Regex", "Prefix", "Suffix") if header.get(key))
            != 1
        ):
            return (
                f"{at}.Header[{k}] should only contain one of Present, Exact, Prefix, Suffix, "
                "or Regex"
            )
        parts += 1
    if http.get("Methods"):
        if problem := methods_problem(http["Methods"], f"{at}."):
            return problem
        parts += 1
    if parts == 0:
        return f"{at} should not be empty"
    return None


def _source_problem(i: int, source: dict, wild_destination: bool) -> str | None:
    name = source.get("Name") or ""
    if not name:
        return f"Sources[{i}].Name is required"
    peer, group = source.get("Peer") or "", source.get("SamenessGroup") or ""
    if group:
        # Consul's format leaves a space at the end of this one.
        return f"Sources[{i}].SamenessGroup: Sameness groups are a Consul Enterprise feature. "
    if problem := _wildcard_problem(name, peer, group):
        return f"Sources[{i}].{problem}"
    if byte_len(source.get("Description") or "") > META_VALUE_MAX_LENGTH:
        return f"Sources[{i}].Description exceeds maximum length {META_VALUE_MAX_LENGTH}"
    if source.get("LegacyMeta"):
        return f"Sources[{i}].LegacyMeta must be omitted"
    for key in ("LegacyCreateTime", "LegacyUpdateTime"):
        if source.get(key) is not None:
            return f"Sources[{i}].{key} must be omitted"
    if source.get("LegacyID"):
        return f"Sources[{i}].LegacyID must be omitted"
    permissions = source.get("Permissions") or []
    action = source.get("Action") or ""
    if not permissions and action not in _ACTIONS:
        return f"Sources[{i}].Action must be set to 'allow' or 'deny'"
    if permissions and action:
        return f"Sources[{i}].Action must be omitted if Permissions are specified"
    if wild_destination and permissions:
        return (
            f"Sources[{i}].Permissions cannot be specified on intentions with wildcarded "
            "destinations"
        )
    if source.get("Type") != "consul":
        return f"Sources[{i}].Type must be set to 'consul'"
    for j, permission in enumerate(permissions):
        if problem := _permission_problem(i, j, permission):
            return problem
        raise_all(_providers_problems(permission.get("JWT")))
    return None


def _validate(entry: dict) -> None:
    name = entry.get("Name") or ""
    if not name:
        raise fail("Name is required")
    if problem := _wildcard_problem(name):
        raise fail(problem)
    if entry.get("JWT") is not None:
        raise_all(_providers_problems(entry["JWT"]))
    raise_meta(entry)
    sources = entry.get("Sources") or []
    if not sources:
        raise fail("At least one source is required")
    seen: set[tuple[str, str, str]] = set()
    for i, source in enumerate(sources):
        if problem := _source_problem(i, source, wild_destination=name == WILDCARD):
            raise fail(problem)
        src, peer, group = (
            source.get("Name") or "",
            source.get("Peer") or "",
            source.get("SamenessGroup") or "",
        )
        if (src, peer, group) in seen:
            if peer:
                raise fail(
                    f"Sources[{i}] defines peer({go_quote(peer)}) {go_quote(src)} more than once"
                )
            raise fail(f"Sources[{i}] defines {go_quote(src)} more than once")
        seen.add((src, peer, group))


SERVICE_INTENTIONS = KindSpec("service-intentions", INTENTIONS_TABLE, _normalize, _validate)
