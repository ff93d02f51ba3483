"""The FSM commands that change the ACL tables (`agent/state/acl.py`).

Commands (`agent/state/commands.py`): `ACLInit` (the built-in policy and tokens),
`ACLBootstrap`, `ACLTokenSet`/`ACLTokenDelete`/`ACLTokenBatchDelete`,
`ACLPolicySet`/`ACLPolicyDelete`, `ACLRoleSet`/`ACLRoleDelete`,
`ACLAuthMethodSet`/`ACLAuthMethodDelete`, `ACLBindingRuleSet`/`ACLBindingRuleDelete`. The
tables keep records as maps (`commands.as_record`).

Everything random or time-dependent arrives inside the command, so applying one is a pure
function of the log. A command that fails a state-dependent check returns a `Refusal`; a set
(and bootstrap) returns a copy of the stored record, so a server that forwarded the write to
the leader can answer before its own copy of the log has caught up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.state import commands as c
from agent.state.acl import (
    ANONYMOUS_ACCESSOR,
    ANONYMOUS_SECRET,
    BUILTIN_POLICY_IDS,
    ACLTables,
)
from agent.state.results import Refusal

if TYPE_CHECKING:
    from agent.state.store import Store


def apply_acl(store: Store, index: int, cmd: Any) -> Any:
    """Apply one ACL command (one of `commands.ACL_COMMANDS`)."""
    acl = store.acl
    if isinstance(cmd, c.ACLInit):
        return _init(store, index, cmd)
    if isinstance(cmd, c.ACLBootstrap):
        reset = cmd.ResetIndex or 0
        if acl.bootstrap_index and reset and reset != acl.bootstrap_index:
            return Refusal("Invalid ACL bootstrap reset index", "invalid")
        if acl.bootstrap_index and reset != acl.bootstrap_index:
            return Refusal(
                "Permission denied: ACL bootstrap no longer allowed "
                f"(reset index: {acl.bootstrap_index})",
                "denied",
            )
        acl.bootstrap_index = index
        return _put_token(store, index, c.as_record(cmd.Token))
    if isinstance(cmd, c.ACLTokenSet):
        token = c.as_record(cmd.Token)
        problem = _token_problem(acl, token, bool(cmd.Login))
        if problem:
            return problem
        return _put_token(store, index, token)
    if isinstance(cmd, c.ACLTokenDelete):
        _delete_tokens(store, index, [cmd.AccessorID])
        return True
    if isinstance(cmd, c.ACLTokenBatchDelete):
        _delete_tokens(store, index, cmd.AccessorIDs)
        return True
    if isinstance(cmd, c.ACLAuthMethodSet | c.ACLAuthMethodDelete):
        return _apply_auth_method(store, index, cmd)
    if isinstance(cmd, c.ACLBindingRuleSet | c.ACLBindingRuleDelete):
        return _apply_binding_rule(store, index, cmd)
    if isinstance(cmd, c.ACLPolicySet):
        policy = c.as_record(cmd.Policy)
        owner = acl.policy_names.get(policy["Name"])
        if owner is not None and owner != policy["ID"]:
            return Refusal(
                f"Invalid Policy: A Policy with Name {policy['Name']!r} already exists", "invalid"
            )
        old = acl.policies.get(policy["ID"])
        if old is not None:
            acl.policy_names.pop(old["Name"], None)
        policy["CreateIndex"] = old["CreateIndex"] if old is not None else index
        policy["ModifyIndex"] = index
        acl.policies[policy["ID"]] = policy
        acl.policy_names[policy["Name"]] = policy["ID"]
        store._bump("acl-policies", index)
        return dict(policy)
    if isinstance(cmd, c.ACLPolicyDelete):
        if cmd.ID in BUILTIN_POLICY_IDS:
            name = acl.policies.get(cmd.ID, {}).get("Name", cmd.ID)
            return Refusal(
                f"Delete operation not permitted on the builtin {name} policy", "invalid"
            )
        old = acl.policies.pop(cmd.ID, None)
        if old is not None:
            acl.policy_names.pop(old["Name"], None)
            store._bump("acl-policies", index)
        return True
    if isinstance(cmd, c.ACLRoleSet):
        role = c.as_record(cmd.Role)
        owner = acl.role_names.get(role["Name"])
        if owner is not None and owner != role["ID"]:
            return Refusal(
                f"Invalid Role: A Role with Name {role['Name']!r} already exists", "invalid"
            )
        for link in role["Policies"]:
            if link["ID"] not in acl.policies:
                return Refusal(f"cannot find policy {link['ID']}", "invalid")
        old = acl.roles.get(role["ID"])
        if old is not None:
            acl.role_names.pop(old["Name"], None)
        role["CreateIndex"] = old["CreateIndex"] if old is not None else index
        role["ModifyIndex"] = index
        acl.roles[role["ID"]] = role
        acl.role_names[role["Name"]] = role["ID"]
        store._bump("acl-roles", index)
        return dict(role)
    if isinstance(cmd, c.ACLRoleDelete):
        old = acl.roles.pop(cmd.ID, None)
        if old is not None:
            acl.role_names.pop(old["Name"], None)
            store._bump("acl-roles", index)
        return True
    return Refusal(f"unknown ACL command {type(cmd).__name__}", "failed")


def _token_problem(acl: ACLTables, token: dict, login: bool) -> Refusal | None:
    owner = acl.by_secret.get(token["SecretID"])
    if owner is not None and owner != token["AccessorID"]:
        return Refusal("Invalid Token: SecretID is already in use", "invalid")
    if token["SecretID"] in (ANONYMOUS_SECRET,) and token["AccessorID"] != ANONYMOUS_ACCESSOR:
        return Refusal("Invalid Token: SecretID is already in use", "invalid")
    old = acl.tokens.get(token["AccessorID"])
    if old is not None and old["SecretID"] != token["SecretID"]:
        return Refusal("Cannot change a token's SecretID", "invalid")
    method = token.get("AuthMethod")
    if method and method not in acl.auth_methods:
        # A login racing the method's deletion: the cascade would have missed this token.
        return Refusal(f"No such auth method with Name: {method}", "invalid")
    policies = [p for p in token.get("Policies") or [] if p["ID"] in acl.policies]
    roles = [r for r in token.get("Roles") or [] if r["ID"] in acl.roles]
    if login:
        # Consul's ProhibitUnprivileged: links that vanished since the login bound them are
        # kept, but a token left with nothing would be useless (ErrTokenHasNoPrivileges).
        identities = [token.get(f) for f in ("ServiceIdentities", "NodeIdentities")]
        if not (policies or roles or any(identities) or token.get("TemplatedPolicies")):
            return Refusal("Permission denied", "denied")
        return None
    for link in token.get("Policies") or []:
        if link["ID"] not in acl.policies:
            return Refusal(f"No such ACL policy with ID {link['ID']!r}", "invalid")
    for link in token.get("Roles") or []:
        if link["ID"] not in acl.roles:
            return Refusal(f"No such ACL role with ID {link['ID']!r}", "invalid")
    return None


def _delete_tokens(store: Store, index: int, accessors: list[str]) -> None:
    acl = store.acl
    changed = False
    for accessor in accessors:
        old = acl.tokens.pop(accessor, None)
        if old is not None:
            acl.by_secret.pop(old["SecretID"], None)
            changed = True
    if changed:
        store._bump("acl-tokens", index)


def _apply_auth_method(
    store: Store, index: int, cmd: c.ACLAuthMethodSet | c.ACLAuthMethodDelete
) -> Any:
    acl = store.acl
    if isinstance(cmd, c.ACLAuthMethodSet):
        method = c.as_record(cmd.AuthMethod)
        old = acl.auth_methods.get(method["Name"])
        if old is not None and old["Type"] != method["Type"]:
            return Refusal("the Type field of an Auth Method is immutable", "invalid")
        method["CreateIndex"] = old["CreateIndex"] if old is not None else index
        method["ModifyIndex"] = index
        acl.auth_methods[method["Name"]] = method
        store._bump("acl-auth-methods", index)
        return dict(method)
    if acl.auth_methods.pop(cmd.Name, None) is None:
        return True
    store._bump("acl-auth-methods", index)
    rules = [r["ID"] for r in acl.binding_rules.values() if r["AuthMethod"] == cmd.Name]
    for ident in rules:
        del acl.binding_rules[ident]
    if rules:
        store._bump("acl-binding-rules", index)
    made = [t["AccessorID"] for t in acl.tokens.values() if t.get("AuthMethod") == cmd.Name]
    _delete_tokens(store, index, made)
    return True


def _apply_binding_rule(
    store: Store, index: int, cmd: c.ACLBindingRuleSet | c.ACLBindingRuleDelete
) -> Any:
    acl = store.acl
    if isinstance(cmd, c.ACLBindingRuleDelete):
        if acl.binding_rules.pop(cmd.ID, None) is not None:
            store._bump("acl-binding-rules", index)
        return True
    rule = c.as_record(cmd.BindingRule)
    if rule["AuthMethod"] not in acl.auth_methods:
        return Refusal("failed inserting acl binding rule: auth method not found", "invalid")
    old = acl.binding_rules.get(rule["ID"])
    if old is not None and old["AuthMethod"] != rule["AuthMethod"]:
        return Refusal("the AuthMethod field of an Binding Rule is immutable", "invalid")
    rule["CreateIndex"] = old["CreateIndex"] if old is not None else index
    rule["ModifyIndex"] = index
    acl.binding_rules[rule["ID"]] = rule
    store._bump("acl-binding-rules", index)
    return dict(rule)


def _put_token(store: Store, index: int, token: dict) -> dict:
    acl = store.acl
    token = dict(token)
    old = acl.tokens.get(token["AccessorID"])
    if old is not None:
        acl.by_secret.pop(old["SecretID"], None)
        token["CreateTime"] = old.get("CreateTime", token.get("CreateTime"))
    token["CreateIndex"] = old["CreateIndex"] if old is not None else index
    token["ModifyIndex"] = index
    acl.tokens[token["AccessorID"]] = token
    acl.by_secret[token["SecretID"]] = token["AccessorID"]
    store._bump("acl-tokens", index)
    return dict(token)


def _init(store: Store, index: int, cmd: c.ACLInit) -> bool:
    """Create whatever built-in records are missing; never overwrite existing ones."""
    acl = store.acl
    for policy in map(c.as_record, cmd.Policies or []):
        if policy["ID"] not in acl.policies and policy["Name"] not in acl.policy_names:
            acl.policies[policy["ID"]] = {**policy, "CreateIndex": index, "ModifyIndex": index}
            acl.policy_names[policy["Name"]] = policy["ID"]
            store._bump("acl-policies", index)
    for token in map(c.as_record, cmd.Tokens or []):
        if token["AccessorID"] in acl.tokens or token["SecretID"] in acl.by_secret:
            continue
        _put_token(store, index, token)
        # Consul: an initial management token uses up the one-time bootstrap.
        if token["AccessorID"] == cmd.InitialManagement and not acl.bootstrap_index:
            acl.bootstrap_index = index
    return True
