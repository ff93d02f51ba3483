"""The discovery-chain kinds: service-router, service-splitter, service-resolver
(`agent/structs/config_entry_discoverychain.go` and its CE twin).

Each stops at its first problem, except Meta's, which come as one go-multierror text. What
only the other entries can tell (protocols, subsets of other services, redirect loops) is the
chain's graph check, not here.
"""

from __future__ import annotations

import math
import re

from agent.connect.chain_values import split_weight, weight_json
from agent.connect.entry_checks import (
    HTTP_METHODS,
    fail,
    go_quote,
    go_upper,
    raise_meta,
)
from agent.connect.entry_decode import f32
from agent.connect.entry_kinds_service import (
    failover_policy_problem,
    prioritize_by_locality_problem,
)
from agent.connect.entry_types import (
    BOOL,
    DURATION,
    FAILOVER_POLICY,
    FLOAT32,
    HASH_FIELD,
    HEADER_MODIFIERS,
    META_FIELD,
    PRIORITIZE_BY_LOCALITY,
    RAFT_INDEX_FIELD,
    STRING,
    STRINGS,
    UINT32,
    UINT64,
    F,
    KindSpec,
    Map,
    Ptr,
    Slice,
    Struct,
)
from agent.durations import format_nanoseconds
from agent.filter import FilterError, compile_filter

__all__ = ["SERVICE_RESOLVER", "SERVICE_ROUTER", "SERVICE_SPLITTER"]

_HEADERS = Ptr(HEADER_MODIFIERS)

# --------------------------------------------------------------------- service-router

_HEADER_MATCH = Struct(
    "ServiceRouteHTTPMatchHeader",
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
_QUERY_MATCH = Struct(
    "ServiceRouteHTTPMatchQueryParam",
    (F("Name", STRING, keep=True), F("Present", BOOL), F("Exact", STRING), F("Regex", STRING)),
)
_HTTP_MATCH = Struct(
    "ServiceRouteHTTPMatch",
    (
        F("PathExact", STRING, "path_exact"),
        F("PathPrefix", STRING, "path_prefix"),
        F("PathRegex", STRING, "path_regex"),
        F("CaseInsensitive", BOOL, "case_insensitive"),
        F("Header", Slice(_HEADER_MATCH)),
        F("QueryParam", Slice(_QUERY_MATCH), "query_param"),
        F("Methods", STRINGS),
    ),
)
_ROUTE_DESTINATION = Struct(
    "ServiceRouteDestination",
    (
        F("Service", STRING),
        F("ServiceSubset", STRING, "service_subset"),
        F("Namespace", STRING),
        F("Partition", STRING),
        F("PrefixRewrite", STRING, "prefix_rewrite"),
        F("RequestTimeout", DURATION, "request_timeout", text=True),
        F("IdleTimeout", DURATION, "idle_timeout", text=True),
        F("NumRetries", UINT32, "num_retries"),
        F("RetryOnConnectFailure", BOOL, "retry_on_connect_failure"),
        F("RetryOn", STRINGS, "retry_on"),
        F("RetryOnStatusCodes", Slice(UINT32), "retry_on_status_codes"),
        F("RequestHeaders", _HEADERS, "request_headers"),
        F("ResponseHeaders", _HEADERS, "response_headers"),
    ),
)
_ROUTE = Struct(
    "ServiceRoute",
    (
        F("Match", Ptr(Struct("ServiceRouteMatch", (F("HTTP", Ptr(_HTTP_MATCH)),)))),
        F("Destination", Ptr(_ROUTE_DESTINATION)),
    ),
)
ROUTER_TABLE = Struct(
    "ServiceRouterConfigEntry",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F("Routes", Slice(_ROUTE), keep=True),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)
_RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "connect-failure",
        "envoy-ratelimited",
        "retriable-4xx",
        "refused-stream",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)


def _normalize_router(entry: dict) -> None:
    for route in entry.get("Routes") or ():
        http = (route.get("Match") or {}).get("HTTP")
        if http and http.get("Methods"):
            http["Methods"] = [go_upper(m) for m in http["Methods"]]


def _one_of(match: dict, keys: tuple[str, ...]) -> int:
    return sum(1 for key in keys if match.get(key))


def methods_problem(methods: list[str], prefix: str) -> str | None:
    """The Methods rules routers and L7 intentions share."""
    seen: set[str] = set()
    for method in methods:
        if method not in HTTP_METHODS:
            return f"{prefix}Methods contains an invalid method {go_quote(method)}"
        if method in seen:
            return f"{prefix}Methods contains {go_quote(method)} more than once"
        seen.add(method)
    return None


def _route_problem(i: int, route: dict) -> str | None:
    at = f"Route[{i}]"
    prefix_rewrite_ok = False
    http = (route.get("Match") or {}).get("HTTP")
    if http is not None:
        parts = 0
        for key in ("PathExact", "PathPrefix"):
            if http.get(key):
                prefix_rewrite_ok, parts = True, parts + 1
                if not http[key].startswith("/"):
                    return f"{at} {key} doesn't start with '/': {go_quote(http[key])}"
        parts += 1 if http.get("PathRegex") else 0
        if parts > 1:
            return f"{at} should only contain at most one of PathExact, PathPrefix, or PathRegex"
        for j, header in enumerate(http.get("Header") or ()):
            if not header.get("Name"):
                return f"{at} Header[{j}] missing required Name field"
            if _one_of(header, ("Present", "Exact", "Regex", "Prefix", "Suffix")) != 1:
                return (
                    f"{at} Header[{j}] should only contain one of Present, Exact, Prefix, "
                    "Suffix, or Regex"
                )
        for j, query in enumerate(http.get("QueryParam") or ()):
            if not query.get("Name"):
                return f"{at} QueryParam[{j}] missing required Name field"
            if _one_of(query, ("Present", "Exact", "Regex")) != 1:
                return f"{at} QueryParam[{j}] should only contain one of Present, Exact, or Regex"
        if problem := methods_problem(http.get("Methods") or [], f"{at} "):
            return problem
    destination = route.get("Destination")
    if destination is not None:
        if destination.get("PrefixRewrite") and not prefix_rewrite_ok:
            return (
                f"{at} cannot make use of PrefixRewrite without configuring either "
                "PathExact or PathPrefix"
            )
        for condition in destination.get("RetryOn") or ():
            if condition not in _RETRY_ON:
                return f"{at} contains an invalid retry condition: {go_quote(condition)}"
    return None


def _validate_router(entry: dict) -> None:
    if not entry.get("Name"):
        raise fail("Name is required")
    raise_meta(entry)
    for i, route in enumerate(entry.get("Routes") or ()):
        if problem := _route_problem(i, route):
            raise fail(problem)


SERVICE_ROUTER = KindSpec("service-router", ROUTER_TABLE, _normalize_router, _validate_router)

# --------------------------------------------------------------------- service-splitter

_SPLIT = Struct(
    "ServiceSplit",
    (
        F("Weight", FLOAT32, keep=True),
        F("Service", STRING),
        F("ServiceSubset", STRING, "service_subset"),
        F("Namespace", STRING),
        F("Partition", STRING),
        F("RequestHeaders", _HEADERS, "request_headers"),
        F("ResponseHeaders", _HEADERS, "response_headers"),
    ),
)
SPLITTER_TABLE = Struct(
    "ServiceSplitterConfigEntry",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F("Splits", Slice(_SPLIT), keep=True),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)


def _normalize_splitter(entry: dict) -> None:
    # Consul's loop also defaults each split's Namespace, but on a copy: only the weight sticks.
    for split in entry.get("Splits") or ():
        split["Weight"] = weight_json(split_weight(split.get("Weight", 0)))


def _scaled(weight: float) -> int:
    """scaleWeight: float32(w) * 100 in float32, then Go's math.Round (half away from 0)."""
    hundredths = f32(f32(float(weight)) * 100.0)
    return int(math.copysign(math.floor(abs(hundredths) + 0.5), hundredths))


def _validate_splitter(entry: dict) -> None:
    name = entry.get("Name") or ""
    if not name:
        raise fail("Name is required")
    splits = entry.get("Splits") or []
    if not splits:
        raise fail("no splits configured")
    raise_meta(entry)
    seen: set[tuple] = set()
    for n, split in enumerate(splits):
        # Go keys a map by the split struct: its header pointers compare by identity, so a
        # split carrying header modifiers never equals another.
        headers = tuple(
            n if split.get(key) is not None else None
            for key in ("RequestHeaders", "ResponseHeaders")
        )
        key = (
            split.get("Service") or name,
            split.get("ServiceSubset") or "",
            split.get("Namespace") or "",
            split.get("Partition") or "",
            headers,
        )
        if key in seen:
            raise fail(
                "split destination occurs more than once: "
                f"service={go_quote(key[0])}, subset={go_quote(key[1])}, "
                f"namespace={go_quote(key[2])}, partition={go_quote(key[3])}"
            )
        seen.add(key)
    total = sum(_scaled(split.get("Weight", 0)) for split in splits)
    if total != 10000:
        raise fail(
            f"the sum of all split weights must be 100, not {f32(f32(float(total)) / 100.0):.6f}"
        )


SERVICE_SPLITTER = KindSpec(
    "service-splitter", SPLITTER_TABLE, _normalize_splitter, _validate_splitter
)

# --------------------------------------------------------------------- service-resolver

_REDIRECT = Struct(
    "ServiceResolverRedirect",
    (
        F("Service", STRING),
        F("ServiceSubset", STRING, "service_subset"),
        F("Namespace", STRING),
        F("Partition", STRING),
        F("Datacenter", STRING),
        F("Peer", STRING),
        F("SamenessGroup", STRING),
    ),
)
_TARGET = Struct(
    "ServiceResolverFailoverTarget",
    (
        F("Service", STRING),
        F("ServiceSubset", STRING, "service_subset"),
        F("Partition", STRING),
        F("Namespace", STRING),
        F("Datacenter", STRING),
        F("Peer", STRING),
    ),
)
_FAILOVER = Struct(
    "ServiceResolverFailover",
    (
        F("Service", STRING),
        F("ServiceSubset", STRING, "service_subset"),
        F("Namespace", STRING),
        F("Datacenters", STRINGS),
        F("Targets", Slice(_TARGET)),
        F("Policy", Ptr(FAILOVER_POLICY)),
        F("SamenessGroup", STRING),
    ),
)
_HASH_POLICY = Struct(
    "HashPolicy",
    (
        F("Field", STRING),
        F("FieldValue", STRING, "field_value"),
        F(
            "CookieConfig",
            Ptr(
                Struct(
                    "CookieConfig",
                    (F("Session", BOOL), F("TTL", DURATION), F("Path", STRING)),
                )
            ),
            "cookie_config",
        ),
        F("SourceIP", BOOL, "source_ip"),
        F("Terminal", BOOL),
    ),
)
_LOAD_BALANCER = Struct(
    "LoadBalancer",
    (
        F("Policy", STRING),
        F(
            "RingHashConfig",
            Ptr(
                Struct(
                    "RingHashConfig",
                    (
                        F("MinimumRingSize", UINT64, "minimum_ring_size"),
                        F("MaximumRingSize", UINT64, "maximum_ring_size"),
                    ),
                )
            ),
            "ring_hash_config",
        ),
        F(
            "LeastRequestConfig",
            Ptr(Struct("LeastRequestConfig", (F("ChoiceCount", UINT32, "choice_count"),))),
            "least_request_config",
        ),
        F("HashPolicies", Slice(_HASH_POLICY), "hash_policies"),
    ),
)
RESOLVER_TABLE = Struct(
    "ServiceResolverConfigEntry",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F("DefaultSubset", STRING, "default_subset"),
        F(
            "Subsets",
            Map(
                Struct(
                    "ServiceResolverSubset",
                    (F("Filter", STRING), F("OnlyPassing", BOOL, "only_passing")),
                )
            ),
        ),
        F("Redirect", Ptr(_REDIRECT)),
        F("Failover", Map(_FAILOVER)),
        F("PrioritizeByLocality", Ptr(PRIORITIZE_BY_LOCALITY), "prioritize_by_locality"),
        F("ConnectTimeout", DURATION, "connect_timeout", text=True),
        F("RequestTimeout", DURATION, "request_timeout", text=True),
        F("LoadBalancer", Ptr(_LOAD_BALANCER), "load_balancer"),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)
_SUBSET_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_LB_POLICIES = frozenset({"", "random", "round_robin", "least_request", "ring_hash", "maglev"})
_HASH_FIELDS = frozenset({"header", "cookie", "query_parameter"})


def _subset_problem(name: str) -> str | None:
    if not name or len(name.encode()) > 63:
        return "must be non-empty and 63 characters or fewer"
    if not _SUBSET_NAME.fullmatch(name):
        return (
            "must be 63 characters or fewer, begin or end with lower case alphanumeric "
            "characters, and contain lower case alphanumeric characters or '-' in between"
        )
    return None


def _redirect_problem(entry: dict, redirect: dict, is_subset) -> str | None:
    # The cross-partition and cross-datacenter checks come first in Consul but can never
    # fail in CE, where every partition is the default one.
    get = redirect.get
    for key, what in (
        ("Partition", "Partition"),
        ("Namespace", "Namespace"),
        ("SamenessGroup", "SamenessGroup"),
    ):
        if get(key):
            return f"Redirect: Setting {what} requires Consul Enterprise"
    if entry.get("Failover"):
        return "Redirect and Failover cannot both be set"
    if not any(get(k) for k in _REDIRECT_KEYS):
        return "Redirect is empty"
    pairs = (
        ("SamenessGroup", "ServiceSubset", "Redirect.SamenessGroup cannot be set with Redirect.ServiceSubset"),
        ("SamenessGroup", "Partition", "Redirect.Partition cannot be set with Redirect.SamenessGroup"),
        ("SamenessGroup", "Datacenter", "Redirect.SamenessGroup cannot be set with Redirect.Datacenter"),
        ("Peer", "ServiceSubset", "Redirect.Peer cannot be set with Redirect.ServiceSubset"),
        ("Peer", "Partition", "Redirect.Partition cannot be set with Redirect.Peer"),
        ("Peer", "Datacenter", "Redirect.Peer cannot be set with Redirect.Datacenter"),
    )  # fmt: skip
    for first, second, message in pairs:
        if get(first) and get(second):
            return message
    service, subset = get("Service") or "", get("ServiceSubset") or ""
    if not service:
        for key in ("ServiceSubset", "Namespace", "Partition", "Peer"):
            if get(key):
                return f"Redirect.{key} defined without Redirect.Service"
    elif subset and service == entry["Name"] and not is_subset(subset):
        return (
            f"Redirect.ServiceSubset {go_quote(subset)} is not a valid subset of "
            f"{go_quote(entry['Name'])}"
        )
    return None


_REDIRECT_KEYS = tuple(f.name for f in _REDIRECT.fields)


def _failover_problem(entry: dict, key: str, failover: dict, is_subset) -> str | None:
    at = f"Bad Failover[{go_quote(key)}]: "
    get = failover.get
    if get("Namespace"):
        return f"{at}Setting Namespace requires Consul Enterprise"
    if get("SamenessGroup"):
        return f"{at}Setting SamenessGroup requires Consul Enterprise"
    if key != "*" and not is_subset(key):
        return f"{at}not a valid subset subset"
    if not any(get(k) for k in ("Service", "ServiceSubset", "Namespace", "Datacenters", "Targets", "SamenessGroup")):  # fmt: skip
        return (
            f"{at}one of Service, ServiceSubset, Namespace, Targets, SamenessGroup, or "
            "Datacenters is required"
        )
    policy = get("Policy")
    if policy is not None and policy.get("Mode"):
        return f"{at}Setting failover policies requires Consul Enterprise"
    if problem := failover_policy_problem(policy):
        return at + problem
    service, subset = get("Service") or "", get("ServiceSubset") or ""
    if subset and service in ("", entry["Name"]) and not is_subset(subset):
        # Consul names the failover's Service here, even when it is empty.
        return f"{at}ServiceSubset {go_quote(subset)} is not a valid subset of {go_quote(service)}"
    for other in ("Datacenters", "ServiceSubset", "Service"):
        if get("Targets") and get(other):
            return f"{at}Targets cannot be set with {other}"
    for i, target in enumerate(get("Targets") or ()):
        if problem := _target_problem(entry, target, is_subset):
            return f"Bad Failover[{go_quote(key)}].Targets[{i}]: {problem}"
    if any(dc == "" for dc in get("Datacenters") or ()):
        return f"Bad Failover[{go_quote(key)}].Datacenters: found empty datacenter"
    return None


def _target_problem(entry: dict, target: dict, is_subset) -> str | None:
    get = target.get
    for key in ("Partition", "Namespace"):
        if get(key):
            return f"Setting {key} requires Consul Enterprise"
    pairs = (
        ("Peer", "ServiceSubset", "Peer cannot be set with ServiceSubset"),
        ("Peer", "Partition", "Partition cannot be set with Peer"),
        ("Peer", "Datacenter", "Peer cannot be set with Datacenter"),
        ("Partition", "Datacenter", "Partition cannot be set with Datacenter"),
    )
    for first, second, message in pairs:
        if get(first) and get(second):
            return message
    subset = get("ServiceSubset") or ""
    if subset and (get("Service") or "") in ("", entry["Name"]) and not is_subset(subset):
        return (
            f"ServiceSubset {go_quote(subset)} is not a valid subset of {go_quote(entry['Name'])}"
        )
    return None


def _load_balancer_problem(lb: dict) -> str | None:
    policy = lb.get("Policy") or ""
    if policy not in _LB_POLICIES:
        return f"Bad LoadBalancer policy: {go_quote(policy)} is not supported"
    if policy != "ring_hash" and lb.get("RingHashConfig") is not None:
        return (
            "Bad LoadBalancer configuration. RingHashConfig specified for incompatible load "
            f"balancing policy {go_quote(policy)}"
        )
    if policy != "least_request" and lb.get("LeastRequestConfig") is not None:
        return (
            "Bad LoadBalancer configuration. LeastRequestConfig specified for incompatible "
            f"load balancing policy {go_quote(policy)}"
        )
    if policy not in ("ring_hash", "maglev") and lb.get("HashPolicies"):
        return (
            "Bad LoadBalancer configuration: HashPolicies specified for non-hash-based "
            f"Policy: {go_quote(policy)}"
        )
    for i, hp in enumerate(lb.get("HashPolicies") or ()):
        at = f"Bad LoadBalancer HashPolicy[{i}]: "
        field, value = hp.get("Field") or "", hp.get("FieldValue") or ""
        if field and field not in _HASH_FIELDS:
            return f"{at}{go_quote(field)} is not a supported field"
        if hp.get("SourceIP") and field:
            return f"{at}A single hash policy cannot hash both a source address and a {go_quote(field)}"
        if hp.get("SourceIP") and value:
            return f"{at}A FieldValue cannot be specified when hashing SourceIP"
        if field and not value:
            return f"{at}Field {go_quote(field)} was specified without a FieldValue"
        if value and not field:
            return f"{at}FieldValue requires a Field to apply to"
        cookie = hp.get("CookieConfig")
        if cookie is not None:
            if field != "cookie":
                return f"{at}cookie_config provided for {go_quote(field)}"
            if cookie.get("Session") and cookie.get("TTL"):
                return f"{at}a session cookie cannot have an associated TTL"
    return None


def _resolver_problem(entry: dict) -> str | None:
    subsets = entry.get("Subsets") or {}
    for name, subset in subsets.items():
        if not name:
            return "Subset defined with empty name"
        if problem := _subset_problem(name):
            return f"Subset {go_quote(name)} is invalid: {problem}"
        if subset.get("Filter"):
            try:
                compile_filter(subset["Filter"])
            except FilterError as err:
                return f"Filter for subset {go_quote(name)} is not a valid expression: {err}"

    def is_subset(name: str) -> bool:
        return name in subsets

    default = entry.get("DefaultSubset") or ""
    if default and not is_subset(default):
        return f"DefaultSubset {go_quote(default)} is not a valid subset"
    if problem := prioritize_by_locality_problem(entry.get("PrioritizeByLocality")):
        return problem
    redirect = entry.get("Redirect")
    if redirect is not None and (problem := _redirect_problem(entry, redirect, is_subset)):
        return problem
    for key, failover in (entry.get("Failover") or {}).items():
        if problem := _failover_problem(entry, key, failover, is_subset):
            return problem
    for field in ("ConnectTimeout", "RequestTimeout"):
        value = entry.get(field) or 0
        if value < 0:
            return f"Bad {field} '{format_nanoseconds(value)}', must be >= 0"
    if entry.get("LoadBalancer") is not None:
        return _load_balancer_problem(entry["LoadBalancer"])
    return None


def _validate_resolver(entry: dict) -> None:
    if not entry.get("Name"):
        raise fail("Name is required")
    raise_meta(entry)
    if problem := _resolver_problem(entry):
        raise fail(problem)


SERVICE_RESOLVER = KindSpec(
    "service-resolver", RESOLVER_TABLE, lambda entry: None, _validate_resolver
)
