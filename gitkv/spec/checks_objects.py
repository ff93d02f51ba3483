"""Checks across config entries, intentions and ACL auth objects: what Consul would refuse
at apply time, found before anything is written, each at its position.

- a service-router or service-splitter whose service has a protocol (from the spec's
  service-defaults, else its proxy-defaults `global`, else tcp) that does not allow
  routing (Consul's "does not permit advanced routing or splitting behavior");
- a router sending to a service of another protocol ("uses inconsistent protocols");
- a split naming a subset the spec's service-resolver for that service does not define;
- an intention given both as shorthand and in a service-intentions entry;
- a binding rule naming an auth method the spec does not define, or given twice;
- the names fixed by Consul: proxy-defaults `global`, exported-services `default` (in CE),
  mesh `mesh`.

Only what the spec says is known: an entry that lives in the cluster but not in the spec
cannot be checked here (Consul still refuses, at apply time).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gitkv.errors import Diagnostic
from gitkv.kinds.intentions import parse_key
from gitkv.spec.source import Position, Source

__all__ = ["HTTP_LIKE", "object_problems"]

HTTP_LIKE = frozenset({"http", "http2", "grpc"})


def _items(value: Any, src: Source | None) -> Iterator[tuple[Any, Any, Source]]:
    if isinstance(value, dict) and src is not None:
        for k, v in value.items():
            child = src.child(k)
            if child is not None:
                yield k, v, child
    elif isinstance(value, list) and src is not None:
        for i, v in enumerate(value):
            child = src.child(i)
            if child is not None:
                yield i, v, child


def _dict(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def object_problems(dc: dict[Any, Any], src: Source, out: list[Diagnostic]) -> None:
    entries = _dict(dc.get("config_entries"))
    e_src = src.child("config_entries")
    if e_src is not None:
        _check_fixed_names(entries, e_src, out)
        _check_chains(entries, e_src, out)
    _check_intentions(dc, src, entries, out)
    _check_binding_rules(_dict(dc.get("acl")), src.child("acl"), out)


_FIXED_NAMES = {
    "proxy-defaults": ("global", 'invalid name ({name}), only "global" is supported'),
    "exported-services": ("default", 'exported-services Name must be "default"'),
    "mesh": ("mesh", 'the mesh entry is named "mesh" (Consul has only one)'),
}


def _check_fixed_names(entries: dict[Any, Any], src: Source, out: list[Diagnostic]) -> None:
    for kind, (only, message) in _FIXED_NAMES.items():
        for name, _, n_src in _items(entries.get(kind), src.child(kind)):
            if name != only:
                out.append(n_src.anchor.diag(f"{kind}: {message.format(name=_q(str(name)))}"))


def _protocol(entries: dict[Any, Any], service: str) -> str | None:
    """The protocol the spec gives `service`, or None when the spec does not say."""
    defaults = _dict(entries.get("service-defaults")).get(service)
    if isinstance(defaults, dict):
        proto = defaults.get("Protocol") or "tcp"
        return proto.lower() if isinstance(proto, str) else None
    proxy = _dict(_dict(entries.get("proxy-defaults")).get("global"))
    config = _dict(proxy.get("Config"))
    proto = config.get("protocol")
    if proxy and isinstance(proto, str) and proto:
        return proto.lower()
    return "tcp" if proxy else None


def _check_chains(entries: dict[Any, Any], src: Source, out: list[Diagnostic]) -> None:
    for kind in ("service-router", "service-splitter"):
        for name, entry, n_src in _items(entries.get(kind), src.child(kind)):
            if not isinstance(name, str) or not isinstance(entry, dict):
                continue
            proto = _protocol(entries, name)
            if proto is not None and proto not in HTTP_LIKE:
                out.append(
                    n_src.anchor.diag(
                        f"{kind} {name!r}: discovery chain {_q(name)} uses a protocol {_q(proto)} "
                        "that does not permit advanced routing or splitting behavior "
                        "(set Protocol: http in its service-defaults)"
                    )
                )
            if kind == "service-router":
                _check_routes(entries, name, proto, entry, n_src, out)
            else:
                _check_splits(entries, name, entry, n_src, out)


def _check_routes(
    entries: dict[Any, Any],
    name: str,
    proto: str | None,
    entry: dict[Any, Any],
    src: Source,
    out: list[Diagnostic],
) -> None:
    if proto is None:
        return
    for _, route, r_src in _items(entry.get("Routes"), src.child("Routes")):
        dest = _dict(_dict(route).get("Destination"))
        service = dest.get("Service")
        if not isinstance(service, str) or not service or service == name:
            continue
        other = _protocol(entries, service)
        if other is not None and other != proto:
            at = (r_src.child("Destination") or r_src).anchor
            out.append(
                at.diag(
                    f"discovery chain {_q(name)} uses inconsistent protocols; service "
                    f"{_q(service)} has {_q(other)} which is not {_q(proto)}"
                )
            )


def _check_splits(
    entries: dict[Any, Any], name: str, entry: dict[Any, Any], src: Source, out: list[Diagnostic]
) -> None:
    resolvers = _dict(entries.get("service-resolver"))
    for _, split, s_src in _items(entry.get("Splits"), src.child("Splits")):
        split = _dict(split)
        subset = split.get("ServiceSubset")
        service = split.get("Service") or name
        if not isinstance(subset, str) or not subset or not isinstance(service, str):
            continue
        resolver = resolvers.get(service)
        if isinstance(resolver, dict) and subset not in _dict(resolver.get("Subsets")):
            at: Position = (s_src.child("ServiceSubset") or s_src).value
            out.append(
                at.diag(
                    f"service {_q(service)} does not have a subset named {_q(subset)} "
                    "(its service-resolver in the spec defines "
                    f"{', '.join(sorted(map(str, _dict(resolver.get('Subsets'))))) or 'none'})"
                )
            )


def _check_intentions(
    dc: dict[Any, Any], src: Source, entries: dict[Any, Any], out: list[Diagnostic]
) -> None:
    full = _dict(entries.get("service-intentions"))
    for key, _, k_src in _items(dc.get("intentions"), src.child("intentions")):
        if not isinstance(key, str):
            continue
        try:
            source, dest = parse_key(key)
        except ValueError:
            continue  # the schema reports the malformed key
        if dest in full:
            out.append(
                k_src.anchor.diag(
                    f"intention {key!r}: destination {dest!r} also has a service-intentions "
                    "config entry; write its sources in one place"
                )
            )


def _check_binding_rules(acl: dict[Any, Any], src: Source | None, out: list[Diagnostic]) -> None:
    if src is None:
        return
    methods = _dict(acl.get("auth_methods"))
    seen: dict[tuple[str, ...], Position] = {}
    for _, rule, r_src in _items(acl.get("binding_rules"), src.child("binding_rules")):
        if not isinstance(rule, dict):
            continue
        method = rule.get("auth_method")
        if isinstance(method, str) and method not in methods:
            known = ", ".join(sorted(map(str, methods))) or "none"
            at = (r_src.child("auth_method") or r_src).value
            out.append(at.diag(f"unknown auth method {method!r} (defined: {known})"))
        key = tuple(
            str(rule.get(k) or "") for k in ("auth_method", "bind_type", "bind_name", "selector")
        )
        first = seen.setdefault(key, r_src.value)
        if first != r_src.value:
            out.append(r_src.value.diag(f"duplicate binding rule (same as the one at {first})"))
