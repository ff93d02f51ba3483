"""`/v1/acl/policy*` and `/v1/acl/role*`: create, read, update, delete, by name, list."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from agent.acl.authorizer import BUILTIN_POLICIES
from agent.acl.rules import RuleError, parse_rules
from agent.http.acl_common import (
    _NAME,
    _NAME_RULE,
    ACLPorts,
    _body,
    _identities,
    _ready,
    _resolve_links,
    not_exist,
    render_policy,
    render_role,
    templated_policies,
)
from agent.http.app import HTTPError, Request, Response, json_response
from agent.http.authz import require
from agent.http.blocking import blocking_query, read_headers
from agent.http.bodies import ACL_POLICY, ACL_ROLE
from agent.memdb_uuid import uuid_index_problem
from agent.state.acl import (
    POLICY_HASH_FIELDS,
    ROLE_HASH_FIELDS,
    ACLTables,
    record_hash,
)
from agent.state.commands import (
    ACLPolicyDelete,
    ACLPolicySet,
    ACLRoleDelete,
    ACLRoleSet,
    PolicyRecord,
    RoleRecord,
    typed,
)

if TYPE_CHECKING:
    pass


# ---------------------------------------------------------------------- policies


def _validate_policy(acl: ACLTables, body: dict, ident: str) -> dict:
    name = str(body.get("Name") or "")
    if not name:
        raise HTTPError(400, "Invalid Policy: no Name is set")
    if not _NAME.match(name):
        raise HTTPError(400, f"Invalid Policy: invalid Name. {_NAME_RULE}")
    rules = body.get("Rules") or ""
    if not isinstance(rules, str):
        raise HTTPError(400, "Request decode failed: Rules must be a string")
    try:
        parse_rules(rules)
    except RuleError as exc:
        raise HTTPError(400, f"Invalid Policy: failed to parse rules: {exc}") from None
    owner = acl.policy_by_name(name)
    if owner is not None and owner["ID"] != ident:
        raise HTTPError(400, f"Invalid Policy: A Policy with Name {name!r} already exists")
    datacenters = body.get("Datacenters") or []
    if not isinstance(datacenters, list):
        raise HTTPError(400, "Request decode failed: Datacenters must be a list")
    policy = {
        "ID": ident,
        "Name": name,
        "Description": str(body.get("Description") or ""),
        "Rules": rules,
        "Datacenters": [str(d) for d in datacenters],
    }
    builtin = BUILTIN_POLICIES.get(ident)
    if builtin is not None:
        which = builtin["Name"]
        if rules != builtin["Rules"]:
            raise HTTPError(
                400, f"Changing the Rules for the builtin {which} policy is not permitted"
            )
        if policy["Datacenters"]:
            raise HTTPError(
                400, f"Changing the Datacenters of the builtin {which} policy is not permitted"
            )
    policy["Hash"] = record_hash(policy, POLICY_HASH_FIELDS)
    return policy


async def policy_create(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "write")
    body = await _body(req, ACL_POLICY)
    if body.get("ID"):
        raise HTTPError(400, "Cannot specify an ID when creating a policy")
    policy = _validate_policy(ports.store.acl, body, str(uuid.uuid4()))
    stored = await ports.writer.write(ACLPolicySet(Policy=typed(PolicyRecord, policy)))
    return json_response(req, render_policy(stored))


def _policy_or_404(acl: ACLTables, ident: str) -> dict:
    problem = uuid_index_problem(ident)
    if problem is not None:
        raise HTTPError(500, f"failed acl policy lookup: {problem}")
    policy = acl.policies.get(ident)
    if policy is None:
        raise HTTPError(404, not_exist("policy"))
    return policy


async def policy_item(ports: ACLPorts, req: Request, ident: str) -> Response:
    await _ready(req)
    if not ident:
        raise HTTPError(400, "Missing policy ID")
    if req.method == "GET":
        require(req, "acl", None, "read")
        policy = _policy_or_404(ports.store.acl, ident)
        return json_response(req, render_policy(policy), read_headers(req, policy["ModifyIndex"]))
    require(req, "acl", None, "write")
    if req.method == "DELETE":
        if ident in BUILTIN_POLICIES:
            which = BUILTIN_POLICIES[ident]["Name"]
            raise HTTPError(400, f"Delete operation not permitted on the builtin {which} policy")
        if ident in ports.store.acl.policies:
            await ports.writer.write(ACLPolicyDelete(ID=ident))
        return json_response(req, True)
    if ident not in ports.store.acl.policies:
        raise HTTPError(400, f"cannot find policy {ident}")
    body = await _body(req, ACL_POLICY)
    if body.get("ID") and body["ID"] != ident:
        raise HTTPError(400, "Policy ID in URL and payload do not match")
    policy = _validate_policy(ports.store.acl, body, ident)
    stored = await ports.writer.write(ACLPolicySet(Policy=typed(PolicyRecord, policy)))
    return json_response(req, render_policy(stored))


async def policy_by_name(ports: ACLPorts, req: Request, name: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "read")
    policy = ports.store.acl.policy_by_name(name)
    if policy is None:
        raise HTTPError(404, not_exist("policy"))
    return json_response(req, render_policy(policy), read_headers(req, policy["ModifyIndex"]))


async def policy_list(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "read")
    acl = ports.store.acl

    def query() -> tuple[int, list]:
        out = [render_policy(p, stub=True) for p in sorted(acl.policies.values(), key=_by_name)]
        return ports.store.table_index("acl-policies"), out

    index, result, opts = await blocking_query(req, [("table", "acl-policies")], query)
    return json_response(req, result, read_headers(req, index, opts.consistency))


def _by_name(record: dict) -> str:
    return record["Name"]


# ---------------------------------------------------------------------- roles


def _validate_role(acl: ACLTables, body: dict, ident: str) -> dict:
    name = str(body.get("Name") or "")
    if not name:
        raise HTTPError(400, "Invalid Role: no Name is set")
    if not _NAME.match(name):
        raise HTTPError(400, f"Invalid Role: invalid Name. {_NAME_RULE}")
    owner = acl.role_by_name(name)
    if owner is not None and owner["ID"] != ident:
        raise HTTPError(400, f"Invalid Role: A Role with Name {name!r} already exists")
    role = {
        "ID": ident,
        "Name": name,
        "Description": str(body.get("Description") or ""),
        "Policies": _resolve_links(acl, body.get("Policies"), "Policies"),
        "ServiceIdentities": _identities(
            body.get("ServiceIdentities"), "ServiceIdentities", "ServiceName", "role"
        ),
        "NodeIdentities": _identities(
            body.get("NodeIdentities"), "NodeIdentities", "NodeName", "role"
        ),
        "TemplatedPolicies": templated_policies(body.get("TemplatedPolicies"), "role"),
    }
    role["Hash"] = record_hash(role, ROLE_HASH_FIELDS)
    return role


async def role_create(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "write")
    body = await _body(req, ACL_ROLE)
    if body.get("ID"):
        raise HTTPError(400, "Cannot specify an ID when creating a role")
    role = _validate_role(ports.store.acl, body, str(uuid.uuid4()))
    stored = await ports.writer.write(ACLRoleSet(Role=typed(RoleRecord, role)))
    return json_response(req, render_role(ports.store.acl, stored))


def _role_or_404(acl: ACLTables, ident: str) -> dict:
    problem = uuid_index_problem(ident)
    if problem is not None:
        raise HTTPError(500, f"failed acl role lookup: {problem}")
    role = acl.roles.get(ident)
    if role is None:
        raise HTTPError(404, not_exist("role"))
    return role


async def role_item(ports: ACLPorts, req: Request, ident: str) -> Response:
    await _ready(req)
    if not ident:
        raise HTTPError(400, "Missing role ID")
    acl = ports.store.acl
    if req.method == "GET":
        require(req, "acl", None, "read")
        role = _role_or_404(ports.store.acl, ident)
        return json_response(req, render_role(acl, role), read_headers(req, role["ModifyIndex"]))
    require(req, "acl", None, "write")
    if req.method == "DELETE":
        if ident in acl.roles:
            await ports.writer.write(ACLRoleDelete(ID=ident))
        return json_response(req, True)
    if ident not in acl.roles:
        raise HTTPError(400, f"cannot find role {ident}")
    body = await _body(req, ACL_ROLE)
    if body.get("ID") and body["ID"] != ident:
        raise HTTPError(400, "Role ID in URL and payload do not match")
    role = _validate_role(ports.store.acl, body, ident)
    stored = await ports.writer.write(ACLRoleSet(Role=typed(RoleRecord, role)))
    return json_response(req, render_role(acl, stored))


async def role_by_name(ports: ACLPorts, req: Request, name: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "read")
    role = ports.store.acl.role_by_name(name)
    if role is None:
        raise HTTPError(404, not_exist("role"))
    return json_response(
        req, render_role(ports.store.acl, role), read_headers(req, role["ModifyIndex"])
    )


async def role_list(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "read")
    acl = ports.store.acl
    policy = req.get("policy")

    def query() -> tuple[int, list]:
        out = [
            render_role(acl, r)
            for r in sorted(acl.roles.values(), key=_by_name)
            if not policy or policy in {p["ID"] for p in r.get("Policies") or []}
        ]
        return ports.store.table_index("acl-roles"), out

    index, result, opts = await blocking_query(req, [("table", "acl-roles")], query)
    return json_response(req, result, read_headers(req, index, opts.consistency))
