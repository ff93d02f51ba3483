"""`/v1/acl/templated-policies`, `/v1/acl/templated-policy/name/<name>` and
`/v1/acl/templated-policy/preview/<name>`: Consul's built-in templated policies, read-only.

The builtins live in `agent.acl.templated`; nothing here touches the store. Each endpoint needs
`acl:read`. An unknown name is a 400 (Consul's words differ between read and preview); a
preview renders the synthetic policy a token holding that templated policy would get.
"""

from __future__ import annotations

from agent.acl.templated import BUILTINS, Template, synthetic_policy, validate
from agent.http import gojson
from agent.http.acl_common import ACLPorts, _ready
from agent.http.app import JSON_BODY_LIMIT, HTTPError, Request, Response, json_response
from agent.http.authz import require
from agent.http.bodies import TEMPLATED_POLICY_VARIABLES

_DECODE = "Failed to decode request body: "


def _shown(template: Template) -> dict:
    """api.ACLTemplatedPolicyResponse (the template's ID is not shown)."""
    return {
        "TemplateName": template.name,
        "Schema": template.schema,
        "Template": template.template,
        "Description": template.description,
    }


async def templated_list(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "read")
    return json_response(req, {name: _shown(t) for name, t in sorted(BUILTINS.items())})


async def templated_read(ports: ACLPorts, req: Request, name: str) -> Response:
    await _ready(req)
    if not name:
        raise HTTPError(400, "Missing templated policy Name")
    require(req, "acl", None, "read")
    template = BUILTINS.get(name)
    if template is None:
        raise HTTPError(400, f"Invalid templated policy Name: {name}")
    return json_response(req, _shown(template))


async def templated_preview(ports: ACLPorts, req: Request, name: str) -> Response:
    await _ready(req)
    if not name:
        raise HTTPError(400, "Missing templated policy Name")
    require(req, "acl", None, "read")
    template = BUILTINS.get(name)
    if template is None:
        raise HTTPError(400, f'templated policy "{name}" does not exist')
    raw = await req.body(JSON_BODY_LIMIT)
    if not raw.strip():
        raise HTTPError(400, f"{_DECODE}EOF")  # Go's decoder on an empty body
    body = gojson.conform(gojson.parse(raw, _DECODE), TEMPLATED_POLICY_VARIABLES, _DECODE)
    # The body decodes into the variables struct: null or {} is an empty one, never nil.
    variables = {"name": body["name"]} if (body or {}).get("name") else {}
    problem = validate(template, variables)
    if problem is not None:
        raise HTTPError(400, f'validation error for templated policy: "{name}": {problem}')
    policy = synthetic_policy({"TemplateName": name, "TemplateVariables": variables})
    return json_response(req, {**policy, "CreateIndex": 0, "ModifyIndex": 0})
