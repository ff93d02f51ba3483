"""`/v1/acl/auth-method*` and `/v1/acl/binding-rule*`: create, read, update, delete, list.

Consul's split of errors is kept: what its HTTP layer refuses (a body that does not decode,
a name or ID in the URL that differs from the body's, a missing name on a read) is a 400;
what its ACL RPC refuses (every other check of the record, in Consul's order and words:
`Invalid Auth Method: ...`, `Invalid Binding Rule: ...`) is the 500 Consul answers with the
error's text. A missing method or rule on a read is a bare 404; deleting one is a success.
Auth methods and binding rules need `acl:read` to read and `acl:write` to write.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from agent.acl.auth_methods import TYPES, ConfigError, Method, parse_method
from agent.acl.binding import BIND_TYPES, BindError, check_rule, check_selector
from agent.acl.jwks import JWKSCache, JWKSError
from agent.durations import DurationError, format_nanoseconds, parse_nanoseconds
from agent.http.acl_common import ACLPorts, _body, _ready
from agent.http.app import HTTPError, Request, Response, json_response
from agent.http.authz import require
from agent.http.blocking import blocking_query, read_headers
from agent.http.bodies import ACL_AUTH_METHOD, ACL_BINDING_RULE
from agent.state.commands import (
    ACLAuthMethodDelete,
    ACLAuthMethodSet,
    ACLBindingRuleDelete,
    ACLBindingRuleSet,
    AuthMethodRecord,
    BindingRuleRecord,
    typed,
)

_METHOD_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,128}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Consul's acl.token_max_expiration_ttl and acl.token_min_expiration_ttl defaults.
MAX_TOKEN_TTL = 24 * 3600 * 1_000_000_000
MIN_TOKEN_TTL = 60 * 1_000_000_000


@dataclass
class AuthRuntime:
    """What logins keep between requests: parsed methods (by name, while the record's
    ModifyIndex holds) and the JWKS documents fetched for them."""

    jwks: JWKSCache = field(default_factory=JWKSCache)
    _parsed: dict[str, tuple[int, Method]] = field(default_factory=dict)

    def method(self, record: dict) -> Method:
        """The parsed form of a stored method (its Config was checked when written)."""
        cached = self._parsed.get(record["Name"])
        if cached is not None and cached[0] == record["ModifyIndex"]:
            return cached[1]
        try:
            parsed = parse_method(record)
        except ConfigError as exc:  # stored before a check existed (an older snapshot)
            raise _rpc(f"Invalid Auth Method: {exc}") from None
        if len(self._parsed) > 1024:
            self._parsed.clear()
        self._parsed[record["Name"]] = (record["ModifyIndex"], parsed)
        return parsed


def _rpc(message: str) -> HTTPError:
    """An error Consul's ACL RPC returns: its HTTP layer answers it as a 500 with the text."""
    return HTTPError(500, message)


# ---------------------------------------------------------------------- auth methods


def render_method(method: dict, stub: bool = False) -> dict:
    """Consul's JSON for a method (MaxTokenTTL first, as its MarshalJSON puts it)."""
    out: dict[str, Any] = {}
    if method.get("MaxTokenTTL"):
        out["MaxTokenTTL"] = format_nanoseconds(method["MaxTokenTTL"])
    out["Name"] = method["Name"]
    out["Type"] = method["Type"]
    for key in ("DisplayName", "Description", "TokenLocality"):
        if method.get(key):
            out[key] = method[key]
    if not stub:
        out["Config"] = method.get("Config")
    out["CreateIndex"] = method.get("CreateIndex", 0)
    out["ModifyIndex"] = method.get("ModifyIndex", 0)
    return out


def _ttl(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        if not value:
            return 0
        try:
            return parse_nanoseconds(value)
        except DurationError as exc:
            raise HTTPError(400, f"AuthMethod decoding failed: {exc}") from None
    return int(value)


async def _check_method(runtime: AuthRuntime, ports: ACLPorts, body: dict) -> dict:
    """The record to store, checked as Consul's AuthMethodSet checks it."""
    name = str(body.get("Name") or "")
    if not name:
        raise _rpc("Invalid Auth Method: no Name is set")
    if not _METHOD_NAME.match(name):
        raise _rpc(
            "Invalid Auth Method: invalid Name. Only alphanumeric characters, '-' and '_' "
            "are allowed"
        )
    kind = str(body.get("Type") or "")
    existing = ports.store.acl.auth_methods.get(name)
    if existing is not None:
        if not kind:
            kind = existing["Type"]
        elif kind != existing["Type"]:
            raise _rpc("the Type field of an Auth Method is immutable")
    if kind not in TYPES:
        raise _rpc(f"Invalid Auth Method: Type should be one of: [{' '.join(TYPES)}]")
    ttl = _ttl(body.get("MaxTokenTTL"))
    if ttl > MAX_TOKEN_TTL:
        raise _rpc(
            f"MaxTokenTTL {format_nanoseconds(ttl)} cannot be more than "
            f"{format_nanoseconds(MAX_TOKEN_TTL)}"
        )
    if ttl and ttl < MIN_TOKEN_TTL:
        raise _rpc(
            f"MaxTokenTTL {format_nanoseconds(ttl)} cannot be less than "
            f"{format_nanoseconds(MIN_TOKEN_TTL)}"
        )
    locality = str(body.get("TokenLocality") or "")
    if locality not in ("", "local", "global"):
        raise _rpc("Invalid Auth Method: TokenLocality should be one of 'local' or 'global'")
    record = {
        "Name": name,
        "Type": kind,
        "DisplayName": str(body.get("DisplayName") or ""),
        "Description": str(body.get("Description") or ""),
        "MaxTokenTTL": ttl,
        "TokenLocality": locality,
        "Config": body.get("Config"),
    }
    try:
        parsed = parse_method(record)
    except ConfigError as exc:
        raise _rpc(f"Invalid Auth Method: {exc}") from None
    if parsed.jwt is not None and parsed.jwt.jwks_url:
        # Consul fetches the key set on write, so a URL that cannot serve one is refused.
        try:
            await runtime.jwks.reload(parsed.jwt.jwks_url, parsed.jwt.jwks_ca_cert)
        except JWKSError as exc:
            raise _rpc(f"Invalid Auth Method: error checking JWKSURL: {exc}") from None
    return record


async def method_create(runtime: AuthRuntime, ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    return await _method_write(runtime, ports, req, "")


async def _method_write(
    runtime: AuthRuntime, ports: ACLPorts, req: Request, url_name: str
) -> Response:
    body = await _body(req, ACL_AUTH_METHOD, required=True)
    if url_name:
        if body.get("Name") and body["Name"] != url_name:
            raise HTTPError(400, "AuthMethod Name in URL and payload do not match")
        body["Name"] = url_name
    require(req, "acl", None, "write")
    record = await _check_method(runtime, ports, body)
    stored = await ports.writer.write(ACLAuthMethodSet(AuthMethod=typed(AuthMethodRecord, record)))
    return json_response(req, render_method(stored))


async def method_item(runtime: AuthRuntime, ports: ACLPorts, req: Request, name: str) -> Response:
    await _ready(req)
    if not name and req.method != "PUT":
        raise HTTPError(400, "Missing auth method name")
    if req.method == "PUT":
        return await _method_write(runtime, ports, req, name)
    acl = ports.store.acl
    if req.method == "DELETE":
        require(req, "acl", None, "write")
        if name in acl.auth_methods:
            await ports.writer.write(ACLAuthMethodDelete(Name=name))
        return json_response(req, True)
    require(req, "acl", None, "read")

    def query() -> tuple[int, Any]:
        return ports.store.table_index("acl-auth-methods"), acl.auth_methods.get(name)

    index, method, opts = await blocking_query(req, [("table", "acl-auth-methods")], query)
    headers = read_headers(req, index, opts.consistency)
    if method is None:
        return Response(b"", 404, headers=headers)
    return json_response(req, render_method(method), headers)


async def method_list(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "read")
    acl = ports.store.acl

    def query() -> tuple[int, Any]:
        methods = sorted(acl.auth_methods.values(), key=lambda m: m["Name"])
        stubs = [render_method(m, stub=True) for m in methods]
        return ports.store.table_index("acl-auth-methods"), stubs

    index, stubs, opts = await blocking_query(req, [("table", "acl-auth-methods")], query)
    return json_response(req, stubs, read_headers(req, index, opts.consistency))


# ---------------------------------------------------------------------- binding rules


def render_rule(rule: dict) -> dict:
    out = {
        "ID": rule["ID"],
        "Description": rule.get("Description") or "",
        "AuthMethod": rule["AuthMethod"],
        "Selector": rule.get("Selector") or "",
        "BindType": rule.get("BindType") or "",
        "BindName": rule.get("BindName") or "",
    }
    if rule.get("BindVars"):
        out["BindVars"] = rule["BindVars"]
    out["CreateIndex"] = rule.get("CreateIndex", 0)
    out["ModifyIndex"] = rule.get("ModifyIndex", 0)
    return out


def _check_rule(runtime: AuthRuntime, ports: ACLPorts, body: dict) -> dict:
    """The rule to store, checked as Consul's BindingRuleSet checks it."""
    acl = ports.store.acl
    ident = str(body.get("ID") or "")
    method_name = str(body.get("AuthMethod") or "")
    if not ident:
        ident = str(uuid.uuid4())
    else:
        if not _UUID.match(ident):
            raise _rpc("Binding Rule ID invalid UUID")
        existing = acl.binding_rules.get(ident)
        if existing is None:
            raise _rpc(f"cannot find binding rule {ident}")
        if not method_name:
            method_name = existing["AuthMethod"]
        elif method_name != existing["AuthMethod"]:
            raise _rpc("the AuthMethod field of an Binding Rule is immutable")
    if not method_name:
        raise _rpc("Invalid Binding Rule: no AuthMethod is set")
    record = acl.auth_methods.get(method_name)
    if record is None:
        raise _rpc(f'cannot find auth method with name "{method_name}"')
    blank = runtime.method(record).blank_identity()
    selector = str(body.get("Selector") or "")
    if selector:
        try:
            check_selector(selector, blank)
        except BindError as exc:
            raise _rpc(f"invalid Binding Rule: Selector is invalid: {exc}") from None
    bind_type = str(body.get("BindType") or "")
    bind_name = str(body.get("BindName") or "")
    if not bind_type:
        raise _rpc("Invalid Binding Rule: no BindType is set")
    if not bind_name:
        raise _rpc("Invalid Binding Rule: no BindName is set")
    if bind_type not in BIND_TYPES:
        raise _rpc(f'Invalid Binding Rule: unknown BindType "{bind_type}"')
    bind_vars = body.get("BindVars") or None
    try:
        check_rule(bind_type, bind_name, bind_vars, list(blank.variables))
    except BindError as exc:
        raise _rpc(f"Invalid Binding Rule: invalid BindName: {exc}") from None
    return {
        "ID": ident,
        "Description": str(body.get("Description") or ""),
        "AuthMethod": method_name,
        "Selector": selector,
        "BindType": bind_type,
        "BindName": bind_name,
        "BindVars": bind_vars,
    }


async def _rule_write(runtime: AuthRuntime, ports: ACLPorts, req: Request, url_id: str) -> Response:
    body = await _body(req, ACL_BINDING_RULE, required=True)
    if body.get("ID") and body["ID"] != url_id:
        raise HTTPError(400, "BindingRule ID in URL and payload do not match")
    body["ID"] = url_id
    require(req, "acl", None, "write")
    rule = _check_rule(runtime, ports, body)
    stored = await ports.writer.write(ACLBindingRuleSet(BindingRule=typed(BindingRuleRecord, rule)))
    return json_response(req, render_rule(stored))


async def rule_create(runtime: AuthRuntime, ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    return await _rule_write(runtime, ports, req, "")


async def rule_item(runtime: AuthRuntime, ports: ACLPorts, req: Request, ident: str) -> Response:
    await _ready(req)
    if not ident and req.method != "PUT":
        raise HTTPError(400, "Missing binding rule ID")
    if req.method == "PUT":
        return await _rule_write(runtime, ports, req, ident)
    acl = ports.store.acl
    if req.method == "DELETE":
        require(req, "acl", None, "write")
        if ident in acl.binding_rules:
            await ports.writer.write(ACLBindingRuleDelete(ID=ident))
        return json_response(req, True)
    require(req, "acl", None, "read")

    def query() -> tuple[int, Any]:
        return ports.store.table_index("acl-binding-rules"), acl.binding_rules.get(ident)

    index, rule, opts = await blocking_query(req, [("table", "acl-binding-rules")], query)
    headers = read_headers(req, index, opts.consistency)
    if rule is None:
        return Response(b"", 404, headers=headers)
    return json_response(req, render_rule(rule), headers)


async def rule_list(ports: ACLPorts, req: Request, _: str) -> Response:
    await _ready(req)
    require(req, "acl", None, "read")
    acl = ports.store.acl
    method = req.get("authmethod") or ""

    def query() -> tuple[int, Any]:
        rules = sorted(acl.binding_rules.values(), key=lambda r: r["ID"])
        if method:
            rules = [r for r in rules if r["AuthMethod"] == method]
        return ports.store.table_index("acl-binding-rules"), [render_rule(r) for r in rules]

    index, rules, opts = await blocking_query(req, [("table", "acl-binding-rules")], query)
    return json_response(req, rules, read_headers(req, index, opts.consistency))
