"""Central service config: what proxy-defaults/global and a service's service-defaults add to
a proxy or gateway registration (Consul's `configentry.ComputeResolvedServiceConfig` and
`MergeServiceConfig`).

    resolved = resolve(entries, kind, proxy, destination)   # ServiceConfigResponse, Go names
    proxy = merge(proxy, resolved)                           # the registration, defaults filled

Both work on the rendered `Proxy` of a registration (`agent.render.proxy` for the catalog,
`agent.render.agent_proxy` with `agent=True` for the agent API), so one merge serves every
view. The registration always wins: opaque `Config` keys are only added where missing (nested
maps filled key by key, as mergo does), `Mode`, `MeshGateway.Mode` and the transparent-proxy
fields only where unset; the Envoy extensions are the resolved ones (Consul replaces them).
Entries are the store's dicts keyed by (kind, name); their GET shape (zero values printed)
reads the same, since an unset field and a zero one mean the same here.

Not reproduced: namespaces and partitions (everything is "default"), MutualTLSMode (the
registration record has no such field), and the rate-limit extension Consul derives from
service-defaults `RateLimits`. Pure: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["GATEWAY_KINDS", "PROXY_KIND", "merge", "merged_proxy", "resolve"]

PROXY_KIND = "connect-proxy"
GATEWAY_KINDS = frozenset({"mesh-gateway", "terminating-gateway", "ingress-gateway", "api-gateway"})
_WILDCARD = "*"
_DEFAULT = "default"
Entries = Mapping[tuple[str, str], Mapping[str, Any]]
UpstreamKey = tuple[str, str]  # (service name, peer)

# Field order of the two renderings of a ConnectProxyConfig (see agent.render).
_CATALOG_ORDER = (
    "TransparentProxy",
    "AccessLogs",
    "EnvoyExtensions",
    "DestinationServiceName",
    "DestinationServiceID",
    "LocalServiceAddress",
    "LocalServicePort",
    "LocalServiceSocketPath",
    "Mode",
    "Config",
    "Upstreams",
    "MeshGateway",
    "Expose",
)
_AGENT_ORDER = (
    "DestinationServiceName",
    "DestinationServiceID",
    "LocalServiceAddress",
    "LocalServicePort",
    "LocalServiceSocketPath",
    "Mode",
    "TransparentProxy",
    "Config",
    "Upstreams",
    "MeshGateway",
    "Expose",
    "AccessLogs",
)


def merged_proxy(
    entries: Entries, kind: str, service: str, proxy: Mapping, *, agent: bool = False
) -> Mapping:
    """The rendered `proxy` of a `kind` instance named `service` with central config merged
    in; a typical service's comes back as it is. A sidecar takes the service-defaults of the
    service it fronts."""
    if kind != PROXY_KIND and kind not in GATEWAY_KINDS:
        return proxy
    destination = proxy.get("DestinationServiceName", "") if kind == PROXY_KIND else service
    return merge(proxy, resolve(entries, kind, proxy, destination), agent=agent)


# ------------------------------------------------------------------------ resolve


def resolve(entries: Entries, service_kind: str, proxy: Mapping, destination: str) -> dict:
    """Consul's ComputeResolvedServiceConfig for a registration's rendered `proxy`, with the
    service-defaults of `destination`: a ServiceConfigResponse with Go's field names, its
    `UpstreamConfigs` a list of {"Upstream": {"Name", "Peer"}, "Config"}."""
    registration_gateway = _mesh_gateway(proxy.get("MeshGateway"))
    reply: dict[str, Any] = {"MeshGateway": {}}
    wildcard: dict[str, Any] = {}
    global_protocol = ""
    proxy_defaults = entries.get(("proxy-defaults", "global"))
    if proxy_defaults is not None:
        config = copy.deepcopy(dict(proxy_defaults.get("Config") or {}))
        reply["ProxyConfig"] = config
        for field in ("Mode", "TransparentProxy", "MeshGateway", "Expose", "AccessLogs"):
            if proxy_defaults.get(field):
                reply[field] = copy.deepcopy(proxy_defaults[field])
        reply["EnvoyExtensions"] = list(proxy_defaults.get("EnvoyExtensions") or ())
        # A mesh_gateway key in the opaque map counts for unlisted upstreams, unless the
        # entry's own MeshGateway says otherwise.
        if "mesh_gateway" in config:
            wildcard["mesh_gateway"] = config["mesh_gateway"]
        if _mesh_gateway(proxy_defaults.get("MeshGateway")):
            wildcard["mesh_gateway"] = {"Mode": _mesh_gateway(proxy_defaults["MeshGateway"])}
        # Only the named upstreams inherit this protocol: for tproxy's inferred ones the
        # discovery chain decides (Consul keeps it out of the wildcard on purpose).
        protocol = _fold(config).get("protocol")
        global_protocol = protocol if isinstance(protocol, str) else ""
    service_defaults = entries.get(("service-defaults", destination))
    if service_defaults is not None:
        _apply_service_defaults(reply, wildcard, service_defaults)
    upstreams = _upstream_configs(
        entries,
        service_defaults,
        _registered_upstreams(proxy) if service_kind == PROXY_KIND else [],
        proxy,
        reply,
        wildcard,
        global_protocol,
        registration_gateway,
    )
    if upstreams:
        reply["UpstreamConfigs"] = [
            {"Upstream": {"Name": name, "Peer": peer}, "Config": config}
            for (name, peer), config in sorted(upstreams.items())
        ]
    return reply


def _apply_service_defaults(reply: dict, wildcard: dict, entry: Mapping[str, Any]) -> None:
    expose = dict(reply.get("Expose") or {})
    exposed = entry.get("Expose") or {}
    if exposed.get("Checks"):
        expose["Checks"] = True
    if exposed.get("Paths"):
        expose["Paths"] = copy.deepcopy(exposed["Paths"])
    if expose:
        reply["Expose"] = expose
    if mode := _mesh_gateway(entry.get("MeshGateway")):
        reply["MeshGateway"] = {"Mode": mode}
        wildcard["mesh_gateway"] = {"Mode": mode}
    tproxy = dict(reply.get("TransparentProxy") or {})
    own = entry.get("TransparentProxy") or {}
    if own.get("OutboundListenerPort"):
        tproxy["OutboundListenerPort"] = own["OutboundListenerPort"]
    if own.get("DialedDirectly"):
        tproxy["DialedDirectly"] = True
    if tproxy:
        reply["TransparentProxy"] = tproxy
    if entry.get("Mode"):
        reply["Mode"] = entry["Mode"]
    if entry.get("Destination") is not None:
        reply["Destination"] = copy.deepcopy(entry["Destination"])
    config = reply.get("ProxyConfig") or {}
    for field, key in (
        ("Protocol", "protocol"),
        ("BalanceInboundConnections", "balance_inbound_connections"),
        ("MaxInboundConnections", "max_inbound_connections"),
        ("LocalConnectTimeoutMs", "local_connect_timeout_ms"),
        ("LocalRequestTimeoutMs", "local_request_timeout_ms"),
    ):
        value = entry.get(field)
        if value and (not isinstance(value, int) or value > 0):
            config[key] = value
    if config:
        reply["ProxyConfig"] = config
    reply["Meta"] = dict(entry.get("Meta") or {})
    # proxy-defaults' extensions run first
    reply["EnvoyExtensions"] = list(reply.get("EnvoyExtensions") or ()) + list(
        entry.get("EnvoyExtensions") or ()
    )


def _upstream_configs(
    entries: Entries,
    service_defaults: Mapping[str, Any] | None,
    named: list[UpstreamKey],
    proxy: Mapping,
    reply: dict,
    wildcard: dict,
    global_protocol: str,
    registration_gateway: str,
) -> dict[UpstreamKey, dict]:
    """The opaque config of each upstream, keyed by (name, peer); `*` carries the defaults
    for upstreams transparent proxying infers."""
    tproxy = "transparent" in (proxy.get("Mode"), reply.get("Mode"))
    if not named and not tproxy:
        return {}
    seen: dict[UpstreamKey, None] = dict.fromkeys(named)
    upstream_config = (service_defaults or {}).get("UpstreamConfig") or {}
    overrides: dict[UpstreamKey, Mapping] = {}
    for override in upstream_config.get("Overrides") or ():
        if not override or not override.get("Name"):
            continue  # Consul skips them too (validation refuses them anyway)
        key = (override["Name"], override.get("Peer") or "")
        seen[key] = None
        overrides[key] = override
    resolved: dict[UpstreamKey, dict] = {}
    defaults = upstream_config.get("Defaults")
    if defaults is not None:
        defaults = dict(defaults)
        if not _mesh_gateway(defaults.get("MeshGateway")):
            defaults["MeshGateway"] = dict(reply.get("MeshGateway") or {})
        _merge_upstream_into(defaults, wildcard)
        resolved[(_WILDCARD, "")] = wildcard
    if registration_gateway:
        wildcard["mesh_gateway"] = {"Mode": registration_gateway}
    if wildcard:
        resolved[(_WILDCARD, "")] = wildcard
    # Before 1.15 overrides had no peer: while none names one, they match by name alone.
    by_name = not any(peer for _, peer in overrides)
    for key in seen:
        cfg: dict[str, Any] = {}
        if global_protocol:
            cfg["protocol"] = global_protocol
        cfg.update((k, v) for k, v in wildcard.items() if _present(v))
        target = _service_defaults(entries, key[0])
        if target is not None and target.get("Protocol"):
            cfg["protocol"] = target["Protocol"]
        if mode := _mesh_gateway(reply.get("MeshGateway")):
            cfg["mesh_gateway"] = {"Mode": mode}
        if defaults is not None:
            _merge_upstream_into(defaults, cfg)
        if registration_gateway:
            cfg["mesh_gateway"] = {"Mode": registration_gateway}
        if by_name and key[1] and (key[0], "") in overrides:
            _merge_upstream_into(overrides[(key[0], "")], cfg)
        if key in overrides:
            _merge_upstream_into(overrides[key], cfg)
        if cfg:
            resolved[key] = cfg
    return resolved


def _service_defaults(entries: Entries, name: str) -> Mapping[str, Any] | None:
    return entries.get(("service-defaults", name)) if name else None


def _registered_upstreams(proxy: Mapping) -> list[UpstreamKey]:
    return [
        (u.get("DestinationName", ""), u.get("DestinationPeer", ""))
        for u in proxy.get("Upstreams") or ()
        if u.get("DestinationType", "") in ("", "service")
    ]


def _merge_upstream_into(upstream: Mapping[str, Any], out: dict) -> None:
    """Consul's UpstreamConfig.MergeInto: the set fields, by their opaque-config keys."""
    for field, key in (
        ("EnvoyListenerJSON", "envoy_listener_json"),
        ("EnvoyClusterJSON", "envoy_cluster_json"),
        ("Protocol", "protocol"),
        ("ConnectTimeoutMs", "connect_timeout_ms"),
    ):
        if upstream.get(field):
            out[key] = upstream[field]
    for field, key in (("Limits", "limits"), ("PassiveHealthCheck", "passive_health_check")):
        if upstream.get(field) is not None:
            out[key] = copy.deepcopy(upstream[field])
    if mode := _mesh_gateway(upstream.get("MeshGateway")):
        out["mesh_gateway"] = {"Mode": mode}
    if upstream.get("BalanceOutboundConnections"):
        out["balance_outbound_connections"] = upstream["BalanceOutboundConnections"]


# -------------------------------------------------------------------------- merge


def merge(proxy: Mapping, resolved: Mapping, *, agent: bool = False) -> dict:
    """Consul's MergeServiceConfig on a rendered Proxy: the registration's values kept, the
    resolved ones filling what it leaves unset. `agent` selects the agent API's rendering
    (`Mode` omitted when empty, no Envoy extensions, upstreams without CentrallyConfigured)."""
    out = copy.deepcopy(dict(proxy))
    config = out.get("Config") or {}
    _fill(config, resolved.get("ProxyConfig") or {})
    _set(out, "Config", config)
    expose = out.get("Expose") or {}
    _fill_fields(expose, resolved.get("Expose") or {})
    out["Expose"] = expose
    access_logs = out.get("AccessLogs") or {}
    _fill_fields(access_logs, resolved.get("AccessLogs") or {})
    _set(out, "AccessLogs", access_logs)
    if not agent:
        extensions = [_extension(e) for e in resolved.get("EnvoyExtensions") or ()]
        _set(out, "EnvoyExtensions", extensions)
    gateway = out.get("MeshGateway") or {}
    if not gateway.get("Mode") and _mesh_gateway(resolved.get("MeshGateway")):
        gateway["Mode"] = _mesh_gateway(resolved.get("MeshGateway"))
    out["MeshGateway"] = gateway
    if not out.get("Mode"):
        out["Mode"] = resolved.get("Mode") or ""
    if agent and not out["Mode"]:
        del out["Mode"]
    tproxy = out.get("TransparentProxy") or {}
    _fill_fields(tproxy, resolved.get("TransparentProxy") or {})
    _set(out, "TransparentProxy", tproxy)
    _merge_upstreams(out, resolved, agent=agent)
    order = _AGENT_ORDER if agent else _CATALOG_ORDER
    return {k: out[k] for k in order if k in out} | {k: v for k, v in out.items() if k not in order}


def _merge_upstreams(out: dict, resolved: Mapping, *, agent: bool) -> None:
    remote = {
        (u["Upstream"].get("Name", ""), u["Upstream"].get("Peer", "")): u["Config"]
        for u in resolved.get("UpstreamConfigs") or ()
    }
    local: set[UpstreamKey] = set()
    upstreams = list(out.get("Upstreams") or ())
    for u in upstreams:
        if u.get("DestinationType", "") not in ("", "service"):
            continue
        key = (u.get("DestinationName", ""), u.get("DestinationPeer", ""))
        local.add(key)
        if key not in remote:
            continue
        gateway = u.get("MeshGateway") or {}
        if not gateway.get("Mode") and (mode := _mesh_gateway(remote[key].get("mesh_gateway"))):
            gateway["Mode"] = mode
        u["MeshGateway"] = gateway
        config = u.get("Config") or {}
        had_protocol, protocol = "protocol" in config, config.get("protocol")
        _fill(config, remote[key])
        if u.get("DestinationPeer"):  # a peer's protocol is its own cluster's business
            config.pop("protocol", None)
            if had_protocol:
                config["protocol"] = protocol
        # the resolved value, not this upstream's final one (its MeshGateway has that)
        config.pop("mesh_gateway", None)
        u.pop("Config", None)
        if config:
            _reinsert_config(u, config)
    if out.get("Mode") == "transparent":
        for key in sorted(remote):
            if key not in local:
                upstreams.append(_synthetic(key, remote[key], agent=agent))
    _set(out, "Upstreams", upstreams)


def _reinsert_config(upstream: dict, config: dict) -> None:
    """Config sits just before MeshGateway in both renderings of an upstream."""
    rest = {
        k: upstream.pop(k) for k in list(upstream) if k in ("MeshGateway", "CentrallyConfigured")
    }
    upstream["Config"] = config
    upstream.update(rest)


def _synthetic(key: UpstreamKey, config: dict, *, agent: bool) -> dict:
    """An upstream only central config names (transparent proxying dials it unlisted)."""
    name, peer = key
    out: dict[str, Any] = {} if agent else {"DestinationType": ""}
    if agent:
        out |= {"DestinationPartition": _DEFAULT, "DestinationNamespace": _DEFAULT}
    else:
        out |= {"DestinationNamespace": _DEFAULT, "DestinationPartition": _DEFAULT}
    if peer:
        out["DestinationPeer"] = peer
    out["DestinationName"] = name
    if not agent:
        out["Datacenter"] = ""
    _set(out, "Config", copy.deepcopy(config))
    mode = _mesh_gateway(config.get("mesh_gateway"))
    out["MeshGateway"] = {"Mode": mode} if mode else {}
    if not agent:
        out["CentrallyConfigured"] = True
    return out


# ------------------------------------------------------------------------ helpers


def _fill(dst: dict, src: Mapping) -> None:
    """mergo.Merge on maps: missing (or null) keys taken, nested maps filled in turn."""
    for key, value in src.items():
        if isinstance(dst.get(key), dict) and isinstance(value, Mapping):
            _fill(dst[key], value)
        elif dst.get(key) is None:
            dst[key] = copy.deepcopy(value)


def _fill_fields(dst: dict, src: Mapping) -> None:
    """mergo.Merge on a struct: each zero field takes the other's value."""
    for key, value in src.items():
        if not dst.get(key) and value:
            dst[key] = copy.deepcopy(value)


def _set(out: dict, key: str, value: Any) -> None:
    if value:
        out[key] = value
    else:
        out.pop(key, None)


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != {}


def _fold(config: Mapping) -> dict:
    """Opaque config keys as ParseUpstreamConfig reads them (case-insensitive)."""
    return {str(k).lower(): v for k, v in config.items()}


def _mesh_gateway(value: Any) -> str:
    """The mode of a MeshGatewayConfig, whichever casing the opaque map used."""
    if not isinstance(value, Mapping):
        return ""
    mode = _fold(value).get("mode")
    return mode if isinstance(mode, str) else ""


def _extension(extension: Mapping[str, Any]) -> dict:
    # Consul copies Name, Required and Arguments only
    return {
        "Name": extension.get("Name", ""),
        "Required": bool(extension.get("Required")),
        "Arguments": copy.deepcopy(extension.get("Arguments")),
        "ConsulVersion": "",
        "EnvoyVersion": "",
    }
