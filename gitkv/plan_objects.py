"""The plan's side of whole Consul objects (`gitkv.objects.ApiObject`): which maps are
compared, cluster settings laid over their live value, intentions that name services nobody
knows, and plan-file decoding. Pure, like `gitkv.plan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitkv.kinds.acl_auth import ACL_AUTH_METHOD, ACL_BINDING_RULE
from gitkv.kinds.config_entries import CONFIG_ENTRY, entry_rank, split_id
from gitkv.kinds.operator import AUTOPILOT, CA, merged
from gitkv.kinds.queries import PREPARED_QUERY
from gitkv.objects import ApiObject
from gitkv.resources import Resources, SecretRef
from gitkv.state import LiveState

__all__ = [
    "OBJECT_KINDS",
    "SINGLETONS",
    "decode_object",
    "intention_warnings",
    "object_maps",
    "sub_rank",
]

OBJECT_KINDS = (CA, AUTOPILOT, ACL_AUTH_METHOD, ACL_BINDING_RULE, CONFIG_ENTRY, PREPARED_QUERY)
# Always present, never created or deleted: managed settings are laid over the live value.
SINGLETONS = frozenset({CA, AUTOPILOT})


def object_maps(desired: Resources, live: LiveState) -> dict[str, tuple[Mapping, Mapping]]:
    """`kind -> (want, have)` for every object kind, ready for the plan's diff."""
    out: dict[str, tuple[Mapping, Mapping]] = {}
    for kind in OBJECT_KINDS:
        want = desired.objects_of(kind)
        have = live.objects.get(kind) or {}
        if kind in SINGLETONS:
            # Never "unmanaged" nor deleted: only the settings the spec names are compared.
            have = {i: v for i, v in have.items() if i in want}
            want = {i: merged(have[i], w) if i in have else w for i, w in want.items()}
        out[kind] = (want, have)
    return out


def sub_rank(kind: str, ident: str) -> int:
    """Order within a kind: config entries by their kind's place in `ENTRY_KINDS`."""
    return entry_rank(ident) if kind == CONFIG_ENTRY else 0


def intention_warnings(desired: Resources, live: LiveState) -> list[str]:
    """Intentions naming a service that is neither in the catalog nor in the spec. Consul
    accepts them (the service may come later), so this is a warning, not an error."""
    if live.catalog_services is None:
        return []
    known = set(live.catalog_services) | {"*"}
    known |= {s.name for s in desired.services.values()}
    known |= {e.name for n in desired.external_nodes.values() for e in n.services}
    # A service the spec configures (service-defaults, a resolver, ...) is known too; the
    # intentions entries themselves do not count.
    known |= {
        name
        for kind, name in map(split_id, desired.objects_of(CONFIG_ENTRY))
        if kind != "service-intentions"
    }
    unknown: dict[str, list[str]] = {}
    for ident, obj in sorted(desired.objects_of(CONFIG_ENTRY).items()):
        kind, dest = split_id(ident)
        if kind != "service-intentions":
            continue
        for src in obj.body.get("Sources") or ():
            name = str(src.get("Name", "")) if isinstance(src, Mapping) else ""
            for missing in sorted({n for n in (name, dest) if n and n not in known}):
                unknown.setdefault(missing, []).append(f"{name} -> {dest}")
    return [
        f"warning: service {name!r} is neither in the catalog nor in the spec "
        f"(named by intention {', '.join(pairs)})"
        for name, pairs in sorted(unknown.items())
    ]


def decode_object(kind: str, d: Mapping[str, Any]) -> ApiObject:
    """An `ApiObject` from its plan-file form (`{kind, id, body, secrets}`)."""
    secrets = tuple((str(f), SecretRef(**s)) for f, s in d.get("secrets") or ())
    return ApiObject(str(d.get("kind", kind)), str(d["id"]), dict(d.get("body") or {}), secrets)
