"""`/v1/acl/*` and `PUT /v1/agent/token/<kind>` when ACLs are enabled (Consul >= 1.4 model).

Validation that Consul does before proposing happens here (names, rules syntax, links by name
resolved to IDs, UUID shapes); the FSM repeats only the checks that depend on state at apply
time (a duplicate name, a link to a policy deleted meanwhile), so a refused write changes
nothing. New IDs, secrets, `CreateTime` and `Hash` are made here, never in the FSM.

Secrets: `SecretID` is returned by bootstrap, create, clone, token/self and to callers with
`acl:write`; a caller with only `acl:read` sees `<hidden>` (Consul's redaction).
"""

from __future__ import annotations

import uuid
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from agent.acl import enforce
from agent.acl.enforce import new_token, now_rfc3339
from agent.acl.resolve import token_expired, token_from_request
from agent.http.acl_auth_methods import (
    AuthRuntime,
    method_create,
    method_item,
    method_list,
    rule_create,
    rule_item,
    rule_list,
)
from agent.http.acl_common import (
    ACLPorts,
    _body,
    _can_see_secrets,
    _check_uuid,
    _ready,
    _token_fields,
    _write_token,
    not_exist,
    render_token,
)
from agent.http.acl_login import login, logout
from agent.http.acl_policies import (
    policy_by_name,
    policy_create,
    policy_item,
    policy_list,
    role_by_name,
    role_create,
    role_item,
    role_list,
)
from agent.http.acl_templated import templated_list, templated_preview, templated_read
from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.authz import identity, require
from agent.http.blocking import blocking_query, read_headers
from agent.http.bodies import ACL_BOOTSTRAP, ACL_TOKEN, AGENT_TOKEN
from agent.memdb_uuid import invalid_hex, uuid_index_problem
from agent.state.acl import (
    ANONYMOUS_ACCESSOR,
    MANAGEMENT_POLICY_ID,
    TOKEN_HASH_FIELDS,
    ACLTables,
)
from agent.state.commands import ACLBootstrap, ACLTokenDelete, TokenRecord, typed

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps


# ---------------------------------------------------------------------- bootstrap


async def bootstrap(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    data_dir = ports.identity.data_dir
    reset_index = 0
    reset_file = Path(data_dir) / "acl-bootstrap-reset" if data_dir else None
    if reset_file is not None and reset_file.exists():
        text = reset_file.read_text().strip()
        reset_index = int(text) if text.isdigit() else -1
    # An operator may choose the secret (api.BootstrapRequest); Consul parses it as a UUID
    # (go-uuid's words) and refuses one another token already has.
    secret = str((await _body(req, ACL_BOOTSTRAP)).get("BootstrapSecret") or "")
    if secret:
        if (problem := _go_uuid_problem(secret)) is not None:
            raise HTTPError(500, problem)
        if ports.store.acl.token_by_secret(secret) is not None or secret in ports.store.acl.tokens:
            raise HTTPError(
                500,
                "Provided token cannot be used because a token with that secret already exists.",
            )
    token = new_token(
        str(uuid.uuid4()),
        secret or str(uuid.uuid4()),
        "Bootstrap Token (Global Management)",
        [{"ID": MANAGEMENT_POLICY_ID}],
        now_rfc3339(),
    )
    stored = await ports.writer.write(
        ACLBootstrap(Token=typed(TokenRecord, token), ResetIndex=reset_index)
    )
    if reset_file is not None and reset_index:
        reset_file.unlink(missing_ok=True)
    out = {"ID": stored["SecretID"], **render_token(ports.store.acl, stored, True)}
    return json_response(req, out)


def _go_uuid_problem(value: str) -> str | None:
    """go-uuid's ParseUUID errors (on the string's bytes), or None for a UUID it takes."""
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) != 36:
        return "uuid string is wrong length"
    if any(raw[i : i + 1] != b"-" for i in (8, 13, 18, 23)):
        return "uuid is improperly formatted"
    return invalid_hex(raw[0:8] + raw[9:13] + raw[14:18] + raw[19:23] + raw[24:36])


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
    if body.get("AuthMethod"):
        raise HTTPError(400, "AuthMethod field is disallowed outside of login")
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


def _live_token(acl: ACLTables, accessor: str) -> dict | None:
    """The token with this AccessorID; None when there is none (an expired token is gone
    until reaped). An accessor that is no UUID is the index's error, a 500, as in Consul."""
    problem = uuid_index_problem(accessor)
    if problem is not None:
        raise HTTPError(500, f"failed acl token lookup: {problem}")
    token = acl.tokens.get(accessor)
    return None if token is None or token_expired(token) else token


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
        token = _live_token(ports.store.acl, accessor)
        if token is None:
            raise HTTPError(404, not_exist("token"))
        headers = read_headers(req, token.get("ModifyIndex", 0))
        return json_response(req, render_token(acl, token, _can_see_secrets(req)), headers)
    require(req, "acl", None, "write")
    if req.method == "DELETE":
        if accessor == ANONYMOUS_ACCESSOR:
            raise HTTPError(400, "Delete operation not permitted on the anonymous token")
        if accessor == identity(req).accessor:
            raise HTTPError(400, "Deletion of the request's authorization token is not permitted")
        if accessor in acl.tokens:  # deleting what is not there is a success, as in Consul
            await ports.writer.write(ACLTokenDelete(AccessorID=accessor))
        return json_response(req, True)
    # PUT: full replace, keeping the secret and creation time.
    body = await _body(req, ACL_TOKEN)
    old = acl.tokens.get(accessor)
    if old is None or token_expired(old):
        raise HTTPError(400, f"Cannot find token {accessor!r}")
    if body.get("AuthMethod") and body["AuthMethod"] != old.get("AuthMethod"):
        raise HTTPError(400, f"Cannot change AuthMethod of {accessor}")
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
        "AuthMethod": old.get("AuthMethod") or "",
        "CreateTime": old.get("CreateTime", ""),
    }
    stored = await _write_token(ports.writer, token)
    return json_response(req, render_token(acl, stored, True))


async def _token_clone(ports: ACLPorts, req: Request, accessor: str) -> Response:
    require(req, "acl", None, "write")
    old = _live_token(ports.store.acl, accessor)
    if old is None:
        raise HTTPError(403, "ACL not found")  # Consul's clone answers acl.ErrNotFound
    if accessor == ANONYMOUS_ACCESSOR:
        raise HTTPError(400, "Cannot clone the anonymous token")
    if old.get("AuthMethod"):
        raise HTTPError(400, "Cannot clone a token created from an auth method")
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
    # Consul reads the token by its secret without resolving it first: an unknown (or
    # expired) secret is a 404, not the 403 "ACL not found" of other endpoints.
    # With no token sent it reads the agent's default token, and with none set, nothing.
    secret = token_from_request(req.query if req.raw_query else {}, req.headers)
    if not secret and req.acl is not None:
        secret = req.acl.tokens.get("default") or ""
    acl = ports.store.acl
    token = acl.token_by_secret(secret) if secret else None
    if token is None or token_expired(token):
        raise HTTPError(404, "Supplied token does not exist")
    # Consul answers through ACL.TokenRead and sets the read meta, as a read by accessor does:
    # the Go client's QueryMeta (LastIndex, KnownLeader) comes from it.
    headers = read_headers(req, ports.store.table_index("acl-tokens"))
    return json_response(req, render_token(acl, token, True), headers)


async def token_list(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "read")
    acl = ports.store.acl
    policy, role, method = req.get("policy"), req.get("role"), req.get("authmethod")
    service = req.get("servicename")
    if sum(1 for given in (policy, role, method, service) if given) > 1:
        raise HTTPError(
            500, "can only filter by one of policy, role, serviceName, or methodName at a time"
        )
    show = _can_see_secrets(req)

    def query() -> tuple[int, list]:
        out = []
        for token in sorted(acl.tokens.values(), key=lambda t: t["CreateIndex"]):
            if policy and policy not in {p["ID"] for p in token.get("Policies") or []}:
                continue
            if role and role not in {r["ID"] for r in token.get("Roles") or []}:
                continue
            if method and token.get("AuthMethod") != method:
                continue
            if service and service not in {
                i.get("ServiceName") for i in token.get("ServiceIdentities") or []
            }:
                continue
            if token_expired(token):
                continue  # Consul lists no expired token, reaped or not
            stub = render_token(acl, token, show)
            out.append(stub)
        return ports.store.table_index("acl-tokens"), out

    index, result, opts = await blocking_query(req, [("table", "acl-tokens")], query)
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
        ("/v1/acl/templated-policies", {"GET": partial(templated_list, ports)}, False),
        ("/v1/acl/templated-policy/name/", {"GET": partial(templated_read, ports)}, True),
        (
            "/v1/acl/templated-policy/preview/",
            {"POST": partial(templated_preview, ports)},
            True,
        ),
    ]
    auth = AuthRuntime()
    routes += [
        ("/v1/acl/auth-methods", {"GET": partial(method_list, ports)}, False),
        ("/v1/acl/auth-method", {"PUT": partial(method_create, auth, ports)}, False),
        ("/v1/acl/auth-method/", dict.fromkeys(methods, partial(method_item, auth, ports)), True),
        ("/v1/acl/binding-rules", {"GET": partial(rule_list, ports)}, False),
        ("/v1/acl/binding-rule", {"PUT": partial(rule_create, auth, ports)}, False),
        ("/v1/acl/binding-rule/", dict.fromkeys(methods, partial(rule_item, auth, ports)), True),
        ("/v1/acl/login", {"POST": partial(login, auth, ports)}, False),
        ("/v1/acl/logout", {"POST": partial(logout, ports)}, False),
    ]
    for path, table, prefix in routes:
        if prefix:
            router.prefixes = [item for item in router.prefixes if item[0] != path]
        router.add(path, table, prefix=prefix)
