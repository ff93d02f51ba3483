"""The service summaries of Consul's web UI (agent/ui_endpoint.go's summarizeServices), pure.

Input is a service dump: CheckServiceNode-shaped dicts (`Node`, `Service`, `Checks`, as
agent.render makes them), optionally with a `GatewayService` (the gateway dumps). Consul's
rules, kept here:

- one summary per service name; `Nodes` and `Tags` are sets (sorted), `ExternalSources` the
  distinct `external-source` meta values in the order met, `Kind` the last instance's;
- a check counts once per (node, check ID), however many instances it covers;
- a connect-proxy makes its destination `ConnectedWithProxy`, lends it its checks, and makes
  it `TransparentProxy` only when every proxy of it is in transparent mode. A destination
  with no instance of its own still gets a summary (zero instances), as Consul's does;
- `ConnectNative` once any instance is native;
- a gateway dump adds `GatewayConfig.Addresses` for what an ingress gateway exposes: its
  hosts, or `<service>.ingress.<dc>.<domain>` for each DNS domain, with the listener port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Summary", "listing", "prepare", "summarize"]

_COUNTERS = {"passing": "ChecksPassing", "warning": "ChecksWarning", "critical": "ChecksCritical"}
_PROXY = "connect-proxy"
_TRANSPARENT = "transparent"
_LISTED_KINDS = ("", "ingress-gateway")  # what topology lists (sidecars excluded)


@dataclass
class Summary:
    name: str
    kind: str = ""
    datacenter: str = ""
    tags: list[str] | None = None
    nodes: list[str] | None = None
    external_sources: list[str] | None = None
    instance_count: int = 0
    connect_native: bool = False
    transparent_proxy: bool = False
    transparent_set: bool = False
    addresses: list[str] = field(default_factory=list)
    checks: dict[tuple[str, str], str] = field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        counts = dict.fromkeys(_COUNTERS.values(), 0)
        for status in self.checks.values():
            key = _COUNTERS.get(status)
            if key:
                counts[key] += 1
        out: dict[str, Any] = {"Kind": self.kind} if self.kind else {}
        out.update(
            {
                "Name": self.name,
                "Datacenter": self.datacenter,
                "Tags": sorted(self.tags) if self.tags is not None else None,
                "Nodes": sorted(self.nodes) if self.nodes is not None else None,
                "ExternalSources": self.external_sources,
                "InstanceCount": self.instance_count,
                **counts,
                "GatewayConfig": {"Addresses": self.addresses} if self.addresses else {},
                "TransparentProxy": self.transparent_proxy,
                "ConnectNative": self.connect_native,
            }
        )
        return out


def _add_checks(summary: Summary, node: str, checks: list[dict]) -> None:
    for check in checks:
        summary.checks[(node, check["CheckID"])] = check["Status"]


def _gateway_addresses(gateway_service: dict, dc: str, domains: list[str]) -> list[str]:
    port = gateway_service.get("Port") or 0
    if not port:
        return []
    hosts = gateway_service.get("Hosts") or [
        f"{gateway_service['Service']['Name']}.ingress.{dc}.{domain}" for domain in domains
    ]
    return [f"{host}:{port}" for host in hosts]


def summarize(
    dump: list[dict], dc: str = "", domains: list[str] | None = None
) -> tuple[dict[str, Summary], set[str]]:
    """(summaries by service name, names that have a connect-proxy). `domains` (the agent's
    DNS domain and alt domain) are given for a gateway dump only."""
    summaries: dict[str, Summary] = {}
    has_proxy: set[str] = set()

    def get(name: str) -> Summary:
        found = summaries.get(name)
        if found is None:
            found = summaries[name] = Summary(name)
        return found

    for item in dump:
        gateway_service = item.get("GatewayService")
        if domains is not None and gateway_service:
            summary = get(gateway_service["Service"]["Name"])
            for address in _gateway_addresses(gateway_service, dc, domains):
                if address not in summary.addresses:
                    summary.addresses.append(address)
        svc = item.get("Service")
        if not svc:
            continue
        node = item["Node"]
        summary = get(svc["Service"])
        summary.nodes = summary.nodes or []
        if node["Node"] not in summary.nodes:
            summary.nodes.append(node["Node"])
        summary.kind = svc.get("Kind") or ""
        summary.datacenter = node.get("Datacenter") or ""
        summary.instance_count += 1
        if (svc.get("Connect") or {}).get("Native"):
            summary.connect_native = True
        if summary.kind == _PROXY:
            proxy = svc.get("Proxy") or {}
            target = get(str(proxy.get("DestinationServiceName") or ""))
            has_proxy.add(target.name)
            _add_checks(target, node["Node"], item.get("Checks") or [])
            transparent = proxy.get("Mode") == _TRANSPARENT
            if transparent and not target.transparent_set:
                target.transparent_proxy = True
            if not transparent:
                target.transparent_proxy = False
            target.transparent_set = True
        for tag in svc.get("Tags") or ():
            summary.tags = summary.tags or []
            if tag not in summary.tags:
                summary.tags.append(tag)
        source = (svc.get("Meta") or {}).get("external-source")
        if source:
            summary.external_sources = summary.external_sources or []
            if source not in summary.external_sources:
                summary.external_sources.append(source)
        _add_checks(summary, node["Node"], item.get("Checks") or [])
    return summaries, has_proxy


def prepare(summaries: dict[str, Summary], exclude_sidecars: bool = False) -> list[dict]:
    """The summaries as Consul's JSON, sorted by name; `exclude_sidecars` keeps only typical
    services and ingress gateways (service topology)."""
    return [
        summaries[name].render()
        for name in sorted(summaries)
        if not exclude_sidecars or summaries[name].kind in _LISTED_KINDS
    ]


def listing(dump: list[dict], gateway_links: list[tuple[str, str]]) -> list[dict]:
    """`/v1/internal/ui/services`: ServiceListingSummary per service. `gateway_links` are
    (service, gateway) pairs from the ingress and terminating gateways' config entries."""
    summaries, has_proxy = summarize(dump)
    gateways_of: dict[str, list[str]] = {}
    linked_count: dict[str, int] = {}
    for service, gateway in gateway_links:
        gateways_of.setdefault(service, []).append(gateway)
        linked_count[gateway] = linked_count.get(gateway, 0) + 1
    out = []
    for rendered in prepare(summaries):
        name = rendered["Name"]
        with_gateway = rendered["InstanceCount"] > 0 and any(
            gw in summaries for gw in gateways_of.get(name, ())
        )
        if linked_count.get(name):
            rendered["GatewayConfig"] = {
                "AssociatedServiceCount": linked_count[name],
                **rendered["GatewayConfig"],
            }
        rendered["ConnectedWithProxy"] = name in has_proxy
        rendered["ConnectedWithGateway"] = with_gateway
        out.append(rendered)
    return out
