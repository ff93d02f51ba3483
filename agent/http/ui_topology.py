"""`/v1/internal/ui/service-topology/<service>?kind=`: a service's upstreams and downstreams,
as Consul's state.ServiceTopology computes them and its UI handler summarizes them.

Consul keeps a mesh-topology table (proxy registrations' upstreams, and what an ingress
gateway exposes); here the same pairs are read from the catalog and the config entries on each
request. The steps, in Consul's order:

- protocol: the service's discovery-chain protocol (ingress gateways: `http` only when every
  listener is HTTP-like, else `tcp`); `TransparentProxy` when every proxy of it is transparent;
- upstreams: the registrations' upstreams (source `proxy-registration`), then, when some
  proxy is transparent or an instance is Connect-native, every typical service intentions
  let it reach (`specific-intention`, `default-allow` or `wildcard-intention`); each gets an
  intention decision; names with no instances but a router, splitter or resolver are
  `routing-config`;
- downstreams: the services whose proxies name, as an upstream, a service whose discovery
  chain reaches this one (`proxy-registration`), then those intentions let in (typical
  services and ingress gateways) when they have a transparent proxy or are native.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agent import render
from agent.connect import intentions as ixn
from agent.connect.chain import HTTP_LIKE, compile_chain, protocol_of
from agent.connect.errors import MeshError
from agent.http import ui_summary
from agent.http.catalog import sorted_nodes
from agent.state import mesh_views

if TYPE_CHECKING:
    from agent.state.store import Store
    from agent.state.structs import Node, Service

__all__ = ["decision", "service_topology"]

REGISTRATION = "proxy-registration"
SPECIFIC = "specific-intention"
WILDCARD_INTENTION = "wildcard-intention"
DEFAULT_ALLOW = "default-allow"
ROUTING_CONFIG = "routing-config"
_GRAPH_KINDS = ("service-router", "service-splitter", "service-resolver")
_PROXY = "connect-proxy"
_TRANSPARENT = "transparent"
_INGRESS = "ingress-gateway"
_WILDCARD = "*"
_CONSUL = "consul"
# Go's zero IntentionDecisionSummary, for a summary no decision was made for
_NO_DECISION = {
    "DefaultAllow": False,
    "Allowed": False,
    "HasPermissions": False,
    "ExternalSource": "",
    "HasExact": False,
}


def decision(
    intentions: Iterable[Mapping[str, Any]],
    target: str,
    side: str,
    default_allow: bool,
    allow_permissions: bool,
) -> dict[str, Any]:
    """Consul's IntentionDecisionSummary: the first intention (in precedence order) whose
    `side` ("Source" or "Destination") matches `target` decides."""
    out = {
        "DefaultAllow": default_allow,
        "Allowed": default_allow,
        "HasPermissions": False,
        "ExternalSource": "",
        "HasExact": False,
    }
    for intention in intentions:
        if intention.get(f"{side}Name") not in (_WILDCARD, target):
            continue
        if side == "Source" and intention.get("SourcePeer"):
            continue  # a peer's service is never the local one asked about
        out["Allowed"] = intention.get("Action") == "allow"
        if intention.get("Permissions"):
            out["Allowed"] = allow_permissions
            out["HasPermissions"] = True
        out["ExternalSource"] = (intention.get("Meta") or {}).get("external-source", "")
        out["HasExact"] = (
            intention.get("SourceName") != _WILDCARD
            and intention.get("DestinationName") != _WILDCARD
        )
        return out
    return out


def _source_of(summary: Mapping[str, Any]) -> str:
    if summary["HasExact"]:
        return SPECIFIC
    return DEFAULT_ALLOW if summary["DefaultAllow"] else WILDCARD_INTENTION


class _Catalog:
    """The catalog as the topology reads it (one pass over the services)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pairs: list[tuple[Node, Service]] = [
            (node, svc)
            for node in sorted_nodes(store.nodes)
            for _, svc in sorted(store.services.get(node.Node, {}).items())
        ]

    def names_of_kind(self, kind: str) -> set[str]:
        return {svc.Service for _, svc in self.pairs if svc.Kind == kind}

    def proxies_of(self, service: str) -> list[Service]:
        """Consul's connect index: proxies fronting `service` and its native instances."""
        return [svc for _, svc in self.pairs if svc.connect_name == service]

    def registered_links(self) -> list[tuple[str, str]]:
        """(upstream, downstream) pairs: proxies' upstreams (prepared queries aside), and
        what ingress gateways expose (the gateway is the downstream)."""
        links: list[tuple[str, str]] = []
        for _, svc in self.pairs:
            if svc.Kind != _PROXY:
                continue
            for upstream in svc.Proxy.Upstreams:
                if upstream.DestinationType == "prepared_query":
                    continue
                link = (upstream.DestinationName, svc.Proxy.DestinationServiceName)
                if link not in links:
                    links.append(link)
        for entry in self.store.mesh.of_kind(_INGRESS):
            gateway = str(entry.get("Name") or "")
            for linked in mesh_views.gateway_services(self.store, gateway):
                link = (linked["Service"]["Name"], gateway)
                if linked["GatewayKind"] == _INGRESS and link not in links:
                    links.append(link)
        return links

    def instances(self, names: Iterable[str]) -> list[dict]:
        """Typical and Connect instances of each name, each once (combinedServiceNodes)."""
        seen: dict[tuple[str, str], dict] = {}
        for name in names:
            pairs = [(n, s) for n, s in self.pairs if s.Service == name]
            pairs += mesh_views.connect_instances(self.store, name).pairs
            for node, svc in pairs:
                checks = render.instance_checks(self.store.node_checks(node.Node), svc.ID)
                seen[(node.Node, svc.ID)] = render.check_service_node(node, svc, checks)
        return list(seen.values())


def _intention_topology(
    catalog: _Catalog, entries: Mapping, service: str, downstreams: bool, default_allow: bool
) -> list[tuple[str, dict]]:
    """Services intentions let `service` reach (or, for downstreams, let reach it)."""
    by = "destination" if downstreams else "source"
    found = ixn.match_service(entries, by, service)
    candidates = catalog.names_of_kind("")
    if downstreams:
        candidates |= catalog.names_of_kind(_INGRESS)
    side = "Source" if downstreams else "Destination"
    out = []
    for candidate in sorted(candidates - {_CONSUL, service}):
        summary = decision(found, candidate, side, default_allow, allow_permissions=True)
        if summary["Allowed"]:
            out.append((candidate, summary))
    return out


def _protocol(entries: Mapping, service: str, kind: str) -> str:
    if kind != _INGRESS:
        return protocol_of(entries, service)
    entry = entries.get((_INGRESS, service))
    if entry is None:
        return ""
    protocols = [str(li.get("Protocol") or "tcp").lower() for li in entry.get("Listeners") or ()]
    http_only = bool(protocols) and all(p in HTTP_LIKE for p in protocols)
    return "http" if http_only else "tcp"


def _chain_sources(entries: Mapping, dc: str, trust_domain: str, service: str) -> list[str]:
    """Services whose discovery chain, evaluated in `dc`, has `service` as a target."""
    names = {service} | {name for kind, name in entries if kind in _GRAPH_KINDS}
    sources = []
    for name in sorted(names):
        try:
            chain = compile_chain(name, dc, trust_domain, entries)
        except MeshError:
            continue
        targets = (chain.get("Targets") or {}).values()
        if any(t["Service"] == service and t["Datacenter"] == dc for t in targets):
            sources.append(name)
    return sources


def _topology(  # noqa: PLR0912 - Consul's one long function, kept in its order
    store: Store, dc: str, trust_domain: str, service: str, kind: str, default_allow: bool
) -> dict[str, Any]:
    entries = store.mesh.entries
    catalog = _Catalog(store)
    protocol = _protocol(entries, service, kind)
    fully_transparent = has_transparent = connect_native = False
    if kind == "":
        proxies = catalog.proxies_of(service)
        if proxies:
            fully_transparent = all(p.Proxy.Mode == _TRANSPARENT for p in proxies)
            has_transparent = any(p.Proxy.Mode == _TRANSPARENT for p in proxies)
            connect_native = any(p.Connect.Native for p in proxies)
    dynamic = has_transparent or connect_native
    links = catalog.registered_links()

    up_names = [up for up, down in links if down == service]
    up_sources = dict.fromkeys(up_names, REGISTRATION)
    up_decisions: dict[str, dict] = {}
    if dynamic:
        for name, summary in _intention_topology(catalog, entries, service, False, default_allow):
            if name not in up_sources:
                up_decisions[name] = summary
                up_names.append(name)
                up_sources[name] = _source_of(summary)
    as_source = ixn.match_service(entries, "source", service)
    for name in up_names:
        up_decisions[name] = decision(as_source, name, "Destination", default_allow, False)
    upstreams = []
    for item in catalog.instances(up_names):
        name = _served(item["Service"])
        if dynamic or up_sources.get(name) == REGISTRATION:
            upstreams.append(item)
    found = {item["Service"]["Service"] for item in upstreams}
    for name in up_names:
        if name not in found and any((k, name) in entries for k in _GRAPH_KINDS):
            up_sources[name] = ROUTING_CONFIG

    down_names: list[str] = []
    for source in _chain_sources(entries, dc, trust_domain, service):
        for up, down in links:
            if up == source and down not in down_names:
                down_names.append(down)
    down_sources = dict.fromkeys(down_names, REGISTRATION)
    down_decisions: dict[str, dict] = {}
    for name, summary in _intention_topology(catalog, entries, service, True, default_allow):
        if name not in down_sources:
            down_names.append(name)
            down_decisions[name] = summary
            down_sources[name] = _source_of(summary)
    as_destination = ixn.match_service(entries, "destination", service)
    for name in down_names:
        down_decisions[name] = decision(as_destination, name, "Source", default_allow, False)
    unfiltered = catalog.instances(down_names)
    meshed = set()
    for item in unfiltered:
        svc = item["Service"]
        if (svc.get("Proxy") or {}).get("Mode") == _TRANSPARENT:
            meshed.add(svc["Proxy"].get("DestinationServiceName", ""))
        if (svc.get("Connect") or {}).get("Native"):
            meshed.add(svc["Service"])
    downstreams = []
    for item in unfiltered:
        name = _served(item["Service"])
        if name not in meshed and down_sources.get(name) != REGISTRATION:
            down_sources.pop(name, None)
            down_decisions.pop(name, None)
            continue
        downstreams.append(item)
    return {
        "TransparentProxy": fully_transparent,
        "Protocol": protocol,
        "Upstreams": upstreams,
        "Downstreams": downstreams,
        "UpstreamDecisions": up_decisions,
        "DownstreamDecisions": down_decisions,
        "UpstreamSources": up_sources,
        "DownstreamSources": down_sources,
    }


def _served(svc: Mapping[str, Any]) -> str:
    """The service an instance stands for: a proxy's destination, else its own name."""
    if svc.get("Kind") == _PROXY:
        return str((svc.get("Proxy") or {}).get("DestinationServiceName") or "")
    return str(svc["Service"])


def _summaries(
    dump: list[dict], decisions: Mapping[str, dict], sources: Mapping[str, str]
) -> list[dict]:
    summaries, _ = ui_summary.summarize(dump)
    out = []
    for summary in ui_summary.prepare(summaries, exclude_sidecars=True):
        name = summary["Name"]
        out.append(
            summary
            | {
                "Source": sources.get(name, ""),
                "Intention": decisions.get(name) or dict(_NO_DECISION),
            }
        )
    return out


def service_topology(
    store: Store,
    dc: str,
    trust_domain: str,
    service: str,
    kind: str,
    default_allow: bool,
    keep: Any = None,
) -> dict[str, Any]:
    """The UI's ServiceTopology. `keep(instance) -> bool` drops the instances the caller may
    not read (FilteredByACLs then says so)."""
    topo = _topology(store, dc, trust_domain, service, kind, default_allow)
    filtered = False
    if keep is not None:
        for side in ("Upstreams", "Downstreams"):
            kept = [item for item in topo[side] if keep(item)]
            filtered = filtered or len(kept) != len(topo[side])
            topo[side] = kept
    upstreams = _summaries(topo["Upstreams"], topo["UpstreamDecisions"], topo["UpstreamSources"])
    for name in sorted(topo["UpstreamSources"]):
        if topo["UpstreamSources"][name] == ROUTING_CONFIG:
            base = ui_summary.Summary(name, datacenter=dc).render()
            upstreams.append(
                base | {"Source": ROUTING_CONFIG, "Intention": topo["UpstreamDecisions"].get(name)}
            )
    return {
        "Protocol": topo["Protocol"],
        "TransparentProxy": topo["TransparentProxy"],
        "Upstreams": upstreams,
        "Downstreams": _summaries(
            topo["Downstreams"], topo["DownstreamDecisions"], topo["DownstreamSources"]
        ),
        "FilteredByACLs": filtered,
    }
