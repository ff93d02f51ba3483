"""Config entries (intentions among them), prepared queries, auth methods, binding rules,
autopilot and CA settings for `gitkv import`.

The live side is read with `gitkv.kinds`' own `..._from_api` (the canonical values `gitkv
plan` compares). Each object's spec value is then checked the way the loader will read it:
validated by the spec's model and turned back into a value by `gitkv.spec.desired_objects`,
which must equal the live one. An object that fails that — a field the spec does not know,
a secret (a private key, a query's token, an OIDC client secret) that a spec may only hold
as a reference — is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gitkv.client import ConsulClient
from gitkv.errors import ClusterError
from gitkv.importer.values import Skipped
from gitkv.kinds.acl_auth import (
    ACL_AUTH_METHOD,
    ACL_BINDING_RULE,
    SECRET_CONFIG_KEYS,
    auth_method_from_api,
    binding_rule_from_api,
)
from gitkv.kinds.config_entries import (
    CONFIG_ENTRY,
    ENTRY_KINDS,
    SECRET_FIELDS,
    entry_from_api,
    split_id,
)
from gitkv.kinds.operator import (
    AUTOPILOT,
    AUTOPILOT_FIELDS,
    CA,
    CA_SECRET_KEYS,
    SINGLETON_ID,
    autopilot_from_api,
    ca_from_api,
)
from gitkv.kinds.queries import PREPARED_QUERY, query_from_api
from gitkv.objects import ApiObject
from gitkv.spec.desired_objects import desired_objects
from gitkv.spec.model import Datacenter

__all__ = ["OBJECT_KINDS", "ObjectImport", "read_objects_for_import", "spec_value_problem"]

OBJECT_KINDS = (CONFIG_ENTRY, PREPARED_QUERY, ACL_AUTH_METHOD, ACL_BINDING_RULE, AUTOPILOT, CA)
_CA_PROVIDERS = ("consul", "vault", "aws-pca")


@dataclass
class ObjectImport:
    """Spec values by kind (`config_entries`: kind -> name -> body; the others by their spec
    key; binding rules a list; autopilot and ca one value each), and the canonical values
    they must read back as."""

    entries: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    queries: dict[str, dict[str, Any]] = field(default_factory=dict)
    auth_methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    binding_rules: list[dict[str, Any]] = field(default_factory=list)
    autopilot: dict[str, Any] | None = None
    ca: dict[str, Any] | None = None
    expected: dict[str, dict[str, ApiObject]] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _finite(value: Any) -> bool:
    """JSON-like all the way down (what the spec's YAML can hold exactly)."""
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _finite(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    return value is None or isinstance(value, str | int | bool)


def spec_value_problem(fragment: dict[str, Any], want: ApiObject) -> str:
    """Why the datacenter `fragment` (one object in spec form) does not read back as `want`
    ("" when it does)."""
    if not _finite(fragment):
        return "holds a value YAML cannot carry exactly (NaN, infinity or a non-text key)"
    try:
        dc = Datacenter.model_validate(fragment)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][-3:])
        return f"the spec cannot express it ({where}: {first['msg']})"
    got = desired_objects(dc, Path(".")).get(want.kind, {}).get(want.id)
    if got is None or got.body != want.body:
        return "it would not read back exactly through the spec"
    return ""


def _add(out: ObjectImport, obj: ApiObject) -> None:
    out.expected.setdefault(obj.kind, {})[obj.id] = obj


def _entries(client: ConsulClient, out: ObjectImport) -> None:
    for kind in ENTRY_KINDS:
        for raw in client.config_list(kind):
            obj, _ = entry_from_api(raw)
            _, name = split_id(obj.id)
            problem = ""
            if any(raw.get(k) for k in SECRET_FIELDS.get(kind, ())):
                problem = "it holds a private key (write it with {env: ...} or {file: ...})"
            body = dict(obj.body)
            fragment = {"config_entries": {kind: {name: body}}}
            problem = problem or spec_value_problem(fragment, obj)
            if problem:
                out.skipped.append(Skipped(CONFIG_ENTRY, obj.id, problem))
                continue
            out.entries.setdefault(kind, {})[name] = body
            _add(out, obj)


def _queries(client: ConsulClient, out: ObjectImport) -> None:
    for raw in client.query_list():
        name = str(raw.get("Name") or "")
        if not name:
            out.skipped.append(Skipped(PREPARED_QUERY, str(raw.get("ID")), "it has no name"))
            continue
        obj, _, _ = query_from_api(raw)
        problem = ""
        if raw.get("Token"):
            problem = "it runs with a token (write it with {env: ...} or {file: ...})"
        body = dict(obj.body)
        problem = problem or spec_value_problem({"prepared_queries": {name: body}}, obj)
        if problem:
            out.skipped.append(Skipped(PREPARED_QUERY, name, problem))
            continue
        out.queries[name] = body
        _add(out, obj)


def _auth(client: ConsulClient, out: ObjectImport, kinds: frozenset[str]) -> None:
    stubs = client.acl_list("auth-methods") if ACL_AUTH_METHOD in kinds else []
    if stubs is None:
        out.notes.append("ACLs are disabled on the cluster: no auth methods imported")
        return
    for stub in stubs:
        name = str(stub.get("Name", ""))
        raw = client.acl_read("auth-method", name)
        if raw is None:
            continue
        obj, _ = auth_method_from_api(raw)
        config = dict(raw.get("Config") or {})
        spec = {
            "type": raw.get("Type", ""),
            "display_name": raw.get("DisplayName") or "",
            "description": raw.get("Description") or "",
            "max_token_ttl": str(obj.body.get("MaxTokenTTL") or ""),
            "token_locality": raw.get("TokenLocality") or "",
            "config": config,
        }
        spec = {k: v for k, v in spec.items() if v not in ("", {})}
        secret = sorted(k for k in SECRET_CONFIG_KEYS if config.get(k))
        problem = f"its Config holds {', '.join(secret)} (a secret)" if secret else ""
        problem = problem or spec_value_problem({"acl": {"auth_methods": {name: spec}}}, obj)
        if problem:
            out.skipped.append(Skipped(ACL_AUTH_METHOD, name, problem))
            continue
        out.auth_methods[name] = spec
        _add(out, obj)
    if ACL_BINDING_RULE not in kinds:
        return
    rules = client.acl_list("binding-rules") or []
    seen: dict[str, int] = {}
    for raw in rules:
        key = binding_rule_from_api(raw)[0].id
        seen[key] = seen.get(key, 0) + 1
    for raw in rules:
        obj, rule_id, _ = binding_rule_from_api(raw)
        spec = {
            "auth_method": raw.get("AuthMethod", ""),
            "selector": raw.get("Selector") or "",
            "bind_type": raw.get("BindType", ""),
            "bind_name": raw.get("BindName", ""),
            "bind_vars": dict(raw.get("BindVars") or {}),
            "description": raw.get("Description") or "",
        }
        spec = {k: v for k, v in spec.items() if v not in ("", {})}
        problem = ""
        if seen[obj.id] > 1:
            problem = "another rule binds the same name by the same selector"
        elif spec["auth_method"] not in out.auth_methods:
            problem = f"its auth method {spec['auth_method']!r} is not imported"
        fragment = {
            "acl": {
                "auth_methods": out.auth_methods,
                "binding_rules": [spec],
            }
        }
        problem = problem or spec_value_problem(fragment, obj)
        if problem:
            out.skipped.append(Skipped(ACL_BINDING_RULE, rule_id, problem))
            continue
        out.binding_rules.append(spec)
        _add(out, obj)


def _autopilot(client: ConsulClient, out: ObjectImport) -> None:
    obj, _ = autopilot_from_api(client.autopilot_read())
    names = {v: k for k, v in AUTOPILOT_FIELDS.items()}
    spec = {names[k]: v for k, v in obj.body.items() if k in names}
    problem = spec_value_problem({"autopilot": spec}, obj)
    if problem:
        out.skipped.append(Skipped(AUTOPILOT, SINGLETON_ID, problem))
        return
    out.autopilot = spec
    _add(out, obj)


def _ca(client: ConsulClient, out: ObjectImport) -> None:
    raw = client.ca_config_read()
    obj, _ = ca_from_api(raw)
    config = dict(raw.get("Config") or {})
    secret = sorted(k for k in CA_SECRET_KEYS if config.get(k))
    provider = str(raw.get("Provider") or "")
    spec: dict[str, Any] = {"provider": provider, "config": dict(obj.body.get("Config") or {})}
    if raw.get("ForceWithoutCrossSigning"):
        spec["force_without_cross_signing"] = True
    problem = ""
    if secret:
        problem = f"its provider settings hold {', '.join(secret)} (a secret)"
    elif provider not in _CA_PROVIDERS:
        problem = f"provider {provider!r} is not one a spec may name"
    problem = problem or spec_value_problem({"ca": spec}, obj)
    if problem:
        out.skipped.append(Skipped(CA, SINGLETON_ID, problem))
        return
    out.ca = spec
    _add(out, obj)


def read_objects_for_import(client: ConsulClient, kinds: frozenset[str]) -> ObjectImport:
    """The whole-object kinds among `kinds`, read from the cluster as spec values."""
    out = ObjectImport()
    steps = (
        (CONFIG_ENTRY, lambda: _entries(client, out)),
        (PREPARED_QUERY, lambda: _queries(client, out)),
        (ACL_AUTH_METHOD, lambda: _auth(client, out, kinds)),
        (AUTOPILOT, lambda: _autopilot(client, out)),
        (CA, lambda: _ca(client, out)),
    )
    for kind, step in steps:
        if kind == ACL_AUTH_METHOD and not kinds & {ACL_AUTH_METHOD, ACL_BINDING_RULE}:
            continue
        if kind != ACL_AUTH_METHOD and kind not in kinds:
            continue
        try:
            step()
        except ClusterError as exc:
            out.notes.append(f"{kind} not read: {exc}")
    return out
