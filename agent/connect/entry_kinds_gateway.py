"""The mesh's own gateways and their certificates: ingress-gateway, terminating-gateway and
inline-certificate (`config_entry_gateways.go`, `config_entry_inline_certificate.go`).

None of these requires a Name (Consul accepts an empty one) and each stops at its first
problem, Meta's coming as one go-multierror text. The API-gateway family is
`entry_kinds_api_gateway`.
"""

from __future__ import annotations

from agent.connect.entry_checks import (
    HTTP_LIKE,
    WILDCARD,
    fail,
    go_lower,
    go_quote,
    headers_set,
    is_domain_name,
    raise_meta,
    tls_problem,
)
from agent.connect.entry_pem import inline_certificate_problem
from agent.connect.entry_types import (
    BOOL,
    CIPHER_SUITES,
    HASH_FIELD,
    HEADER_MODIFIERS,
    INT,
    META_FIELD,
    PASSIVE_HEALTH_CHECK,
    RAFT_INDEX_FIELD,
    RESOURCE_REFERENCE,
    STRING,
    STRINGS,
    TLS_VERSION,
    UINT32,
    F,
    KindSpec,
    Ptr,
    Slice,
    Struct,
)

__all__ = ["INGRESS_GATEWAY", "INLINE_CERTIFICATE", "TERMINATING_GATEWAY", "terminating_warnings"]

_HEADERS = Ptr(HEADER_MODIFIERS)
_PHC = Ptr(PASSIVE_HEALTH_CHECK)
_REFERENCES = Slice(RESOURCE_REFERENCE)

# --------------------------------------------------------------------- ingress-gateway

_SDS = Struct(
    "GatewayTLSSDSConfig",
    (F("ClusterName", STRING, "cluster_name"), F("CertResource", STRING, "cert_resource")),
)
_GATEWAY_TLS = Struct(
    "GatewayTLSConfig",
    (
        F("Enabled", BOOL, keep=True),
        F("SDS", Ptr(_SDS)),
        F("TLSMinVersion", TLS_VERSION, "tls_min_version"),
        F("TLSMaxVersion", TLS_VERSION, "tls_max_version"),
        F("CipherSuites", CIPHER_SUITES, "cipher_suites"),
    ),
)
_INGRESS_SERVICE = Struct(
    "IngressService",
    (
        F("Name", STRING, keep=True),
        F("Hosts", STRINGS, keep=True),
        F("TLS", Ptr(Struct("GatewayServiceTLSConfig", (F("SDS", Ptr(_SDS)),)))),
        F("RequestHeaders", _HEADERS, "request_headers"),
        F("ResponseHeaders", _HEADERS, "response_headers"),
        F("MaxConnections", UINT32, "max_connections"),
        F("MaxPendingRequests", UINT32, "max_pending_requests"),
        F("MaxConcurrentRequests", UINT32, "max_concurrent_requests"),
        F("PassiveHealthCheck", _PHC, "passive_health_check"),
        META_FIELD,
    ),
)
_INGRESS_LISTENER = Struct(
    "IngressListener",
    (
        F("Port", INT, keep=True),
        F("Protocol", STRING, keep=True),
        F("TLS", Ptr(_GATEWAY_TLS)),
        F("Services", Slice(_INGRESS_SERVICE), keep=True),
    ),
)
_INGRESS_DEFAULTS = Struct(
    "IngressServiceConfig",
    (
        F("MaxConnections", UINT32, keep=True),
        F("MaxPendingRequests", UINT32, keep=True),
        F("MaxConcurrentRequests", UINT32, keep=True),
        F("PassiveHealthCheck", _PHC, "passive_health_check"),
    ),
)
INGRESS_TABLE = Struct(
    "IngressGatewayConfigEntry",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F("TLS", _GATEWAY_TLS),
        F("Listeners", Slice(_INGRESS_LISTENER), keep=True),
        F("Defaults", Ptr(_INGRESS_DEFAULTS)),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)
_INGRESS_PROTOCOLS = frozenset({"tcp", "http", "http2", "grpc"})


def _normalize_ingress(entry: dict) -> None:
    for listener in entry.get("Listeners") or ():
        listener["Protocol"] = go_lower(listener.get("Protocol") or "tcp")


def _gateway_tls_problem(tls: dict) -> str | None:
    return tls_problem(
        tls.get("TLSMinVersion") or "",
        tls.get("TLSMaxVersion") or "",
        tls.get("CipherSuites") or [],
    )


def _sds_problem(entry: dict, listener: dict, service: dict) -> str | None:
    """validateServiceSDS: SDS settings inherited gateway -> listener -> service."""
    port = listener.get("Port", 0)
    gateway_sds = (entry.get("TLS") or {}).get("SDS")
    gateway_cluster = gateway_cert = False
    if gateway_sds is not None:
        if not gateway_sds.get("ClusterName") and gateway_sds.get("CertResource"):
            return "TLS.SDS.ClusterName is required if CertResource is set"
        gateway_cluster = bool(gateway_sds.get("ClusterName"))
        gateway_cert = bool(gateway_sds.get("CertResource"))
    listener_sds = (listener.get("TLS") or {}).get("SDS") or {}
    listener_cert = bool(listener_sds.get("CertResource"))
    listener_cluster = bool(listener_sds.get("ClusterName"))
    if gateway_cluster and not gateway_cert and not listener_cert:
        return (
            "TLS.SDS.CertResource is required if ClusterName is set for gateway "
            f"(listener on port {port})"
        )
    if listener_cluster and not listener_cert:
        return (
            "TLS.SDS.CertResource is required if ClusterName is set for listener "
            f"(listener on port {port})"
        )
    if listener_cert and not listener_cluster and not gateway_cluster:
        return f"TLS.SDS.ClusterName is required if CertResource is set (listener on port {port})"
    service_sds = (service.get("TLS") or {}).get("SDS") or {}
    if service_sds.get("CertResource"):
        name = go_quote(service.get("Name") or "")
        if not service.get("Hosts"):
            return (
                "A service specifying TLS.SDS.CertResource must have at least one item in "
                f"Hosts (service {name} on listener on port {port})"
            )
        if not service_sds.get("ClusterName") and not listener_cluster and not gateway_cluster:
            return (
                "TLS.SDS.ClusterName is required if CertResource is set "
                f"(service {name} on listener on port {port})"
            )
    return None


def _host_problem(tls_enabled: bool, host: str) -> str | None:
    if host == WILDCARD:
        if tls_enabled:
            return (
                "Host '*' is not allowed when TLS is enabled, all hosts must be valid DNS "
                "records to add as a DNSSAN"
            )
        return None
    if not is_domain_name(host):
        return f"Host {go_quote(host)} must be a valid DNS hostname"
    if WILDCARD in host.removeprefix("*."):
        return (
            f"Host {go_quote(host)} is not valid, a wildcard specifier is only allowed as the "
            "leftmost label"
        )
    return None


def _ingress_service_problem(entry: dict, listener: dict, service: dict, seen: set) -> str | None:
    port, protocol = listener.get("Port", 0), listener.get("Protocol") or ""
    name = service.get("Name") or ""
    where = f"(service {go_quote(name)} on listener on port {port})"
    for key, what in (("RequestHeaders", "request"), ("ResponseHeaders", "response")):
        if headers_set(service.get(key)) and protocol not in HTTP_LIKE:
            return f"{what} headers only valid for http, http2 and grpc protocols {where}"
    hosts = service.get("Hosts") or []
    if protocol == "tcp":
        if name == WILDCARD:
            return f"Wildcard service name is only valid for protocol = 'http' (listener on port {port})"
        if hosts:
            return (
                f"Associating hosts to a service is not supported for the {protocol} protocol "
                f"(listener on port {port})"
            )
    if not name:
        return f"Service name cannot be blank (listener on port {port})"
    if name == WILDCARD and hosts:
        return f"Associating hosts to a wildcard service is not supported (listener on port {port})"
    if name in seen:
        return f"Service {name} cannot be added multiple times (listener on port {port})"
    seen.add(name)
    return _sds_problem(entry, listener, service)


def _ingress_problem(entry: dict) -> str | None:
    if problem := _gateway_tls_problem(entry.get("TLS") or {}):
        return problem
    tls_enabled = bool((entry.get("TLS") or {}).get("Enabled"))
    ports: set[int] = set()
    for listener in entry.get("Listeners") or ():
        port, protocol = listener.get("Port", 0), listener.get("Protocol") or ""
        if port in ports:
            return f"port {port} declared on two listeners"
        ports.add(port)
        if protocol not in _INGRESS_PROTOCOLS:
            return (
                "protocol must be 'tcp', 'http', 'http2', or 'grpc'. "
                f"'{protocol}' is an unsupported protocol"
            )
        services = listener.get("Services") or []
        if not services:
            return f"No service declared for listener with port {port}"
        if protocol not in HTTP_LIKE and len(services) > 1:
            return (
                "Multiple services per listener are only supported for L7 protocols, 'http', "
                f"'grpc' and 'http2' (listener on port {port})"
            )
        if problem := _gateway_tls_problem(listener.get("TLS") or {}):
            return problem
        hosts: set[str] = set()
        names: set[str] = set()
        for service in services:
            if problem := _ingress_service_problem(entry, listener, service, names):
                return problem
            for host in service.get("Hosts") or ():
                if host in hosts:
                    return (
                        f"Hosts must be unique within a specific listener (listener on port {port})"
                    )
                hosts.add(host)
                if problem := _host_problem(tls_enabled, host):
                    return problem
    return None


def _validate_ingress(entry: dict) -> None:
    raise_meta(entry)
    if problem := _ingress_problem(entry):
        raise fail(problem)


INGRESS_GATEWAY = KindSpec("ingress-gateway", INGRESS_TABLE, _normalize_ingress, _validate_ingress)

# --------------------------------------------------------------------- terminating-gateway

TERMINATING_TABLE = Struct(
    "TerminatingGatewayConfigEntry",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F(
            "Services",
            Slice(
                Struct(
                    "LinkedService",
                    (
                        F("Name", STRING),
                        F("CAFile", STRING, "ca_file"),
                        F("CertFile", STRING, "cert_file"),
                        F("KeyFile", STRING, "key_file"),
                        F("SNI", STRING),
                    ),
                )
            ),
            keep=True,
        ),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)


def _validate_terminating(entry: dict) -> None:
    raise_meta(entry)
    seen: set[str] = set()
    for service in entry.get("Services") or ():
        name = service.get("Name") or ""
        if not name:
            raise fail("Service name cannot be blank.")
        if name in seen:
            raise fail(f"Service {go_quote(name)} was specified more than once within a namespace")
        seen.add(name)
        ca, cert, key = (service.get(k) for k in ("CAFile", "CertFile", "KeyFile"))
        if (cert or key) and not (ca and cert and key):
            raise fail(
                f"Service {go_quote(name)} must have a CertFile, CAFile, and KeyFile specified "
                "for TLS origination"
            )


def terminating_warnings(entry: dict) -> list[str]:
    """What Consul logs (and still writes) for a terminating gateway: TLS without SNI."""
    return [
        f"TLS is configured but SNI is not set for service {go_quote(s.get('Name') or '')}. "
        "Enabling SNI is strongly recommended when using TLS."
        for s in entry.get("Services") or ()
        if (s.get("CAFile") or s.get("CertFile") or s.get("KeyFile")) and not s.get("SNI")
    ]


TERMINATING_GATEWAY = KindSpec(
    "terminating-gateway", TERMINATING_TABLE, lambda entry: None, _validate_terminating
)

# --------------------------------------------------------------------- inline-certificate

INLINE_CERTIFICATE_TABLE = Struct(
    "InlineCertificateConfigEntry",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F("Certificate", STRING, keep=True),
        F("PrivateKey", STRING, keep=True),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)


def _validate_inline_certificate(entry: dict) -> None:
    raise_meta(entry)
    problem = inline_certificate_problem(
        entry.get("Certificate") or "", entry.get("PrivateKey") or ""
    )
    if problem:
        raise fail(problem)


INLINE_CERTIFICATE = KindSpec(
    "inline-certificate",
    INLINE_CERTIFICATE_TABLE,
    lambda entry: None,
    _validate_inline_certificate,
)
