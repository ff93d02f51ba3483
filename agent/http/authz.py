"""ACL enforcement for one request: who is asking, may they, and filtering of lists.

    require(req, "key", key, "write")              # 403 with Consul's text when not allowed
    items = filter_items(req, items, lambda e: ("key", e["Key"]))

The decision itself is `agent.acl.enforce.decide(identity, resource, name, level)`; this module
adds the request's side: the token it carries (resolved once, then kept on the request), the
403 answer, and the `X-Consul-Results-Filtered-By-ACLs` header. `req.acl` is the agent's
`ACLRuntime`, or None when ACLs are disabled, and then everything here allows everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from agent.acl.enforce import decide, denied_message, resolve_secret
from agent.acl.resolve import ACLNotFound, Identity, token_from_request
from agent.http.app import Request
from agent.http.errors import HTTPError

if TYPE_CHECKING:
    from agent.acl.enforce import ACLRuntime

T = TypeVar("T")
_SCOPE_KEY = "acl.identity"
_FILTERED_KEY = "acl.filtered"


def enabled(req: Request) -> bool:
    return req.acl is not None


def identity(req: Request) -> Identity:
    """The request's identity (resolved once per request); 403 `ACL not found` if unknown."""
    found = req.scope.get(_SCOPE_KEY)
    if found is not None:
        return found
    rt = req.acl
    assert rt is not None, "identity() asked with ACLs disabled"
    secret = token_from_request(req.query if req.raw_query else {}, req.headers)
    try:
        found = resolve_secret(rt, secret)
    except ACLNotFound:
        raise HTTPError(403, not_found_message(rt)) from None
    req.scope[_SCOPE_KEY] = found
    return found


def request_token(req: Request) -> str:
    """The token the request carries (X-Consul-Token, Authorization: Bearer or ?token=)."""
    return token_from_request(req.query if req.raw_query else {}, req.headers)


def not_found_message(rt: ACLRuntime) -> str:
    """Consul's words for an unknown token: a server whose datacenter was never bootstrapped
    (no `acl bootstrap`, no initial management token) says that is why."""
    if rt.server and not rt.store.acl.bootstrap_index:
        return (
            "ACL system must be bootstrapped before making any requests that require "
            "authorization: ACL not found"
        )
    return "ACL not found"


def allowed(req: Request, resource: str, name: str | None, level: str) -> bool:
    return not enabled(req) or decide(identity(req), resource, name, level)


def require(req: Request, resource: str, name: str | None, level: str) -> None:
    """403 unless the request's token has `level` on `resource` `name` (None: single-valued)."""
    if not enabled(req):
        return
    ident = identity(req)
    if not decide(ident, resource, name, level):
        raise HTTPError(403, denied_message(ident, resource, name, level))


def require_management(req: Request) -> None:
    require(req, "acl", None, "write")


def filter_items(
    req: Request,
    items: Iterable[T],
    resources_of: Callable[[T], Iterable[tuple[str, str]] | tuple[str, str]],
    level: str = "read",
) -> list[T]:
    """Items the token may read (every (resource, name) of an item must be readable)."""
    items = list(items)
    if not enabled(req):
        return items
    ident = identity(req)
    kept = []
    for item in items:
        needs = resources_of(item)
        pairs = [needs] if _is_pair(needs) else needs
        if all(decide(ident, res, name, level) for res, name in pairs):
            kept.append(item)
    if len(kept) != len(items):
        mark_filtered(req)
    return kept


def _is_pair(needs: object) -> bool:
    return isinstance(needs, tuple) and len(needs) == 2 and isinstance(needs[0], str)


def mark_filtered(req: Request) -> None:
    req.scope[_FILTERED_KEY] = True


def filtered_headers(req: Request) -> list[tuple[bytes, bytes]]:
    """`X-Consul-Results-Filtered-By-ACLs: true` when something was removed for a real token."""
    if not req.scope.get(_FILTERED_KEY):
        return []
    ident = req.scope.get(_SCOPE_KEY)
    if ident is None or ident.anonymous:
        return []
    return [(b"x-consul-results-filtered-by-acls", b"true")]
