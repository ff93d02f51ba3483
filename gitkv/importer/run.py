"""Reading a cluster for `gitkv import`, writing the spec, and proving it reads back.

Reads: one recursive KV GET per prefix; members, then each agent's services and checks from
the agent itself; the catalog's nodes without an agent; ACL policies (one read each, for the
Rules), roles and token list stubs (no SecretIDs). After writing, the spec is loaded with
`gitkv.spec` like any other and compared with what was read: a difference is a bug in the
writer and fails the import rather than leave a spec that means something else.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

from gitkv.client import ConsulClient
from gitkv.errors import ClusterError, GitkvError
from gitkv.importer.emit import (
    SPEC_FILE,
    AgentRow,
    Imported,
    address_parts,
    render_spec,
    value_files,
)
from gitkv.importer.objects import OBJECT_KINDS, read_objects_for_import
from gitkv.importer.values import (
    BOOKKEEPING_PREFIX,
    NAME,
    Skipped,
    acl_values,
    external_values,
    kv_values,
    service_values,
)
from gitkv.resources import Resources, derive_prefixes
from gitkv.state import MEMBER_STATUS, minimal_prefixes

__all__ = ["IMPORT_KINDS", "ImportOptions", "parse_kinds", "read_cluster", "verify", "write"]

IMPORT_KINDS = (
    "kv",
    "service",
    "external_node",
    "acl_policy",
    "acl_role",
    "acl_token",
    *OBJECT_KINDS,
)
_GROUPS = {
    "acl": ("acl_policy", "acl_role", "acl_token", "acl_auth_method", "acl_binding_rule"),
    "intentions": ("config_entry",),
}


def parse_kinds(text: str | None) -> frozenset[str]:
    """`--only kv,acl_policy,...` (`acl` means the three ACL kinds); all when None.

    :raises GitkvError: for an unknown kind."""
    if not text:
        return frozenset(IMPORT_KINDS)
    out: set[str] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part in _GROUPS:
            out.update(_GROUPS[part])
        elif part in IMPORT_KINDS:
            out.add(part)
        else:
            known = ", ".join((*IMPORT_KINDS, *_GROUPS))
            raise GitkvError(f"--only: unknown kind {part!r} (known: {known})")
    if not out:
        raise GitkvError("--only needs at least one kind")
    return frozenset(out)


@dataclass(frozen=True)
class ImportOptions:
    kinds: frozenset[str] = frozenset(IMPORT_KINDS)
    kv_prefixes: tuple[str, ...] = ()
    datacenter: str | None = None
    name: str | None = None
    inline_max: int = 1024


def _members(client: ConsulClient) -> list[dict]:  # type: ignore[type-arg]
    try:
        return list(client.agent_members())
    except ClusterError:
        return []


def _agents(client: ConsulClient, members: Iterable[dict]) -> dict[str, AgentRow]:  # type: ignore[type-arg]
    """Each member with the HTTP address gitkv reaches it at: the one we talk to as given,
    the others at their gossip address with our port (what `gitkv plan` assumes too)."""
    host, port = address_parts(client.address)
    host = _ip(host)
    self_name = str((client.agent_self().get("Config") or {}).get("NodeName") or "")
    out: dict[str, AgentRow] = {}
    for m in members:
        name, addr = str(m.get("Name", "")), _ip(str(m.get("Addr", "")))
        server = (m.get("Tags") or {}).get("role") == "consul"
        bind = addr or host or "127.0.0.1"
        http_host = (host or bind) if name == self_name else bind
        out[name] = AgentRow(name, server, bind, http_host, port)
    return out


def _ip(host: str) -> str:
    """`host` as an IP address (a spec's agents name IPs), "" when it does not resolve."""
    if not host:
        return ""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return socket.gethostbyname(host)
    except OSError:
        return ""


def _read_services(client: ConsulClient, imp: Imported) -> None:
    members = _members(client)
    imp.agents = _agents(client, members)
    status = {str(m.get("Name")): int(m.get("Status") or 0) for m in members}
    for name in sorted(imp.agents):
        row = imp.agents[name]
        if not NAME.match(name):
            imp.notes.append(f"agent {name!r}: its name is outside a spec's rule; not listed")
            del imp.agents[name]
            continue
        if MEMBER_STATUS.get(status.get(name, 0)) != "alive":
            imp.notes.append(f"agent {name} is not alive: its services were not read")
            continue
        address = f"{urlscheme(client.address)}://{_host(row.http_host)}:{row.http_port}"
        sub = client if address == client.address else client.for_address(address)
        try:
            services, checks = sub.agent_services(), sub.agent_checks()
        except ClusterError as exc:
            imp.notes.append(f"agent {name} not readable at {address}: {exc}")
            continue
        finally:
            if sub is not client:
                sub.close()
        regs, skipped, args = service_values(name, services.values(), checks.values())
        imp.services.update(regs)
        imp.script_args.update(args)
        imp.skipped += skipped


def urlscheme(address: str) -> str:
    return address.split("://", 1)[0] if "://" in address else "http"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _read_external(client: ConsulClient, imp: Imported, agents: set[str]) -> None:
    for stub in client.catalog_nodes():
        name = str(stub.get("Node", ""))
        if name in agents:
            continue
        data = client.catalog_node(name)
        if not data:
            continue
        value = external_values(data, client.health_node(name))
        if isinstance(value, Skipped):
            imp.skipped.append(value)
        else:
            imp.external_nodes[name] = value


def _read_acl(client: ConsulClient, imp: Imported, kinds: frozenset[str]) -> None:
    policies = client.acl_list("policies")
    if policies is None:
        imp.notes.append("ACLs are disabled on the cluster: no ACL objects imported")
        return
    full = []
    if "acl_policy" in kinds:
        for stub in policies:
            full.append(client.acl_read("policy", str(stub.get("ID"))) or stub)
    roles = client.acl_list("roles") or [] if "acl_role" in kinds else []
    tokens = client.acl_list("tokens") or [] if "acl_token" in kinds else []
    imp.acl = acl_values(full, roles, tokens, kinds)
    imp.skipped += imp.acl.skipped


def read_cluster(client: ConsulClient, opts: ImportOptions) -> Imported:
    """Everything `opts` asks for from the cluster `client` talks to."""
    conf = client.agent_self().get("Config") or {}
    dc = opts.datacenter or str(conf.get("Datacenter") or "dc1")
    imp = Imported(datacenter=dc, address=client.address, name=opts.name)
    kinds = opts.kinds
    if "kv" in kinds:
        prefixes = minimal_prefixes(opts.kv_prefixes) if opts.kv_prefixes else ("",)
        bookkeeping = any(p.startswith(BOOKKEEPING_PREFIX) for p in opts.kv_prefixes)
        for prefix in prefixes:
            imp.kv.update(kv_values(client.kv_list(prefix), bookkeeping=bookkeeping))
        imp.prefixes = tuple(opts.kv_prefixes) or derive_prefixes(imp.kv)
    if "service" in kinds or "external_node" in kinds:
        if "service" in kinds:
            _read_services(client, imp)
        else:
            imp.agents = {}
        if "external_node" in kinds:
            names = {str(m.get("Name")) for m in _members(client)}
            _read_external(client, imp, names)
    if not imp.services:
        imp.agents = {}  # agents are listed only for the services that name them
    if kinds & {"acl_policy", "acl_role", "acl_token"}:
        _read_acl(client, imp, kinds)
    if kinds & set(OBJECT_KINDS):
        imp.objects = read_objects_for_import(client, kinds)
        imp.skipped += imp.objects.skipped
        imp.notes += imp.objects.notes
    imp.skipped.sort()
    return imp


def write(imp: Imported, out_dir: Path, *, inline_max: int, header: str) -> list[Path]:
    """Write the spec and its value files into `out_dir`; the files written."""
    files = value_files(imp.kv, inline_max)
    written = []
    for key, rel in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(imp.kv[key].value)
        written.append(path)
    spec = out_dir / SPEC_FILE
    spec.write_text(render_spec(imp, files, inline_max, header), encoding="utf-8")
    return [spec, *written]


def verify(imp: Imported, out_dir: Path) -> Resources:
    """Load the written spec and check it means exactly what was read.

    :raises GitkvError: naming the resources that differ (a bug in the writer)."""
    from gitkv.spec import desired, load_spec

    loaded = load_spec(out_dir)
    res = desired(loaded.spec, loaded.base_dir)[imp.datacenter]
    acl = imp.acl
    pairs = {
        "kv": (res.kv, imp.kv),
        "service": (res.services, imp.services),
        "external_node": (res.external_nodes, imp.external_nodes),
        "acl_policy": (res.policies, acl.policies if acl else {}),
        "acl_role": (res.roles, acl.roles if acl else {}),
        "acl_token": (res.tokens, acl.tokens if acl else {}),
    }
    expected = imp.objects.expected if imp.objects else {}
    for kind in OBJECT_KINDS:
        pairs[kind] = (res.objects_of(kind), expected.get(kind, {}))
    wrong = []
    for kind, (got, want) in pairs.items():
        for ident in sorted(set(got) | set(want)):
            if not _same(got.get(ident), want.get(ident)):
                wrong.append(f"{kind} {ident}")
    if wrong:
        raise GitkvError(
            "the written spec does not read back as the cluster (please report this): "
            + ", ".join(wrong[:20])
        )
    return res


def _same(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is b
    if type(a) is not type(b):
        return False
    # checks_digest does not take part in equality; every other field does.
    return all(getattr(a, f.name) == getattr(b, f.name) for f in fields(a) if f.compare)  # type: ignore[arg-type]


def ensure_empty(out_dir: Path, force: bool) -> None:
    """Refuse to write into a directory that already holds files (unless `force`)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise GitkvError(f"--out {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(os.scandir(out_dir)) and not force:
        raise GitkvError(f"--out {out_dir} is not empty; choose another directory or --force")
    out_dir.mkdir(parents=True, exist_ok=True)
