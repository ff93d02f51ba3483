"""Imported values -> spec YAML text and KV value files.

The YAML is written by hand rather than by a YAML library: the shape is fixed, 100,000 keys
must be written in well under a second, and every string is double-quoted with escapes
(`quote`), so no value can be read back as another type or another text. Multi-line ACL
rules are literal blocks when that reads back exactly. KV values that are long, multi-line
or not text go to files under `kv/` (`{file: ...}`), byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import urlsplit

from gitkv.importer.objects import ObjectImport
from gitkv.importer.values import AclImport, Skipped
from gitkv.resources import CheckDef, ExternalNode, KVPair, ServiceReg

__all__ = [
    "DEFAULT_INLINE_MAX",
    "SPEC_FILE",
    "AgentRow",
    "Imported",
    "address_parts",
    "flow",
    "quote",
    "render_spec",
    "value_files",
]

DEFAULT_INLINE_MAX = 1024
SPEC_FILE = "gitkv.yaml"
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


@dataclass(frozen=True)
class AgentRow:
    """A member of the cluster as the spec lists it (services name their agent)."""

    name: str
    server: bool
    bind: str
    http_host: str
    http_port: int


@dataclass
class Imported:
    """Everything read from one datacenter, ready to be written."""

    datacenter: str
    address: str
    name: str | None = None
    prefixes: tuple[str, ...] = ()
    kv: dict[str, KVPair] = field(default_factory=dict)
    agents: dict[str, AgentRow] = field(default_factory=dict)
    services: dict[str, ServiceReg] = field(default_factory=dict)
    script_args: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    external_nodes: dict[str, ExternalNode] = field(default_factory=dict)
    acl: AclImport | None = None
    objects: ObjectImport | None = None
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _printable(ch: str) -> bool:
    # YAML's printable set, minus the characters YAML 1.1 readers take as line breaks.
    o = ord(ch)
    if o < 0x20 or o == 0x7F or 0x80 <= o <= 0x9F or o in (0x2028, 0x2029, 0xFEFF):
        return False
    return not (0xD800 <= o <= 0xDFFF or o in (0xFFFE, 0xFFFF))


def quote(text: str) -> str:
    """`text` as a YAML double-quoted scalar that reads back as exactly `text`."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # the common case, fast
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif _printable(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'


def _block(text: str, indent: str) -> str | None:
    """A literal block (`|-`) for multi-line text when it reads back exactly, else None."""
    lines = text.split("\n")
    if (
        len(lines) < 2
        or text != text.strip()
        or any(line != line.rstrip() for line in lines)
        or not all(_printable(ch) or ch == "\t" for ch in text.replace("\n", ""))
        or "\t" in "".join(line[:1] for line in lines)
    ):
        return None
    body = "\n".join(f"{indent}{line}" if line else "" for line in lines)
    return "|-\n" + body


def flow(value: Any) -> str:
    """A JSON-like value as a YAML flow node that reads back as the same Python value."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{quote(str(k))}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        # YAML 1.1 readers want a dot in a float (`1e-05` would be a string to them).
        return text if "." in text else text.replace("e", ".0e", 1) if "e" in text else text + ".0"
    return quote(str(value))


def _list(items: Iterable[str]) -> str:
    return "[" + ", ".join(quote(i) for i in items) + "]"


def _map(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{quote(k)}: {quote(v)}" for k, v in pairs) + "}"


def _is_inline_text(value: bytes, limit: int) -> str | None:
    if len(value) > limit or b"\n" in value or b"\r" in value:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _segment(seg: str) -> str:
    enc = url_quote(seg, safe="-_.~@+=,")
    if enc.startswith("."):
        enc = "%2E" + enc[1:]  # no hidden files, no `.` or `..`
    return enc or "_%"  # an empty segment (`a//b`, a trailing `/`); `%` alone never appears


def value_files(kv: Mapping[str, KVPair], limit: int) -> dict[str, str]:
    """Which keys get a value file, and its path (relative, `/`-separated, under `kv/`).

    A path mirrors the key; when a key is also the folder of other keys (`a` and `a/b`), or
    two keys would share a path, the later ones go to `kv/_/<hash>` instead."""
    wanted = sorted(k for k, p in kv.items() if _is_inline_text(p.value, limit) is None)
    paths = {k: "kv/" + "/".join(_segment(s) for s in k.split("/")) for k in wanted}
    dirs = {p.rsplit("/", i)[0] for p in paths.values() for i in range(1, p.count("/"))}
    used: set[str] = set()
    out: dict[str, str] = {}
    for key in wanted:
        path = paths[key]
        if path in dirs or path in used or path == "kv/_":
            path = "kv/_/" + hashlib.sha256(key.encode()).hexdigest()[:24]
        used.add(path)
        out[key] = path
    return out


def _check(check: CheckDef, args: list[str] | None) -> str:
    parts = [f"id: {quote(check.id)}", f"name: {quote(check.name)}"]
    if check.kind == "ttl":
        parts.append(f"ttl: {quote(check.ttl)}")
    elif check.kind == "script":
        parts.append(f"args: {_list(args or [])}")
    else:
        parts.append(f"{check.kind}: {quote(check.target)}")
    if check.interval:
        parts.append(f"interval: {quote(check.interval)}")
    if check.timeout:
        parts.append(f"timeout: {quote(check.timeout)}")
    if check.method:
        parts.append(f"method: {quote(check.method)}")
    if check.tls_skip_verify:
        parts.append("tls_skip_verify: true")
    if check.deregister_critical_after:
        parts.append(f"deregister_critical_service_after: {quote(check.deregister_critical_after)}")
    if check.notes:
        parts.append(f"notes: {quote(check.notes)}")
    return "{" + ", ".join(parts) + "}"


def _service_fields(name: str, sid: str, address: str, port: int, tags, meta) -> list[str]:  # type: ignore[no-untyped-def]
    out = [f"name: {quote(name)}"]
    if sid != name:
        out.append(f"id: {quote(sid)}")
    if address:
        out.append(f"address: {quote(address)}")
    if port:
        out.append(f"port: {port}")
    if tags:
        out.append(f"tags: {_list(tags)}")
    if meta:
        out.append(f"meta: {_map(meta)}")
    return out


def _agents(imp: Imported) -> list[str]:
    out = ["    agents:"]
    for a in sorted(imp.agents.values(), key=lambda a: a.name):
        parts = [f"server: {'true' if a.server else 'false'}", f"bind: {quote(a.bind)}"]
        if a.http_host != a.bind:
            parts.append(f"client: {quote(a.http_host)}")
        parts.append(f"ports: {{http: {a.http_port}}}")
        out.append(f"      {quote(a.name)}: {{{', '.join(parts)}}}")
    return out


def _kv(imp: Imported, files: Mapping[str, str], limit: int) -> list[str]:
    out = [f"    kv_prefixes: {_list(imp.prefixes)}"]
    if not imp.kv:
        return [*out, "    kv: {}"]
    out.append("    kv:")
    for key in sorted(imp.kv):
        pair = imp.kv[key]
        flags = f", flags: {pair.flags}" if pair.flags else ""
        if key in files:
            out.append(f"      {quote(key)}: {{file: {quote(files[key])}{flags}}}")
            continue
        text = _is_inline_text(pair.value, limit) or ""
        if flags:
            out.append(f"      {quote(key)}: {{value: {quote(text)}{flags}}}")
        else:
            out.append(f"      {quote(key)}: {quote(text)}")
    return out


def _services(imp: Imported) -> list[str]:
    out = ["    services:"]
    for key in sorted(imp.services):
        s = imp.services[key]
        fields = _service_fields(s.name, s.id, s.address, s.port, s.tags, s.meta)
        out.append(f"      - {fields[0]}")
        out += [f"        {f}" for f in fields[1:]]
        out.append(f"        agent: {quote(s.agent)}")
        if s.checks:
            out.append("        checks:")
            args = imp.script_args.get(key, {})
            out += [f"          - {_check(c, args.get(c.id))}" for c in s.checks]
    return out


def _external(imp: Imported) -> list[str]:
    out = ["    external_services:"]
    for name in sorted(imp.external_nodes):
        n = imp.external_nodes[name]
        out.append(f"      - node: {quote(n.node)}")
        out.append(f"        address: {quote(n.address)}")
        if n.meta:
            out.append(f"        meta: {_map(n.meta)}")
        if n.services:
            out.append("        services:")
            for s in n.services:
                fields = _service_fields(s.name, s.id, s.address, s.port, s.tags, s.meta)
                out.append(f"          - {{{', '.join(fields)}}}")
    return out


def _objects(objs: ObjectImport) -> list[str]:
    out: list[str] = []
    if objs.entries:
        out.append("    config_entries:")
        for kind in objs.entries:  # apply order (gitkv.kinds.config_entries.ENTRY_KINDS)
            out.append(f"      {quote(kind)}:")
            out += [f"        {quote(n)}: {flow(b)}" for n, b in sorted(objs.entries[kind].items())]
    if objs.queries:
        out.append("    prepared_queries:")
        out += [f"      {quote(n)}: {flow(b)}" for n, b in sorted(objs.queries.items())]
    if objs.autopilot is not None:
        out.append(f"    autopilot: {flow(objs.autopilot)}")
    if objs.ca is not None:
        out.append(f"    ca: {flow(objs.ca)}")
    return out


def _acl(acl: AclImport, objs: ObjectImport | None) -> list[str]:
    out = ["    acl:"]
    if objs is not None and objs.auth_methods:
        out.append("      auth_methods:")
        out += [f"        {quote(n)}: {flow(m)}" for n, m in sorted(objs.auth_methods.items())]
    if objs is not None and objs.binding_rules:
        out.append("      binding_rules:")
        out += [f"        - {flow(r)}" for r in objs.binding_rules]
    if acl.policies:
        out.append("      policies:")
        for name in sorted(acl.policies):
            p = acl.policies[name]
            out.append(f"        {quote(name)}:")
            if p.description:
                out.append(f"          description: {quote(p.description)}")
            rules = _block(p.rules, " " * 12) if p.rules else None
            out.append(f"          rules: {rules or quote(p.rules)}")
            if p.datacenters:
                out.append(f"          datacenters: {_list(p.datacenters)}")
    if acl.roles:
        out.append("      roles:")
        for name in sorted(acl.roles):
            r = acl.roles[name]
            parts = [f"description: {quote(r.description)}"] if r.description else []
            parts.append(f"policies: {_list(r.policies)}")
            out.append(f"        {quote(name)}: {{{', '.join(parts)}}}")
    if acl.tokens:
        out.append("      tokens:")
        for name in sorted(acl.tokens):
            t = acl.tokens[name]
            out.append(f"        {quote(name)}:  # AccessorID {acl.accessors.get(name, '?')}")
            if t.description != f"gitkv:{name}":
                out.append(f"          description: {quote(t.description)}")
            out.append(f"          policies: {_list(t.policies)}")
            out.append(f"          roles: {_list(t.roles)}")
            if t.local:
                out.append("          local: true")
    return out if len(out) > 1 else []


def render_spec(imp: Imported, files: Mapping[str, str], limit: int, header: str) -> str:
    """The spec document for `imp`; `files` from `value_files(imp.kv, limit)`."""
    out = [f"# {line}" if line else "#" for line in header.splitlines()]
    out += ["version: 1"]
    if imp.name:
        out.append(f"name: {quote(imp.name)}")
    out += ["datacenters:", f"  {quote(imp.datacenter)}:", f"    address: {quote(imp.address)}"]
    if imp.agents:
        out += _agents(imp)
    if imp.prefixes or imp.kv:
        out += _kv(imp, files, limit)
    if imp.services:
        out += _services(imp)
    if imp.external_nodes:
        out += _external(imp)
    if imp.objects is not None:
        out += _objects(imp.objects)
    if imp.acl is not None or imp.objects is not None:
        out += _acl(imp.acl or AclImport(), imp.objects)
    return "\n".join(out) + "\n"


def address_parts(address: str) -> tuple[str, int]:
    """Host and port of an HTTP address (`http://127.0.0.1:8500` -> `("127.0.0.1", 8500)`)."""
    parts = urlsplit(address)
    default = 443 if parts.scheme == "https" else 8500
    return parts.hostname or "127.0.0.1", parts.port or default
