"""SPIFFE identities of the mesh: the URIs Connect certificates carry, built and parsed.

Every Connect certificate names its holder by one URI SAN under the cluster's trust domain,
`<cluster-id>.consul` in lower case (the TLD is fixed, whatever the DNS domain):

    spiffe://<td>                                        the CA itself (signing ID)
    spiffe://<td>[/ap/<partition>]/ns/<ns>/dc/<dc>/svc/<service>    a service
    spiffe://<td>[/ap/<partition>]/agent/client/dc/<dc>/id/<node>   a client agent
    spiffe://<td>/agent/server/dc/<dc>                   a server
    spiffe://<td>[/ap/<partition>]/gateway/mesh/dc/<dc>  a mesh gateway

The partition segment appears only for a partition other than "default"; builders here never
write it for agents and gateways, as Consul CE does not, but the parser accepts it.

`parse_uri` follows Consul's `ParseCertURI`: the path is matched while still escaped and
each captured segment is then unescaped (so `%2F` inside a service name stays in the name).
Its refusals, all `CAError` with status 500 (callers that answer 400 use their own wording,
e.g. the authorize endpoint's "ClientCertURI not a valid Connect identifier"):

    SPIFFE ID must have 'spiffe' scheme
    SPIFFE ID is not in the expected format: <uri>
    parse "<uri>": invalid URL escape "%zz"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from agent.connect.errors import CAError

__all__ = [
    "SpiffeID",
    "agent_uri",
    "mesh_gateway_uri",
    "parse_uri",
    "server_uri",
    "service_uri",
    "signing_uri",
    "trust_domain",
]

Kind = Literal["service", "agent", "server", "mesh-gateway", "signing"]

_SERVICE = re.compile(r"^(?:/ap/([^/]+))?/ns/([^/]+)/dc/([^/]+)/svc/([^/]+)$")
_AGENT = re.compile(r"^(?:/ap/([^/]+))?/agent/client/dc/([^/]+)/id/([^/]+)$")
_SERVER = re.compile(r"^/agent/server/dc/([^/]+)$")
_MESH_GATEWAY = re.compile(r"^(?:/ap/([^/]+))?/gateway/mesh/dc/([^/]+)$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})(.{0,2})", re.DOTALL)
# What Go's url.URL.String leaves unescaped in a path besides letters, digits and "-._~".
_PATH_SAFE = "/$&+,:;=@"


@dataclass(frozen=True)
class SpiffeID:
    """One parsed identity. `trust_domain` is the URI's host as written (not lower-cased:
    the trust-domain check folds case itself). Fields a kind does not use are ""."""

    kind: Kind
    trust_domain: str
    datacenter: str = ""
    namespace: str = ""
    partition: str = ""
    service: str = ""
    agent: str = ""
    cluster_id: str = ""  # signing IDs: the host before its first dot
    domain: str = ""  # signing IDs: the host after its first dot

    @property
    def uri(self) -> str:
        """The URI again, in the form the builders below write."""
        if self.kind == "service":
            return service_uri(
                self.trust_domain, self.datacenter, self.service, self.namespace, self.partition
            )
        if self.kind == "agent":
            return _uri(self.trust_domain, f"/agent/client/dc/{self.datacenter}/id/{self.agent}")
        if self.kind == "server":
            return server_uri(self.trust_domain, self.datacenter)
        if self.kind == "mesh-gateway":
            return mesh_gateway_uri(self.trust_domain, self.datacenter)
        return f"spiffe://{self.trust_domain}"


def trust_domain(cluster_id: str) -> str:
    """`<cluster-id>.consul`, lower case: the host of every URI the cluster's CA signs."""
    return f"{cluster_id}.consul".lower()


def _uri(host: str, path: str) -> str:
    return f"spiffe://{host}{quote(path, safe=_PATH_SAFE)}"


def signing_uri(cluster_id: str) -> str:
    """The CA's own URI SAN: `spiffe://<cluster-id>.consul`, no path."""
    return f"spiffe://{trust_domain(cluster_id)}"


def service_uri(
    trust_domain: str,
    datacenter: str,
    service: str,
    namespace: str = "default",
    partition: str = "default",
) -> str:
    path = f"/ns/{namespace or 'default'}/dc/{datacenter}/svc/{service}"
    if partition and partition != "default":
        path = f"/ap/{partition}{path}"
    return _uri(trust_domain, path)


def agent_uri(trust_domain: str, datacenter: str, node: str) -> str:
    return _uri(trust_domain, f"/agent/client/dc/{datacenter}/id/{node}")


def server_uri(trust_domain: str, datacenter: str) -> str:
    return _uri(trust_domain, f"/agent/server/dc/{datacenter}")


def mesh_gateway_uri(trust_domain: str, datacenter: str) -> str:
    return _uri(trust_domain, f"/gateway/mesh/dc/{datacenter}")


def _segments(match: re.Match[str]) -> list[str]:
    return [unquote(group) if group else "" for group in match.groups()]


def parse_uri(uri: str) -> SpiffeID:
    """The identity `uri` names (module docstring), or CAError with Consul's message."""
    bad = _BAD_ESCAPE.search(uri)
    if bad:
        raise CAError(f'parse "{uri}": invalid URL escape "%{bad.group(1)}"')
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise CAError(f'parse "{uri}": {exc}') from None
    if parts.scheme != "spiffe":
        raise CAError("SPIFFE ID must have 'spiffe' scheme")
    host = parts.netloc.rpartition("@")[2]
    path = parts.path
    if match := _SERVICE.match(path):
        partition, namespace, dc, service = _segments(match)
        return SpiffeID(
            "service",
            host,
            datacenter=dc,
            namespace=namespace,
            partition=partition or "default",
            service=service,
        )
    if match := _AGENT.match(path):
        partition, dc, node = _segments(match)
        return SpiffeID("agent", host, datacenter=dc, partition=partition or "default", agent=node)
    if match := _MESH_GATEWAY.match(path):
        partition, dc = _segments(match)
        return SpiffeID("mesh-gateway", host, datacenter=dc, partition=partition or "default")
    if match := _SERVER.match(path):
        return SpiffeID("server", host, datacenter=_segments(match)[0])
    dot = host.find(".")
    if not path and dot > 0:
        return SpiffeID("signing", host, cluster_id=host[:dot], domain=host[dot + 1 :])
    raise CAError(f"SPIFFE ID is not in the expected format: {uri}")
