"""ACL auth methods and binding rules: canonical values and API bodies.

Auth methods are keyed by name. Binding rules have only a server-made ID, so gitkv keys them
by what they do — `<auth method>/<bind type>/<bind name>/<selector>` — and remembers the ID
in the ownership ledger, so a rule edited by hand is still recognised as the one gitkv made.
Secret Config fields (an OIDC client secret) are sent from references and never compared.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from gitkv.objects import ApiObject, canonical
from gitkv.resources import SecretRef

__all__ = [
    "ACL_AUTH_METHOD",
    "ACL_BINDING_RULE",
    "METHOD_FIELDS",
    "RULE_FIELDS",
    "SECRET_CONFIG_KEYS",
    "auth_method_body",
    "auth_method_from_api",
    "auth_method_object",
    "auth_method_spec",
    "binding_rule_body",
    "binding_rule_from_api",
    "binding_rule_key",
    "binding_rule_object",
    "binding_rule_spec",
    "from_spec",
]

ACL_AUTH_METHOD = "acl_auth_method"
ACL_BINDING_RULE = "acl_binding_rule"
# Config fields that hold secrets in Consul's built-in method types: never compared, even
# when the spec does not manage them.
SECRET_CONFIG_KEYS = frozenset({"OIDCClientSecret", "ServiceAccountJWT"})

# spec name -> Consul's field name, for auth methods and binding rules.
METHOD_FIELDS = {
    "type": "Type",
    "display_name": "DisplayName",
    "description": "Description",
    "max_token_ttl": "MaxTokenTTL",
    "token_locality": "TokenLocality",
    "config": "Config",
}
RULE_FIELDS = {
    "auth_method": "AuthMethod",
    "selector": "Selector",
    "bind_type": "BindType",
    "bind_name": "BindName",
    "bind_vars": "BindVars",
    "description": "Description",
}
_METHOD_FIELDS = tuple(v for v in METHOD_FIELDS.values() if v != "Config")


def auth_method_object(
    name: str,
    body: Mapping[str, Any],
    secrets: Mapping[str, SecretRef] | None = None,
    hidden_keys: Iterable[str] = (),
) -> ApiObject:
    """`body` has Consul's names (Type, DisplayName, ..., Config); `secrets` are Config keys
    sent from references; `hidden_keys` further Config keys left out of the comparison."""
    hidden = SECRET_CONFIG_KEYS | set(secrets or {}) | set(hidden_keys)
    doc: dict[str, Any] = {k: body.get(k) for k in _METHOD_FIELDS}
    doc["Config"] = {k: v for k, v in (body.get("Config") or {}).items() if k not in hidden}
    return ApiObject(ACL_AUTH_METHOD, name, canonical(doc), tuple(sorted((secrets or {}).items())))


def auth_method_from_api(
    raw: Mapping[str, Any], secret_keys: Iterable[str] = ()
) -> tuple[ApiObject, int]:
    """`GET /v1/acl/auth-method/<name>` as its canonical value and ModifyIndex."""
    obj = auth_method_object(str(raw.get("Name", "")), raw, hidden_keys=secret_keys)
    return obj, int(raw.get("ModifyIndex") or 0)


def auth_method_body(obj: ApiObject, secrets: Mapping[str, str] | None = None) -> dict[str, Any]:
    body = copy.deepcopy(dict(obj.body))
    body["Config"] = {**body.get("Config", {}), **(secrets or {})}
    return {"Name": obj.id, **body}


def auth_method_spec(obj: ApiObject) -> dict[str, Any]:
    """The spec value (`acl.auth_methods.<name>`) of a canonical auth method; its secret
    Config fields are not in it (they become `secret_config` references by hand)."""
    return {k: copy.deepcopy(obj.body[v]) for k, v in METHOD_FIELDS.items() if v in obj.body}


def from_spec(fields: Mapping[str, str], value: Mapping[str, Any]) -> dict[str, Any]:
    """A spec mapping (snake_case) with Consul's field names."""
    return {fields[k]: v for k, v in value.items() if k in fields}


def binding_rule_spec(obj: ApiObject) -> dict[str, Any]:
    """The spec value (an `acl.binding_rules` item) of a canonical binding rule."""
    return {k: copy.deepcopy(obj.body[v]) for k, v in RULE_FIELDS.items() if v in obj.body}


def binding_rule_key(method: str, bind_type: str, bind_name: str, selector: str) -> str:
    return f"{method}/{bind_type}/{bind_name}/{selector}"


def binding_rule_object(body: Mapping[str, Any]) -> ApiObject:
    """`body` with Consul's names: AuthMethod, Selector, BindType, BindName, BindVars,
    Description."""
    doc = {
        k: body.get(k)
        for k in ("AuthMethod", "Selector", "BindType", "BindName", "BindVars", "Description")
    }
    key = binding_rule_key(
        str(doc["AuthMethod"] or ""),
        str(doc["BindType"] or ""),
        str(doc["BindName"] or ""),
        str(doc["Selector"] or ""),
    )
    return ApiObject(ACL_BINDING_RULE, key, canonical(doc))


def binding_rule_from_api(raw: Mapping[str, Any]) -> tuple[ApiObject, str, int]:
    """A `GET /v1/acl/binding-rules` item as its value, its ID and its ModifyIndex."""
    return binding_rule_object(raw), str(raw.get("ID") or ""), int(raw.get("ModifyIndex") or 0)


def binding_rule_body(obj: ApiObject) -> dict[str, Any]:
    return copy.deepcopy(dict(obj.body))
