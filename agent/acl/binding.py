"""Binding rules: what a verified login identity turns into on the token it gets.

An auth method verifies a bearer token and yields an `Identity`: the fields a rule's
`Selector` is evaluated over (go-bexpr, `agent.filter`), and the variables a rule's `BindName`
interpolates (HIL, `${value.name}`). Each matching rule contributes one binding:

    service           -> ServiceIdentities [{ServiceName: <name>}]
    node              -> NodeIdentities [{NodeName: <name>, Datacenter: <this dc>}]
    role / policy     -> a link to the role or policy of that name, if it exists at login
    templated-policy  -> TemplatedPolicies [{TemplateName: BindName, TemplateVariables}]

As in Consul (agent/consul/auth/binder.go), a selector that fails to parse or evaluate never
matches, a computed name that is not valid for its type fails the login, and a rule is checked
on write by binding it against a blank identity whose variables all read "fake".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.acl import templated
from agent.filter import (
    Binary,
    Collection,
    FilterError,
    Match,
    Node,
    Not,
    compile_filter,
    parse,
)
from agent.queries import hil

__all__ = [
    "BIND_TYPES",
    "BindError",
    "Bindings",
    "Identity",
    "bind",
    "check_rule",
    "check_selector",
    "interpolate",
]

BIND_TYPES = ("service", "node", "role", "policy", "templated-policy")
_ROLE_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,256}$")
_POLICY_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,128}$")


class BindError(ValueError):
    """A binding rule or bind name that cannot be used; `str()` is Consul's text."""


@dataclass(frozen=True)
class Identity:
    """What an auth method verified: `fields` for selectors (nested maps, as go-bexpr walks
    the method's field struct), `variables` for `${...}` in bind names. `roots` names the
    selector roots the method offers: root -> its field names (a struct), or None (a map:
    any one key)."""

    fields: dict[str, Any]
    variables: dict[str, str]
    roots: dict[str, frozenset[str] | None] = field(default_factory=dict)


@dataclass
class Bindings:
    service_identities: list[dict] = field(default_factory=list)
    node_identities: list[dict] = field(default_factory=list)
    roles: list[dict] = field(default_factory=list)
    policies: list[dict] = field(default_factory=list)
    templated_policies: list[dict] = field(default_factory=list)

    def none(self) -> bool:
        return not (
            self.service_identities
            or self.node_identities
            or self.roles
            or self.policies
            or self.templated_policies
        )


# ---------------------------------------------------------------------- ${...} templates


def interpolate(template: str, variables: dict[str, str], lowercase: bool = True) -> str:
    """Consul's InterpolateHIL: the template evaluated as HIL (agent.queries.hil) with the
    variables as its only scope (values lower-cased, as login does; no functions). Raises
    BindError with HIL's message (an unknown variable, a syntax error)."""
    if "${" not in template:
        return template  # Consul skips HIL for a template without interpolations
    scope = {k: v.lower() if lowercase else v for k, v in variables.items()}
    try:
        parts = hil.parse(template)
        hil.check_identifiers(parts, scope, {})
        return hil.render(parts, scope, {})
    except hil.HILError as exc:
        raise BindError(str(exc)) from None


def _quoted(text: str) -> str:
    """Go's %q, for the ASCII names it is used on here."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _valid_name(bind_type: str) -> Callable[[str], bool]:
    if bind_type in ("service", "node"):
        return templated.valid_identity_name
    if bind_type == "policy":
        return lambda name: bool(_POLICY_NAME.match(name))
    return lambda name: bool(_ROLE_NAME.match(name))


def _bind_name(template: str, variables: dict[str, str], valid: Callable[[str], bool]) -> str:
    try:
        computed = interpolate(template, variables)
    except BindError as exc:
        raise BindError(f"error interpreting template: {exc}") from None
    if not valid(computed):
        raise BindError(f"invalid bind name: {_quoted(computed)}")
    return computed


def _templated_policy(name: str, bind_vars: dict | None, variables: dict[str, str]) -> dict:
    """Consul's generateTemplatedPolicies: a builtin template, its `name` variable
    interpolated, checked against the template's schema (agent.acl.templated)."""
    template = templated.lookup(name)
    if template is None:
        raise BindError(
            "Bind name for templated-policy bind type does not match existing template "
            f"name: {name}"
        )
    values: dict[str, str] | None = None
    if bind_vars is not None:
        values = {}
        if bind_vars.get("name"):
            try:
                values["name"] = interpolate(str(bind_vars["name"]), variables)
            except BindError as exc:
                raise BindError(f"failed to interpret templated policy variables: {exc}") from None
    problem = templated.validate(template, values)
    if problem is not None:
        raise BindError(f"templated policy failed validation: {problem}")
    out: dict[str, Any] = {"TemplateID": template.id, "TemplateName": name}
    if values is not None:
        out["TemplateVariables"] = values
    return out


def check_rule(
    bind_type: str, bind_name: str, bind_vars: dict | None, variable_names: list[str]
) -> None:
    """Consul's IsValidBindingRule: the rule, bound against an identity whose variables all
    read "fake", must give a valid name (or templated policy). Raises BindError."""
    fake = dict.fromkeys(variable_names, "fake")
    try:
        if bind_type == "templated-policy":
            _templated_policy(bind_name, bind_vars, fake)
        elif bind_type in BIND_TYPES:
            _bind_name(bind_name, fake, _valid_name(bind_type))
        else:
            raise BindError(f"invalid Binding Rule: unknown BindType {_quoted(bind_type)}")
    except BindError as exc:
        if bind_type not in BIND_TYPES:
            raise
        raise BindError(f'failed to validate bindType "{bind_type}": {exc}') from None


# ---------------------------------------------------------------------- selectors


def _selectors(node: Node, bound: frozenset[str]) -> list[tuple[str, ...]]:
    """Every selector path an expression reads, except names a collection binds."""
    if isinstance(node, Match):
        paths = [node.selector.path]
    elif isinstance(node, Binary):
        return [p for operand in node.operands for p in _selectors(operand, bound)]
    elif isinstance(node, Not):
        return _selectors(node.operand, bound)
    elif isinstance(node, Collection):
        names = {n for n in (node.default, node.index, node.value) if n}
        return [node.selector.path, *_selectors(node.inner, bound | names)]
    else:
        return []
    return [p for p in paths if p and p[0] not in bound]


def check_selector(selector: str, identity: Identity) -> None:
    """A selector must parse and name only fields the method offers (go-bexpr checks its
    selectors against the method's field struct). Raises BindError."""
    try:
        compile_filter(selector)
        tree = parse(selector)
    except FilterError as exc:
        raise BindError(str(exc)) from None
    for path in _selectors(tree, frozenset()):
        root = path[0]
        if root not in identity.roots:
            raise BindError(f'Selector "{".".join(path)}" is not valid')
        allowed = identity.roots[root]
        # A map root (None) takes any one key; a struct root takes only its fields.
        ok = len(path) <= 2 and (allowed is None or len(path) == 1 or path[1] in allowed)
        if not ok:
            raise BindError(f'Selector "{".".join(path)}" is not valid')


def _matches(selector: str, fields: dict[str, Any]) -> bool:
    if not selector:
        return True  # catch-all
    try:
        return compile_filter(selector).matches(fields)
    except FilterError:
        return False  # a selector that cannot be evaluated never matches (Consul's)


# ---------------------------------------------------------------------- login


def bind(
    rules: list[dict],
    identity: Identity,
    datacenter: str,
    role_by_name: Callable[[str], dict | None],
    policy_by_name: Callable[[str], dict | None],
) -> Bindings:
    """What the matching rules grant `identity`. Raises BindError for a computed name that
    is not valid (the login fails, as in Consul)."""
    out = Bindings()
    variables = identity.variables
    for rule in rules:
        if not _matches(rule.get("Selector") or "", identity.fields):
            continue
        kind, template = rule.get("BindType") or "", rule.get("BindName") or ""
        if kind == "templated-policy":
            out.templated_policies.append(
                _templated_policy(template, rule.get("BindVars"), variables)
            )
            continue
        name = _bind_name(template, variables, _valid_name(kind))
        if kind == "service":
            if {"ServiceName": name} not in out.service_identities:
                out.service_identities.append({"ServiceName": name})
        elif kind == "node":
            node = {"NodeName": name, "Datacenter": datacenter}
            if node not in out.node_identities:
                out.node_identities.append(node)
        elif kind == "role":
            role = role_by_name(name)
            if role is not None and {"ID": role["ID"]} not in out.roles:
                out.roles.append({"ID": role["ID"]})
        elif kind == "policy":
            policy = policy_by_name(name)
            if policy is not None and {"ID": policy["ID"]} not in out.policies:
                out.policies.append({"ID": policy["ID"]})
    return out
