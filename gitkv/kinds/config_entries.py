"""Config entries (`/v1/config`): canonical values, API bodies, and their apply order.

A config entry is keyed `<Kind>/<Name>` (`service-defaults/web`; the mesh entry is
`mesh/mesh`). Its canonical body is Consul's JSON without `Kind`, `Name`, the Raft indexes,
the CE namespace/partition (`default`), controller-owned `Status`, and without the values
Consul's Normalize fills in where they hold the default (below), so that an entry written
from the spec and read back compares equal to the spec.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from gitkv.objects import ApiObject, canonical
from gitkv.resources import SecretRef

__all__ = [
    "CONFIG_ENTRY",
    "ENTRY_KINDS",
    "SECRET_FIELDS",
    "entry_body",
    "entry_from_api",
    "entry_id",
    "entry_object",
    "entry_rank",
    "entry_spec",
    "split_id",
]

CONFIG_ENTRY = "config_entry"

# Every kind a spec may hold, in the order apply writes them: defaults before the discovery
# chain that reads their protocol, resolvers (subsets) before splitters before routers,
# certificates before gateways before routes, JWT providers before the intentions naming
# them. Deletes run in the reverse order. bound-api-gateway is owned by Consul's controller.
ENTRY_KINDS = (
    "proxy-defaults",
    "mesh",
    "service-defaults",
    "jwt-provider",
    "sameness-group",
    "service-resolver",
    "service-splitter",
    "service-router",
    "inline-certificate",
    "api-gateway",
    "http-route",
    "tcp-route",
    "ingress-gateway",
    "terminating-gateway",
    "service-intentions",
    "exported-services",
)
_RANK = {k: i for i, k in enumerate(ENTRY_KINDS)}

ANY = object()
"""A field Consul always computes (e.g. an intention's Precedence): never compared."""

# (path, default): the field at `path` is dropped when it holds `default` (or always, for
# ANY). `[]` steps into every item of a list.
_DEFAULTS: dict[str, tuple[tuple[tuple[str, ...], Any], ...]] = {
    "service-intentions": (
        (("Sources", "[]", "Precedence"), ANY),
        (("Sources", "[]", "Type"), "consul"),
        (("Sources", "[]", "LegacyID"), ANY),
        (("Sources", "[]", "LegacyMeta"), ANY),
        (("Sources", "[]", "LegacyCreateTime"), ANY),
        (("Sources", "[]", "LegacyUpdateTime"), ANY),
    ),
    "ingress-gateway": ((("Listeners", "[]", "Protocol"), "tcp"),),
    "jwt-provider": ((("ClockSkewSeconds",), 30),),
    "http-route": (
        (("Parents", "[]", "Kind"), "api-gateway"),
        (("Rules", "[]", "Matches", "[]", "Path"), {"Match": "prefix", "Value": "/"}),
        (("Rules", "[]", "Services", "[]", "Weight"), 1),
    ),
    "tcp-route": ((("Parents", "[]", "Kind"), "api-gateway"),),
    "api-gateway": (
        (("Listeners", "[]", "TLS", "Certificates", "[]", "Kind"), "inline-certificate"),
    ),
}

# Fields Consul stores in one letter case whatever was sent (Normalize): same here.
_CASE: dict[str, tuple[tuple[tuple[str, ...], Callable[[str], str]], ...]] = {
    "service-defaults": (
        (("Protocol",), str.lower),
        (("UpstreamConfig", "Defaults", "Protocol"), str.lower),
        (("UpstreamConfig", "Overrides", "[]", "Protocol"), str.lower),
    ),
    "service-router": ((("Routes", "[]", "Match", "HTTP", "Methods", "[]"), str.upper),),
    "service-intentions": (
        (("Sources", "[]", "Permissions", "[]", "HTTP", "Methods", "[]"), str.upper),
    ),
    "ingress-gateway": ((("Listeners", "[]", "Protocol"), str.lower),),
    "http-route": ((("Rules", "[]", "Matches", "[]", "Method"), str.upper),),
}

_NOT_COMPARED = ("Kind", "Name", "CreateIndex", "ModifyIndex", "Hash", "Status")
# Fields that hold secrets: given as {env}/{file} references, sent on write, never compared.
SECRET_FIELDS = {"inline-certificate": ("PrivateKey",)}


def entry_id(kind: str, name: str) -> str:
    return f"{kind}/{name}"


def split_id(ident: str) -> tuple[str, str]:
    kind, _, name = ident.partition("/")
    return kind, name


def entry_rank(ident: str) -> int:
    """Where an entry comes in apply order (unknown kinds last)."""
    return _RANK.get(split_id(ident)[0], len(ENTRY_KINDS))


def _visit(node: Any, path: tuple[str, ...], leaf: Callable[[Any, Any], None]) -> None:
    """Call `leaf(container, key)` for every place `path` names in `node`."""
    head, rest = path[0], path[1:]
    if head == "[]":
        if isinstance(node, list):
            for i, item in enumerate(node):
                if rest:
                    _visit(item, rest, leaf)
                else:
                    leaf(node, i)
        return
    if isinstance(node, dict) and head in node:
        if rest:
            _visit(node[head], rest, leaf)
        else:
            leaf(node, head)


def _normalized(kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(dict(body))
    for key in (*_NOT_COMPARED, *SECRET_FIELDS.get(kind, ())):
        doc.pop(key, None)
    for key in ("Namespace", "Partition"):
        if doc.get(key) in ("", "default"):
            doc.pop(key, None)
    for path, fold in _CASE.get(kind, ()):

        def change(container: Any, key: Any, fold: Callable[[str], str] = fold) -> None:
            if isinstance(container[key], str):
                container[key] = fold(container[key])

        _visit(doc, path, change)
    for path, default in _DEFAULTS.get(kind, ()):

        def drop(container: Any, key: Any, default: Any = default) -> None:
            if isinstance(container, dict) and (default is ANY or container[key] == default):
                del container[key]

        _visit(doc, path, drop)
    if kind == "service-intentions" and isinstance(doc.get("Sources"), list):
        # Precedence, not list order, decides between sources: compare them sorted.
        doc["Sources"] = sorted(doc["Sources"], key=_source_key)
    return canonical(doc)


def _source_key(source: Any) -> tuple[str, ...]:
    if not isinstance(source, dict):
        return ("",)
    return tuple(str(source.get(k) or "") for k in ("Name", "Peer", "Partition", "Namespace"))


def entry_object(
    kind: str, name: str, body: Mapping[str, Any], secrets: Mapping[str, SecretRef] | None = None
) -> ApiObject:
    """The canonical value of the entry `kind`/`name` with the spec's `body` (Consul's
    field names, without Kind and Name; secret fields given as `secrets`)."""
    return ApiObject(
        CONFIG_ENTRY,
        entry_id(kind, name),
        _normalized(kind, body),
        tuple(sorted((secrets or {}).items())),
    )


def entry_from_api(raw: Mapping[str, Any]) -> tuple[ApiObject, int]:
    """A `GET /v1/config/<kind>[/<name>]` entry as its canonical value and ModifyIndex.

    This is also what `gitkv import` writes into a spec: the canonical body is a valid spec
    value for the entry."""
    kind = str(raw.get("Kind", ""))
    name = str(raw.get("Name") or ("mesh" if kind == "mesh" else ""))
    return entry_object(kind, name, raw), int(raw.get("ModifyIndex") or 0)


def entry_spec(obj: ApiObject) -> tuple[str, str, dict[str, Any]]:
    """`(kind, name, spec value)` of a canonical entry (`config_entries.<kind>.<name>`); its
    secret fields (an inline-certificate's PrivateKey) are not in it."""
    kind, name = split_id(obj.id)
    return kind, name, copy.deepcopy(dict(obj.body))


def entry_body(obj: ApiObject, secrets: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `PUT /v1/config` body of a canonical entry, with its resolved `secrets`. The mesh
    entry has no `Name` field (Consul's decoder refuses one: "invalid config key")."""
    kind, name = split_id(obj.id)
    head = {"Kind": kind} if kind == "mesh" else {"Kind": kind, "Name": name}
    return {**head, **copy.deepcopy(dict(obj.body)), **(secrets or {})}
