"""`POST /v1/acl/login` and `POST /v1/acl/logout` (Consul's ACL.Login / ACL.Logout).

Login: `{AuthMethod, BearerToken, Meta}` -> the method verifies the bearer token into an
identity, the method's binding rules bind it, and a token is created with what they bound:
`AuthMethod` set, `Local` unless the method's TokenLocality is "global", `Description`
"token created via login" (+ `: {meta as JSON}`), and `ExpirationTime` = now + MaxTokenTTL
when the method sets one. No token needs to be presented; a login that binds nothing is
Consul's 403 "Permission denied"; an unknown method is 403 `ACL not found: auth method "x"
not found`; a bearer token that does not verify is Consul's 500 with the reason (the RPC's
error, which its HTTP layer does not classify: `Unexpected response code: 500 (lookup failed:
...)` is what consul-k8s logs for a refused Kubernetes token). A bearer token beyond
MAX_TOKEN_BYTES is refused with a 400 before any parsing (Consul sets no limit).

Logout: the presented token (else the agent's default token, as Consul's parseToken does) is
deleted if a login made it, expired or not (403 "Permission denied: token wasn't created via
login" otherwise; 403 "ACL not found" for none or an unknown one).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

from agent.acl.auth_methods import LoginError
from agent.acl.binding import BindError, Bindings, bind
from agent.acl.jwks import JWKSError
from agent.acl.jwt_auth import MAX_TOKEN_BYTES
from agent.acl.resolve import token_from_request
from agent.errors import CommandRefused
from agent.http.acl_auth_methods import AuthRuntime
from agent.http.acl_common import ACLPorts, _body, _ready, render_token
from agent.http.app import HTTPError, Request, Response, json_response
from agent.http.bodies import ACL_LOGIN
from agent.state.acl import TOKEN_HASH_FIELDS, record_hash
from agent.state.commands import ACLTokenDelete, ACLTokenSet, TokenRecord, typed

LOGIN_BODY_LIMIT = 2 * MAX_TOKEN_BYTES  # the bearer token plus Meta; beyond it a 413


def description(meta: dict[str, str] | None) -> str:
    """Consul's BuildTokenDescription: the prefix, then Go's json.Marshal of the meta
    (sorted keys, no spaces, <, > and & escaped)."""
    prefix = "token created via login"
    if not meta:
        return prefix
    encoded = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        encoded = encoded.replace(char, escape)
    encoded = encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f"{prefix}: {encoded}"


def _rfc3339(when: dt.datetime) -> str:
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


async def _identity(runtime: AuthRuntime, record: dict, bearer: str):
    method = runtime.method(record)
    now = time.time()
    if method.jwt is None or not method.jwt.jwks_url:
        return method.identity(bearer, now)
    cfg = method.jwt
    try:
        keys = await runtime.jwks.keys(cfg.jwks_url, cfg.jwks_ca_cert)
        try:
            return method.identity(bearer, now, keys)
        except LoginError as exc:
            if "failed to verify id token signature" not in str(exc):
                raise
        # The provider may have rotated its keys: fetch once more (rate limited) and retry.
        keys = await runtime.jwks.keys(cfg.jwks_url, cfg.jwks_ca_cert, refresh=True)
        return method.identity(bearer, now, keys)
    except JWKSError as exc:
        raise LoginError(f"error verifying token: {exc}") from None


def _token(record: dict, bindings: Bindings, meta: dict | None) -> dict:
    created = dt.datetime.now(dt.UTC)
    token = {
        "AccessorID": str(uuid.uuid4()),
        "SecretID": str(uuid.uuid4()),
        "Description": description(meta),
        "Policies": bindings.policies,
        "Roles": bindings.roles,
        "ServiceIdentities": bindings.service_identities,
        "NodeIdentities": bindings.node_identities,
        "TemplatedPolicies": bindings.templated_policies,
        "Local": record.get("TokenLocality") != "global",
        "AuthMethod": record["Name"],
        "ExpirationTime": "",
        "CreateTime": _rfc3339(created),
    }
    if record.get("MaxTokenTTL"):
        ttl = dt.timedelta(microseconds=record["MaxTokenTTL"] // 1000)
        token["ExpirationTime"] = _rfc3339(created + ttl)
    token["Hash"] = record_hash(token, TOKEN_HASH_FIELDS)
    return token


async def login(runtime: AuthRuntime, ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    body = await _body(req, ACL_LOGIN, LOGIN_BODY_LIMIT, required=True)
    bearer = str(body.get("BearerToken") or "")
    if len(bearer) > MAX_TOKEN_BYTES:
        raise HTTPError(
            400, f"Invalid Login request: BearerToken is larger than {MAX_TOKEN_BYTES} bytes"
        )
    acl = ports.store.acl
    name = str(body.get("AuthMethod") or "")
    record = acl.auth_methods.get(name)
    if record is None:
        raise HTTPError(403, f'ACL not found: auth method "{name}" not found')
    try:
        identity = await _identity(runtime, record, bearer)
        bindings = bind(
            acl.rules_of(name),
            identity,
            ports.identity.config.datacenter,
            acl.role_by_name,
            acl.policy_by_name,
        )
    except (LoginError, BindError) as exc:
        raise HTTPError(500, str(exc)) from None
    if bindings.none():
        raise HTTPError(403, "Permission denied")
    token = _token(record, bindings, body.get("Meta"))
    try:
        stored = await ports.writer.write(ACLTokenSet(Token=typed(TokenRecord, token), Login=True))
    except CommandRefused as exc:
        if exc.kind == "denied":  # the bound roles or policies vanished meanwhile
            raise HTTPError(403, "Permission denied") from None
        raise
    return json_response(req, render_token(acl, stored, True))


async def logout(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    secret = token_from_request(req.query if req.raw_query else {}, req.headers)
    if not secret and req.acl is not None:
        secret = req.acl.tokens.get("default") or ""  # Consul's parseToken falls back to it
    token = ports.store.acl.token_by_secret(secret) if secret else None
    if token is None:
        raise HTTPError(403, "ACL not found")
    if not token.get("AuthMethod"):
        raise HTTPError(403, "Permission denied: token wasn't created via login")
    await ports.writer.write(ACLTokenDelete(AccessorID=token["AccessorID"]))
    return json_response(req, True)
