"""`/v1/acl/*` and `PUT /v1/agent/token/<kind>` when ACLs are enabled (Consul >= 1.4 model).

Validation that Consul does before proposing happens here (names, rules syntax, links by name
resolved to IDs, UUID shapes); the FSM repeats only the checks that depend on state at apply
time (a duplicate name, a link to a policy deleted meanwhile), so a refused write changes
nothing. New IDs, secrets, `CreateTime` and `Hash` are made here, never in the FSM.

Secrets: `SecretID` is returned by bootstrap, create, clone, token/self and to callers with
`acl:write`; a caller with only `acl:read` sees `<hidden>` (Consul's redaction).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.acl import enforce
from agent.acl.enforce import new_token, now_rfc3339
from agent.acl.rules import RuleError, parse_rules
from agent.http import gojson
from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.authz import identity, require
from agent.http.blocking import blocking_query, read_headers
from agent.http.bodies import ACL_POLICY, ACL_ROLE, ACL_TOKEN, AGENT_TOKEN
from agent.http.gojson import Struct
from agent.state.acl import (
    ANONYMOUS_ACCESSOR,
    MANAGEMENT_POLICY_ID,
    POLICY_HASH_FIELDS,
    ROLE_HASH_FIELDS,
    TOKEN_HASH_FIELDS,
    ACLTables,
    record_hash,
)

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.ports import AgentIdentity, Writer
    from agent.state.store import Store

__all__ = ["ACLPorts", "register", "render_policy", "render_role", "render_token"]


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
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_FIELDS = {
    f.lower(): f
    for f in (
        "AccessorID",
        "SecretID",
        "Description",
        "Policies",
        "Roles",
        "ServiceIdentities",
        "NodeIdentities",
        "Local",
        "ExpirationTime",
        "ExpirationTTL",
        "ID",
        "Name",
        "Rules",
        "Datacenters",
        "ServiceName",
        "NodeName",
        "Datacenter",
        "Token",
    )
}


def _canon(value: Any) -> Any:
    """Consul decodes bodies case-insensitively (and accepts snake_case): normalise keys."""
    if isinstance(value, dict):
        return {
            _FIELDS.get(str(k).replace("_", "").lower(), k): _canon(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_canon(v) for v in value]
    return value


# Consul's words for a body that does not decode, by what it decodes into.
_DECODE_PREFIX = {
    ACL_TOKEN: "Token decoding failed: ",
    ACL_POLICY: "Policy decoding failed: ",
    ACL_ROLE: "Role decoding failed: ",
}


async def _body(req: Request, spec: Struct) -> dict:
    """The body with Consul's field names, once every field has the kind `spec` wants."""
    raw = await req.json()
    if raw is None:
        return {}
    gojson.conform(raw, spec, _DECODE_PREFIX.get(spec, "Request decode failed: "))
    return _canon(raw)


async def _ready(req: Request) -> None:
    await req.acl.ensure_initialized()


# ---------------------------------------------------------------------- rendering


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
    for field in ("ServiceIdentities", "NodeIdentities"):
        if token.get(field):
            out[field] = token[field]
    out["Local"] = bool(token.get("Local"))
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
    for field in ("ServiceIdentities", "NodeIdentities"):
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
        if not _NAME.match(name):
            shown = f" {name!r}" if kind == "Service" else ""
            raise HTTPError(400, f"{kind} identity{shown} has an invalid name. {_NAME_RULE}")
        if item not in out:
            out.append(item)
    return out


def _token_fields(acl: ACLTables, body: dict) -> dict:
    return {
        "Description": str(body.get("Description") or ""),
        "Policies": _resolve_links(acl, body.get("Policies"), "Policies"),
        "Roles": _resolve_links(acl, body.get("Roles"), "Roles"),
        "ServiceIdentities": _identities(
            body.get("ServiceIdentities"), "ServiceIdentities", "ServiceName"
        ),
        "NodeIdentities": _identities(body.get("NodeIdentities"), "NodeIdentities", "NodeName"),
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
    return await writer.write({"Type": "acl-token-set", "Token": token})


# ---------------------------------------------------------------------- bootstrap


async def bootstrap(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    data_dir = ports.identity.data_dir
    reset_index = 0
    reset_file = Path(data_dir) / "acl-bootstrap-reset" if data_dir else None
    if reset_file is not None and reset_file.exists():
        text = reset_file.read_text().strip()
        reset_index = int(text) if text.isdigit() else -1
    token = new_token(
        str(uuid.uuid4()),
        str(uuid.uuid4()),
        "Bootstrap Token (Global Management)",
        [{"ID": MANAGEMENT_POLICY_ID}],
        now_rfc3339(),
    )
    stored = await ports.writer.write(
        {"Type": "acl-bootstrap", "Token": token, "ResetIndex": reset_index}
    )
    if reset_file is not None and reset_index:
        reset_file.unlink(missing_ok=True)
    out = {"ID": stored["SecretID"], **render_token(ports.store.acl, stored, True)}
    return json_response(req, out)


# ---------------------------------------------------------------------- tokens


async def token_create(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "write")
    body = await _body(req, ACL_TOKEN)
    acl = ports.store.acl
    accessor = str(body.get("AccessorID") or "")
    secret = str(body.get("SecretID") or "")
    if accessor:
        _check_uuid(accessor, "AccessorID")
        if accessor in acl.tokens or accessor == ANONYMOUS_ACCESSOR:
            raise HTTPError(400, "Invalid Token: AccessorID is already in use")
    if secret:
        _check_uuid(secret, "SecretID")
        if acl.token_by_secret(secret) is not None:
            raise HTTPError(400, "Invalid Token: SecretID is already in use")
    fields = _token_fields(acl, body)
    ttl = body.get("ExpirationTTL")
    if ttl:
        fields["ExpirationTime"] = _expiry_from_ttl(str(ttl))
    token = {
        "AccessorID": accessor or str(uuid.uuid4()),
        "SecretID": secret or str(uuid.uuid4()),
        **fields,
        "CreateTime": now_rfc3339(),
    }
    stored = await _write_token(ports.writer, token)
    return json_response(req, render_token(acl, stored, True))


def _expiry_from_ttl(ttl: str) -> str:
    import datetime as dt

    from agent.durations import parse_duration

    try:
        seconds = parse_duration(ttl)
    except Exception:
        raise HTTPError(400, f"Invalid Token: ExpirationTTL {ttl!r} is not a duration") from None
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _token_or_404(acl: ACLTables, accessor: str) -> dict:
    token = acl.tokens.get(accessor)
    if token is None:
        raise HTTPError(403, "ACL not found")
    return token


async def token_item(ports: ACLPorts, req: Request, rest: str) -> Response:
    await _ready(req)
    if rest.endswith("/clone"):
        if req.method != "PUT":
            raise HTTPError(405, f"method {req.method} not allowed", [(b"allow", b"OPTIONS,PUT")])
        return await _token_clone(ports, req, rest.removesuffix("/clone"))
    accessor = rest
    if not accessor:
        raise HTTPError(400, "Missing token ID")
    acl = ports.store.acl
    if req.method == "GET":
        require(req, "acl", None, "read")
        token = _token_or_404(ports.store.acl, accessor)
        headers = read_headers(req, token.get("ModifyIndex", 0))
        return json_response(req, render_token(acl, token, _can_see_secrets(req)), headers)
    require(req, "acl", None, "write")
    if req.method == "DELETE":
        if accessor == ANONYMOUS_ACCESSOR:
            raise HTTPError(400, "Delete operation not permitted on the anonymous token")
        if accessor == identity(req).accessor:
            raise HTTPError(400, "Deletion of the request's authorization token is not permitted")
        if accessor in acl.tokens:  # deleting what is not there is a success, as in Consul
            await ports.writer.write({"Type": "acl-token-delete", "AccessorID": accessor})
        return json_response(req, True)
    # PUT: full replace, keeping the secret and creation time.
    body = await _body(req, ACL_TOKEN)
    old = acl.tokens.get(accessor)
    if old is None:
        raise HTTPError(400, f"Cannot find token {accessor!r}")
    if body.get("AccessorID") and body["AccessorID"] != accessor:
        raise HTTPError(400, "Token Accessor ID in URL and payload do not match")
    if body.get("SecretID") and body["SecretID"] != old["SecretID"]:
        raise HTTPError(400, "Changing a tokens SecretID is not permitted")
    if bool(body.get("Local")) != bool(old.get("Local")):
        raise HTTPError(400, f"cannot toggle local mode of {accessor}")
    fields = _token_fields(acl, body)
    if accessor == ANONYMOUS_ACCESSOR and not fields["Description"]:
        fields["Description"] = old.get("Description", "")
    if old.get("ExpirationTime") and not fields["ExpirationTime"]:
        fields["ExpirationTime"] = old["ExpirationTime"]
    token = {
        "AccessorID": accessor,
        "SecretID": old["SecretID"],
        **fields,
        "CreateTime": old.get("CreateTime", ""),
    }
    stored = await _write_token(ports.writer, token)
    return json_response(req, render_token(acl, stored, True))


async def _token_clone(ports: ACLPorts, req: Request, accessor: str) -> Response:
    require(req, "acl", None, "write")
    old = _token_or_404(ports.store.acl, accessor)
    if accessor == ANONYMOUS_ACCESSOR:
        raise HTTPError(400, "Cannot clone the anonymous token")
    body = await _body(req, ACL_TOKEN)
    token = {
        **{k: old.get(k) for k in TOKEN_HASH_FIELDS},
        "AccessorID": str(uuid.uuid4()),
        "SecretID": str(uuid.uuid4()),
        "CreateTime": now_rfc3339(),
    }
    if body.get("Description") is not None:
        token["Description"] = str(body["Description"])
    stored = await _write_token(ports.writer, token)
    return json_response(req, render_token(ports.store.acl, stored, True))


async def token_self(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    ident = identity(req)
    if ident.token is None:
        raise HTTPError(403, "ACL not found")
    return json_response(req, render_token(ports.store.acl, ident.token, True))


async def token_list(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "read")
    acl = ports.store.acl
    policy, role = req.get("policy"), req.get("role")
    show = _can_see_secrets(req)

    def query() -> tuple[int, list]:
        out = []
        for token in sorted(acl.tokens.values(), key=lambda t: t["CreateIndex"]):
            if policy and policy not in {p["ID"] for p in token.get("Policies") or []}:
                continue
            if role and role not in {r["ID"] for r in token.get("Roles") or []}:
                continue
            if req.get("authmethod"):
                continue  # no auth methods here: nothing was created by one
            stub = render_token(acl, token, show)
            out.append(stub)
        return ports.store.table_index("acl-tokens"), out

    index, result, opts = await blocking_query(req, [("table", "acl-tokens")], query)
    return json_response(req, result, read_headers(req, index, opts.consistency))


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
    if ident == MANAGEMENT_POLICY_ID:
        old = acl.policies.get(ident, {})
        if rules != old.get("Rules"):
            raise HTTPError(
                400, "Changing the Rules for the builtin global-management policy is not permitted"
            )
        if policy["Datacenters"] != (old.get("Datacenters") or []):
            raise HTTPError(
                400,
                "Changing the Datacenters of the builtin global-management policy is not permitted",
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
    stored = await ports.writer.write({"Type": "acl-policy-set", "Policy": policy})
    return json_response(req, render_policy(stored))


def _policy_or_404(acl: ACLTables, ident: str) -> dict:
    policy = acl.policies.get(ident)
    if policy is None:
        raise HTTPError(404, "ACL policy not found")
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
        if ident == MANAGEMENT_POLICY_ID:
            raise HTTPError(
                400, "Delete operation not permitted on the builtin global-management policy"
            )
        if ident in ports.store.acl.policies:
            await ports.writer.write({"Type": "acl-policy-delete", "ID": ident})
        return json_response(req, True)
    if ident not in ports.store.acl.policies:
        raise HTTPError(400, f"cannot find policy {ident}")
    body = await _body(req, ACL_POLICY)
    if body.get("ID") and body["ID"] != ident:
        raise HTTPError(400, "Policy ID in URL and payload do not match")
    policy = _validate_policy(ports.store.acl, body, ident)
    stored = await ports.writer.write({"Type": "acl-policy-set", "Policy": policy})
    return json_response(req, render_policy(stored))


async def policy_by_name(ports: ACLPorts, req: Request, name: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "read")
    policy = ports.store.acl.policy_by_name(name)
    if policy is None:
        raise HTTPError(404, "ACL policy not found")
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
    stored = await ports.writer.write({"Type": "acl-role-set", "Role": role})
    return json_response(req, render_role(ports.store.acl, stored))


def _role_or_404(acl: ACLTables, ident: str) -> dict:
    role = acl.roles.get(ident)
    if role is None:
        raise HTTPError(404, "ACL role not found")
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
            await ports.writer.write({"Type": "acl-role-delete", "ID": ident})
        return json_response(req, True)
    if ident not in acl.roles:
        raise HTTPError(400, f"cannot find role {ident}")
    body = await _body(req, ACL_ROLE)
    if body.get("ID") and body["ID"] != ident:
        raise HTTPError(400, "Role ID in URL and payload do not match")
    role = _validate_role(ports.store.acl, body, ident)
    stored = await ports.writer.write({"Type": "acl-role-set", "Role": role})
    return json_response(req, render_role(acl, stored))


async def role_by_name(ports: ACLPorts, req: Request, name: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "read")
    role = ports.store.acl.role_by_name(name)
    if role is None:
        raise HTTPError(404, "ACL role not found")
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


# ---------------------------------------------------------------------- misc


async def replication(ports: ACLPorts, req: Request, _: str) -> Response:
    """One datacenter, no replication: what a primary-DC Consul server reports (no ACL needed)."""
    return json_response(
        req,
        {
            "Enabled": False,
            "Running": False,
            "SourceDatacenter": ports.identity.config.datacenter,
            "ReplicationType": "",
            "ReplicatedIndex": 0,
            "ReplicatedRoleIndex": 0,
            "ReplicatedTokenIndex": 0,
            "LastSuccess": "0001-01-01T00:00:00Z",
            "LastError": "0001-01-01T00:00:00Z",
            "LastErrorMessage": "",
        },
    )


async def agent_token(ports: ACLPorts, req: Request, kind: str) -> Response:
    """`PUT /v1/agent/token/<kind>` `{"Token": secret}`: replace one of the agent's tokens."""
    await _ready(req)
    require(req, "agent", ports.identity.node_name, "write")
    slot = enforce.TOKEN_KIND_ALIASES.get(kind, kind)
    if slot not in enforce.TOKEN_KINDS:
        raise HTTPError(404, f'Token "{kind}" is unknown')
    body = await _body(req, AGENT_TOKEN)
    secret = body.get("Token") or ""
    req.acl.set_token(slot, secret)
    return Response(b"")


def _not_supported(what: str):
    async def handler(req: Request, _: str) -> Response:
        await _ready(req)
        require(req, "acl", None, "read" if req.method == "GET" else "write")
        if req.method == "GET" and not _.strip("/"):
            return json_response(req, [])
        raise HTTPError(400, f"{what} are not supported by this agent")

    return handler


def register(router: Router, deps: HTTPDeps) -> None:
    """Replace the 'ACL support disabled' routes with the real ones (ACLs enabled)."""
    ports = ACLPorts(deps.store, deps.writer, deps.identity)
    methods = ("GET", "PUT", "DELETE")
    routes: list[tuple[str, dict, bool]] = [
        ("/v1/acl/bootstrap", {"PUT": partial(bootstrap, ports)}, False),
        ("/v1/acl/replication", {"GET": partial(replication, ports)}, False),
        ("/v1/acl/token", {"PUT": partial(token_create, ports)}, False),
        ("/v1/acl/token/self", {"GET": partial(token_self, ports)}, False),
        ("/v1/acl/token/", dict.fromkeys(methods, partial(token_item, ports)), True),
        ("/v1/acl/tokens", {"GET": partial(token_list, ports)}, False),
        ("/v1/acl/policy", {"PUT": partial(policy_create, ports)}, False),
        ("/v1/acl/policy/", dict.fromkeys(methods, partial(policy_item, ports)), True),
        ("/v1/acl/policy/name/", {"GET": partial(policy_by_name, ports)}, True),
        ("/v1/acl/policies", {"GET": partial(policy_list, ports)}, False),
        ("/v1/acl/role", {"PUT": partial(role_create, ports)}, False),
        ("/v1/acl/role/", dict.fromkeys(methods, partial(role_item, ports)), True),
        ("/v1/acl/role/name/", {"GET": partial(role_by_name, ports)}, True),
        ("/v1/acl/roles", {"GET": partial(role_list, ports)}, False),
        ("/v1/agent/token/", {"PUT": partial(agent_token, ports)}, True),
    ]
    auth_methods = _not_supported("auth methods")
    binding_rules = _not_supported("binding rules")
    routes += [
        ("/v1/acl/auth-methods", {"GET": auth_methods}, False),
        ("/v1/acl/auth-method", {"PUT": auth_methods}, False),
        ("/v1/acl/auth-method/", dict.fromkeys(methods, auth_methods), True),
        ("/v1/acl/binding-rules", {"GET": binding_rules}, False),
        ("/v1/acl/binding-rule", {"PUT": binding_rules}, False),
        ("/v1/acl/binding-rule/", dict.fromkeys(methods, binding_rules), True),
        ("/v1/acl/login", {"POST": _not_supported("auth methods")}, False),
        ("/v1/acl/logout", {"POST": _not_supported("auth methods")}, False),
    ]
    for path, table, prefix in routes:
        if prefix:
            router.prefixes = [item for item in router.prefixes if item[0] != path]
        router.add(path, table, prefix=prefix)
