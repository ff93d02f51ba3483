"""The API-gateway family: api-gateway, bound-api-gateway, http-route and tcp-route
(`config_entry_gateways.go`, `config_entry_routes.go`).

None of these requires a Name, and each stops at its first problem (Meta's come as one
go-multierror text). api-gateway and the routes carry a Status the controller owns; it
decodes like any field and the state keeps the stored one on a write. bound-api-gateway is
written only by the controller: it decodes and validates, but its ACL rule refuses every
writer. In CE the JWT settings are empty structs, so anything under them is refused as an
enterprise feature when decoding.
"""

from __future__ import annotations

import re

from agent.connect.entry_checks import (
    HTTP_METHODS,
    WILDCARD,
    fail,
    go_lower,
    go_quote,
    go_upper,
    is_domain_name,
    raise_meta,
    tls_problem,
)
from agent.connect.entry_types import (
    BOOL,
    CIPHER_SUITES,
    DURATION,
    HASH_FIELD,
    INT,
    META_FIELD,
    RAFT_INDEX_FIELD,
    RESOURCE_REFERENCE,
    STATUS,
    STRING,
    STRING_MAP,
    STRINGS,
    TLS_VERSION,
    UINT32,
    F,
    KindSpec,
    Map,
    Ptr,
    Slice,
    Struct,
    named,
)

__all__ = ["API_GATEWAY", "BOUND_API_GATEWAY", "HTTP_ROUTE", "TCP_ROUTE"]

_REFERENCES = Slice(RESOURCE_REFERENCE)

# --------------------------------------------------------------------- api-gateway

# In CE the JWT settings are an empty struct: any key under them is "left over" and refused
# as an enterprise feature.
_JWT_POLICY = Struct("APIGatewayPolicy", (F("JWT", Ptr(Struct("APIGatewayJWTRequirement", ()))),))
_API_LISTENER = Struct(
    "APIGatewayListener",
    (
        F("Name", STRING, keep=True),
        F("Hostname", STRING, keep=True),
        F("Port", INT, keep=True),
        F("Protocol", named("structs.APIGatewayListenerProtocol"), keep=True),
        F(
            "TLS",
            Struct(
                "APIGatewayTLSConfiguration",
                (
                    F("Certificates", _REFERENCES, keep=True),
                    F("MaxVersion", TLS_VERSION, keep=True),
                    F("MinVersion", TLS_VERSION, keep=True),
                    F("CipherSuites", CIPHER_SUITES, keep=True),
                ),
            ),
        ),
        F("Override", Ptr(_JWT_POLICY)),
        F("Default", Ptr(_JWT_POLICY)),
    ),
)
API_GATEWAY_TABLE = Struct(
    "APIGatewayConfigEntry",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F("Listeners", Slice(_API_LISTENER), keep=True),
        F("Status", STATUS),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)
_LISTENER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _normalize_api_gateway(entry: dict) -> None:
    for listener in entry.get("Listeners") or ():
        if listener.get("Protocol"):
            listener["Protocol"] = go_lower(listener["Protocol"])
        for cert in (listener.get("TLS") or {}).get("Certificates") or ():
            cert.setdefault("Kind", "inline-certificate")


def _api_gateway_problem(entry: dict) -> str | None:
    listeners = entry.get("Listeners") or []
    if not listeners:
        return "api gateway must have at least one listener"
    names: set[str] = set()
    for listener in listeners:
        name = listener.get("Name") or ""
        if not _LISTENER_NAME.fullmatch(name):
            return (
                f"listener name {go_quote(name)} is invalid, must be at least 1 character and "
                "contain only letters, numbers, or dashes"
            )
        if name in names:
            return f"found multiple listeners with the name {go_quote(name)}"
        names.add(name)
    by_port: dict[int, dict] = {}
    for listener in listeners:
        merged = by_port.get(listener.get("Port", 0))
        if merged is not None and (
            (merged.get("Hostname") or "") != (listener.get("Hostname") or "")
            or (merged.get("Protocol") or "") != (listener.get("Protocol") or "")
        ):
            return (
                f"listeners {go_quote(merged.get('Name') or '')} and "
                f"{go_quote(listener.get('Name') or '')} cannot be merged"
            )
        by_port[listener.get("Port", 0)] = listener
    for listener in listeners:
        protocol, hostname = listener.get("Protocol") or "", listener.get("Hostname") or ""
        port = listener.get("Port", 0)
        if protocol not in ("http", "tcp"):
            return f"unsupported listener protocol {go_quote(protocol)}, must be one of 'tcp', or 'http'"
        if protocol == "tcp" and hostname:
            return "hostname specification is not supported when using TCP"
        if not 0 < port <= 65535:
            return f"listener port {port} not in the range 1-65535"
        if WILDCARD in hostname.removeprefix("*."):
            return (
                f"host {go_quote(hostname)} is not valid, a wildcard specifier is only allowed "
                "as the left-most label"
            )
        tls = listener.get("TLS") or {}
        for cert in tls.get("Certificates") or ():
            if (cert.get("Kind") or "") != "inline-certificate":
                return (
                    f"unsupported certificate kind: {go_quote(cert.get('Kind') or '')}, must be "
                    "'inline-certificate'"
                )
            if not cert.get("Name"):
                return "certificate reference must have a name"
        problem = tls_problem(
            tls.get("MinVersion") or "", tls.get("MaxVersion") or "", tls.get("CipherSuites") or []
        )
        if problem:
            return problem
    return None


def _validate_api_gateway(entry: dict) -> None:
    raise_meta(entry)
    if problem := _api_gateway_problem(entry):
        raise fail(problem)


API_GATEWAY = KindSpec(
    "api-gateway", API_GATEWAY_TABLE, _normalize_api_gateway, _validate_api_gateway
)

# --------------------------------------------------------------------- bound-api-gateway

BOUND_API_GATEWAY_TABLE = Struct(
    "BoundAPIGatewayConfigEntry",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F(
            "Listeners",
            Slice(
                Struct(
                    "BoundAPIGatewayListener",
                    (
                        F("Name", STRING, keep=True),
                        F("Routes", _REFERENCES, keep=True),
                        F("Certificates", _REFERENCES, keep=True),
                    ),
                )
            ),
            keep=True,
        ),
        F("Services", Map(_REFERENCES), keep=True),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)


def _validate_bound_api_gateway(entry: dict) -> None:
    for listener in entry.get("Listeners") or ():
        for cert in listener.get("Certificates") or ():
            if (cert.get("Kind") or "") != "inline-certificate":
                raise fail(
                    f"unsupported certificate kind: {go_quote(cert.get('Kind') or '')}, must be "
                    "'inline-certificate'"
                )
            if not cert.get("Name"):
                raise fail("certificate reference must have a name")
        for route in listener.get("Routes") or ():
            if (route.get("Kind") or "") not in ("http-route", "tcp-route"):
                raise fail(
                    f"unsupported route kind: {go_quote(route.get('Kind') or '')}, must be one "
                    "of 'http-route', or 'tcp-route'"
                )
            if not route.get("Name"):
                raise fail("route reference must have a name")


BOUND_API_GATEWAY = KindSpec(
    "bound-api-gateway", BOUND_API_GATEWAY_TABLE, lambda entry: None, _validate_bound_api_gateway
)

# --------------------------------------------------------------------- http-route, tcp-route

_HEADER_FILTER = Struct(
    "HTTPHeaderFilter",
    (
        F("Add", STRING_MAP, keep=True),
        F("Remove", STRINGS, keep=True),
        F("Set", STRING_MAP, keep=True),
    ),
)
_FILTERS = Struct(
    "HTTPFilters",
    (
        F("Headers", Slice(_HEADER_FILTER), keep=True),
        F("URLRewrite", Ptr(Struct("URLRewrite", (F("Path", STRING, keep=True),))), keep=True),
        F(
            "RetryFilter",
            Ptr(
                Struct(
                    "RetryFilter",
                    (
                        F("NumRetries", UINT32, keep=True),
                        F("RetryOn", STRINGS, keep=True),
                        F("RetryOnStatusCodes", Slice(UINT32), keep=True),
                        F("RetryOnConnectFailure", BOOL, keep=True),
                    ),
                )
            ),
            keep=True,
        ),
        F(
            "TimeoutFilter",
            Ptr(
                Struct(
                    "TimeoutFilter",
                    (
                        F("RequestTimeout", DURATION, keep=True),
                        F("IdleTimeout", DURATION, keep=True),
                    ),
                )
            ),
            keep=True,
        ),
        # An empty struct in CE: settings under it are refused as enterprise-only.
        F("JWT", Ptr(Struct("JWTFilter", ())), keep=True),
    ),
)
_RESPONSE_FILTERS = Struct("HTTPResponseFilters", (F("Headers", Slice(_HEADER_FILTER), keep=True),))
_MATCH_ITEM = (
    F("Match", STRING, keep=True),
    F("Name", STRING, keep=True),
    F("Value", STRING, keep=True),
)
_HTTP_MATCH = Struct(
    "HTTPMatch",
    (
        F("Headers", Slice(Struct("HTTPHeaderMatch", _MATCH_ITEM)), keep=True),
        F("Method", named("structs.HTTPMatchMethod"), keep=True),
        F(
            "Path",
            Struct("HTTPPathMatch", (F("Match", STRING, keep=True), F("Value", STRING, keep=True))),
        ),
        F("Query", Slice(Struct("HTTPQueryMatch", _MATCH_ITEM)), keep=True),
    ),
)
_HTTP_SERVICE = Struct(
    "HTTPService",
    (
        F("Name", STRING, keep=True),
        F("Weight", INT, keep=True),
        F("Filters", _FILTERS),
        F("ResponseFilters", _RESPONSE_FILTERS),
    ),
)
_RULE = Struct(
    "HTTPRouteRule",
    (
        F("Filters", _FILTERS),
        F("ResponseFilters", _RESPONSE_FILTERS),
        F("Matches", Slice(_HTTP_MATCH), keep=True),
        F("Services", Slice(_HTTP_SERVICE), keep=True),
    ),
)
HTTP_ROUTE_TABLE = Struct(
    "HTTPRouteConfigEntry",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F("Parents", _REFERENCES, keep=True),
        F("Rules", Slice(_RULE), keep=True),
        F("Hostnames", STRINGS, keep=True),
        META_FIELD,
        F("Status", STATUS),
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)
TCP_ROUTE_TABLE = Struct(
    "TCPRouteConfigEntry",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F("Parents", _REFERENCES, keep=True),
        F("Services", Slice(Struct("TCPService", (F("Name", STRING, keep=True),))), keep=True),
        META_FIELD,
        F("Status", STATUS),
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)


def _default_parents(entry: dict) -> None:
    for parent in entry.get("Parents") or ():
        if not parent.get("Kind"):
            parent["Kind"] = "api-gateway"


def _normalize_http_route(entry: dict) -> None:
    _default_parents(entry)
    for rule in entry.get("Rules") or ():
        for match in rule.get("Matches") or ():
            if match.get("Method"):
                match["Method"] = go_upper(match["Method"])
            if not (match.get("Path") or {}).get("Match"):
                match["Path"] = {"Match": "prefix", "Value": "/"}
        for service in rule.get("Services") or ():
            if service.get("Weight", 0) <= 0:
                service["Weight"] = 1


def _parents_problem(entry: dict) -> str | None:
    seen: set[tuple[str, str, str]] = set()
    for parent in entry.get("Parents") or ():
        kind = parent.get("Kind") or ""
        if kind != "api-gateway":
            return f"unsupported parent kind: {go_quote(kind)}, must be 'api-gateway'"
        key = (kind, parent.get("Name") or "", parent.get("SectionName") or "")
        if key in seen:
            return "route parents must be unique"
        seen.add(key)
    return None


def _match_problem(match: dict) -> str | None:
    method = match.get("Method") or ""
    if method and method not in HTTP_METHODS:
        return f"Method contains an invalid method {go_quote(method)}"
    for i, query in enumerate(match.get("Query") or ()):
        if not query.get("Name"):
            return f"Query[{i}], missing required Name field"
        if (query.get("Match") or "") not in ("exact", "present", "regex"):
            return f"Query[{i}], match type should be one of present, exact, or regex"
    for i, header in enumerate(match.get("Headers") or ()):
        if not header.get("Name"):
            return f"Headers[{i}], missing required Name field"
        if (header.get("Match") or "") not in ("exact", "prefix", "regex", "suffix", "present"):
            return (
                f"Headers[{i}], match type should be one of present, exact, prefix, suffix, "
                "or regex"
            )
    path = match.get("Path") or {}
    kind, value = path.get("Match") or "", path.get("Value") or ""
    if kind in ("exact", "prefix"):
        if not value.startswith("/"):
            return f"Path, {kind} type match doesn't start with '/': {go_quote(value)}"
    elif kind != "regex":
        return "Path, match type should be one of exact, prefix, or regex"
    return None


def _http_route_problem(entry: dict) -> str | None:
    for host in entry.get("Hostnames") or ():
        if not is_domain_name(host):
            return f"host {go_quote(host)} must be a valid DNS hostname"
        if WILDCARD in host:
            return f"host {go_quote(host)} must not be a wildcard"
    return _parents_problem(entry)


def _validate_http_route(entry: dict) -> None:
    if problem := _http_route_problem(entry):
        raise fail(problem)
    raise_meta(entry)
    for i, rule in enumerate(entry.get("Rules") or ()):
        for j, match in enumerate(rule.get("Matches") or ()):
            if problem := _match_problem(match):
                raise fail(f"Rule[{i}], Match[{j}], {problem}")


def _validate_tcp_route(entry: dict) -> None:
    if len(entry.get("Services") or ()) > 1:
        raise fail("tcp-route currently only supports one service")
    if problem := _parents_problem(entry):
        raise fail(problem)
    raise_meta(entry)


HTTP_ROUTE = KindSpec("http-route", HTTP_ROUTE_TABLE, _normalize_http_route, _validate_http_route)
TCP_ROUTE = KindSpec("tcp-route", TCP_ROUTE_TABLE, _default_parents, _validate_tcp_route)
