"""The discovery chain compiler: config entries in, Consul's CompiledDiscoveryChain out.

This follows Consul's `agent/consul/discoverychain/compile.go` step for step, because the
chain's every detail (node names, target IDs, which overrides count as customizations, the
order checks fail in) is visible through `/v1/discovery-chain` and in write-time errors.

The walk: the router named after the chain (if any) becomes the start node, each route
leading to a splitter or resolver; without a router the start is the chain service's splitter
or resolver. A splitter's legs lead to resolvers, or to another service's splitter (flattened
away afterwards). A resolver follows redirects and its default subset until it settles on a
target, then adds its failover targets. Every resolved service's protocol must agree; routers
and splitters need an HTTP-like one.

Entries are looked up lazily by (kind, name) in the full set; that reaches exactly the entries
Consul's `readDiscoveryChainConfigEntriesTxn` would have fetched for the chain, since both
follow the same references. Namespaces and partitions are OSS's: always "default".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from agent.connect.chain_nodes import (
    HASH_POLICIES,
    HTTP_LIKE,
    Entries,
    Node,
    Opts,
    Split,
    Target,
    is_default_resolver,
    merge_parent,
    protocol_of,
    redirect_opts,
)
from agent.connect.chain_values import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_NAMESPACE,
    DEFAULT_PARTITION,
    chain_id,
    customization_hash,
    nanoseconds,
    scaled_product,
    service_sni,
    split_weight,
)
from agent.connect.errors import EntryError
from agent.connect.intention_names import go_quote

__all__ = ["HTTP_LIKE", "Entries", "compile_chain", "protocol_of"]

_MESH_GATEWAY_MODES = frozenset({"", "none", "local", "remote"})


class _Compiler:
    """One compilation; the fields mirror Consul's compiler struct."""

    def __init__(
        self,
        service: str,
        datacenter: str,
        trust_domain: str,
        entries: Entries,
        overrides: Mapping[str, Any],
    ) -> None:
        self.service = service
        self.datacenter = datacenter
        self.trust_domain = trust_domain
        self.entries = entries
        gateway = overrides.get("OverrideMeshGateway") or {}
        self.override_gateway = (
            str(gateway.get("Mode") or "") if isinstance(gateway, Mapping) else ""
        )
        self.override_protocol = str(overrides.get("OverrideProtocol") or "")
        self.override_timeout = nanoseconds(overrides.get("OverrideConnectTimeout"))
        # An override to a non-HTTP protocol drops routers and splitters from the chain.
        self.disable_advanced = bool(self.override_protocol) and (
            self.override_protocol not in HTTP_LIKE
        )
        self.customized_gateway = False
        self.customized_protocol = False
        self.customized_timeout = False
        self.uses_advanced = False
        self.protocol = ""
        self.start_node = ""
        self.nodes: dict[str, Node] = {}
        self.splitter_nodes: dict[str, Node] = {}
        self.resolve_nodes: dict[str, Node] = {}
        self.targets: dict[str, Target] = {}
        self.retained: set[str] = set()

    # --- lookups ---------------------------------------------------------------------------

    def _entry(self, kind: str, name: str) -> Mapping[str, Any] | None:
        return self.entries.get((kind, name))

    def _resolver(self, service: str) -> Mapping[str, Any]:
        found = self._entry("service-resolver", service)
        return found if found is not None else {"Kind": "service-resolver", "Name": service}

    def _record_protocol(self, service: str) -> None:
        protocol = protocol_of(self.entries, service)
        if not self.protocol:
            self.protocol = protocol
        elif self.protocol != protocol:
            raise EntryError(
                f"discovery chain {go_quote(self.service)} uses inconsistent protocols; "
                f"service {go_quote(service)} has {go_quote(protocol)} "
                f"which is not {go_quote(self.protocol)}"
            )

    def _record(self, node: Node) -> None:
        if node.type == "splitter":
            self.splitter_nodes[node.name] = node
        elif node.type == "resolver":
            assert node.resolver is not None
            self.resolve_nodes[node.resolver["Target"]] = node
        self.nodes[node.key] = node

    # --- targets ---------------------------------------------------------------------------

    def _target(self, opts: Opts) -> Target:
        """newTarget: fill in the evaluation defaults; one shared target per ID."""
        if opts.peer:
            # A peer's targets carry no datacenter and its partition is always the default.
            opts = replace(
                opts,
                datacenter="",
                partition=DEFAULT_PARTITION,
                namespace=opts.namespace or DEFAULT_NAMESPACE,
            )
        else:
            opts = replace(
                opts,
                datacenter=opts.datacenter or self.datacenter,
                namespace=opts.namespace or DEFAULT_NAMESPACE,
                partition=opts.partition or DEFAULT_PARTITION,
            )
        target_id = chain_id(
            opts.service, opts.subset, opts.namespace, opts.partition, opts.datacenter, opts.peer
        )
        known = self.targets.get(target_id)
        if known is not None:
            return known
        target = Target(id=target_id, opts=opts)
        if not opts.peer:
            # Consul has no peer's trust domain at this point, so peer targets get no SNI.
            target.sni = target.name = service_sni(
                opts.service,
                opts.subset,
                opts.namespace,
                opts.partition,
                opts.datacenter,
                self.trust_domain,
            )
        self.targets[target_id] = target
        return target

    def _rewrite(self, target: Target, opts: Opts) -> Target:
        """rewriteTarget: apply a redirect or failover's fields over a resolved target."""
        current = target.opts
        service, subset = current.service, current.subset
        if opts.service and opts.service != service:
            service, subset = opts.service, ""  # another service's subsets do not carry over
        merged = Opts(
            service=service,
            subset=opts.subset or subset,
            namespace=opts.namespace if (opts.namespace or opts.peer) else current.namespace,
            partition=opts.partition or current.partition,
            datacenter=opts.datacenter or current.datacenter,
            peer=opts.peer,
        )
        return self._target(merged)

    # --- nodes -----------------------------------------------------------------------------

    def _splitter_or_resolver(self, target: Target) -> Node:
        return self._splitter_node(target.opts.service) or self._resolver_node(target)

    def _splitter_node(self, service: str) -> Node | None:
        name = f"{service}.{DEFAULT_NAMESPACE}.{DEFAULT_PARTITION}"
        known = self.splitter_nodes.get(name)
        if known is not None:
            return known
        splitter = self._entry("service-splitter", service)
        if splitter is not None and self.disable_advanced:
            splitter, self.customized_protocol = None, True
        if splitter is None:
            return None
        node = Node("splitter", name)
        # Recorded before its legs are walked, so a loop back here ends at this node.
        self._record(node)
        found_balancer = False
        for definition in splitter.get("Splits") or ():
            leg = Split(definition, split_weight(definition.get("Weight")))
            node.splits.append(leg)
            leg_service = definition.get("Service") or service
            subset = definition.get("ServiceSubset") or ""
            if leg_service != service and not subset:
                inner = self._splitter_node(leg_service)
                if inner is not None:
                    leg.next_node = inner.key
                    continue
            resolved = self._resolver_node(self._target(Opts(service=leg_service, subset=subset)))
            leg.next_node = resolved.key
            # One route action can carry one hash policy: the first hash-based balancer wins.
            balancer = resolved.load_balancer
            hashed = balancer is not None and balancer.get("Policy") in HASH_POLICIES
            if hashed and not found_balancer:
                node.load_balancer, found_balancer = balancer, True
        self.uses_advanced = True
        return node

    def _settle(self, target: Target) -> tuple[Target, Mapping[str, Any] | None, Node | None]:
        """Follow redirects and default subsets: (target, its resolver, or a known node)."""
        history: list[str] = []
        while True:
            known = self.resolve_nodes.get(target.id)
            if known is not None:
                return target, None, known
            if not target.opts.peer:
                self._record_protocol(target.opts.service)
            resolver = self._resolver(target.opts.service)
            if target.id in history:
                history.append(target.id)
                raise EntryError(f"detected circular resolver redirect: [{' -> '.join(history)}]")
            history.append(target.id)
            redirect = resolver.get("Redirect")
            if redirect is not None:
                redirected = self._rewrite(target, redirect_opts(redirect))
                if redirected.id != target.id:
                    target = redirected
                    continue
            default_subset = resolver.get("DefaultSubset") or ""
            if not target.opts.subset and default_subset:
                target = self._rewrite(target, Opts(subset=default_subset))
                continue
            return target, resolver, None

    def _resolver_node(self, target: Target, for_failover: bool = False) -> Node:
        target, resolver, known = self._settle(target)
        if known is not None:
            return known
        assert resolver is not None
        subsets = resolver.get("Subsets") or {}
        subset = target.opts.subset
        if subset and subset not in subsets:
            raise EntryError(
                f"service {go_quote(target.opts.service)} does not have a subset named "
                f"{go_quote(subset)}"
            )
        timeout = nanoseconds(resolver.get("ConnectTimeout"))
        if timeout < 1:
            timeout = DEFAULT_CONNECT_TIMEOUT
        if self.override_timeout > 0 and timeout != self.override_timeout:
            timeout, self.customized_timeout = self.override_timeout, True
        target.connect_timeout = timeout
        node = Node(
            "resolver",
            target.id,
            resolver={
                "Default": is_default_resolver(resolver),
                "Target": target.id,
                "ConnectTimeout": timeout,
                "RequestTimeout": nanoseconds(resolver.get("RequestTimeout")),
                "PrioritizeByLocality": resolver.get("PrioritizeByLocality"),
            },
            load_balancer=resolver.get("LoadBalancer"),
        )
        target.subset_definition = (subsets.get(subset) or {}) if subset else {}
        self._apply_service_defaults(target, resolver)
        self.retained.add(target.id)
        if for_failover:
            # Failover targets reuse the redirect and subset logic but are not nodes of their
            # own, and their own failover is not followed.
            return node
        self._record(node)
        self._add_failover(node, target, resolver)
        return node

    def _apply_service_defaults(self, target: Target, resolver: Mapping[str, Any]) -> None:
        service = target.opts.service
        defaults = self._entry("service-defaults", service)
        if defaults is not None and defaults.get("ExternalSNI"):
            target.sni, target.external = defaults["ExternalSNI"], True
        if target.external:
            for field_name, word in (
                ("Redirect", "redirects"),
                ("Subsets", "subsets"),
                ("Failover", "failover"),
            ):
                value = resolver.get(field_name)
                if (value is not None) if field_name == "Redirect" else bool(value):
                    raise EntryError(
                        f"service {go_quote(service)} has an external SNI set; "
                        f"cannot define {word} for external services"
                    )
            target.mesh_gateway_mode = ""  # external services bypass mesh gateways
            return
        if defaults is not None:
            target.mesh_gateway_mode = (defaults.get("MeshGateway") or {}).get("Mode") or ""
            tproxy = defaults.get("TransparentProxy") or {}
            target.dialed_directly = bool(tproxy.get("DialedDirectly"))
        proxy = self._entry("proxy-defaults", "global")
        if proxy is not None:
            if not target.mesh_gateway_mode:
                target.mesh_gateway_mode = (proxy.get("MeshGateway") or {}).get("Mode") or ""
            if not target.dialed_directly:
                tproxy = proxy.get("TransparentProxy") or {}
                target.dialed_directly = bool(tproxy.get("DialedDirectly"))
        override = self.override_gateway
        if override and target.mesh_gateway_mode != override:
            target.mesh_gateway_mode, self.customized_gateway = override, True

    def _failover_targets(self, target: Target, failover: Mapping[str, Any]) -> list[Target]:
        base = Opts(
            service=failover.get("Service") or "",
            subset=failover.get("ServiceSubset") or "",
            namespace=failover.get("Namespace") or "",
        )
        if failover.get("Datacenters"):
            candidates = [
                self._rewrite(target, replace(base, datacenter=dc))
                for dc in failover["Datacenters"]
            ]
        elif failover.get("Targets"):
            candidates = [
                self._rewrite(target, redirect_opts(spec)) for spec in failover["Targets"]
            ]
        else:
            candidates = [self._rewrite(target, base)]
        return [candidate for candidate in candidates if candidate.id != target.id]

    def _add_failover(self, node: Node, target: Target, resolver: Mapping[str, Any]) -> None:
        sections = resolver.get("Failover") or {}
        failover = sections.get(target.opts.subset)
        if failover is None:
            failover = sections.get("*")
        if failover is None:
            return
        candidates = self._failover_targets(target, failover)
        if not candidates:
            return
        policy = failover.get("Policy")
        if policy is None or not policy.get("Mode"):
            proxy = self._entry("proxy-defaults", "global")
            policy = (proxy or {}).get("FailoverPolicy")
        chosen: dict[str, Any] = {"Targets": [], "Policy": policy}
        assert node.resolver is not None
        node.resolver["Failover"] = chosen
        for candidate in candidates:
            resolved = self._resolver_node(candidate, for_failover=True)
            assert resolved.resolver is not None
            chosen["Targets"].append(resolved.resolver["Target"])

    # --- assembly --------------------------------------------------------------------------

    def _assemble(self) -> None:
        router = self._entry("service-router", self.service)
        if router is not None and self.disable_advanced:
            router, self.customized_protocol = None, True
        if router is None:
            self.start_node = self._splitter_or_resolver(self._target(Opts(self.service))).key
            return
        router_name = router.get("Name") or self.service
        node = Node("router", f"{router_name}.{DEFAULT_NAMESPACE}.{DEFAULT_PARTITION}")
        self.uses_advanced = True
        self._record_protocol(router_name)
        for route in router.get("Routes") or ():
            destination = route.get("Destination") or {}
            opts = Opts(
                service=destination.get("Service") or self.service,
                subset=destination.get("ServiceSubset") or "",
                namespace=destination.get("Namespace") or DEFAULT_NAMESPACE,
                partition=destination.get("Partition") or DEFAULT_PARTITION,
            )
            # A route naming a subset skips the splitter: it asked for those instances.
            if opts.subset:
                next_node = self._resolver_node(self._target(opts))
            else:
                next_node = self._splitter_or_resolver(self._target(opts))
            node.routes.append((route, next_node.key))
        catch_all = self._splitter_or_resolver(self._target(Opts(router_name)))
        default_route = {
            "Match": {"HTTP": {"PathPrefix": "/"}},
            "Destination": {
                "Service": router_name,
                "Namespace": DEFAULT_NAMESPACE,
                "Partition": DEFAULT_PARTITION,
            },
        }
        node.routes.append((default_route, catch_all.key))
        self.start_node = node.key
        self._record(node)

    def _check_cycles(self) -> None:
        """detectCircularReferences: a depth-first walk keeping the current path."""
        pop_marker = object()  # leaving a node: it drops off the path
        stack: list[Any] = [self.start_node]
        visited: set[str] = set()
        path: list[str] = []
        while stack:
            current = stack.pop()
            if current is pop_marker:
                if path:
                    visited.discard(path.pop())
                continue
            path.append(current)
            if current in visited:
                raise EntryError(f"detected circular reference: [{' -> '.join(path)}]")
            visited.add(current)
            stack.append(pop_marker)
            stack.extend(self.nodes[current].next_nodes())

    def _flatten_splitters(self) -> None:
        """Replace each split that leads to a splitter with that splitter's legs, scaled."""
        changed = True
        while changed:
            changed = False
            for key in sorted(self.nodes):
                node = self.nodes[key]
                if node.type != "splitter":
                    continue
                fixed: list[Split] = []
                node_changed = False
                for split in node.splits:
                    inner = self.nodes[split.next_node]
                    if inner.type != "splitter":
                        fixed.append(split)
                        continue
                    node_changed = True
                    for leg in inner.splits:
                        fixed.append(
                            Split(
                                merge_parent(leg.definition, split.definition),
                                scaled_product(split.weight, leg.weight),
                                leg.next_node,
                            )
                        )
                if node_changed:
                    node.splits, changed = fixed, True

    def _drop_unreachable(self) -> None:
        seen: set[str] = set()
        todo = [self.start_node]
        while todo:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            todo.extend(self.nodes[key].next_nodes())
        self.nodes = {key: node for key, node in self.nodes.items() if key in seen}
        self.targets = {tid: t for tid, t in self.targets.items() if tid in self.retained}

    def _is_default_chain(self) -> bool:
        node = self.nodes[self.start_node]
        if node.type != "resolver" or node.resolver is None or not node.resolver["Default"]:
            return False
        target = self.targets[node.resolver["Target"]]
        # A redirect to some other default resolver is not the default chain.
        return (
            target.opts.service == self.service
            and target.opts.namespace == DEFAULT_NAMESPACE
            and target.opts.partition == DEFAULT_PARTITION
        )

    def compile(self) -> dict[str, Any]:
        """The chain's fields up to Targets."""
        self._assemble()
        self._check_cycles()
        self._flatten_splitters()
        self._drop_unreachable()
        if self.uses_advanced and self.protocol not in HTTP_LIKE:
            raise EntryError(
                f"discovery chain {go_quote(self.service)} uses a protocol "
                f"{go_quote(self.protocol)} that does not permit advanced routing or "
                "splitting behavior"
            )
        if self.override_protocol and self.override_protocol != self.protocol:
            self.protocol, self.customized_protocol = self.override_protocol, True
        customization = ""
        if self.customized_gateway or self.customized_protocol or self.customized_timeout:
            customization = customization_hash(
                self.override_gateway if self.customized_gateway else "",
                self.override_protocol if self.customized_protocol else "",
                self.override_timeout if self.customized_timeout else 0,
            )
        return self._chain(customization)

    def _chain(self, customization: str) -> dict[str, Any]:
        chain: dict[str, Any] = {
            "ServiceName": self.service,
            "Namespace": DEFAULT_NAMESPACE,
            "Partition": DEFAULT_PARTITION,
            "Datacenter": self.datacenter,
        }
        if customization:
            chain["CustomizationHash"] = customization
        if self._is_default_chain():
            chain["Default"] = True
        chain["Protocol"] = self.protocol
        defaults = self._entry("service-defaults", self.service)
        if defaults is not None and defaults.get("Meta"):
            chain["ServiceMeta"] = dict(sorted(defaults["Meta"].items()))
        extensions = [
            *((self._entry("proxy-defaults", "global") or {}).get("EnvoyExtensions") or ()),
            *((defaults or {}).get("EnvoyExtensions") or ()),
        ]
        if extensions:
            chain["EnvoyExtensions"] = extensions
        chain["StartNode"] = self.start_node
        chain["Nodes"] = {key: self.nodes[key].render() for key in sorted(self.nodes)}
        chain["Targets"] = {tid: self.targets[tid].render() for tid in sorted(self.targets)}
        return chain


def compile_chain(
    service: str,
    datacenter: str,
    trust_domain: str,
    entries: Entries,
    overrides: Mapping[str, Any] | None = None,
    *,
    auto_virtual_ips: Sequence[str] | None = None,
    manual_virtual_ips: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The CompiledDiscoveryChain for `service` evaluated in `datacenter`, as Consul's JSON.

    :param trust_domain: the cluster's trust domain ("<cluster-id>.consul"), used in SNIs.
    :param entries: every stored config entry, keyed by (kind, name).
    :param overrides: the POST body's fields, PascalCase: ``OverrideMeshGateway`` ({"Mode"}),
        ``OverrideProtocol`` and ``OverrideConnectTimeout`` (a Go duration string or integer
        nanoseconds). Only those that change something count toward CustomizationHash.
    :param auto_virtual_ips: the service's assigned virtual IP, when it has one; Consul then
        reports ManualVirtualIPs as a list (empty if none) instead of null.
    :raises EntryError: with Consul's graph message (status 500); the HTTP endpoint prefixes
        it with "failed to compile discovery chain: ".
    """
    if not service:
        raise EntryError("serviceName is required")
    mode = ((overrides or {}).get("OverrideMeshGateway") or {}).get("Mode") or ""
    if mode not in _MESH_GATEWAY_MODES:
        raise EntryError("Invalid OverrideMeshGateway.Mode parameter", 400)
    chain = _Compiler(service, datacenter, trust_domain, entries, overrides or {}).compile()
    if auto_virtual_ips is None:
        chain["AutoVirtualIPs"] = chain["ManualVirtualIPs"] = None
    else:
        chain["AutoVirtualIPs"] = list(auto_virtual_ips)
        chain["ManualVirtualIPs"] = list(manual_virtual_ips or ())
    return chain
