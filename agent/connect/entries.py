"""Config entries, pure: a `PUT /v1/config` body decoded as Consul decodes it, each kind's
Normalize and Validate, the entry printed as `GET /v1/config` prints it, and the ACL rule of
each kind.

    entry = normalize(decode_entry(body))   # EntryError 400 / 500
    validate(entry)                          # EntryError 500
    require(write_rules(entry))              # the caller's ACL check
    ...store entry (+ CreateIndex/ModifyIndex)...
    render_entry(stored)                     # the GET body

Every kind is a Go struct described as data (`entry_types.KindSpec`: a field table plus its
Normalize and Validate); one decoder (`entry_decode`, mapstructure's rules and Consul's
hooks) and one renderer (`entry_render`, encoding/json's rules) serve them all. The kinds
live by family in `entry_kinds_service`, `entry_kinds_chain`, `entry_kinds_gateway`,
`entry_kinds_api_gateway`, `entry_kinds_mesh` and `entry_kinds_intentions`.

A stored entry is a dict with Go's field names, `Kind` and `Name` first (mesh: "mesh", though
its GET shape has no Name), zero values left out except under pointers, durations as integer
nanoseconds, split weights as their shortest decimal. Errors are `EntryError`s carrying
Consul's status: 400 for decoding ("Request decoding failed: ..."), 500 for Normalize and
Validate (RPC errors), 403 for the controller-owned bound-api-gateway.

Not reproduced: Consul 1.17+'s `Hash` field (a hashstructure digest of the entry; accepted in
a request, never stored or printed), the argument checks of each built-in Envoy extension,
and file-system-certificate / control-plane-request-limit (refused as unknown kinds).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.connect.chain_graph import related_services
from agent.connect.entry_decode import DecodeFailed, decode_struct, go_kind
from agent.connect.entry_kinds_api_gateway import (
    API_GATEWAY,
    BOUND_API_GATEWAY,
    HTTP_ROUTE,
    TCP_ROUTE,
)
from agent.connect.entry_kinds_chain import SERVICE_RESOLVER, SERVICE_ROUTER, SERVICE_SPLITTER
from agent.connect.entry_kinds_gateway import (
    INGRESS_GATEWAY,
    INLINE_CERTIFICATE,
    TERMINATING_GATEWAY,
    terminating_warnings,
)
from agent.connect.entry_kinds_intentions import SERVICE_INTENTIONS
from agent.connect.entry_kinds_mesh import EXPORTED_SERVICES, JWT_PROVIDER, MESH, SAMENESS_GROUP
from agent.connect.entry_kinds_service import (
    PROXY_DEFAULTS,
    SERVICE_DEFAULTS,
    proxy_defaults_name_problem,
)
from agent.connect.entry_render import render_struct
from agent.connect.entry_types import KindSpec
from agent.connect.errors import EntryError

__all__ = [
    "KINDS",
    "AnyOf",
    "Need",
    "decode_entry",
    "normalize",
    "read_rule",
    "render_entry",
    "validate",
    "validate_delete_name",
    "warnings",
    "write_rules",
]

_SPECS: dict[str, KindSpec] = {
    spec.kind: spec
    for spec in (
        SERVICE_DEFAULTS,
        PROXY_DEFAULTS,
        SERVICE_ROUTER,
        SERVICE_SPLITTER,
        SERVICE_RESOLVER,
        INGRESS_GATEWAY,
        TERMINATING_GATEWAY,
        SERVICE_INTENTIONS,
        MESH,
        EXPORTED_SERVICES,
        SAMENESS_GROUP,
        API_GATEWAY,
        BOUND_API_GATEWAY,
        HTTP_ROUTE,
        TCP_ROUTE,
        INLINE_CERTIFICATE,
        JWT_PROVIDER,
    )
}
# Consul's AllConfigEntryKinds order, less the two kinds not implemented here.
KINDS: tuple[str, ...] = tuple(_SPECS)
_DECODE = "Request decoding failed: "
_NO_KIND = "Payload does not contain a kind/Kind key at the top level"
# Decoded from a request (mapstructure fills them) but never kept: the store owns the
# indexes, and the hash is not computed here.
_NOT_KEPT = ("RaftIndex", "Hash")


@dataclass(frozen=True)
class Need:
    """One ACL permission: `level` ("read"/"write") on `resource` ("service", "intention",
    "mesh", "operator"); `segment` None for the single-valued ones (mesh: which falls back to
    operator), "" for "any service"."""

    resource: str
    segment: str | None
    level: str


@dataclass(frozen=True)
class AnyOf:
    """Permission groups of which one must hold entirely."""

    options: tuple[tuple[Need, ...], ...]


def _spec(kind: str) -> KindSpec:
    spec = _SPECS.get(kind)
    if spec is None:
        raise EntryError(f"invalid config entry kind: {kind}", 500)
    return spec


def _ordered(entry: Mapping[str, Any]) -> dict[str, Any]:
    head = {key: entry[key] for key in ("Kind", "Name") if key in entry}
    return head | {key: value for key, value in entry.items() if key not in head}


def _named(spec: KindSpec, entry: dict[str, Any]) -> dict[str, Any]:
    entry["Kind"] = spec.kind
    entry["Name"] = entry.get("Name") or "" if spec.has_name else "mesh"
    return _ordered(entry)


# ---------------------------------------------------------------------- decoding


def decode_entry(raw: Any) -> dict[str, Any]:
    """The entry a `PUT /v1/config` body holds, as Consul's DecodeConfigEntry reads it.

    `raw` is the parsed JSON body (the caller answers an empty body with "... EOF" and bad
    JSON with the parser's text). Raises EntryError 400 with Consul's message.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise EntryError(f"{_DECODE}'' expected a map, got '{go_kind(raw)}'", 400)
    if "Kind" in raw:
        kind = raw["Kind"]
    elif "kind" in raw:
        kind = raw["kind"]
    else:
        raise EntryError(_DECODE + _NO_KIND, 400)
    if not isinstance(kind, str):
        raise EntryError(f"{_DECODE}Kind value in payload is not a string", 400)
    spec = _SPECS.get(kind)
    if spec is None:
        raise EntryError(f"{_DECODE}invalid config entry kind: {kind}", 400)
    try:
        entry = decode_struct(raw, spec.table)
    except DecodeFailed as failed:
        raise EntryError(_DECODE + str(failed), 400) from None
    for key in _NOT_KEPT:
        entry.pop(key, None)
    return _named(spec, entry)


# ---------------------------------------------------------------------- normalize, validate


def normalize(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Consul's Normalize() of the entry's kind: a new dict (the input is not changed).

    EntryError 500 for what Normalize refuses (a proxy-defaults name other than "global", a
    proxy Config whose protocol is not a string)."""
    spec = _spec(entry["Kind"])
    out = copy.deepcopy(dict(entry))
    out.setdefault("Name", "")
    spec.normalize(out)
    return _named(spec, out)


def validate(entry: Mapping[str, Any]) -> None:
    """Consul's Validate() of the (normalized) entry's kind: EntryError 500 with its message."""
    _spec(entry["Kind"]).validate(dict(entry))


def warnings(entry: Mapping[str, Any]) -> list[str]:
    """What Consul logs when the entry is written (it is written regardless)."""
    if entry.get("Kind") == "terminating-gateway":
        return terminating_warnings(dict(entry))
    return []


def validate_delete_name(kind: str, name: str) -> str:
    """The name a `DELETE /v1/config/<kind>/<name>` acts on, after the kind's Normalize:
    proxy-defaults only takes "global" (EntryError 500 otherwise), mesh ignores the URL's
    name. An unknown kind is EntryError 400, as Consul answers a DELETE."""
    if kind not in _SPECS:
        raise EntryError(f"invalid config entry kind: {kind}", 400)
    if kind == "proxy-defaults":
        if problem := proxy_defaults_name_problem(name):
            raise EntryError(problem, 500)
        return "global"
    if kind == "mesh":
        return "mesh"
    return name


# ---------------------------------------------------------------------- rendering


def render_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The stored entry as `GET /v1/config/<kind>/<name>` prints it: the Go struct's fields
    in order (value structs always, `null` for nil fields without omitempty), Kind first for
    the kinds whose MarshalJSON adds it, then CreateIndex and ModifyIndex."""
    spec = _spec(entry["Kind"])
    out: dict[str, Any] = {}
    if not spec.has_kind:
        out["Kind"] = spec.kind
    body = dict(entry)
    body["Kind"] = spec.kind
    out.update(render_struct(spec.table, body))
    out["CreateIndex"] = entry.get("CreateIndex", 0)
    out["ModifyIndex"] = entry.get("ModifyIndex", 0)
    return out


# ---------------------------------------------------------------------- ACL

_READ_NONE = frozenset({"proxy-defaults", "mesh", "sameness-group"})
_READ_MESH = frozenset({"exported-services", "http-route", "tcp-route", "inline-certificate"})
_CHAIN = frozenset({"service-router", "service-splitter", "service-resolver"})


def read_rule(kind: str, name: str) -> tuple[Need, ...] | AnyOf:
    """What reading an entry of `kind` named `name` needs (Consul's CanRead); () for nothing.
    jwt-provider: write on any service (a sidecar's token) or mesh read."""
    if kind in _READ_NONE:
        return ()
    if kind in _READ_MESH:
        return (Need("mesh", None, "read"),)
    if kind == "service-intentions":
        return (Need("intention", name, "read"),)
    if kind == "jwt-provider":
        return AnyOf(((Need("service", "", "write"),), (Need("mesh", None, "read"),)))
    return (Need("service", name, "read"),)


def write_rules(entry: Mapping[str, Any]) -> tuple[Need, ...]:
    """What writing (or deleting) `entry` needs (Consul's CanWrite), all of it. A chain entry
    needs write on its service and read on every other service it sends traffic to; writing
    a bound-api-gateway is refused outright (EntryError 403)."""
    kind, name = entry["Kind"], str(entry.get("Name") or "")
    if kind == "bound-api-gateway":
        raise EntryError("Permission denied: only writeable by controller", 403)
    if kind == "service-intentions":
        return (Need("intention", name, "write"),)
    if kind == "service-defaults":
        return (Need("service", name, "write"),)
    if kind not in _CHAIN:
        return (Need("mesh", None, "write"),)
    others = [s for s in related_services(kind, entry) if s != name]
    return (Need("service", name, "write"), *(Need("service", s, "read") for s in others))
