"""The FSM commands that change the ACL tables (`agent/state/acl.py`).

Commands (`agent/state/commands.py`): `ACLInit` (the built-in policy and tokens),
`ACLBootstrap`, `ACLTokenSet`/`ACLTokenDelete`, `ACLPolicySet`/`ACLPolicyDelete`,
`ACLRoleSet`/`ACLRoleDelete`. The tables keep records as maps (`commands.as_record`).

Everything random or time-dependent arrives inside the command, so applying one is a pure
function of the log. A command that fails a state-dependent check returns a `Refusal`; a set
(and bootstrap) returns a copy of the stored record, so a server that forwarded the write to
the leader can answer before its own copy of the log has caught up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.state import commands as c
from agent.state.acl import ANONYMOUS_ACCESSOR, ANONYMOUS_SECRET, MANAGEMENT_POLICY_ID, ACLTables
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
        problem = _token_problem(acl, token)
        if problem:
            return Refusal(problem, "invalid")
        return _put_token(store, index, token)
    if isinstance(cmd, c.ACLTokenDelete):
        old = acl.tokens.pop(cmd.AccessorID, None)
        if old is not None:
            acl.by_secret.pop(old["SecretID"], None)
            store._bump("acl-tokens", index)
        return True
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
        if cmd.ID == MANAGEMENT_POLICY_ID:
            return Refusal(
                "Delete of the builtin global-management policy is not permitted", "invalid"
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


def _token_problem(acl: ACLTables, token: dict) -> str | None:
    owner = acl.by_secret.get(token["SecretID"])
    if owner is not None and owner != token["AccessorID"]:
        return "Invalid Token: SecretID is already in use"
    if token["SecretID"] in (ANONYMOUS_SECRET,) and token["AccessorID"] != ANONYMOUS_ACCESSOR:
        return "Invalid Token: SecretID is already in use"
    old = acl.tokens.get(token["AccessorID"])
    if old is not None and old["SecretID"] != token["SecretID"]:
        return "Cannot change a token's SecretID"
    for link in token.get("Policies") or []:
        if link["ID"] not in acl.policies:
            return f"No such ACL policy with ID {link['ID']!r}"
    for link in token.get("Roles") or []:
        if link["ID"] not in acl.roles:
            return f"No such ACL role with ID {link['ID']!r}"
    return None


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
