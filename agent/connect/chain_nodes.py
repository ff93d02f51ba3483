"""The pieces a discovery chain is built from: targets, graph nodes, and their JSON.

`Target` is Consul's DiscoveryTarget (one set of service instances: service, subset, namespace,
partition, datacenter or peer, with the SNI to reach them), `Node` a DiscoveryGraphNode (a
router, splitter or resolver step). The compiler (`agent.connect.chain_compile`) creates and
mutates them; `render` gives the JSON Consul writes, whose custom marshallers put each
ConnectTimeout string ahead of the struct's other fields.

Also here: what the compiler reads from entries (a service's protocol, whether a resolver is a
default one) and how a flattened split inherits its parent's header edits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.connect.chain_values import (
    FAILOVER_POLICY,
    LOAD_BALANCER,
    ROUTE,
    SPLIT,
    duration_text,
    merge_header_modifiers,
    nanoseconds,
    render,
    weight_json,
)

__all__ = [
    "HASH_POLICIES",
    "HTTP_LIKE",
    "Entries",
    "Node",
    "Opts",
    "Split",
    "Target",
    "is_default_resolver",
    "merge_parent",
    "protocol_of",
    "redirect_opts",
]

Entries = Mapping[tuple[str, str], Mapping[str, Any]]

HTTP_LIKE = frozenset({"http", "http2", "grpc"})
HASH_POLICIES = frozenset({"maglev", "ring_hash"})


def go_weak_string(value: Any) -> str:
    """mapstructure's WeakDecode of one value into a string field ("" where it gives up)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    return ""


def protocol_of(entries: Entries, service: str) -> str:
    """The protocol a chain gives `service`: service-defaults, else proxy-defaults, else tcp."""
    defaults = entries.get(("service-defaults", service))
    if defaults is not None:
        return (defaults.get("Protocol") or "tcp").lower()
    proxy = entries.get(("proxy-defaults", "global"))
    config = (proxy or {}).get("Config") or {}
    if isinstance(config, Mapping):
        # mapstructure matches the "protocol" tag exactly first, then case-insensitively.
        raw = config.get("protocol")
        if raw is None:
            raw = next((v for k, v in config.items() if str(k).lower() == "protocol"), None)
        protocol = go_weak_string(raw)
        if protocol:
            return protocol.lower()
    return "tcp"


@dataclass(frozen=True, slots=True)
class Opts:
    """DiscoveryTargetOpts: what names a target before defaults are filled in."""

    service: str = ""
    subset: str = ""
    namespace: str = ""
    partition: str = ""
    datacenter: str = ""
    peer: str = ""


@dataclass(slots=True)
class Target:
    id: str
    opts: Opts
    sni: str = ""
    name: str = ""
    mesh_gateway_mode: str = ""
    subset_definition: Mapping[str, Any] = field(default_factory=dict)
    dialed_directly: bool = False
    connect_timeout: int = 0
    external: bool = False

    def render(self) -> dict[str, Any]:
        # DiscoveryTarget's MarshalJSON writes ConnectTimeout (as a string) ahead of the rest.
        out: dict[str, Any] = {}
        if self.connect_timeout:
            out["ConnectTimeout"] = duration_text(self.connect_timeout)
        out["ID"] = self.id
        for key, value in (
            ("Service", self.opts.service),
            ("ServiceSubset", self.opts.subset),
            ("Namespace", self.opts.namespace),
            ("Partition", self.opts.partition),
            ("Datacenter", self.opts.datacenter),
            ("Peer", self.opts.peer),
        ):
            if value:
                out[key] = value
        out["MeshGateway"] = {"Mode": self.mesh_gateway_mode} if self.mesh_gateway_mode else {}
        subset: dict[str, Any] = {}
        if self.subset_definition.get("Filter"):
            subset["Filter"] = self.subset_definition["Filter"]
        if self.subset_definition.get("OnlyPassing"):
            subset["OnlyPassing"] = True
        out["Subset"] = subset
        out["TransparentProxy"] = {"DialedDirectly": True} if self.dialed_directly else {}
        if self.external:
            out["External"] = True
        if self.sni:
            out["SNI"] = self.sni
        if self.name:
            out["Name"] = self.name
        return out


@dataclass(slots=True)
class Split:
    definition: Mapping[str, Any]
    weight: float
    next_node: str = ""


@dataclass(slots=True)
class Node:
    type: str
    name: str
    routes: list[tuple[Mapping[str, Any], str]] = field(default_factory=list)
    splits: list[Split] = field(default_factory=list)
    resolver: dict[str, Any] | None = None
    load_balancer: Mapping[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.type}:{self.name}"

    def next_nodes(self) -> list[str]:
        if self.type == "router":
            return [next_node for _, next_node in self.routes]
        if self.type == "splitter":
            return [split.next_node for split in self.splits]
        return []

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Type": self.type, "Name": self.name}
        if self.routes:
            out["Routes"] = [
                {"Definition": render(ROUTE, route), "NextNode": next_node}
                for route, next_node in self.routes
            ]
        if self.splits:
            out["Splits"] = [render_split(split) for split in self.splits]
        if self.resolver is not None:
            out["Resolver"] = render_resolver(self.resolver)
        if self.load_balancer is not None:
            out["LoadBalancer"] = render(LOAD_BALANCER, self.load_balancer)
        return out


def render_split(split: Split) -> dict[str, Any]:
    out: dict[str, Any] = {"Definition": render(SPLIT, split.definition)}
    weight = weight_json(split.weight)
    if weight:
        out["Weight"] = weight
    if split.next_node:
        out["NextNode"] = split.next_node
    return out


def render_resolver(resolver: Mapping[str, Any]) -> dict[str, Any]:
    # DiscoveryResolver's MarshalJSON puts ConnectTimeout (a string) first; RequestTimeout has
    # no such treatment and stays integer nanoseconds.
    out: dict[str, Any] = {}
    if resolver["ConnectTimeout"]:
        out["ConnectTimeout"] = duration_text(resolver["ConnectTimeout"])
    if resolver["Default"]:
        out["Default"] = True
    if resolver["RequestTimeout"]:
        out["RequestTimeout"] = resolver["RequestTimeout"]
    out["Target"] = resolver["Target"]
    failover = resolver.get("Failover")
    if failover is not None:
        rendered: dict[str, Any] = {}
        if failover["Targets"]:
            rendered["Targets"] = list(failover["Targets"])
        if failover.get("Policy") is not None:
            rendered["Policy"] = render(FAILOVER_POLICY, failover["Policy"])
        out["Failover"] = rendered
    locality = resolver.get("PrioritizeByLocality")
    if isinstance(locality, Mapping):
        out["PrioritizeByLocality"] = {"Mode": locality["Mode"]} if locality.get("Mode") else {}
    return out


def is_default_resolver(resolver: Mapping[str, Any]) -> bool:
    """ServiceResolverConfigEntry.IsDefault: nothing configured that changes resolution."""
    return (
        not resolver.get("DefaultSubset")
        and not resolver.get("Subsets")
        and resolver.get("Redirect") is None
        and not resolver.get("Failover")
        and nanoseconds(resolver.get("ConnectTimeout")) == 0
        and nanoseconds(resolver.get("RequestTimeout")) == 0
        and resolver.get("LoadBalancer") is None
    )


def redirect_opts(redirect: Mapping[str, Any]) -> Opts:
    return Opts(
        service=redirect.get("Service") or "",
        subset=redirect.get("ServiceSubset") or "",
        namespace=redirect.get("Namespace") or "",
        partition=redirect.get("Partition") or "",
        datacenter=redirect.get("Datacenter") or "",
        peer=redirect.get("Peer") or "",
    )


def merge_parent(child: Mapping[str, Any], parent: Mapping[str, Any]) -> dict[str, Any]:
    """ServiceSplit.MergeParent: the child leg, with the flattened parent's header edits.

    Requests pass the parent first, so its request edits apply under the child's; responses
    come back through the child first, so the parent's response edits win.
    """
    merged = dict(child)
    for key, value in (
        (
            "RequestHeaders",
            merge_header_modifiers(parent.get("RequestHeaders"), child.get("RequestHeaders")),
        ),
        (
            "ResponseHeaders",
            merge_header_modifiers(child.get("ResponseHeaders"), parent.get("ResponseHeaders")),
        ),
    ):
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
