"""Consul's built-in templated policies: rules with a `{{.Name}}` hole, filled per token or role.

A token or role names a template and its variables (`{"TemplateName": "builtin/service",
"TemplateVariables": {"name": "web"}}`); Consul renders the template into a synthetic policy
that counts like any other policy of the token. The builtins, their fixed IDs, descriptions,
variable schemas and rule texts are Consul's (CE `agent/structs/acltemplatedpolicy/`); the rule
texts are served byte for byte by `GET /v1/acl/templated-policy/name/<name>`, so they are kept
exactly, leading newlines and tabs included.

Variables are checked the way Consul checks them: its JSON schemas here are all "an object
with a non-empty string `name`", which `schema_errors` reads from the schema text itself (no
JSON Schema library is a runtime dependency), with gojsonschema's words. A stored variable
map uses Consul's JSON spelling, `{"name": ...}`.

    tp = normalize([{"TemplateName": "builtin/dns"}], "token", local=False)[0]
    synthetic_policy(tp)["Rules"].startswith('\\nnode_prefix ""')
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BUILTINS",
    "Template",
    "TemplatedPolicyError",
    "lookup",
    "normalize",
    "render_rules",
    "synthetic_policy",
    "valid_identity_name",
    "validate",
]

# The schema of templates that take a name. Consul embeds two spellings of the same schema
# (tabs for service and node, two spaces for the later ones) and serves each as written.
_NAME_SCHEMA_TABS = (
    "{\n"
    '\t"type": "object",\n'
    '\t"properties": {\n'
    '\t\t"name": { "type": "string", "$ref": "#/definitions/min-length-one" }\n'
    "\t},\n"
    '\t"required": ["name"],\n'
    '\t"definitions": {\n'
    '\t\t"min-length-one": {\n'
    '\t\t\t\t"type": "string",\n'
    '\t\t\t\t"minLength": 1\n'
    "\t\t}\n"
    "\t}\n"
    "}"
)
_NAME_SCHEMA_SPACES = (
    "{\n"
    '  "type": "object",\n'
    '  "properties": {\n'
    '    "name": { "type": "string", "$ref": "#/definitions/min-length-one" }\n'
    "  },\n"
    '  "required": ["name"],\n'
    '  "definitions": {\n'
    '    "min-length-one": {\n'
    '      "type": "string",\n'
    '      "minLength": 1\n'
    "    }\n"
    "  }\n"
    "}"
)


@dataclass(frozen=True)
class Template:
    """One builtin. `schema` is "" for templates without variables; `identity` names the
    extra name rule Consul applies (service and node identities' lowercase names)."""

    name: str
    id: str
    description: str
    schema: str
    template: str
    identity: str = ""


BUILTINS: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            "builtin/service",
            "00000000-0000-0000-0000-000000000003",
            "Gives the token or role permissions to register a service and discover services "
            "in the Consul catalog. It also gives the specified service's sidecar proxy the "
            "permission to discover and route traffic to other services.",
            _NAME_SCHEMA_TABS,
            '\nservice "{{.Name}}" {\n\tpolicy = "write"\n}\n'
            'service "{{.Name}}-sidecar-proxy" {\n\tpolicy = "write"\n}\n'
            'service_prefix "" {\n\tpolicy = "read"\n}\n'
            'node_prefix "" {\n\tpolicy = "read"\n}',
            identity="service",
        ),
        Template(
            "builtin/node",
            "00000000-0000-0000-0000-000000000004",
            "Gives the token or role permissions for a register an agent/node into the "
            "catalog. A node is typically a consul agent but can also be a physical server, "
            "cloud instance or a container.",
            _NAME_SCHEMA_TABS,
            '\nnode "{{.Name}}" {\n\tpolicy = "write"\n}\nservice_prefix "" {\n\tpolicy = "read"\n}',
            identity="node",
        ),
        Template(
            "builtin/dns",
            "00000000-0000-0000-0000-000000000005",
            "Gives the token or role permissions for the Consul DNS to query services in the "
            "network.",
            "",
            '\nnode_prefix "" {\n\tpolicy = "read"\n}\n'
            'service_prefix "" {\n\tpolicy = "read"\n}\n'
            'query_prefix "" {\n\tpolicy = "read"\n}',
        ),
        Template(
            "builtin/nomad-server",
            "00000000-0000-0000-0000-000000000006",
            "Gives the token or role permissions required for integration with a nomad server.",
            "",
            '\nacl = "write"\nagent_prefix "" {\n  policy = "read"\n}\n'
            'node_prefix "" {\n  policy = "read"\n}\n'
            'service_prefix "" {\n  policy = "write"\n}',
        ),
        Template(
            "builtin/workload-identity",
            "00000000-0000-0000-0000-000000000007",
            "Gives the token or role permissions for a specific workload identity.",
            _NAME_SCHEMA_SPACES,
            'identity "{{.Name}}" {\n\tpolicy = "write"\n}',
        ),
        Template(
            "builtin/api-gateway",
            "00000000-0000-0000-0000-000000000008",
            "Gives the token or role permissions for a Consul api gateway",
            _NAME_SCHEMA_SPACES,
            'mesh = "read"\nnode_prefix "" {\n\tpolicy = "read"\n}\n'
            'service_prefix "" {\n\tpolicy = "read"\n}\n'
            'service "{{.Name}}" {\n\tpolicy = "write"\n}',
        ),
        Template(
            "builtin/nomad-client",
            "00000000-0000-0000-0000-000000000009",
            "Gives the token or role permissions required for integration with a nomad client.",
            "",
            'agent_prefix "" {\n  policy = "read"\n}\n'
            'node_prefix "" {\n  policy = "read"\n}\n'
            'service_prefix "" {\n  policy = "write"\n}\n'
            'key_prefix "" {\n  policy = "read"\n}',
        ),
    )
}

# Consul's service and node identity names (acl.IsValidServiceIdentityName and the node twin).
_IDENTITY_NAME = re.compile(r"^[a-z0-9]([a-z0-9\-_]*[a-z0-9])?$")
_IDENTITY_NAME_MAX = 256


def valid_identity_name(name: str) -> bool:
    """Consul's IsValidServiceIdentityName / IsValidNodeIdentityName (the same rule): the
    names service and node identities, and the templates standing for them, may take."""
    return len(name) <= _IDENTITY_NAME_MAX and bool(_IDENTITY_NAME.match(name))


# What would leave the quoted HCL string the name is put into. Consul's text/template puts
# the name in as is; a quote there would add rules of the caller's choosing, so it is refused.
_BREAKS_OUT = re.compile(r'["\\\x00-\x1f]|\$\{|%\{')
# Consul's synthetic policy ID is fnv128a's Sum(rules): the rules' bytes followed by the hash
# of nothing, the FNV-128 offset basis, in hex.
_FNV128_OFFSET_HEX = "6c62272e07bb014262b821756295c58d"


class TemplatedPolicyError(ValueError):
    """A templated policy Consul would refuse; `str()` is Consul's message."""


def lookup(name: str) -> Template | None:
    return BUILTINS.get(name)


def _multierror(errors: list[str]) -> str:
    """go-multierror's text, which Consul returns verbatim."""
    noun = "error" if len(errors) == 1 else "errors"
    points = "\n\t".join(f"* {e}" for e in errors)
    return f"{len(errors)} {noun} occurred:\n\t{points}\n\n"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _resolve(schema: dict, node: dict) -> dict:
    """A property's schema with its `$ref` (to `#/definitions/...`) merged in."""
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        return {**schema.get("definitions", {}).get(ref.rpartition("/")[2], {}), **node}
    return node


def schema_errors(schema_text: str, variables: dict | None) -> list[str]:
    """The variables checked against a builtin's schema, with gojsonschema's descriptions.

    Handles what the builtins' schemas use: the top-level `type`, `required`, and per
    property `type` and `minLength` (directly or through a definition). `variables` is the
    JSON Consul validates: the variable struct with empty fields left out, or None."""
    if not schema_text:
        return []
    schema = json.loads(schema_text)
    given = _json_type(variables)
    if schema.get("type") and given != schema["type"]:
        return [f"Invalid type. Expected: {schema['type']}, given: {given}"]
    assert isinstance(variables, dict)
    errors = [f"{key} is required" for key in schema.get("required", ()) if key not in variables]
    for key, raw in schema.get("properties", {}).items():
        if key not in variables:
            continue
        prop, value = _resolve(schema, raw), variables[key]
        if prop.get("type") and _json_type(value) != prop["type"]:
            errors.append(
                f"{key}: Invalid type. Expected: {prop['type']}, given: {_json_type(value)}"
            )
        elif "minLength" in prop and isinstance(value, str) and len(value) < prop["minLength"]:
            errors.append(
                f"{key}: String length must be greater than or equal to {prop['minLength']}"
            )
    return errors


def _seen_variables(variables: dict | None) -> dict | None:
    """The variables as Consul's validator sees them: its struct drops an empty name."""
    if variables is None:
        return None
    return {"name": variables["name"]} if variables.get("name") else {}


def validate(template: Template, variables: dict | None) -> str | None:
    """Consul's objection to these variables for `template` (ValidateTemplatedPolicy), or None.

    With a schema, an identity template first checks the name's shape (an empty name is
    already invalid there), then the schema decides."""
    if not template.schema:
        return None
    if variables is not None:
        name = str(variables.get("name") or "")
        shaped = valid_identity_name(name)
        if template.identity == "service" and not shaped:
            return (
                f"service identity {json.dumps(name, ensure_ascii=False)} has an invalid name. Only lowercase "
                "alphanumeric characters, '-' and '_' are allowed"
            )
        if template.identity == "node" and not shaped:
            return (
                f"node identity {json.dumps(name, ensure_ascii=False)}  has an invalid name. Only lowercase "
                "alphanumeric characters, '-' and '_' are allowed"
            )
        if _BREAKS_OUT.search(name):
            return f"name {json.dumps(name, ensure_ascii=False)} cannot contain quotes, backslashes or control characters"
    errors = schema_errors(template.schema, _seen_variables(variables))
    return _multierror(errors) if errors else None


def render_rules(template: Template, variables: dict | None) -> str:
    """The template's rules with the variables filled in (Consul's `{{.Name}}`)."""
    return template.template.replace("{{.Name}}", str((variables or {}).get("name") or ""))


def policy_hash(policy: dict) -> str:
    """Consul's ACLPolicy.SetHash: BLAKE2b-256 over name, description, rules and datacenters."""
    digest = hashlib.blake2b(digest_size=32)
    for part in (policy["Name"], policy["Description"], policy["Rules"]):
        digest.update(part.encode())
    for dc in policy.get("Datacenters") or ():
        digest.update(dc.encode())
    return base64.b64encode(digest.digest()).decode()


def synthetic_policy(templated: dict) -> dict:
    """The policy Consul synthesises from one (validated) templated policy record."""
    template = BUILTINS[templated["TemplateName"]]
    rules = render_rules(template, templated.get("TemplateVariables"))
    ident = rules.encode().hex() + _FNV128_OFFSET_HEX
    policy: dict[str, Any] = {
        "ID": ident,
        "Name": f"synthetic-policy-{ident}",
        "Description": f"synthetic policy generated from templated policy: {template.name}",
        "Rules": rules,
    }
    if templated.get("Datacenters"):
        policy["Datacenters"] = list(templated["Datacenters"])
    policy["Hash"] = policy_hash(policy)
    return policy


def normalize(raw: Any, owner: str, local: bool = False) -> list[dict]:
    """A token's or role's `TemplatedPolicies` as Consul stores them, or TemplatedPolicyError.

    Each entry gets its template's ID; variables keep only `name`; duplicates go (same
    template and, for templates with variables, the same variables: the first one stays,
    datacenters and all). `owner` is "token" or "role", for the messages."""
    if not raw:
        return []
    if not isinstance(raw, list):
        raise TemplatedPolicyError("TemplatedPolicies must be a list")
    out: list[dict] = []
    seen: set[tuple[str, str | None]] = set()
    for item in raw:
        item = item if isinstance(item, dict) else {}
        name = str(item.get("TemplateName") or "")
        if not name:
            raise TemplatedPolicyError(
                f"templated policy is missing the template name field on this {owner}"
            )
        datacenters = [str(dc) for dc in item.get("Datacenters") or ()]
        if local and datacenters:
            raise TemplatedPolicyError(
                f"templated policy {json.dumps(name, ensure_ascii=False)} cannot specify a list of datacenters "
                "on a local token"
            )
        template = BUILTINS.get(name)
        if template is None:
            raise TemplatedPolicyError(
                f"templated policy with an invalid templated name: {name} for this {owner}"
            )
        raw_vars = item.get("TemplateVariables")
        variables = None if raw_vars is None else _seen_variables(raw_vars)
        problem = validate(template, variables)
        if problem is not None:
            raise TemplatedPolicyError(
                f"encountered {owner} with invalid templated policy: {problem}"
            )
        key = (name, (variables or {}).get("name") if template.schema else None)
        if key in seen:
            continue
        seen.add(key)
        record: dict[str, Any] = {"TemplateID": template.id, "TemplateName": name}
        if variables is not None:
            record["TemplateVariables"] = variables
        if datacenters:
            record["Datacenters"] = datacenters
        out.append(record)
    return out
