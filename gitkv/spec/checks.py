"""Checks across fields: references, duplicates, files on disk, ACL rules.

They run on the merged plain document (not the model) so that they can report alongside
schema errors in the same run: each check looks only at the parts that have the right shape
and leaves malformed ones to the schema.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gitkv.errors import Diagnostic
from gitkv.spec.acl_rules import check_rules
from gitkv.spec.checks_objects import object_problems
from gitkv.spec.model import check_ids
from gitkv.spec.source import Position, Source

__all__ = ["BUILTIN_POLICIES", "MAX_VALUE_BYTES", "semantic_problems"]

# Consul's default kv_max_value_size: a bigger value is refused at apply time.
MAX_VALUE_BYTES = 512 * 1024
BUILTIN_POLICIES = frozenset({"global-management", "builtin/global-read-only"})


def semantic_problems(doc: dict[Any, Any], root: Source, base_dir: Path) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name, dc, src in _mapping_items(doc.get("datacenters"), root.child("datacenters")):
        if isinstance(dc, dict):
            agents = dc.get("agents") if isinstance(dc.get("agents"), dict) else {}
            _check_services(name, dc.get("services"), src.child("services"), agents, out)
            _check_external(
                dc.get("external_services"), src.child("external_services"), agents, out
            )
            _check_kv(dc.get("kv"), src.child("kv"), base_dir, out)
            _check_prefixes(dc, src, out)
            _check_acl(dc.get("acl"), src.child("acl"), out)
            object_problems(dc, src, out)
    return out


def _mapping_items(value: Any, src: Source | None) -> Iterator[tuple[Any, Any, Source]]:
    if isinstance(value, dict) and src is not None:
        for k, v in value.items():
            child = src.child(k)
            if child is not None:
                yield k, v, child


def _list_items(value: Any, src: Source | None) -> Iterator[tuple[int, Any, Source]]:
    if isinstance(value, list) and src is not None:
        for i, v in enumerate(value):
            child = src.child(i)
            if child is not None:
                yield i, v, child


def _at(src: Source, field: str) -> Position:
    child = src.child(field)
    return child.value if child is not None else src.anchor


# --- services -------------------------------------------------------------------------------


def _check_services(
    dc: str, services: Any, src: Source | None, agents: dict[Any, Any], out: list[Diagnostic]
) -> None:
    seen: dict[tuple[str, str], Position] = {}
    for _, svc, svc_src in _list_items(services, src):
        if not isinstance(svc, dict):
            continue
        agent = svc.get("agent")
        if isinstance(agent, str) and agent not in agents:
            out.append(_at(svc_src, "agent").diag(_unknown_agent(dc, agent, agents)))
        sid = svc.get("id") or svc.get("name")
        if isinstance(agent, str) and isinstance(sid, str):
            first = seen.setdefault((agent, sid), svc_src.value)
            if first != svc_src.value:
                out.append(
                    svc_src.value.diag(
                        f"duplicate service id {sid!r} on agent {agent!r} (first defined at {first})"
                    )
                )
            _check_check_ids(sid, svc.get("checks"), svc_src.child("checks"), out)


def _unknown_agent(dc: str, agent: str, agents: dict[Any, Any]) -> str:
    if not agents:
        return f"unknown agent {agent!r}: datacenter {dc!r} declares no agents"
    known = ", ".join(sorted(map(str, agents)))
    return f"unknown agent {agent!r} (agents of {dc!r}: {known})"


def _check_check_ids(sid: str, checks: Any, src: Source | None, out: list[Diagnostic]) -> None:
    items = [(c, c_src) for _, c, c_src in _list_items(checks, src) if isinstance(c, dict)]
    ids = check_ids(sid, [c.get("id") if isinstance(c.get("id"), str) else None for c, _ in items])
    seen: dict[str, Position] = {}
    for cid, (_, c_src) in zip(ids, items, strict=True):
        first = seen.setdefault(cid, c_src.value)
        if first != c_src.value:
            out.append(c_src.value.diag(f"duplicate check id {cid!r} (first defined at {first})"))


def _check_external(
    nodes: Any, src: Source | None, agents: dict[Any, Any], out: list[Diagnostic]
) -> None:
    seen: dict[str, Position] = {}
    for _, node, node_src in _list_items(nodes, src):
        if not isinstance(node, dict) or not isinstance(node.get("node"), str):
            continue
        name = node["node"]
        first = seen.setdefault(name, node_src.value)
        if first != node_src.value:
            out.append(
                node_src.value.diag(f"duplicate external node {name!r} (first defined at {first})")
            )
        if name in agents:
            out.append(
                _at(node_src, "node").diag(f"external node {name!r} has the name of an agent")
            )
        ids: dict[str, Position] = {}
        for _, svc, svc_src in _list_items(node.get("services"), node_src.child("services")):
            sid = svc.get("id") or svc.get("name") if isinstance(svc, dict) else None
            if isinstance(sid, str):
                first_svc = ids.setdefault(sid, svc_src.value)
                if first_svc != svc_src.value:
                    out.append(
                        svc_src.value.diag(
                            f"duplicate service id {sid!r} on node {name!r} (first defined at {first_svc})"
                        )
                    )


# --- KV -------------------------------------------------------------------------------------


def _check_kv(kv: Any, src: Source | None, base_dir: Path, out: list[Diagnostic]) -> None:
    for key, value, v_src in _mapping_items(kv, src):
        size = None
        if isinstance(value, str):
            size = len(value.encode())
        elif isinstance(value, dict) and isinstance(value.get("value"), str):
            size = len(value["value"].encode())
        elif isinstance(value, dict) and isinstance(value.get("file"), str):
            size = _file_size(base_dir, value["file"], _at(v_src, "file"), out)
        elif isinstance(value, dict) and "json" in value:
            try:
                size = len(json.dumps(value["json"], allow_nan=False).encode())
            except (TypeError, ValueError) as exc:
                out.append(_at(v_src, "json").diag(f"value is not representable as JSON: {exc}"))
        if size is not None and size > MAX_VALUE_BYTES:
            out.append(
                v_src.anchor.diag(
                    f"value of {key!r} is {size} bytes; Consul's limit is {MAX_VALUE_BYTES}"
                )
            )


def _file_size(base_dir: Path, name: str, at: Position, out: list[Diagnostic]) -> int | None:
    path = os.path.join(base_dir, name)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        out.append(at.diag(f"file {name!r} not found (looked for {base_dir / name})"))
        return None
    except OSError as exc:
        out.append(at.diag(f"cannot read {name!r}: {exc.strerror}"))
        return None
    if not stat.S_ISREG(info.st_mode):
        what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        out.append(at.diag(f"file {name!r} is {what}, not a file (looked for {base_dir / name})"))
        return None
    return info.st_size


def _check_prefixes(dc: dict[Any, Any], src: Source, out: list[Diagnostic]) -> None:
    prefixes = dc.get("kv_prefixes")
    if (
        not isinstance(prefixes, list)
        or not prefixes
        or not all(isinstance(p, str) for p in prefixes)
    ):
        return
    for _, prefix, p_src in _list_items(prefixes, src.child("kv_prefixes")):
        if prefix.startswith("/"):
            out.append(p_src.value.diag(f"kv prefix {prefix!r} must not start with '/'"))
        if prefix == "":
            out.append(
                p_src.value.diag("an empty kv prefix would claim the whole KV store; name a folder")
            )
    shown = ", ".join(prefixes)
    for key, _, k_src in _mapping_items(dc.get("kv"), src.child("kv")):
        if isinstance(key, str) and not any(key.startswith(p) for p in prefixes):
            out.append(k_src.anchor.diag(f"kv key {key!r} is outside kv_prefixes ({shown})"))


# --- ACL ------------------------------------------------------------------------------------


def _check_acl(acl: Any, src: Source | None, out: list[Diagnostic]) -> None:
    if not isinstance(acl, dict) or src is None:
        return
    policies = acl.get("policies") if isinstance(acl.get("policies"), dict) else {}
    roles = acl.get("roles") if isinstance(acl.get("roles"), dict) else {}
    for _, policy, p_src in _mapping_items(policies, src.child("policies")):
        rules_src = p_src.child("rules")
        if (
            isinstance(policy, dict)
            and isinstance(policy.get("rules"), str)
            and rules_src is not None
        ):
            for problem in check_rules(policy["rules"]):
                where = rules_src.text_position(problem.line, problem.col)
                out.append(where.diag(f"ACL rules: {problem.message}"))
    for _, role, r_src in _mapping_items(roles, src.child("roles")):
        if isinstance(role, dict):
            _check_refs(role.get("policies"), r_src.child("policies"), "policy", policies, out)
    for _, token, t_src in _mapping_items(acl.get("tokens"), src.child("tokens")):
        if isinstance(token, dict):
            _check_refs(token.get("policies"), t_src.child("policies"), "policy", policies, out)
            _check_refs(token.get("roles"), t_src.child("roles"), "role", roles, out)


def _check_refs(
    names: Any, src: Source | None, what: str, defined: dict[Any, Any], out: list[Diagnostic]
) -> None:
    for _, name, n_src in _list_items(names, src):
        if not isinstance(name, str):
            continue
        if name in defined or (what == "policy" and name in BUILTIN_POLICIES):
            continue
        known = ", ".join(sorted(map(str, defined))) or "none"
        out.append(n_src.value.diag(f"unknown {what} {name!r} (defined: {known})"))
