"""Config entries, pure: decoding a request body the way Consul's `PUT /v1/config` does,
normalizing and validating an entry, printing it as `GET /v1/config` does, and the ACL rule
of each kind.

Decoding follows Consul's pipeline (`agent/config_endpoint.go`, `lib/decode`): the `Kind` (or
`kind`) key picks the kind's field table (`entry_tables.py`); names match without regard to
case and by their snake_case alias; mapstructure's weak typing turns "5" into 5 and numbers
into strings; every key the kind does not have is an error, all of them reported at once as
go-multierror prints them, with status 400. Validation errors (`entry_checks.py`) are plain
500s, as Consul answers its RPC's refusals.

A stored entry is a dict with the canonical field names, `Kind` and `Name` first; empty
optional fields are left out (Consul's `omitempty`), the always-printed structs are filled
in on render.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.connect import entry_checks
from agent.connect.entry_tables import ALWAYS, KIND_FIELDS, NAMELESS, Table
from agent.connect.errors import EntryError
from agent.connect.intention_writes import normalize_intentions
from agent.durations import DurationError, format_nanoseconds, parse_nanoseconds

KINDS = frozenset(KIND_FIELDS)
_DECODE = "Request decoding failed: "
_COMMON: Table = {"Kind": "string", "Name": "string", "Meta": "strmap"}
_IGNORED = {"createindex", "modifyindex", "hash"}
_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@dataclass(frozen=True)
class Need:
    """One ACL permission: `level` on `resource` (`segment` None: a single-valued one)."""

    resource: str
    segment: str | None
    level: str


@dataclass(frozen=True)
class AnyOf:
    """Permissions of which one group must hold entirely."""

    options: tuple[tuple[Need, ...], ...]


# ---------------------------------------------------------------------- decoding


def _fold(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _lookup(table: Table) -> dict[str, str]:
    """Folded spellings (any case, snake_case alias) -> canonical name."""
    found = {}
    for name in table:
        found[_fold(name)] = name
        found[_fold(_SNAKE.sub("_", name))] = name
    return found


def _go_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "slice"
    if isinstance(value, dict):
        return "map"
    return "ptr"


def _scalar(kind: str, value: Any, path: str) -> Any:
    """mapstructure's WeaklyTypedInput conversions, with its error texts."""
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return repr(value) if not value.is_integer() else str(int(value))
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return value != 0
        if isinstance(value, str):
            if value.lower() in ("1", "t", "true"):
                return True
            if value.lower() in ("", "0", "f", "false"):
                return False
            raise EntryError(f"cannot parse '{path}' as bool: invalid syntax", 400)
    elif kind in ("int", "float"):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value if kind == "int" else float(value)
        if isinstance(value, float):
            if kind == "float":
                return value
            if value.is_integer():
                return int(value)
        if isinstance(value, str):
            try:
                return int(value, 0) if kind == "int" else float(value)
            except ValueError:
                raise EntryError(f"cannot parse '{path}' as {kind}: invalid syntax", 400) from None
    elif kind == "duration":
        if isinstance(value, bool):
            raise EntryError(f"'{path}' expected type 'time.Duration', got 'bool'", 400)
        if isinstance(value, int | float):
            return format_nanoseconds(int(value))
        if isinstance(value, str):
            try:
                return format_nanoseconds(parse_nanoseconds(value)) if value else ""
            except DurationError as exc:
                raise EntryError(f"error decoding '{path}': {exc}", 400) from None
    elif kind == "any":
        return value
    raise EntryError(
        f"'{path}' expected type '{kind}', got unconvertible type '{_go_kind(value)}'", 400
    )


class _Decoder:
    def __init__(self) -> None:
        self.unknown: list[str] = []

    def value(self, kind: Any, value: Any, path: str) -> Any:
        if value is None:
            return None
        if isinstance(kind, dict):
            return self.struct(kind, value, path)
        if isinstance(kind, tuple):
            shape, inner = kind
            if shape == "list":
                if isinstance(value, dict):  # HCL blocks: one object where a list belongs
                    value = [value]
                if not isinstance(value, list):
                    raise EntryError(f"'{path}': source data must be an array or slice", 400)
                return [self.value(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
            if not isinstance(value, dict):
                raise EntryError(f"'{path}' expected a map, got '{_go_kind(value)}'", 400)
            return {str(k): self.value(inner, v, f"{path}[{k}]") for k, v in value.items()}
        if kind == "strmap":
            if not isinstance(value, dict):
                raise EntryError(f"'{path}' expected a map, got '{_go_kind(value)}'", 400)
            return {str(k): _scalar("string", v, f"{path}[{k}]") for k, v in value.items()}
        return _scalar(kind, value, path)

    def struct(self, table: Table, value: Any, path: str) -> dict[str, Any]:
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
            value = value[0]  # HCL's single block as a list of one
        if not isinstance(value, dict):
            raise EntryError(f"'{path}' expected a map, got '{_go_kind(value)}'", 400)
        names = _lookup(table)
        out: dict[str, Any] = {}
        for key, raw in value.items():
            folded = _fold(str(key))
            canonical = names.get(folded)
            if canonical is None:
                if not path and folded in _IGNORED:
                    continue
                self.unknown.append(f"{path}.{key}" if path else str(key))
                continue
            if canonical in out and raw is not None and str(key) != canonical:
                continue  # the canonical spelling wins over an alias (Consul)
            decoded = self.value(
                table[canonical], raw, f"{path}.{canonical}" if path else canonical
            )
            if decoded is not None:
                out[canonical] = decoded
        return out


def _unknown_message(key: str) -> str:
    lowered = key.lower()
    if lowered.endswith("namespace"):
        return f'invalid config key "{key}", namespaces are a consul enterprise feature'
    if "jwt" in lowered:
        return (
            f'invalid config key "{key}", api-gateway jwt validation is a consul enterprise feature'
        )
    return f'invalid config key "{key}"'


def multierror(problems: list[str]) -> str:
    head = "1 error occurred" if len(problems) == 1 else f"{len(problems)} errors occurred"
    return head + ":\n" + "".join(f"\t* {p}\n" for p in problems) + "\n"


def decode_entry(raw: Any) -> dict[str, Any]:
    """The entry a `PUT /v1/config` body holds (EntryError 400 otherwise)."""
    if not isinstance(raw, dict):
        raise EntryError(f"{_DECODE}Payload does not contain a kind/Kind key at the top level", 400)
    kind = raw.get("Kind", raw.get("kind"))
    if kind is None:
        raise EntryError(f"{_DECODE}Payload does not contain a kind/Kind key at the top level", 400)
    if not isinstance(kind, str):
        raise EntryError(f"{_DECODE}Kind value in payload is not a string", 400)
    if kind not in KINDS:
        raise EntryError(f"{_DECODE}invalid config entry kind: {kind}", 400)
    table = _COMMON | KIND_FIELDS[kind]
    decoder = _Decoder()
    try:
        entry = decoder.struct(table, raw, "")
    except EntryError as exc:
        raise EntryError(f"{_DECODE}{multierror([exc.message])}", 400) from None
    if decoder.unknown:
        problems = [_unknown_message(k) for k in decoder.unknown]
        raise EntryError(f"{_DECODE}{multierror(problems)}", 400)
    entry["Kind"] = kind
    return _ordered(entry)


def _ordered(entry: Mapping[str, Any]) -> dict[str, Any]:
    head = {k: entry[k] for k in ("Kind", "Name") if k in entry}
    return head | {k: v for k, v in entry.items() if k not in head}


# ---------------------------------------------------------------------- normalize


def normalize(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Consul's Normalize(): the kind's defaults and spellings, before Validate."""
    out = dict(entry)
    kind = out["Kind"]
    name = str(out.get("Name") or "")
    if kind == "proxy-defaults":
        if name in ("", "global"):
            out["Name"] = "global"
        else:
            raise EntryError(f'invalid name ("{name}"), only "global" is supported')
    elif kind == "mesh":
        out["Name"] = "mesh"
    elif kind == "exported-services" and not name:
        out["Name"] = "default"
    out.setdefault("Name", "")
    if kind == "service-defaults" and out.get("Protocol"):
        out["Protocol"] = str(out["Protocol"]).lower()
    elif kind == "proxy-defaults":
        config = out.get("Config")
        if isinstance(config, dict) and isinstance(config.get("protocol"), str):
            config = dict(config, protocol=config["protocol"].lower())
            out["Config"] = config
    elif kind == "service-splitter":
        out["Splits"] = [
            dict(s, Weight=_round_weight(s.get("Weight", 0.0))) for s in out.get("Splits") or ()
        ]
    elif kind == "service-router":
        out["Routes"] = [_upper_methods(r) for r in out.get("Routes") or ()]
    elif kind == "ingress-gateway":
        out["Listeners"] = [
            dict(li, Protocol=str(li.get("Protocol") or "tcp").lower())
            for li in out.get("Listeners") or ()
        ]
    elif kind == "jwt-provider" and not out.get("ClockSkewSeconds"):
        out["ClockSkewSeconds"] = 30
    elif kind == "service-intentions":
        out = normalize_intentions(out)
    return _ordered(out)


def _round_weight(weight: Any) -> float | int:
    value = math.floor(float(weight) * 100 + 0.5) / 100
    return int(value) if value.is_integer() else value


def _upper_methods(route: Mapping[str, Any]) -> dict[str, Any]:
    http = ((route.get("Match") or {}).get("HTTP")) or None
    if not http or not http.get("Methods"):
        return dict(route)
    methods = [str(m).upper() for m in http["Methods"]]
    return dict(route, Match=dict(route["Match"], HTTP=dict(http, Methods=methods)))


def validate(entry: Mapping[str, Any]) -> None:
    """Consul's Validate() for the entry's kind; EntryError (500) naming the problem."""
    entry_checks.check(entry)


def validate_delete_name(kind: str, name: str) -> str:
    """The name a DELETE acts on, after the kind's Normalize (proxy-defaults: only global;
    mesh: whatever the URL says, it is always the one mesh entry)."""
    if kind == "proxy-defaults" and name not in ("", "global"):
        raise EntryError(f'invalid name ("{name}"), only "global" is supported')
    if kind == "mesh":
        return "mesh"
    return name or ("global" if kind == "proxy-defaults" else name)


# ---------------------------------------------------------------------- rendering


def render_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The entry as `GET /v1/config/<kind>/<name>` prints it."""
    kind = entry["Kind"]
    out: dict[str, Any] = {"Kind": kind}
    if kind not in NAMELESS:
        out["Name"] = entry.get("Name", "")
    for field in KIND_FIELDS[kind]:
        if field in entry:
            out[field] = entry[field]
        elif field in ALWAYS.get(kind, ()):
            out[field] = {}
    if kind == "proxy-defaults" and "Config" not in out:
        out = _put_after(out, "Name", "Config", None)
    if entry.get("Meta"):
        out["Meta"] = entry["Meta"]
    out["CreateIndex"] = entry.get("CreateIndex", 0)
    out["ModifyIndex"] = entry.get("ModifyIndex", 0)
    return out


def _put_after(out: dict[str, Any], after: str, key: str, value: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for k, v in out.items():
        result[k] = v
        if k == after:
            result[key] = value
    return result


# ---------------------------------------------------------------------- ACL


_SERVICE_KINDS = ("service-defaults", "service-router", "service-splitter", "service-resolver")


def read_rule(kind: str, name: str) -> tuple[Need, ...] | AnyOf:
    """What reading an entry of `kind` named `name` needs (Consul's CanRead)."""
    if kind in ("proxy-defaults", "mesh", "sameness-group"):
        return ()
    if kind == "service-intentions":
        return (Need("intention", name, "read"),)
    if kind in ("exported-services", "http-route", "tcp-route", "inline-certificate"):
        return (Need("mesh", None, "read"),)
    if kind == "jwt-provider":
        return AnyOf(((Need("service", "", "write"),), (Need("mesh", None, "read"),)))
    return (Need("service", name, "read"),)


def write_rules(entry: Mapping[str, Any]) -> tuple[Need, ...]:
    """What writing (or deleting) `entry` needs (Consul's CanWrite): a chain entry needs write
    on its service and read on every service it sends traffic to."""
    kind, name = entry["Kind"], str(entry.get("Name") or "")
    if kind == "bound-api-gateway":
        raise EntryError("Permission denied: only writeable by controller", 403)
    if kind == "service-intentions":
        return (Need("intention", name, "write"),)
    if kind not in _SERVICE_KINDS:
        return (Need("mesh", None, "write"),)
    needs = [Need("service", name, "write")]
    for other in sorted(set(_related(entry)) - {name}):
        needs.append(Need("service", other, "read"))
    return tuple(needs)


def _related(entry: Mapping[str, Any]) -> list[str]:
    kind = entry["Kind"]
    found: list[str] = []
    if kind == "service-router":
        for route in entry.get("Routes") or ():
            service = (route.get("Destination") or {}).get("Service")
            if service:
                found.append(service)
    elif kind == "service-splitter":
        found += [s["Service"] for s in entry.get("Splits") or () if s.get("Service")]
    elif kind == "service-resolver":
        redirect = entry.get("Redirect") or {}
        if redirect.get("Service"):
            found.append(redirect["Service"])
        for failover in (entry.get("Failover") or {}).values():
            if failover.get("Service"):
                found.append(failover["Service"])
            found += [t["Service"] for t in failover.get("Targets") or () if t.get("Service")]
    return found
