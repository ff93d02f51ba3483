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
        self._keys: dict[str, str] = {}  # the ID's hex digits, lowercased -> ID
        self._ordered: list[Query] | None = None  # all(), until the next write

    def get(self, query_id: str) -> Query | None:
        return self.by_id.get(query_id)

    def lookup(self, query_id: str) -> Query | None:
        """A query by ID as Consul's UUID index finds it: by the hex digits, in any case."""
        found = self.by_id.get(query_id)
        if found is not None:
            return found
        stored = self._keys.get(_uuid_key(query_id))
        return self.by_id.get(stored) if stored is not None else None

    def all(self) -> list[Query]:
        """Every query, ordered by ID (as Consul's list is); a fresh list each call."""
        if self._ordered is None:
            self._ordered = [self.by_id[k] for k in sorted(self.by_id)]
        return list(self._ordered)

    def __len__(self) -> int:
        return len(self.by_id)

    def by_name(self, name: str) -> Query | None:
        query_id = self._names.get(name.lower())
        return self.by_id.get(query_id) if query_id is not None else None

    def bound_to(self, session_id: str) -> Iterator[Query]:
        return (q for q in self.all() if q["Session"] == session_id)

    def put(self, query: Query) -> None:
        self._forget(query["ID"])
        self.by_id[query["ID"]] = query
        self._keys[_uuid_key(query["ID"])] = query["ID"]
        if query["Name"]:
            self._names[str(query["Name"]).lower()] = query["ID"]
        self._ordered = None

    def delete(self, query_id: str) -> bool:
        found = self._forget(query_id)
        self._ordered = None
        return found

    def _forget(self, query_id: str) -> bool:
        old = self.by_id.pop(query_id, None)
        if old is None:
            return False
        self._keys.pop(_uuid_key(query_id), None)
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
