"""Who may see and change a prepared query, as Consul's endpoint and ACL filter decide.

    require_write(req, query)          # 403 unless query:write on its prefix (if it has one)
    shown = readable(req, queries)     # what a list shows: filtered, tokens redacted
    shown = readable_one(req, query)   # a GET by ID or an explain: 403 when filtered out

A query with a name, or any template, is guarded by `query` rules on its name (an unnamed
template's is ""); an unnamed plain query by nothing but its ID: anyone who knows the ID may
read or change it, and only a token with `acl:write` sees it in a list. A reader without
`acl:write` sees a stored `Token` as `<hidden>`. With ACLs disabled everything is visible.
Shared by the CRUD area (`agent/http/query.py`) and execute/explain (`query_exec.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.acl.enforce import decide, denied_message
from agent.http.app import HTTPError, Request
from agent.http.authz import allowed, enabled, identity, mark_filtered
from agent.queries.definition import REDACTED, acl_prefix

PERMISSION_DENIED = "Permission denied"  # acl.ErrPermissionDenied, as reads answer it


def require_write(req: Request, query: dict[str, Any]) -> None:
    """Consul's PreparedQueryWriteAllowed on the query's prefix, when one applies."""
    if not enabled(req):
        return
    ident = identity(req)  # an unknown token is refused even where no rule applies
    prefix = acl_prefix(query)
    if prefix is not None and not allowed(req, "query", prefix, "write"):
        raise HTTPError(403, denied_message(ident, "query", prefix, "write"))


def _manages(req: Request) -> bool:
    """acl:write (a management token) sees every query and every token."""
    return not enabled(req) or decide(identity(req), "acl", None, "write")


def redacted(req: Request, query: dict[str, Any]) -> dict[str, Any]:
    if query["Token"] and not _manages(req):
        return {**query, "Token": REDACTED}
    return query


def _shown(req: Request, query: dict[str, Any]) -> bool:
    prefix = acl_prefix(query)
    return prefix is not None and allowed(req, "query", prefix, "read")


def readable(req: Request, queries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A list as the token may see it; a named query left out marks the answer filtered
    (unnamed ones are only ever listed to management tokens, silently)."""
    queries = list(queries)
    if _manages(req):
        return queries
    kept = []
    for query in queries:
        if _shown(req, query):
            kept.append(redacted(req, query))
        elif acl_prefix(query) is not None:
            mark_filtered(req)
    return kept


def readable_one(req: Request, query: dict[str, Any], by_id: bool = False) -> dict[str, Any]:
    """One query as the token may see it; 403 `Permission denied` when it may not. A query
    fetched by its ID without a prefix is shown to whoever knows the ID (`by_id`)."""
    if _manages(req):
        return query
    if (by_id and acl_prefix(query) is None) or _shown(req, query):
        return redacted(req, query)
    raise HTTPError(403, PERMISSION_DENIED)
