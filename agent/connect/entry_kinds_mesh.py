"""The cluster-wide kinds: mesh, exported-services, sameness-group, jwt-provider
(`config_entry_mesh.go`, `config_entry_exports.go`, `config_entry_sameness_group.go`,
`config_entry_jwt_provider.go`, with their CE halves).

mesh, exported-services and sameness-group have no Kind field (their MarshalJSON adds it);
mesh has no Name either, so a "Name" key in a mesh body is an unknown key, and the entry is
always called "mesh".
"""

from __future__ import annotations

import base64
import binascii
import re

from agent.connect.entry_checks import (
    WILDCARD,
    fail,
    go_quote,
    raise_all,
    raise_meta,
    tls_problem,
)
from agent.connect.entry_types import (
    BOOL,
    BYTES,
    CIPHER_SUITES,
    DURATION,
    HASH_FIELD,
    INT,
    META_FIELD,
    RAFT_INDEX_FIELD,
    STRING,
    STRINGS,
    TLS_VERSION,
    F,
    KindSpec,
    Ptr,
    Slice,
    Struct,
    named,
)

__all__ = ["EXPORTED_SERVICES", "JWT_PROVIDER", "MESH", "SAMENESS_GROUP"]

# --------------------------------------------------------------------- mesh

_DIRECTIONAL_TLS = Struct(
    "MeshDirectionalTLSConfig",
    (
        F("TLSMinVersion", TLS_VERSION, "tls_min_version"),
        F("TLSMaxVersion", TLS_VERSION, "tls_max_version"),
        F("CipherSuites", CIPHER_SUITES, "cipher_suites"),
    ),
)
_REQUEST_NORMALIZATION = Struct(
    "RequestNormalizationMeshConfig",
    (
        F(
            "InsecureDisablePathNormalization",
            BOOL,
            "insecure_disable_path_normalization",
            keep=True,
        ),
        F("MergeSlashes", BOOL, "merge_slashes", keep=True),
        F(
            "PathWithEscapedSlashesAction",
            named("structs.PathWithEscapedSlashesAction"),
            "path_with_escaped_slashes_action",
            keep=True,
        ),
        F(
            "HeadersWithUnderscoresAction",
            named("structs.HeadersWithUnderscoresAction"),
            "headers_with_underscores_action",
            keep=True,
        ),
    ),
)
MESH_TABLE = Struct(
    "MeshConfigEntry",
    (
        F(
            "TransparentProxy",
            Struct(
                "TransparentProxyMeshConfig",
                (F("MeshDestinationsOnly", BOOL, "mesh_destinations_only", keep=True),),
            ),
            "transparent_proxy",
        ),
        F(
            "AllowEnablingPermissiveMutualTLS",
            BOOL,
            "allow_enabling_permissive_mutual_tls",
        ),
        F("ValidateClusters", BOOL, "validate_clusters"),
        F(
            "TLS",
            Ptr(
                Struct(
                    "MeshTLSConfig",
                    (F("Incoming", Ptr(_DIRECTIONAL_TLS)), F("Outgoing", Ptr(_DIRECTIONAL_TLS))),
                )
            ),
        ),
        F(
            "HTTP",
            Ptr(
                Struct(
                    "MeshHTTPConfig",
                    (
                        F(
                            "SanitizeXForwardedClientCert",
                            BOOL,
                            "sanitize_x_forwarded_client_cert",
                            keep=True,
                        ),
                        F(
                            "Incoming",
                            Ptr(
                                Struct(
                                    "MeshDirectionalHTTPConfig",
                                    (
                                        F(
                                            "RequestNormalization",
                                            Ptr(_REQUEST_NORMALIZATION),
                                            "request_normalization",
                                        ),
                                    ),
                                )
                            ),
                        ),
                    ),
                )
            ),
        ),
        F(
            "Peering",
            Ptr(
                Struct(
                    "PeeringMeshConfig",
                    (F("PeerThroughMeshGateways", BOOL, "peer_through_mesh_gateways", keep=True),),
                )
            ),
        ),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)
_ESCAPED_SLASHES = (
    "IMPLEMENTATION_SPECIFIC_DEFAULT",
    "KEEP_UNCHANGED",
    "REJECT_REQUEST",
    "UNESCAPE_AND_REDIRECT",
    "UNESCAPE_AND_FORWARD",
)
_UNDERSCORES = ("ALLOW", "REJECT_REQUEST", "DROP_HEADER")


def _normalization_problem(config: dict) -> str | None:
    for key, allowed in (
        ("PathWithEscapedSlashesAction", _ESCAPED_SLASHES),
        ("HeadersWithUnderscoresAction", _UNDERSCORES),
    ):
        value = config.get(key) or ""
        if value and value not in allowed:
            return (
                f"no matching {key} value found for {value}, please specify one of "
                f"[{', '.join(allowed)}]"
            )
    return None


def _validate_mesh(entry: dict) -> None:
    raise_meta(entry)
    tls = entry.get("TLS") or {}
    for key, what in (("Incoming", "incoming"), ("Outgoing", "outgoing")):
        direction = tls.get(key)
        if direction is None:
            continue
        problem = tls_problem(
            direction.get("TLSMinVersion") or "",
            direction.get("TLSMaxVersion") or "",
            direction.get("CipherSuites") or [],
        )
        if problem:
            raise fail(f"error in {what} TLS configuration: {problem}")
    normalization = (((entry.get("HTTP") or {}).get("Incoming")) or {}).get("RequestNormalization")
    if normalization is not None and (problem := _normalization_problem(normalization)):
        raise fail(f"error in HTTP incoming request normalization configuration: {problem}")


MESH = KindSpec(
    "mesh", MESH_TABLE, lambda entry: None, _validate_mesh, has_kind=False, has_name=False
)

# --------------------------------------------------------------------- exported-services

EXPORTED_SERVICES_TABLE = Struct(
    "ExportedServicesConfigEntry",
    (
        F("Name", STRING, keep=True),
        F(
            "Services",
            Slice(
                Struct(
                    "ExportedService",
                    (
                        F("Name", STRING, keep=True),
                        F("Namespace", STRING),
                        F(
                            "Consumers",
                            Slice(
                                Struct(
                                    "ServiceConsumer",
                                    (
                                        F("Partition", STRING),
                                        F("Peer", STRING, "peer_name"),
                                        F("SamenessGroup", STRING, "sameness_group"),
                                    ),
                                )
                            ),
                        ),
                    ),
                )
            ),
        ),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)


def _normalize_exported(entry: dict) -> None:
    # acl.NormalizeNamespace is "" in CE: every service's namespace is dropped.
    for service in entry.get("Services") or ():
        service.pop("Namespace", None)


def _exported_problem(entry: dict) -> str | None:
    services = entry.get("Services") or ()
    for i, service in enumerate(services):
        for j, consumer in enumerate(service.get("Consumers") or ()):
            if consumer.get("SamenessGroup"):
                return (
                    f"Services[{i}].Consumers[{j}]: sameness-groups are an enterprise-only feature"
                )
    for i, service in enumerate(services):
        name = service.get("Name") or ""
        if not name:
            return f"Services[{i}]: service name cannot be empty"
        if service.get("Namespace") == WILDCARD and name != WILDCARD:
            return f"Services[{i}]: service name must be wildcard if namespace is wildcard"
        consumers = service.get("Consumers") or []
        if not consumers:
            return f"Services[{i}]: must have at least one consumer"
        for j, consumer in enumerate(consumers):
            at = f"Services[{i}].Consumers[{j}]: "
            if sum(1 for k in ("Peer", "Partition", "SamenessGroup") if consumer.get(k)) > 1:
                return f"{at}must define at most one of Peer, Partition, or SamenessGroup"
            if consumer.get("Partition") == WILDCARD:
                return f"{at}exporting to all partitions (wildcard) is not supported"
            if consumer.get("Peer") == WILDCARD:
                return f"{at}exporting to all peers (wildcard) is not supported"
    return None


def _validate_exported(entry: dict) -> None:
    if entry.get("Name") != "default":
        raise fail('exported-services Name must be "default"')
    raise_meta(entry)
    if problem := _exported_problem(entry):
        raise fail(problem)


EXPORTED_SERVICES = KindSpec(
    "exported-services",
    EXPORTED_SERVICES_TABLE,
    _normalize_exported,
    _validate_exported,
    has_kind=False,
)

# --------------------------------------------------------------------- sameness-group

SAMENESS_GROUP_TABLE = Struct(
    "SamenessGroupConfigEntry",
    (
        F("Name", STRING, keep=True),
        F("DefaultForFailover", BOOL, "default_for_failover"),
        F("IncludeLocal", BOOL, "include_local"),
        F(
            "Members",
            Slice(Struct("SamenessGroupMember", (F("Partition", STRING), F("Peer", STRING)))),
            keep=True,
        ),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)


def _validate_sameness(entry: dict) -> None:
    raise fail("sameness-groups are an enterprise-only feature")


SAMENESS_GROUP = KindSpec(
    "sameness-group",
    SAMENESS_GROUP_TABLE,
    lambda entry: None,
    _validate_sameness,
    has_kind=False,
)

# --------------------------------------------------------------------- jwt-provider

_NAME_ONLY = Struct("JWTLocationQueryParam", (F("Name", STRING),))
_LOCATION = Struct(
    "JWTLocation",
    (
        F(
            "Header",
            Ptr(
                Struct(
                    "JWTLocationHeader",
                    (
                        F("Name", STRING),
                        F("ValuePrefix", STRING, "value_prefix"),
                        F("Forward", BOOL),
                    ),
                )
            ),
        ),
        F("QueryParam", Ptr(_NAME_ONLY), "query_param"),
        F("Cookie", Ptr(Struct("JWTLocationCookie", (F("Name", STRING),)))),
    ),
)
_TRUSTED_CA = Struct(
    "JWKSTLSCertTrustedCA",
    (
        F("Filename", STRING, "filename"),
        F("EnvironmentVariable", STRING, "environment_variable"),
        F("InlineString", STRING, "inline_string"),
        F("InlineBytes", BYTES, "inline_bytes"),
    ),
)
_JWKS_CLUSTER = Struct(
    "JWKSCluster",
    (
        F("DiscoveryType", named("structs.ClusterDiscoveryType"), "discovery_type"),
        F(
            "TLSCertificates",
            Ptr(
                Struct(
                    "JWKSTLSCertificate",
                    (
                        F(
                            "CaCertificateProviderInstance",
                            Ptr(
                                Struct(
                                    "JWKSTLSCertProviderInstance",
                                    (
                                        F("InstanceName", STRING, "instance_name"),
                                        F("CertificateName", STRING, "certificate_name"),
                                    ),
                                )
                            ),
                            "ca_certificate_provider_instance",
                        ),
                        F("TrustedCA", Ptr(_TRUSTED_CA), "trusted_ca"),
                    ),
                )
            ),
            "tls_certificates",
        ),
        F("ConnectTimeout", DURATION, "connect_timeout"),
    ),
)
_REMOTE_JWKS = Struct(
    "RemoteJWKS",
    (
        F("URI", STRING),
        F("RequestTimeoutMs", INT, "request_timeout_ms"),
        F("CacheDuration", DURATION, "cache_duration"),
        F("FetchAsynchronously", BOOL, "fetch_asynchronously"),
        F(
            "RetryPolicy",
            Ptr(
                Struct(
                    "JWKSRetryPolicy",
                    (
                        F("NumRetries", INT, "num_retries"),
                        F(
                            "RetryPolicyBackOff",
                            Ptr(
                                Struct(
                                    "RetryPolicyBackOff",
                                    (
                                        F("BaseInterval", DURATION, "base_interval"),
                                        F("MaxInterval", DURATION, "max_interval"),
                                    ),
                                )
                            ),
                            "retry_policy_back_off",
                        ),
                    ),
                )
            ),
            "retry_policy",
        ),
        F("JWKSCluster", Ptr(_JWKS_CLUSTER), "jwks_cluster"),
    ),
)
JWT_PROVIDER_TABLE = Struct(
    "JWTProviderConfigEntry",
    (
        F("Kind", STRING),
        F("Name", STRING),
        F(
            "JSONWebKeySet",
            Ptr(
                Struct(
                    "JSONWebKeySet",
                    (
                        F(
                            "Local",
                            Ptr(Struct("LocalJWKS", (F("JWKS", STRING), F("Filename", STRING)))),
                        ),
                        F("Remote", Ptr(_REMOTE_JWKS)),
                    ),
                )
            ),
            "json_web_key_set",
        ),
        F("Issuer", STRING),
        F("Audiences", STRINGS),
        F("Locations", Slice(Ptr(_LOCATION))),
        F(
            "Forwarding",
            Ptr(
                Struct(
                    "JWTForwardingConfig",
                    (
                        F("HeaderName", STRING, "header_name"),
                        F("PadForwardPayloadHeader", BOOL, "pad_forward_payload_header", keep=True),
                    ),
                )
            ),
        ),
        F("ClockSkewSeconds", INT, "clock_skew_seconds"),
        F("CacheConfig", Ptr(Struct("JWTCacheConfig", (F("Size", INT),))), "cache_config"),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)
_DISCOVERY_TYPES = frozenset({"STRICT_DNS", "STATIC", "LOGICAL_DNS", "EDS", "ORIGINAL_DST"})
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def _normalize_jwt_provider(entry: dict) -> None:
    if not entry.get("ClockSkewSeconds"):
        entry["ClockSkewSeconds"] = 30


def request_uri_problem(uri: str) -> str | None:
    """url.ParseRequestURI's refusal of `uri` (the common ones), as Go's *url.Error prints."""

    def wrap(reason: str) -> str:
        return f"parse {go_quote(uri)}: {reason}"

    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        return wrap("net/url: invalid control character in URL")
    if uri == "*":
        return None
    if uri.startswith(":"):
        return wrap("missing protocol scheme")
    scheme = _SCHEME.match(uri)
    rest = uri[scheme.end() :] if scheme else uri
    rest = rest.split("?", 1)[0]
    if not rest.startswith("/"):
        return None if scheme else wrap("invalid URI for request")
    path = rest
    if scheme and rest.startswith("//"):
        authority, _, tail = rest[2:].partition("/")
        path = "/" + tail if tail or "/" in rest[2:] else ""
        host = authority.rpartition("@")[2]
        if host.startswith("["):
            if "]" not in host:
                return wrap("missing ']' in host")
            port = host[host.index("]") + 1 :]
        else:
            port = host[host.index(":") :] if ":" in host else ""
        if port and (port[0] != ":" or not port[1:].isdigit()) and port != ":":
            return wrap(f"invalid port {go_quote(port)} after host")
    for match in re.finditer(r"%(.{0,2})", path):
        if not re.fullmatch(r"[0-9A-Fa-f]{2}", match.group(1)):
            return wrap(f"invalid URL escape {go_quote(match.group(0))}")
    return None


def _keyset_problem(keyset: dict) -> str | None:
    local, remote = keyset.get("Local"), keyset.get("Remote")
    if (local is None) == (remote is None):
        return "must specify exactly one of Local or Remote JSON Web key set"
    if remote is not None:
        return _remote_problem(remote)
    assert local is not None
    if bool(local.get("Filename")) == bool(local.get("JWKS")):
        return "must specify exactly one of String or filename for local keyset"
    if local.get("JWKS"):
        text = local["JWKS"].replace("\r", "").replace("\n", "")
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return "JWKS must be valid base64 encoded string"
    return None


def _remote_problem(remote: dict) -> str | None:
    uri = remote.get("URI") or ""
    if not uri:
        return "Remote JWKS URI is required"
    if problem := request_uri_problem(uri):
        return f"Remote JWKS URI is invalid: {problem}, uri: {uri}"
    backoff = (remote.get("RetryPolicy") or {}).get("RetryPolicyBackOff")
    if backoff is not None:
        most = backoff.get("MaxInterval", 0)
        if most and backoff.get("BaseInterval", 0) > most:
            return "retry policy backoff's MaxInterval should be greater or equal to BaseInterval"
    cluster = remote.get("JWKSCluster")
    if cluster is None:
        return None
    kind = cluster.get("DiscoveryType") or ""
    if kind and kind not in _DISCOVERY_TYPES:
        return f"unsupported jwks cluster discovery type: {go_quote(kind)}"
    certs = cluster.get("TLSCertificates")
    if certs is None:
        return None
    if (certs.get("CaCertificateProviderInstance") is None) == (certs.get("TrustedCA") is None):
        return (
            "must specify exactly one of: CaCertificateProviderInstance or TrustedCA for JKWS' "
            "TLSCertificates"
        )
    trusted = certs.get("TrustedCA")
    if trusted is not None:
        given = sum(
            1
            for k in ("Filename", "EnvironmentVariable", "InlineString", "InlineBytes")
            if trusted.get(k)
        )
        if given != 1:
            return (
                "must specify exactly one of: Filename, EnvironmentVariable, InlineString or "
                "InlineBytes for JWKS' TrustedCA"
            )
    return None


def _location_problem(location: dict) -> str | None:
    given = [k for k in ("Header", "QueryParam", "Cookie") if location.get(k) is not None]
    if len(given) != 1:
        return "must set exactly one of: JWT location header, query param or cookie"
    what = {"Header": "header", "QueryParam": "query param", "Cookie": "cookie"}[given[0]]
    if not location[given[0]].get("Name"):
        return f"JWT location {what} name must be specified"
    return None


def _validate_jwt_provider(entry: dict) -> None:
    if not entry.get("Name"):
        raise fail("Name is required")
    raise_meta(entry)
    keyset = entry.get("JSONWebKeySet")
    if keyset is None:
        raise fail("JSONWebKeySet is required")
    if problem := _keyset_problem(keyset):
        raise fail(problem)
    raise_all([p for loc in entry.get("Locations") or () if (p := _location_problem(loc))])
    forwarding = entry.get("Forwarding")
    if forwarding is not None and not forwarding.get("HeaderName"):
        raise fail("Header name required for forwarding config")


JWT_PROVIDER = KindSpec(
    "jwt-provider", JWT_PROVIDER_TABLE, _normalize_jwt_provider, _validate_jwt_provider
)
