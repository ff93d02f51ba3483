"""The FSM commands that change the session table, and invalidation.

Commands (`commands.SessionCommand`): `Op` "create" with a `Session` record (its LockDelay in
nanoseconds), or `Op` "destroy" with the session's `ID`.

The ID is generated before proposing (by the HTTP layer on the leader), so applying is a pure
function of the log. Invalidation happens inside apply, in the same step as its cause, as in
Consul's state store: a destroy (from the API or from the leader's TTL reaper), a check the
session names going critical or being removed, or the session's node being deregistered (the
FSM's catalog writes call `invalidate_check` and `invalidate_node`). The session's held keys
are then released (`Session` cleared, `LockIndex` kept) or deleted (behavior `delete`), and
each released key enters lock-delay (`agent/state/sessions.py`), and the prepared queries
bound to the session are deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from agent.state import commands as c
from agent.state.fsm_queries import drop_session_queries
from agent.state.sessions import NANOSECOND
from agent.state.structs import Session

if TYPE_CHECKING:
    from agent.state.store import Store

BEHAVIORS = ("release", "delete")
MAX_LOCK_DELAY_NS = 60 * NANOSECOND  # Consul caps the delay applied at invalidation


class SessionRefused(Exception):
    """A session command that cannot apply to the current state; nothing was changed."""


def apply_session(store: Store, index: int, cmd: c.SessionCommand) -> Any:
    """Apply a session command; raises SessionRefused (nothing changed) on a refusal."""
    if cmd.Op == "create" and cmd.Session is not None:
        return create_session(store, index, cmd.Session)
    if cmd.Op == "destroy":
        return destroy_session(store, index, cmd.ID or "")
    raise SessionRefused(f"Invalid session operation {cmd.Op!r}")


def create_session(store: Store, index: int, record: c.SessionRecord) -> str:
    try:
        session = msgspec.convert(msgspec.to_builtins(record), Session)
    except msgspec.ValidationError as exc:
        raise SessionRefused(f"invalid session: {exc}") from None
    if not session.ID:
        raise SessionRefused("Missing session ID")
    if session.ID in store.sessions.by_id:
        raise SessionRefused(f"Session ID {session.ID} already exists")
    if not session.Behavior:
        session.Behavior = "release"
    elif session.Behavior not in BEHAVIORS:
        raise SessionRefused(f"Invalid session behavior: {session.Behavior}")
    if session.Node not in store.nodes:
        raise SessionRefused("Missing node registration")
    checks = store.checks.get(session.Node, {})
    for check_id in session.check_ids():
        check = checks.get(check_id)
        if check is None:
            raise SessionRefused(f"Missing check '{check_id}' registration")
        if check.Status == "critical":
            raise SessionRefused(f"Check '{check_id}' is in critical state")
    session.CreateIndex = session.ModifyIndex = index
    store.sessions.by_id[session.ID] = session
    store._bump("sessions", index)
    return session.ID


def destroy_session(store: Store, index: int, session_id: str) -> bool:
    """Invalidate a session: drop it and release or delete every key it holds.

    Unknown IDs are a no-op (Consul answers `true` to destroying one).
    """
    table = store.sessions
    session = table.by_id.pop(session_id, None)
    if session is None:
        return True
    delay = min(session.LockDelay, MAX_LOCK_DELAY_NS) / NANOSECOND
    for key in sorted(table.held.pop(session_id, ())):
        entry = store.kv_get(key)
        if entry is None or entry.Session != session_id:
            continue
        if session.Behavior == "delete":
            store.kv_delete(index, key)
        else:
            store.kv_put(index, msgspec.structs.replace(entry, Session=""))
        if delay > 0:
            table.lock_delay.set(key, delay)
    drop_session_queries(store, index, session_id)
    store._bump("sessions", index)
    return True


def invalidate_check(store: Store, index: int, node: str, check_id: str) -> None:
    """A check went critical or was removed: invalidate every session that names it."""
    doomed = [
        s.ID for s in store.sessions.by_id.values() if s.Node == node and check_id in s.check_ids()
    ]
    for session_id in doomed:
        destroy_session(store, index, session_id)


def invalidate_node(store: Store, index: int, node: str) -> None:
    """The node left the catalog: its sessions go with it."""
    doomed = [s.ID for s in store.sessions.by_id.values() if s.Node == node]
    for session_id in doomed:
        destroy_session(store, index, session_id)
