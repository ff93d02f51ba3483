"""Consul's Validate() of each config-entry kind, with its messages (EntryError, 500).

Only what an entry says about itself is checked here; what it means next to the other
entries (a router needs an HTTP-like protocol, a redirect may not loop) is
`agent/connect/chain.py`'s `graph_problem`, run where the write is applied.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agent.connect.errors import EntryError
from agent.filter import FilterError, compile_filter
from agent.limits import META_KEY_MAX_LENGTH, META_MAX_KEY_PAIRS, META_VALUE_MAX_LENGTH

Entry = Mapping[str, Any]
_NAME_REQUIRED = ("service-defaults", "service-router", "service-splitter", "service-resolver",
                  "service-intentions", "jwt-provider")  # fmt: skip
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE")
_RETRY_ON = (
    "5xx", "gateway-error", "reset", "connect-failure", "envoy-ratelimited", "retriable-4xx",
    "refused-stream", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
    "unavailable",
)  # fmt: skip
_SUBSET = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_LB_POLICIES = ("", "random", "round_robin", "least_request", "ring_hash", "maglev")
_INGRESS_PROTOCOLS = ("tcp", "http", "http2", "grpc")
_HTTP_LIKE = ("http", "http2", "grpc")
_LISTENER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HOST = re.compile(r"^(\*\.)?([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")  # fmt: skip


def _fail(message: str) -> EntryError:
    return EntryError(message, 500)


def check(entry: Entry) -> None:
    kind = entry["Kind"]
    if kind in _NAME_REQUIRED and not entry.get("Name"):
        raise _fail("Name is required")
    _meta(entry.get("Meta") or {})
    CHECKS.get(kind, lambda e: None)(entry)


def _meta(meta: Mapping[str, str]) -> None:
    if len(meta) > META_MAX_KEY_PAIRS:
        raise _fail(f"Meta exceeds maximum element count {META_MAX_KEY_PAIRS}")
    for key, value in meta.items():
        if len(key) > META_KEY_MAX_LENGTH:
            raise _fail(f'Meta key "{key}" exceeds maximum length {META_KEY_MAX_LENGTH}')
        if len(value) > META_VALUE_MAX_LENGTH:
            raise _fail(
                f'Meta value for key "{key}" exceeds maximum length {META_VALUE_MAX_LENGTH}'
            )


def _mutual_tls(entry: Entry) -> None:
    mode = entry.get("MutualTLSMode", "")
    if mode not in ("", "strict", "permissive"):
        raise _fail(
            f'Invalid MutualTLSMode "{mode}". Must be one of "", "strict", or "permissive".'
        )


def _service_defaults(entry: Entry) -> None:
    if entry.get("Name") == "*":
        raise _fail("service-defaults name must be the name of a service, and not a wildcard")
    balance = entry.get("BalanceInboundConnections", "")
    if balance not in ("", "exact_balance"):
        raise _fail(f"invalid value for balance_inbound_connections: {balance}")
    if entry.get("UpstreamConfig") and entry.get("Destination"):
        raise _fail("UpstreamConfig and Destination are mutually exclusive for service defaults")
    destination = entry.get("Destination")
    if destination:
        addresses = destination.get("Addresses") or []
        if not addresses:
            raise _fail("Destination must contain at least one valid address")
        seen: set[str] = set()
        for address in addresses:
            if address in seen:
                raise _fail(f"Duplicate address '{address}' is not allowed")
            seen.add(address)
        port = destination.get("Port", 0)
        if not 1 <= port <= 65535:
            raise _fail(f"Invalid Port number {port}")
    _mutual_tls(entry)


def _proxy_defaults(entry: Entry) -> None:
    logs = entry.get("AccessLogs") or {}
    kind = logs.get("Type", "")
    if kind not in ("", "file", "stderr", "stdout"):
        raise _fail(f"invalid access log type: {kind}")
    if kind == "file" and not logs.get("Path"):
        raise _fail("path must be specified when using file type access logs")
    if logs.get("Path") and kind != "file":
        raise _fail("path is only valid for file type access logs")
    if logs.get("JSONFormat") and logs.get("TextFormat"):
        raise _fail("cannot specify both access log JSONFormat and TextFormat")
    _mutual_tls(entry)


def _router(entry: Entry) -> None:
    for i, route in enumerate(entry.get("Routes") or ()):
        http = (route.get("Match") or {}).get("HTTP") or {}
        paths = [k for k in ("PathExact", "PathPrefix", "PathRegex") if http.get(k)]
        for key in ("PathExact", "PathPrefix"):
            if http.get(key) and not http[key].startswith("/"):
                raise _fail(f"Route[{i}] {key} doesn't start with '/': \"{http[key]}\"")
        if len(paths) > 1:
            raise _fail(
                f"Route[{i}] should only contain at most one of PathExact, PathPrefix, or PathRegex"
            )
        for j, header in enumerate(http.get("Header") or ()):
            if not header.get("Name"):
                raise _fail(f"Route[{i}] Header[{j}] missing required Name field")
            set_ = [k for k in ("Present", "Exact", "Prefix", "Suffix", "Regex") if header.get(k)]
            if len(set_) > 1:
                raise _fail(
                    f"Route[{i}] Header[{j}] should only contain one of Present, Exact, "
                    "Prefix, Suffix, or Regex"
                )
        for j, param in enumerate(http.get("QueryParam") or ()):
            if not param.get("Name"):
                raise _fail(f"Route[{i}] QueryParam[{j}] missing required Name field")
            if len([k for k in ("Present", "Exact", "Regex") if param.get(k)]) > 1:
                raise _fail(
                    f"Route[{i}] QueryParam[{j}] should only contain one of Present, Exact, "
                    "or Regex"
                )
        seen: set[str] = set()
        for method in http.get("Methods") or ():
            if method not in _METHODS:
                raise _fail(f'Route[{i}] Methods contains an invalid method "{method}"')
            if method in seen:
                raise _fail(f'Route[{i}] Methods contains "{method}" more than once')
            seen.add(method)
        destination = route.get("Destination") or {}
        if destination.get("PrefixRewrite") and not (
            http.get("PathExact") or http.get("PathPrefix")
        ):
            raise _fail(
                f"Route[{i}] cannot make use of PrefixRewrite without configuring either "
                "PathExact or PathPrefix"
            )
        for condition in destination.get("RetryOn") or ():
            if condition not in _RETRY_ON:
                raise _fail(f'Route[{i}] contains an invalid retry condition: "{condition}"')


def _splitter(entry: Entry) -> None:
    splits = entry.get("Splits") or []
    if not splits:
        raise _fail("no splits configured")
    seen: set[tuple[str, str]] = set()
    total = 0
    for split in splits:
        key = (split.get("Service") or entry["Name"], split.get("ServiceSubset") or "")
        if key in seen:
            raise _fail(
                f'split destination occurs more than once: service="{key[0]}", '
                f'subset="{key[1]}", namespace="", partition=""'
            )
        seen.add(key)
        total += round(float(split.get("Weight") or 0) * 100)
    if total != 10000:
        raise _fail(f"the sum of all split weights must be 100, not {total / 100:f}")


def _resolver(entry: Entry) -> None:
    subsets = entry.get("Subsets") or {}
    for name, subset in subsets.items():
        if not name:
            raise _fail("Subset defined with empty name")
        if len(name) > 63 or not _SUBSET.match(name):
            raise _fail(
                f'Subset "{name}" is invalid: must be 63 characters or fewer, begin or end with '
                "lower case alphanumeric characters, and contain lower case alphanumeric "
                "characters or '-' in between"
            )
        if subset.get("Filter"):
            try:
                compile_filter(subset["Filter"])
            except FilterError as exc:
                raise _fail(
                    f'Filter for subset "{name}" is not a valid expression: {exc}'
                ) from None
    default = entry.get("DefaultSubset")
    if default and default not in subsets:
        raise _fail(f'DefaultSubset "{default}" is not a valid subset')
    redirect, failover = entry.get("Redirect"), entry.get("Failover") or {}
    if redirect is not None and failover:
        raise _fail("Redirect and Failover cannot both be set")
    if redirect is not None:
        if not any(redirect.values()):
            raise _fail("Redirect is empty")
        if not redirect.get("Service"):
            for key in ("ServiceSubset", "Namespace", "Partition", "Peer"):
                if redirect.get(key):
                    raise _fail(f"Redirect.{key} defined without Redirect.Service")
        subset = redirect.get("ServiceSubset")
        if subset and redirect.get("Service") == entry["Name"] and subset not in subsets:
            raise _fail(
                f'Redirect.ServiceSubset "{subset}" is not a valid subset of "{entry["Name"]}"'
            )
        if redirect.get("Peer") and redirect.get("Datacenter"):
            raise _fail("Redirect.Peer cannot be set with Redirect.Datacenter")
    for key, spec in failover.items():
        where = f'Bad Failover["{key}"]: '
        if key != "*" and key not in subsets:
            raise _fail(f"{where}not a valid subset subset")
        if not any(spec.get(k) for k in ("Service", "ServiceSubset", "Namespace", "Targets",
                                         "SamenessGroup", "Datacenters")):  # fmt: skip
            raise _fail(
                f"{where}one of Service, ServiceSubset, Namespace, Targets, SamenessGroup, "
                "or Datacenters is required"
            )
        mode = (spec.get("Policy") or {}).get("Mode", "")
        if mode not in ("", "sequential", "order-by-locality"):
            raise _fail(f"{where}Policy must be one of '', 'sequential', or 'order-by-locality'")
        if spec.get("Targets"):
            for other in ("Datacenters", "ServiceSubset", "Service"):
                if spec.get(other):
                    raise _fail(f"{where}Targets cannot be set with {other}")
        if any(dc == "" for dc in spec.get("Datacenters") or ()):
            raise _fail(f'Bad Failover["{key}"].Datacenters: found empty datacenter')
    for field in ("ConnectTimeout", "RequestTimeout"):
        if str(entry.get(field) or "").startswith("-"):
            raise _fail(f"Bad {field} '{entry[field]}', must be >= 0")
    policy = (entry.get("LoadBalancer") or {}).get("Policy", "")
    if policy not in _LB_POLICIES:
        raise _fail(f'Bad LoadBalancer policy: "{policy}" is not supported')


def _intentions(entry: Entry) -> None:
    sources = entry.get("Sources") or []
    if not sources:
        raise _fail("At least one source is required")
    seen: set[tuple[str, str]] = set()
    wildcard_destination = entry["Name"] == "*"
    for i, source in enumerate(sources):
        where = f"Sources[{i}]"
        if not source.get("Name"):
            raise _fail(f"{where}.Name is required")
        if "*" in source["Name"] and source["Name"] != "*":
            raise _fail(f"{where}.Name: wildcard character '*' cannot be used with partial values")
        key = (source.get("Peer") or "", source["Name"])
        if key in seen:
            raise _fail(f'{where} defines "{source["Name"]}" more than once')
        seen.add(key)
        if len(source.get("Description") or "") > 512:
            raise _fail(f"{where}.Description exceeds maximum length 512")
        if source.get("Permissions"):
            if source.get("Action"):
                raise _fail(f"{where}.Action must be omitted if Permissions are specified")
            if wildcard_destination:
                raise _fail(
                    f"{where}.Permissions cannot be specified on intentions with wildcarded "
                    "destinations"
                )
            for j, permission in enumerate(source["Permissions"]):
                if not isinstance(permission, dict) or permission.get("Action") not in (
                    "allow",
                    "deny",
                ):
                    raise _fail(f"{where}.Permissions[{j}].Action must be set to 'allow' or 'deny'")
                if not permission.get("HTTP"):
                    raise _fail(f"{where}.Permissions[{j}].HTTP is required")
        elif source.get("Action") not in ("allow", "deny"):
            raise _fail(f"{where}.Action must be set to 'allow' or 'deny'")
        if source.get("Type", "consul") != "consul":
            raise _fail(f"{where}.Type must be set to 'consul'")


def _ingress(entry: Entry) -> None:
    ports: set[int] = set()
    for listener in entry.get("Listeners") or ():
        port, protocol = listener.get("Port", 0), listener.get("Protocol", "tcp")
        where = f"(listener on port {port})"
        if port in ports:
            raise _fail(f"port {port} declared on two listeners")
        ports.add(port)
        if protocol not in _INGRESS_PROTOCOLS:
            raise _fail(
                "protocol must be 'tcp', 'http', 'http2', or 'grpc'. "
                f"'{protocol}' is an unsupported protocol"
            )
        services = listener.get("Services") or []
        if not services:
            raise _fail(f"No service declared for listener with port {port}")
        if len(services) > 1 and protocol not in _HTTP_LIKE:
            raise _fail(
                "Multiple services per listener are only supported for L7 protocols, "
                f"'http', 'grpc' and 'http2' {where}"
            )
        names: set[str] = set()
        for service in services:
            name = service.get("Name", "")
            if not name:
                raise _fail(f"Service name cannot be blank {where}")
            if protocol == "tcp" and name == "*":
                raise _fail(f"Wildcard service name is only valid for protocol = 'http' {where}")
            if protocol == "tcp" and service.get("Hosts"):
                raise _fail(
                    f"Associating hosts to a service is not supported for the tcp protocol {where}"
                )
            if name in names:
                raise _fail(f"Service {name} cannot be added multiple times {where}")
            names.add(name)


def _terminating(entry: Entry) -> None:
    seen: set[str] = set()
    for service in entry.get("Services") or ():
        name = service.get("Name", "")
        if not name:
            raise _fail("Service name cannot be blank.")
        if name in seen:
            raise _fail(f'Service "{name}" was specified more than once within a namespace')
        seen.add(name)
        if (service.get("CertFile") or service.get("KeyFile")) and not (
            service.get("CAFile") and service.get("CertFile") and service.get("KeyFile")
        ):
            raise _fail(
                f'Service "{name}" must have a CertFile, CAFile, and KeyFile specified for TLS '
                "origination"
            )


def _exported(entry: Entry) -> None:
    if entry["Name"] != "default":
        raise _fail('exported-services Name must be "default"')
    for i, service in enumerate(entry.get("Services") or ()):
        if not service.get("Name"):
            raise _fail(f"Services[{i}]: service name cannot be empty")
        consumers = service.get("Consumers") or []
        if not consumers:
            raise _fail(f"Services[{i}]: must have at least one consumer")
        for j, consumer in enumerate(consumers):
            if consumer.get("Peer") and consumer.get("Partition"):
                raise _fail(
                    f"Services[{i}].Consumers[{j}]: must define at most one of PeerName or "
                    "Partition"
                )
            if consumer.get("Peer") == "*":
                raise _fail(
                    f"Services[{i}].Consumers[{j}]: exporting to all peers (wildcard) is not "
                    "supported"
                )


def _sameness(entry: Entry) -> None:
    raise _fail("sameness-groups are an enterprise-only feature")


def _api_gateway(entry: Entry) -> None:
    listeners = entry.get("Listeners") or []
    if not listeners:
        raise _fail("api gateway must have at least one listener")
    names: set[str] = set()
    for listener in listeners:
        name = listener.get("Name", "")
        if not _LISTENER_NAME.match(name):
            raise _fail(
                f'listener name "{name}" is invalid, must be at least 1 character and contain '
                "only letters, numbers, or dashes"
            )
        if name in names:
            raise _fail(f'found multiple listeners with the name "{name}"')
        names.add(name)
        protocol = listener.get("Protocol", "")
        if protocol not in ("tcp", "http"):
            raise _fail(
                f"unsupported listener protocol \"{protocol}\", must be one of 'tcp', or 'http'"
            )
        if protocol == "tcp" and listener.get("Hostname"):
            raise _fail("hostname specification is not supported when using TCP")
        port = listener.get("Port", 0)
        if not 1 <= port <= 65535:
            raise _fail(f"listener port {port} not in the range 1-65535")


def _parents(entry: Entry) -> None:
    seen: set[tuple[str, str, str]] = set()
    for parent in entry.get("Parents") or ():
        kind = parent.get("Kind") or "api-gateway"
        if kind != "api-gateway":
            raise _fail(f"unsupported parent kind: \"{kind}\", must be 'api-gateway'")
        key = (kind, parent.get("Name", ""), parent.get("SectionName", ""))
        if key in seen:
            raise _fail("route parents must be unique")
        seen.add(key)


def _http_route(entry: Entry) -> None:
    for host in entry.get("Hostnames") or ():
        if "*" in host:
            raise _fail(f'host "{host}" must not be a wildcard')
        if not _HOST.match(host):
            raise _fail(f'host "{host}" must be a valid DNS hostname')
    _parents(entry)


def _tcp_route(entry: Entry) -> None:
    if len(entry.get("Services") or ()) > 1:
        raise _fail("tcp-route currently only supports one service")
    _parents(entry)


def _inline_certificate(entry: Entry) -> None:
    try:
        key = serialization.load_pem_private_key(
            str(entry.get("PrivateKey") or "").encode(), password=None
        )
    except (ValueError, TypeError):
        raise _fail("failed to parse private key PEM") from None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise _fail("key length must be at least 2048 bits")
    try:
        cert = x509.load_pem_x509_certificate(str(entry.get("Certificate") or "").encode())
    except ValueError:
        raise _fail("failed to parse certificate PEM") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if cert.public_key().public_bytes(der, public) != key.public_key().public_bytes(der, public):
        raise _fail("tls: private key does not match public key")


def _jwt_provider(entry: Entry) -> None:
    keyset = entry.get("JSONWebKeySet")
    if not keyset:
        raise _fail("JSONWebKeySet is required")
    local, remote = keyset.get("Local"), keyset.get("Remote")
    if bool(local) == bool(remote):
        raise _fail("must specify exactly one of Local or Remote JSON Web key set")
    if local and bool(local.get("JWKS")) == bool(local.get("Filename")):
        raise _fail("must specify exactly one of String or filename for local keyset")
    if remote and not remote.get("URI"):
        raise _fail("Remote JWKS URI is required")
    for location in entry.get("Locations") or ():
        given = [k for k in ("Header", "QueryParam", "Cookie") if location.get(k)]
        if len(given) != 1:
            raise _fail("must set exactly one of: JWT location header, query param or cookie")


CHECKS: dict[str, Callable[[Entry], None]] = {
    "service-defaults": _service_defaults,
    "proxy-defaults": _proxy_defaults,
    "service-router": _router,
    "service-splitter": _splitter,
    "service-resolver": _resolver,
    "service-intentions": _intentions,
    "ingress-gateway": _ingress,
    "terminating-gateway": _terminating,
    "exported-services": _exported,
    "sameness-group": _sameness,
    "api-gateway": _api_gateway,
    "http-route": _http_route,
    "tcp-route": _tcp_route,
    "inline-certificate": _inline_certificate,
    "jwt-provider": _jwt_provider,
}
