"""What the ACL endpoints share: their ports, body decoding, rendering and the checks Consul
makes before proposing (names, links resolved by name, UUID shapes, identities).

`acl.py` (bootstrap, tokens, agent tokens, the routes) and `acl_policies.py` (policies and
roles) build on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.acl.templated import TemplatedPolicyError, normalize, valid_identity_name
from agent.gojson import Struct
from agent.http import gojson
from agent.http.app import JSON_BODY_LIMIT, HTTPError, Request
from agent.http.authz import identity
from agent.http.bodies import (
    ACL_AUTH_METHOD,
    ACL_BINDING_RULE,
    ACL_BOOTSTRAP,
    ACL_LOGIN,
    ACL_POLICY,
    ACL_ROLE,
    ACL_TOKEN,
)
from agent.state.acl import (
    TOKEN_HASH_FIELDS,
    ACLTables,
    record_hash,
)
from agent.state.commands import ACLTokenSet, TokenRecord, typed

if TYPE_CHECKING:
    from agent.ports import AgentIdentity, Writer
    from agent.state.store import Store


@dataclass(frozen=True)
class ACLPorts:
    """What the ACL endpoints use: the store (each request reads its ACL tables afresh),
    the writer for ACL commands, and this agent's identity (node name, datacenter, and the
    data dir where a bootstrap reset file is looked for)."""

    store: Store
    writer: Writer
    identity: AgentIdentity


HIDDEN = "<hidden>"
RESERVED_PREFIX = "00000000-0000-0000-0000-0000000000"
_NAME_RULE = "Only alphanumeric characters, '-' and '_' are allowed"
_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,128}$")
_IDENTITY_RULE = "Only lowercase alphanumeric characters, '-' and '_' are allowed"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Consul's words for a body that does not decode, by what it decodes into.
_DECODE_PREFIX = {
    ACL_TOKEN: "Token decoding failed: ",
    ACL_POLICY: "Policy decoding failed: ",
    ACL_ROLE: "Role decoding failed: ",
    ACL_AUTH_METHOD: "AuthMethod decoding failed: ",
    ACL_BINDING_RULE: "BindingRule decoding failed: ",
    ACL_LOGIN: "Failed to decode request body: ",
    ACL_BOOTSTRAP: "Request decoding failed: ",
}


async def _body(
    req: Request, spec: Struct, limit: int | None = None, *, required: bool = False
) -> dict:
    """The body as Go decodes it into `spec`: Consul's field names whatever the casing sent,
    every field of the kind `spec` wants, unknown fields and nulls left out; JSON that does
    not parse is refused in the endpoint's own words too. `limit`: a smaller body cap than
    the agent's default (413 beyond it). `required`: a blank body is Consul's 400 `<prefix>EOF`
    (lib.DecodeJSON on an empty reader), where the handler has no empty-body exception."""
    prefix = _DECODE_PREFIX.get(spec, "Request decode failed: ")
    data = await req.body(limit if limit is not None else JSON_BODY_LIMIT)
    if required and not data.strip():
        raise HTTPError(400, f"{prefix}EOF")
    raw = gojson.parse(data, prefix)
    if raw is None:  # blank, or JSON null: Go leaves the struct at its zero value
        return {}
    return gojson.conform(raw, spec, prefix)


async def _ready(req: Request) -> None:
    await req.acl.ensure_initialized()


# ---------------------------------------------------------------------- rendering


def not_exist(kind: str) -> str:
    """Consul's 404 text for an ACL record (policy, role, token) that is not there. It ends in
    "ACL not found", yet the status stays 404 (Consul writes it before the error handler)."""
    return f"Requested {kind} does not exist: ACL not found"


def _links(table: dict[str, dict], links: list[dict] | None) -> list[dict]:
    out = []
    for link in links or []:
        record = table.get(link["ID"])
        if record is not None:
            out.append({"ID": record["ID"], "Name": record["Name"]})
    return out


def render_token(acl: ACLTables, token: dict, show_secret: bool) -> dict:
    out: dict[str, Any] = {
        "AccessorID": token["AccessorID"],
        "SecretID": token["SecretID"] if show_secret else HIDDEN,
        "Description": token.get("Description", ""),
    }
    policies = _links(acl.policies, token.get("Policies"))
    if policies:
        out["Policies"] = policies
    roles = _links(acl.roles, token.get("Roles"))
    if roles:
        out["Roles"] = roles
    for field in ("ServiceIdentities", "NodeIdentities", "TemplatedPolicies"):
        if token.get(field):
            out[field] = token[field]
    out["Local"] = bool(token.get("Local"))
    if token.get("AuthMethod"):
        out["AuthMethod"] = token["AuthMethod"]
    if token.get("ExpirationTime"):
        out["ExpirationTime"] = token["ExpirationTime"]
    out["CreateTime"] = token.get("CreateTime", "")
    out["Hash"] = token.get("Hash", "")
    out["CreateIndex"] = token.get("CreateIndex", 0)
    out["ModifyIndex"] = token.get("ModifyIndex", 0)
    return out


def render_policy(policy: dict, stub: bool = False) -> dict:
    out = {
        "ID": policy["ID"],
        "Name": policy["Name"],
        "Description": policy.get("Description", ""),
    }
    if not stub:
        out["Rules"] = policy.get("Rules", "")
    if policy.get("Datacenters"):
        out["Datacenters"] = policy["Datacenters"]
    out["Hash"] = policy.get("Hash", "")
    out["CreateIndex"] = policy.get("CreateIndex", 0)
    out["ModifyIndex"] = policy.get("ModifyIndex", 0)
    return out


def render_role(acl: ACLTables, role: dict) -> dict:
    out: dict[str, Any] = {
        "ID": role["ID"],
        "Name": role["Name"],
        "Description": role.get("Description", ""),
    }
    policies = _links(acl.policies, role.get("Policies"))
    if policies:
        out["Policies"] = policies
    for field in ("ServiceIdentities", "NodeIdentities", "TemplatedPolicies"):
        if role.get(field):
            out[field] = role[field]
    out["Hash"] = role.get("Hash", "")
    out["CreateIndex"] = role.get("CreateIndex", 0)
    out["ModifyIndex"] = role.get("ModifyIndex", 0)
    return out


def _can_see_secrets(req: Request) -> bool:
    return identity(req).authz.allowed_single("acl", "write")


# ---------------------------------------------------------------------- validation


def _resolve_links(acl: ACLTables, links: Any, kind: str) -> list[dict]:
    """`[{ID}|{Name}]` -> `[{ID}]`, refusing unknown or malformed links (400)."""
    if links is None:
        return []
    if not isinstance(links, list):
        raise HTTPError(400, f"Request decode failed: {kind} must be a list")
    table, by_name = (
        (acl.policies, acl.policy_by_name) if kind == "Policies" else (acl.roles, acl.role_by_name)
    )
    noun = "policy" if kind == "Policies" else "role"
    out: list[dict] = []
    for link in links:
        if not isinstance(link, dict):
            raise HTTPError(400, f"Request decode failed: {kind} entries must be objects")
        ident, name = link.get("ID") or "", link.get("Name") or ""
        if ident:
            if ident not in table:
                raise HTTPError(400, f"No such ACL {noun} with ID {ident!r}")
        elif name:
            record = by_name(name)
            if record is None:
                raise HTTPError(400, f"No such ACL {noun} with name {name!r}")
            ident = record["ID"]
        else:
            raise HTTPError(400, f"{noun} link is missing an ID or Name")
        if ident not in {o["ID"] for o in out}:
            out.append({"ID": ident})
    return out


def _identities(raw: Any, field: str, name_key: str, owner: str = "token") -> list[dict]:
    """Service/node identities, checked with Consul's rules and words; duplicates dropped."""
    if not raw:
        return []
    if not isinstance(raw, list):
        raise HTTPError(400, f"Request decode failed: {field} must be a list")
    kind = "Service" if name_key == "ServiceName" else "Node"
    out: list[dict] = []
    for item in raw:
        if not isinstance(item, dict) or not item.get(name_key):
            raise HTTPError(
                400, f"{kind} identity is missing the {kind.lower()} name field on this {owner}"
            )
        name = str(item[name_key])
        if kind == "Node" and not item.get("Datacenter"):
            raise HTTPError(400, f"Node identity is missing the datacenter field on this {owner}")
        if not valid_identity_name(name):
            # Consul's words: %q of a service's name; a node's is not named
            shown = f" {json.dumps(name, ensure_ascii=False)}" if kind == "Service" else ""
            raise HTTPError(400, f"{kind} identity{shown} has an invalid name. {_IDENTITY_RULE}")
        if item not in out:
            out.append(item)
    return out


def templated_policies(raw: Any, owner: str, local: bool = False) -> list[dict]:
    """`TemplatedPolicies` checked and stored as Consul does (agent.acl.templated), or 400."""
    try:
        return normalize(raw, owner, local)
    except TemplatedPolicyError as exc:
        raise HTTPError(400, str(exc)) from None


def _local_checked(services: list[dict], local: bool) -> list[dict]:
    """Consul's rule: a local token lives in one datacenter, so a service identity on it may
    not name datacenters (it would grant nothing elsewhere, silently)."""
    if local:
        for item in services:
            if item.get("Datacenters"):
                name = json.dumps(str(item["ServiceName"]), ensure_ascii=False)
                raise HTTPError(
                    400,
                    f"Service identity {name} cannot specify a list of datacenters on a local "
                    "token",
                )
    return services


def _token_fields(acl: ACLTables, body: dict) -> dict:
    return {
        "Description": str(body.get("Description") or ""),
        "Policies": _resolve_links(acl, body.get("Policies"), "Policies"),
        "Roles": _resolve_links(acl, body.get("Roles"), "Roles"),
        "ServiceIdentities": _local_checked(
            _identities(body.get("ServiceIdentities"), "ServiceIdentities", "ServiceName"),
            bool(body.get("Local")),
        ),
        "NodeIdentities": _identities(body.get("NodeIdentities"), "NodeIdentities", "NodeName"),
        "TemplatedPolicies": templated_policies(
            body.get("TemplatedPolicies"), "token", bool(body.get("Local"))
        ),
        "Local": bool(body.get("Local")),
        "ExpirationTime": body.get("ExpirationTime") or "",
    }


def _check_uuid(value: str, what: str) -> None:
    if not _UUID.match(value):
        raise HTTPError(400, f"Invalid Token: {what} is not a valid UUID")
    if value.startswith(RESERVED_PREFIX):
        raise HTTPError(
            400, f'Invalid Token: UUIDs with the prefix "{RESERVED_PREFIX}" are reserved'
        )


async def _write_token(writer: Writer, token: dict) -> dict:
    token["Hash"] = record_hash(token, TOKEN_HASH_FIELDS)
    return await writer.write(ACLTokenSet(Token=typed(TokenRecord, token)))
