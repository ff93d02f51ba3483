"""The prepared-queries table: queries by ID, with Consul's name and session indexes.

Records are dicts with Consul's wire field names, every field present (see
`agent/queries/definition.py`), plus `CreateIndex`/`ModifyIndex`. Names are unique without
regard to case (Consul's memdb name index lowercases), which is also how a name is looked up.
Records are replaced, never changed in place, so a reader may keep one across a write.

The FSM (`agent/state/fsm_queries.py`) is the only writer; this module imports nothing of the
store or the FSM.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

QUERY_TABLES = ("prepared-queries",)

Query = dict[str, Any]


def _uuid_key(text: str) -> str:
    return text.replace("-", "").lower()


class QueryTable:
    def __init__(self) -> None:
        self.by_id: dict[str, Query] = {}
        self._names: dict[str, str] = {}  # lowercased name -> ID

    def get(self, query_id: str) -> Query | None:
        return self.by_id.get(query_id)

    def lookup(self, query_id: str) -> Query | None:
        """A query by ID as Consul's UUID index finds it: by the hex digits, in any case."""
        found = self.by_id.get(query_id)
        if found is not None:
            return found
        wanted = _uuid_key(query_id)
        return next((q for q in self.by_id.values() if _uuid_key(q["ID"]) == wanted), None)

    def all(self) -> list[Query]:
        """Every query, ordered by ID (as Consul's list is)."""
        return [self.by_id[k] for k in sorted(self.by_id)]

    def __len__(self) -> int:
        return len(self.by_id)

    def by_name(self, name: str) -> Query | None:
        query_id = self._names.get(name.lower())
        return self.by_id.get(query_id) if query_id is not None else None

    def bound_to(self, session_id: str) -> Iterator[Query]:
        return (q for q in self.all() if q["Session"] == session_id)

    def put(self, query: Query) -> None:
        old = self.by_id.get(query["ID"])
        if old is not None and old["Name"]:
            self._names.pop(str(old["Name"]).lower(), None)
        self.by_id[query["ID"]] = query
        if query["Name"]:
            self._names[str(query["Name"]).lower()] = query["ID"]

    def delete(self, query_id: str) -> bool:
        old = self.by_id.pop(query_id, None)
        if old is None:
            return False
        if old["Name"]:
            self._names.pop(str(old["Name"]).lower(), None)
        return True

    # ------------------------------------------------------------------ snapshots

    def dump(self) -> list[Query]:
        return self.all()

    @classmethod
    def load(cls, raw: list[Query] | None) -> QueryTable:
        table = cls()
        for query in raw or ():
            table.put(query)
        return table
