"""The spec's config entries, intentions, prepared queries, auth methods, binding rules,
autopilot and CA settings -> `ApiObject`s by resource kind (see `gitkv.kinds`).

Only the fields the spec sets are kept (`exclude_unset`), so what is compared is what the
user wrote, canonicalised the same way as the live side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gitkv.kinds.acl_auth import (
    ACL_AUTH_METHOD,
    ACL_BINDING_RULE,
    METHOD_FIELDS,
    RULE_FIELDS,
    auth_method_object,
    binding_rule_object,
    from_spec,
)
from gitkv.kinds.config_entries import CONFIG_ENTRY, SECRET_FIELDS, entry_object
from gitkv.kinds.intentions import intention_entries
from gitkv.kinds.operator import (
    AUTOPILOT,
    AUTOPILOT_FIELDS,
    CA,
    SINGLETON_ID,
    autopilot_object,
    ca_object,
)
from gitkv.kinds.queries import PREPARED_QUERY, query_object
from gitkv.objects import ApiObject
from gitkv.resources import SecretRef
from gitkv.spec.model import Datacenter
from gitkv.spec.model_objects import EnvSecret, FileSecret

__all__ = ["desired_objects", "secret_ref"]


def secret_ref(source: EnvSecret | FileSecret, base_dir: Path) -> SecretRef:
    """A spec secret source as a `SecretRef` (files resolved against the spec's directory)."""
    if isinstance(source, EnvSecret):
        return SecretRef(env=source.env)
    return SecretRef(file=str((base_dir / source.file).resolve()))


def _set(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(exclude_unset=True, by_alias=True)


def desired_objects(dc: Datacenter, base_dir: Path) -> dict[str, dict[str, ApiObject]]:
    out: dict[str, dict[str, ApiObject]] = {}
    entries = out.setdefault(CONFIG_ENTRY, {})
    for field, by_name in dc.config_entries:
        kind = field.replace("_", "-")
        for name, model in by_name.items():
            body = _set(model)
            secrets = {}
            for key in SECRET_FIELDS.get(kind, ()):
                source = getattr(model, key, None)
                if source is not None:
                    secrets[key] = secret_ref(source, base_dir)
            obj = entry_object(kind, name, body, secrets)
            entries[obj.id] = obj
    rules = {k: v if isinstance(v, str) else v.model_dump() for k, v in dc.intentions.items()}
    for dest, body in intention_entries(rules).items():
        # The loader refuses a destination that also has a service-intentions entry.
        obj = entry_object("service-intentions", dest, body)
        entries[obj.id] = obj

    queries = out.setdefault(PREPARED_QUERY, {})
    for name, query in dc.prepared_queries.items():
        token = secret_ref(query.Token, base_dir) if query.Token is not None else None
        queries[name] = query_object(name, _set(query), token)

    methods = out.setdefault(ACL_AUTH_METHOD, {})
    for name, method in dc.acl.auth_methods.items():
        body = from_spec(METHOD_FIELDS, method.model_dump(exclude={"secret_config"}))
        secrets = {k: secret_ref(v, base_dir) for k, v in method.secret_config.items()}
        methods[name] = auth_method_object(name, body, secrets)

    rules_out = out.setdefault(ACL_BINDING_RULE, {})
    for rule in dc.acl.binding_rules:
        obj = binding_rule_object(from_spec(RULE_FIELDS, rule.model_dump()))
        rules_out[obj.id] = obj

    if dc.autopilot is not None:
        named = dc.autopilot.model_dump(exclude_none=True)
        out[AUTOPILOT] = {
            SINGLETON_ID: autopilot_object({AUTOPILOT_FIELDS[k]: v for k, v in named.items()})
        }
    if dc.ca is not None:
        secrets = {k: secret_ref(v, base_dir) for k, v in dc.ca.secret_config.items()}
        out[CA] = {
            SINGLETON_ID: ca_object(
                dc.ca.provider, dc.ca.config, dc.ca.force_without_cross_signing, secrets
            )
        }
    return {kind: objs for kind, objs in out.items() if objs}
