"""Read the live config entries, prepared queries, auth methods, binding rules, autopilot
and CA configuration as canonical `ApiObject`s (see `gitkv.kinds`).

Only what the spec or the ownership ledger names is read: one list request per config-entry
kind in play, one for queries, one for binding rules, one list plus one read per managed
auth method, one read per cluster setting. Everything read is kept by resource kind; ids
the spec does not want and the ledger does not own become "unmanaged" in the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gitkv.client import ConsulClient
from gitkv.kinds.acl_auth import (
    ACL_AUTH_METHOD,
    ACL_BINDING_RULE,
    auth_method_from_api,
    binding_rule_from_api,
)
from gitkv.kinds.config_entries import CONFIG_ENTRY, entry_from_api, split_id
from gitkv.kinds.operator import AUTOPILOT, CA, SINGLETON_ID, autopilot_from_api, ca_from_api
from gitkv.kinds.queries import PREPARED_QUERY, query_from_api
from gitkv.ledger import Ledger
from gitkv.objects import ApiObject
from gitkv.resources import Resources

__all__ = ["LiveObjects", "object_key", "read_objects"]


def object_key(kind: str, ident: str) -> str:
    """How plans and ledgers name one object across kinds: `<kind>/<id>`."""
    return f"{kind}/{ident}"


@dataclass
class LiveObjects:
    """What was read: objects by kind then id, each one's ModifyIndex and server ID (by
    `object_key`), names of unmanaged objects not read in full, and notes."""

    objects: dict[str, dict[str, ApiObject]] = field(default_factory=dict)
    indexes: dict[str, int] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    unmanaged: list[tuple[str, str]] = field(default_factory=list)
    catalog_services: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, obj: ApiObject, index: int, server_id: str = "") -> None:
        self.objects.setdefault(obj.kind, {})[obj.id] = obj
        self.indexes[object_key(obj.kind, obj.id)] = index
        if server_id:
            self.ids[object_key(obj.kind, obj.id)] = server_id


def _wanted(desired: Resources, managed: Ledger, kind: str) -> set[str]:
    return set(desired.objects_of(kind)) | set(managed.ids(kind))


def read_objects(
    client: ConsulClient, desired: Resources, managed: Ledger, acl_enabled: bool | None
) -> LiveObjects:
    out = LiveObjects()
    _read_entries(client, _wanted(desired, managed, CONFIG_ENTRY), out)
    if _wanted(desired, managed, PREPARED_QUERY):
        for raw in client.query_list():
            if raw.get("Name"):  # unnamed queries: nothing to key them by
                obj, ident, index = query_from_api(raw)
                out.add(obj, index, ident)
    if acl_enabled is not False:
        _read_auth(client, desired, managed, out)
    if _wanted(desired, managed, AUTOPILOT):
        obj, index = autopilot_from_api(client.autopilot_read())
        out.add(obj, index)
    if _wanted(desired, managed, CA):
        want = desired.objects_of(CA).get(SINGLETON_ID)
        secret_keys = [k for k, _ in want.secrets] if want is not None else []
        obj, index = ca_from_api(client.ca_config_read(), secret_keys)
        out.add(obj, index)
    if any(i.startswith("service-intentions/") for i in desired.objects_of(CONFIG_ENTRY)):
        out.catalog_services = tuple(sorted(client.catalog_services()))
    return out


def _read_entries(client: ConsulClient, wanted: set[str], out: LiveObjects) -> None:
    for kind in sorted({split_id(i)[0] for i in wanted}):
        for raw in client.config_list(kind):
            obj, index = entry_from_api(raw)
            out.add(obj, index)


def _read_auth(client: ConsulClient, desired: Resources, managed: Ledger, out: LiveObjects) -> None:
    methods = _wanted(desired, managed, ACL_AUTH_METHOD)
    if methods:
        stubs = client.acl_list("auth-methods")
        if stubs is None:
            return
        for stub in stubs:
            name = str(stub.get("Name"))
            if name not in methods:
                out.unmanaged.append((ACL_AUTH_METHOD, name))
                continue
            full = client.acl_read("auth-method", name)
            if full is not None:
                want = desired.objects_of(ACL_AUTH_METHOD).get(name)
                secret_keys = [k for k, _ in want.secrets] if want is not None else []
                obj, index = auth_method_from_api(full, secret_keys)
                out.add(obj, index)
    if _wanted(desired, managed, ACL_BINDING_RULE):
        rules = client.acl_list("binding-rules")
        if rules is not None:
            _match_rules(rules, managed, out)


def _match_rules(rules: list[Mapping], managed: Ledger, out: LiveObjects) -> None:
    """A rule the ledger remembers by ID is gitkv's under the key it was made with, even if
    edited since (the plan then changes it back); the others go by their own key."""
    by_id = {str(r.get("ID")): r for r in rules}
    claimed: set[str] = set()
    prefix = f"{ACL_BINDING_RULE}/"
    for key, rule_id in managed.object_ids.items():
        raw = by_id.get(rule_id)
        if not key.startswith(prefix) or raw is None:
            continue
        obj, ident, index = binding_rule_from_api(raw)
        out.add(ApiObject(obj.kind, key.removeprefix(prefix), obj.body), index, ident)
        claimed.add(ident)
    for raw in rules:
        obj, ident, index = binding_rule_from_api(raw)
        if ident not in claimed and obj.id not in out.objects.get(ACL_BINDING_RULE, {}):
            out.add(obj, index, ident)
