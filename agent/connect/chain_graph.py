"""Write-time checks across config entries: would the graph still compile after this change?

Consul runs these in the state store before it applies a config-entry upsert or delete
(`validateProposedConfigEntryInGraph` in `agent/consul/state/config_entry.go`); the first
problem found refuses the write as a plain-text 500 with the message as it is. The checks, in
Consul's order:

1. Per kind: ingress and terminating gateways may not share a name (on delete too);
   service-intentions must name existing jwt-providers; with the previous entries given,
   switching service-defaults or proxy-defaults to MutualTLSMode=permissive needs the mesh
   entry's AllowEnablingPermissiveMutualTLS.
2. The affected discovery chains are compiled (datacenter "dc1" and a fixed trust domain, as
   Consul does: neither changes the graph), giving any compile error (advanced routing on a
   non-HTTP protocol, inconsistent protocols, unknown subsets, circular redirects...).
3. Every affected ingress listener's protocol must match its services' chains; every affected
   service-intentions entry with L7 permissions needs an HTTP-like destination.

Which chains are affected, by the changed kind:

- proxy-defaults "global": every router, splitter and resolver's chain, every ingress gateway
  and every intention destination (a protocol default moved under all of them);
- service-intentions: its destination's chain (nothing on delete);
- ingress-gateway: its services' chains, with the listener protocols matched strictly
  (nothing on delete);
- mesh, exported-services, sameness-group: none (peering export checks are not modelled);
- any other kind, named N: chain N, the chains of routers, splitters and resolvers that
  reference N, the services of ingress gateways that list N, and the destination of every
  service-intentions entry. References are followed one step, as Consul's link index does.

Chains are compiled in name order and entries walked in name order, where Consul's map order is
random; so when several problems exist, the one reported is stable but may differ from the one
a given Consul run picks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.connect.chain_compile import HTTP_LIKE, Entries, compile_chain
from agent.connect.errors import EntryError
from agent.connect.intention_names import go_quote, multierror

__all__ = ["graph_problem", "related_services"]

# testCompileDiscoveryChain's placeholders.
_CHECK_DATACENTER = "dc1"
_CHECK_TRUST_DOMAIN = "b6fc9da3-03d4-4b5a-9134-c045e9b20152.consul"
_CHAIN_KINDS = ("service-router", "service-splitter", "service-resolver")
_PERMISSIVE_REFUSED = (
    "cannot set MutualTLSMode=permissive because AllowEnablingPermissiveMutualTLS=false in the "
    "mesh config entry"
)


def _named(entries: Entries, kind: str) -> list[Mapping[str, Any]]:
    return [entries[key] for key in sorted(key for key in entries if key[0] == kind)]


def related_services(kind: str, entry: Mapping[str, Any]) -> list[str]:
    """ListRelatedServices: the other services an entry sends traffic to (sorted).

    A router also lists itself (its catch-all route); the others leave their own name out.
    """
    name = entry.get("Name") or ""
    found: set[str] = set()
    if kind == "service-router":
        found.add(name)
        for route in entry.get("Routes") or ():
            destination = route.get("Destination")
            if destination is not None:
                found.add(destination.get("Service") or name)
    elif kind == "service-splitter":
        found.update(split.get("Service") or name for split in entry.get("Splits") or ())
        found.discard(name)
    elif kind == "service-resolver":
        redirect = entry.get("Redirect")
        if redirect is not None:
            found.add(redirect.get("Service") or name)
        for failover in (entry.get("Failover") or {}).values():
            targets = failover.get("Targets") or ()
            if not targets:
                found.add(failover.get("Service") or name)
            # Services on a cluster peer are not known here.
            found.update(t.get("Service") or name for t in targets if not t.get("Peer"))
        found.discard(name)
    elif kind == "ingress-gateway":
        for listener in entry.get("Listeners") or ():
            for service in listener.get("Services") or ():
                if service.get("Name") != "*":
                    found.add(service.get("Name") or "")
    return sorted(found)


def _has_permissions(intentions: Mapping[str, Any]) -> bool:
    return any(source.get("Permissions") for source in intentions.get("Sources") or ())


def _gateway_clash(entries: Entries, kind: str, name: str) -> str | None:
    other = "terminating-gateway" if kind == "ingress-gateway" else "ingress-gateway"
    if (other, name) not in entries:
        return None
    return (
        f"cannot create a {go_quote(kind)} config entry with name {go_quote(name)}, "
        f"a {go_quote(other)} config entry with that name already exists"
    )


def _missing_jwt_providers(entries: Entries, intentions: Mapping[str, Any]) -> str | None:
    referenced: dict[str, None] = {}
    for provider in (intentions.get("JWT") or {}).get("Providers") or ():
        referenced.setdefault(provider.get("Name") or "")
    for source in intentions.get("Sources") or ():
        for permission in source.get("Permissions") or ():
            for provider in (permission.get("JWT") or {}).get("Providers") or ():
                referenced.setdefault(provider.get("Name") or "")
    return multierror(
        f"Referenced JWT Provider does not exist. Provider Name: {name}"
        for name in referenced
        if ("jwt-provider", name) not in entries
    )


def _permissive_refused(
    entries: Entries, key: tuple[str, str], before: Entries | None
) -> str | None:
    if before is None:
        return None
    entry = entries.get(key)
    if entry is None or entry.get("MutualTLSMode") != "permissive":
        return None
    if (before.get(key) or {}).get("MutualTLSMode") == "permissive":
        return None  # staying permissive is allowed even once the mesh forbids switching
    if (entries.get(("mesh", "mesh")) or {}).get("AllowEnablingPermissiveMutualTLS"):
        return None
    return _PERMISSIVE_REFUSED


def _kind_problem(entries: Entries, changed: tuple[str, str], before: Entries | None) -> str | None:
    kind, name = changed
    if kind in ("ingress-gateway", "terminating-gateway"):
        return _gateway_clash(entries, kind, name)
    if kind in ("service-defaults", "proxy-defaults"):
        return _permissive_refused(entries, changed, before)
    if kind == "service-intentions" and changed in entries:
        return _missing_jwt_providers(entries, entries[changed])
    return None


def _affected(
    entries: Entries, changed: tuple[str, str]
) -> tuple[set[str], list[Mapping[str, Any]], list[Mapping[str, Any]], bool] | None:
    """(chains, ingress gateways, intentions, strict ingress matching), or None: no checks."""
    kind, name = changed
    chains: set[str] = set()
    ingresses: list[Mapping[str, Any]] = []
    intentions: list[Mapping[str, Any]] = []
    strict = False
    if kind in ("mesh", "exported-services", "sameness-group"):
        return None
    if kind == "proxy-defaults":
        for chain_kind in _CHAIN_KINDS:
            chains.update(entry.get("Name") or "" for entry in _named(entries, chain_kind))
        ingresses = _named(entries, "ingress-gateway")
        intentions = _named(entries, "service-intentions")
    elif kind == "service-intentions":
        if changed not in entries:
            return None
        intentions = [entries[changed]]
    elif kind == "ingress-gateway":
        if changed not in entries:
            return None
        ingresses, strict = [entries[changed]], True
    else:
        own = entries.get(("service-intentions", name))
        intentions = [own] if own is not None else []
        intentions += _named(entries, "service-intentions")
        chains.add(name)
        for (other_kind, other_name), entry in sorted(entries.items()):
            if other_kind in _CHAIN_KINDS and name in related_services(other_kind, entry):
                chains.add(other_name)
            elif other_kind == "ingress-gateway" and name in related_services(other_kind, entry):
                ingresses.append(entry)
    for ingress in ingresses:
        chains.update(related_services("ingress-gateway", ingress))
    chains.update(entry.get("Name") or "" for entry in intentions)
    return chains, ingresses, intentions, strict


def _ingress_problem(
    ingresses: Iterable[Mapping[str, Any]],
    protocols: Mapping[str, str],
    top_types: Mapping[str, str],
    strict: bool,
) -> str | None:
    for ingress in ingresses:
        for listener in ingress.get("Listeners") or ():
            expected = listener.get("Protocol") or "tcp"
            for service in listener.get("Services") or ():
                service_name = service.get("Name") or ""
                if service_name == "*" or protocols[service_name] == expected:
                    continue
                # A tcp listener may front an L7 service whose chain is a plain resolver,
                # except when the ingress entry itself is being written.
                tolerated = not strict and expected == "tcp"
                if tolerated and top_types[service_name] == "resolver":
                    continue
                return (
                    f"service {go_quote(service_name)} has protocol "
                    f"{go_quote(protocols[service_name])}, which does not match defined "
                    f"listener protocol {go_quote(expected)}"
                )
    return None


def _intention_problem(
    intentions: Iterable[Mapping[str, Any]], protocols: Mapping[str, str]
) -> str | None:
    for entry in intentions:
        name = entry.get("Name") or ""
        if name == "*" or not _has_permissions(entry):
            continue
        if protocols[name] not in HTTP_LIKE:
            return (
                f"service {go_quote(name)} has protocol {go_quote(protocols[name])}, which is "
                "incompatible with L7 intentions permissions"
            )
    return None


def graph_problem(
    entries_after: Entries,
    changed: tuple[str, str],
    *,
    entries_before: Entries | None = None,
) -> str | None:
    """Consul's refusal of a config-entry write, or None when the graph stays valid.

    :param entries_after: every stored entry as it would be after the write; a delete is the
        changed key's absence.
    :param changed: (kind, name) of the entry written or deleted.
    :param entries_before: the entries before the write; only the MutualTLSMode check needs
        them (it allows staying permissive) and is skipped without them.
    """
    kind, name = changed
    if kind == "proxy-defaults" and name != "global":
        return None
    problem = _kind_problem(entries_after, changed, entries_before)
    if problem is not None:
        return problem
    affected = _affected(entries_after, changed)
    if affected is None:
        return None
    chains, ingresses, intentions, strict = affected
    protocols: dict[str, str] = {}
    top_types: dict[str, str] = {}
    for chain_name in sorted(chains):
        try:
            chain = compile_chain(chain_name, _CHECK_DATACENTER, _CHECK_TRUST_DOMAIN, entries_after)
        except EntryError as err:
            return err.message
        protocols[chain_name] = chain["Protocol"]
        top_types[chain_name] = chain["Nodes"][chain["StartNode"]]["Type"]
    return _ingress_problem(ingresses, protocols, top_types, strict) or _intention_problem(
        intentions, protocols
    )
