"""Apply changes to whole Consul objects, each guarded against a stale plan.

Config entries and the autopilot configuration have Consul's own check-and-set: writes and
deletes carry `?cas=<ModifyIndex seen at plan time>` (0 for a create: "must not exist"), and
Consul answers `false`, changing nothing, when the object moved. Prepared queries, auth
methods, binding rules and the CA configuration have no CAS in the API: gitkv reads the
object again right before writing it and refuses when its ModifyIndex (or existence)
differs from the plan's. That leaves a window of one round trip, the best `/v1` allows.
Secrets are resolved here, at the last moment, and only sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gitkv.client import ConsulClient
from gitkv.errors import ClusterError, StalePlanError
from gitkv.kinds.acl_auth import (
    ACL_AUTH_METHOD,
    ACL_BINDING_RULE,
    auth_method_body,
    binding_rule_body,
    binding_rule_from_api,
)
from gitkv.kinds.config_entries import CONFIG_ENTRY, entry_body, split_id
from gitkv.kinds.operator import AUTOPILOT, CA, autopilot_body, ca_body
from gitkv.kinds.queries import PREPARED_QUERY, query_body
from gitkv.objects import ApiObject
from gitkv.plan import CREATE, DELETE, Change, Plan
from gitkv.resources import SecretUnavailable

__all__ = ["ObjectApplier", "resolve_secrets"]


def resolve_secrets(obj: ApiObject) -> dict[str, str]:
    """The object's secret fields with their values (read now, sent, never kept)."""
    try:
        return {name: ref.resolve() for name, ref in obj.secrets}
    except SecretUnavailable as exc:
        raise ClusterError(f"{obj.kind} {obj.id!r}: {exc}") from exc


class ObjectApplier:
    """Applies one change at a time; `created_ids` collects the server IDs of new binding
    rules (for the ledger)."""

    def __init__(self, client: ConsulClient, plan: Plan) -> None:
        self.client = client
        self.plan = plan
        self.created_ids: dict[str, str] = {}
        self._handlers: dict[str, Callable[[Change], None]] = {
            CONFIG_ENTRY: self._entry,
            PREPARED_QUERY: self._query,
            ACL_AUTH_METHOD: self._auth_method,
            ACL_BINDING_RULE: self._binding_rule,
            AUTOPILOT: self._autopilot,
            CA: self._ca,
        }

    def handles(self, kind: str) -> bool:
        return kind in self._handlers

    def apply(self, change: Change) -> None:
        self._handlers[change.kind](change)

    # -- helpers ----------------------------------------------------------------------------

    def _index(self, change: Change) -> int:
        return 0 if change.action == CREATE else self.plan.object_indexes.get(self._key(change), 0)

    def _key(self, change: Change) -> str:
        return f"{change.kind}/{change.id}"

    def _server_id(self, change: Change) -> str:
        ident = self.plan.object_ids.get(self._key(change))
        if not ident:
            raise ClusterError(
                f"the plan has no ID for {change.kind} {change.id!r}; run `gitkv plan` again"
            )
        return ident

    def _stale(self, change: Change, what: str) -> StalePlanError:
        return StalePlanError(
            f"the cluster changed since the plan was made; refusing to apply a stale plan. "
            f"{change.kind} {change.id}: {what}. Run `gitkv plan` again.",
            (self._key(change),),
        )

    def _expect(self, change: Change, live: dict[str, Any] | None) -> None:
        """Refuse when the object's existence or ModifyIndex differs from the plan's."""
        if change.action == CREATE:
            if live is not None:
                raise self._stale(change, "it was created by someone else meanwhile")
            return
        if live is None:
            raise self._stale(change, "it was deleted meanwhile")
        if int(live.get("ModifyIndex") or 0) != self._index(change):
            raise self._stale(change, "it was modified meanwhile")

    # -- kinds --------------------------------------------------------------------------------

    def _entry(self, change: Change) -> None:
        index = self._index(change)
        if change.action == DELETE:
            kind, name = split_id(change.id)
            ok = self.client.config_delete(kind, name, index)
        else:
            body = entry_body(change.after, resolve_secrets(change.after))
            ok = self.client.config_write(body, index)
        if not ok:
            what = "it exists already" if change.action == CREATE else "it was modified meanwhile"
            raise self._stale(change, f"{what} (check-and-set index {index} refused)")

    def _query(self, change: Change) -> None:
        ident = None if change.action == CREATE else self._server_id(change)
        live = self._live_query(change.id) if ident is None else self.client.query_read(ident)
        self._expect(change, live)
        if change.action == DELETE:
            self.client.query_delete(str(ident))
            return
        self.client.query_write(query_body(change.after, resolve_secrets(change.after)), ident)

    def _live_query(self, name: str) -> dict[str, Any] | None:
        return next((q for q in self.client.query_list() if q.get("Name") == name), None)

    def _auth_method(self, change: Change) -> None:
        self._expect(change, self.client.acl_read("auth-method", change.id))
        if change.action == DELETE:
            self.client.acl_delete("auth-method", change.id)
            return
        body = auth_method_body(change.after, resolve_secrets(change.after))
        self.client.acl_write("auth-method", body, None if change.action == CREATE else change.id)

    def _binding_rule(self, change: Change) -> None:
        if change.action == CREATE:
            rules = self.client.acl_list("binding-rules") or []
            if any(binding_rule_from_api(r)[0].id == change.id for r in rules):
                raise self._stale(change, "it was created by someone else meanwhile")
            stored = self.client.acl_write("binding-rule", binding_rule_body(change.after))
            self.created_ids[self._key(change)] = str(stored.get("ID", ""))
            return
        ident = self._server_id(change)
        self._expect(change, self.client.acl_read("binding-rule", ident))
        if change.action == DELETE:
            self.client.acl_delete("binding-rule", ident)
            return
        body = {**binding_rule_body(change.after), "ID": ident}
        self.client.acl_write("binding-rule", body, ident)

    def _autopilot(self, change: Change) -> None:
        index = self._index(change)
        if not self.client.autopilot_write(autopilot_body(change.after), index):
            raise self._stale(change, f"it was modified meanwhile (check-and-set index {index})")

    def _ca(self, change: Change) -> None:
        self._expect(change, self.client.ca_config_read())
        self.client.ca_config_write(ca_body(change.after, resolve_secrets(change.after)))
