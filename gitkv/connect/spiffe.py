"""SPIFFE identities of Connect services, read from and checked against TLS peer certificates.

A service's identity is `spiffe://<trust-domain>/ns/<namespace>/dc/<datacenter>/svc/<name>`
(a non-default admin partition adds `/ap/<partition>` in front), carried as the one URI SAN
of its leaf certificate. The functions here are pure: they take the dict that
`ssl.SSLObject.getpeercert()` returns, so tests need no TLS connection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from gitkv.connect.errors import PeerError

__all__ = [
    "ServiceID",
    "parse_service_uri",
    "peer_serial",
    "peer_service",
    "peer_uri",
    "service_sni",
    "service_uri",
    "verify_service",
]

# The same shape Consul's parser accepts (path segments are URL-escaped, matched raw).
_SERVICE_PATH = re.compile(r"^(?:/ap/([^/]+))?/ns/([^/]+)/dc/([^/]+)/svc/([^/]+)$")


@dataclass(frozen=True)
class ServiceID:
    """A service identity: who a certificate says its holder is."""

    trust_domain: str
    namespace: str
    datacenter: str
    service: str
    partition: str = "default"

    @property
    def uri(self) -> str:
        return service_uri(
            self.trust_domain, self.datacenter, self.service, self.namespace, self.partition
        )


def service_uri(
    trust_domain: str,
    datacenter: str,
    service: str,
    namespace: str = "default",
    partition: str = "default",
) -> str:
    """The SPIFFE URI Consul puts in a service's leaf certificate."""
    prefix = "" if partition in ("", "default") else f"/ap/{quote(partition, safe='')}"
    path = f"{prefix}/ns/{quote(namespace or 'default', safe='')}/dc/{quote(datacenter, safe='')}"
    return f"spiffe://{trust_domain}{path}/svc/{quote(service, safe='')}"


def parse_service_uri(uri: str) -> ServiceID:
    """The service identity in `uri`; `PeerError` if it is not a SPIFFE service ID."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "spiffe":
        raise PeerError(f"URI is not a valid SPIFFE URI: {uri!r}")
    match = _SERVICE_PATH.match(parts.path)
    if match is None:
        raise PeerError(f"SPIFFE ID is not a service identity: {uri!r}")
    partition, namespace, datacenter, service = (unquote(g) if g else g for g in match.groups())
    return ServiceID(
        trust_domain=parts.netloc.lower(),
        namespace=namespace,
        datacenter=datacenter,
        service=service,
        partition=partition or "default",
    )


def peer_uri(peercert: Mapping[str, Any]) -> str:
    """The first URI SAN of a peer certificate (Consul reads the first one too)."""
    for kind, value in peercert.get("subjectAltName", ()):
        if kind == "URI":
            return str(value)
    raise PeerError("peer certificate has no URI SAN: not a Connect certificate")


def peer_service(peercert: Mapping[str, Any]) -> ServiceID:
    return parse_service_uri(peer_uri(peercert))


def peer_serial(peercert: Mapping[str, Any]) -> str:
    """The certificate serial as Consul encodes it: lower-case hex bytes joined by ':'."""
    raw = str(peercert.get("serialNumber", "")).strip()
    if not raw:
        return ""
    value = int(raw, 16)
    data = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return ":".join(f"{b:02x}" for b in data)


def verify_service(
    peercert: Mapping[str, Any],
    service: str,
    *,
    namespace: str = "default",
    datacenter: str = "",
    partition: str = "default",
) -> ServiceID:
    """The peer's identity, checked to name `service` (and `datacenter` when known).

    Like Consul, names compare case-insensitively and the trust domain is not compared: the
    certificate already chained to this cluster's roots, and ignoring the host lets a cluster
    move between trust domains without breaking connections.
    """
    got = peer_service(peercert)
    want = (partition or "default", namespace or "default", service)
    have = (got.partition, got.namespace, got.service)
    same = all(a.lower() == b.lower() for a, b in zip(want, have, strict=True))
    if same and datacenter and got.datacenter.lower() != datacenter.lower():
        same = False
    if not same:
        expected = service_uri(got.trust_domain, datacenter or got.datacenter, service, namespace)
        raise PeerError(f"peer certificate mismatch: got {got.uri}, want {expected}")
    return got


def service_sni(
    service: str, datacenter: str, trust_domain: str, namespace: str = "default"
) -> str:
    """The TLS server name Consul's proxies send when dialing `service` (default partition)."""
    return f"{service}.{namespace or 'default'}.{datacenter}.internal.{trust_domain}"
