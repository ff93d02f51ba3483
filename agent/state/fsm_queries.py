"""The FSM commands that change the prepared-queries table (`agent/state/queries.py`).

`PreparedQuerySet` creates or updates a query; the checks that depend on the state are made
here, at apply time, as Consul's state store makes them inside its write transaction, so
every server refuses the same writes with the same words: a name (any case) another query
holds, a second unnamed template, a name that is another query's ID, a session that does not
exist, a template that does not compile. `PreparedQueryDelete` of an unknown ID is a no-op.
A session's destruction deletes the queries bound to it, in the same apply
(`drop_session_queries`, called by `agent/state/fsm_sessions.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.queries.definition import QueryError, complete, id_problem, is_template
from agent.queries.template import MISSING_ID, compile_template, is_uuid
from agent.state import commands as c
from agent.state.results import Refusal

if TYPE_CHECKING:
    from agent.state.store import Store

QUERY_COMMANDS = (c.PreparedQuerySet, c.PreparedQueryDelete)


def apply_query(store: Store, index: int, cmd: Any) -> Any:
    if isinstance(cmd, c.PreparedQuerySet):
        return _set(store, index, complete(c.as_record(cmd.Query)))
    if isinstance(cmd, c.PreparedQueryDelete):
        old = store.queries.lookup(cmd.ID)
        if old is not None and store.queries.delete(old["ID"]):
            store._bump("prepared-queries", index)
        return True
    return Refusal(f"unknown prepared query command {type(cmd).__name__}", "failed")


def set_problem(store: Store, query: dict[str, Any]) -> str | None:
    """Why `query` may not be written to the table as it is now (Consul's words), or None."""
    table = store.queries
    query_id, name = query["ID"], query["Name"]
    if not query_id:
        return MISSING_ID
    if name:
        other = table.by_name(name)
        if other is not None and other["ID"] != query_id:
            return f"name '{name}' aliases an existing query name"
    elif is_template(query):
        for other in table.all():
            if is_template(other) and not other["Name"] and other["ID"] != query_id:
                return "a query template with an empty name already exists"
    if is_uuid(name) and table.lookup(name) is not None:
        return f"name '{name}' aliases an existing query ID"
    session = query["Session"]
    if session:
        unreadable = id_problem(session)  # the sessions' ID index is a UUID index too
        if unreadable is not None:
            return f"invalid session: {unreadable}"
        if store.sessions.get(session) is None:
            return f"invalid session {_go_quote(session)}"
    if is_template(query):
        try:
            compile_template(query)
        except QueryError as exc:
            return exc.message
    return None


def _go_quote(text: str) -> str:
    """A string as Go's %#v prints it (strconv.Quote)."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char < " " or char == "\x7f":
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _set(store: Store, index: int, query: dict[str, Any]) -> Any:
    old = store.queries.lookup(query["ID"]) if query["ID"] else None
    if old is not None:  # the same UUID in another case is the same query, as in Consul
        query["ID"] = old["ID"]
    why = set_problem(store, query)
    if why is not None:
        return Refusal(why, "failed")
    query["CreateIndex"] = old["CreateIndex"] if old is not None else index
    query["ModifyIndex"] = index
    store.queries.put(query)
    store._bump("prepared-queries", index)
    return True


def drop_session_queries(store: Store, index: int, session_id: str) -> None:
    """The session is gone: so are the queries bound to it (as Consul's session delete)."""
    doomed = [q["ID"] for q in store.queries.bound_to(session_id)]
    for query_id in doomed:
        store.queries.delete(query_id)
    if doomed:
        store._bump("prepared-queries", index)
