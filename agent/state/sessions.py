"""Sessions: the table, the FSM commands that change it, and invalidation.

A session ties locks on KV keys to the health of a node. Commands (`Type` "session"):

    {"Type": "session", "Op": "create", "Session": {"ID", "Name", "Node", "LockDelay" (ns),
     "Behavior", "TTL", "NodeChecks", "ServiceChecks"}}
    {"Type": "session", "Op": "destroy", "ID": id}

The ID is generated before proposing (by the HTTP layer on the leader), so applying is a pure
function of the log. Invalidation happens inside apply, in the same step as its cause, as in
Consul's state store: a destroy (from the API or from the leader's TTL reaper), a check the
session names going critical or being removed, or the session's node being deregistered. The
session's held keys are then released (`Session` cleared, `LockIndex` kept) or deleted
(behavior `delete`).

Lock-delay is the one piece that is *not* replicated state: each server remembers, in memory,
until when a key released by an invalidation may not be re-acquired. It reads a clock, so it
stays out of the replicated tables and out of snapshots; the leader enforces it before it
proposes a lock (`lock_delay_refusal`), so the log itself never depends on a clock (Consul's
`kvsLockDelay` works the same way).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from agent.state.structs import KVEntry, Session

if TYPE_CHECKING:
    from agent.state.store import Store

SESSION_COMMAND = "session"
BEHAVIORS = ("release", "delete")
NANOSECOND = 1_000_000_000
MAX_LOCK_DELAY_NS = 60 * NANOSECOND  # Consul caps the delay applied at invalidation


class SessionRefused(Exception):
    """A session command that cannot apply to the current state; nothing was changed."""


class LockDelays:
    """Key -> time (on `clock`) before which the key may not be locked again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._until: dict[str, float] = {}

    def set(self, key: str, seconds: float) -> None:
        self._until[key] = self.clock() + seconds

    def remaining(self, key: str) -> float:
        until = self._until.get(key)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._until[key]
            return 0.0
        return left


class SessionTable:
    """Sessions by ID, plus the keys each one holds (Consul's kvs `session` index)."""

    def __init__(self, lock_delay: LockDelays | None = None) -> None:
        self.by_id: dict[str, Session] = {}
        self.held: dict[str, set[str]] = {}
        self.lock_delay = lock_delay or LockDelays()

    def get(self, session_id: str) -> Session | None:
        return self.by_id.get(session_id)

    def all(self) -> list[Session]:
        return sorted(self.by_id.values(), key=lambda s: s.ID)

    def on_node(self, node: str) -> list[Session]:
        wanted = node.lower()  # Consul's node index on sessions ignores case
        return [s for s in self.all() if s.Node.lower() == wanted]

    def track(self, key: str, old_session: str, new_session: str) -> None:
        """A KV write changed which session (if any) holds `key`."""
        if old_session == new_session:
            return
        if old_session:
            keys = self.held.get(old_session)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.held[old_session]
        if new_session:
            self.held.setdefault(new_session, set()).add(key)

    def dump(self) -> list[Session]:
        return list(self.by_id.values())

    @classmethod
    def load(
        cls, sessions: Iterable[Session], kv: Mapping[str, KVEntry], lock_delay: LockDelays | None
    ) -> SessionTable:
        table = cls(lock_delay)
        table.by_id = {s.ID: s for s in sessions}
        for entry in kv.values():
            if entry.Session:
                table.held.setdefault(entry.Session, set()).add(entry.Key)
        return table


# ---------------------------------------------------------------------- commands


def apply_session(store: Store, index: int, cmd: dict) -> Any:
    """Apply a session command; raises SessionRefused (nothing changed) on a refusal."""
    op = cmd.get("Op")
    if op == "create":
        return create_session(store, index, cmd.get("Session") or {})
    if op == "destroy":
        return destroy_session(store, index, cmd.get("ID", ""))
    raise SessionRefused(f"Invalid session operation {op!r}")


def create_session(store: Store, index: int, raw: dict) -> str:
    try:
        session = msgspec.convert(raw, Session)
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


# ---------------------------------------------------------------------- lock-delay


def lock_delay_refusal(store: Store, command: dict) -> Any:
    """The answer to give, without proposing, when a lock hits a key in lock-delay; else None.

    Runs on the server about to propose (the leader), before the command enters the log:
    a plain `?acquire` answers `false`, a txn fails with the offending op's index.
    """
    kind = command.get("Type")
    delays = store.sessions.lock_delay
    if kind == "kv":
        if command.get("Verb") == "lock" and delays.remaining(command.get("Key", "")) > 0:
            return False
        return None
    if kind == "txn":
        errors = []
        for i, op in enumerate(command.get("Ops") or ()):
            kv = op.get("KV") if isinstance(op, dict) else None
            if kv and kv.get("Verb") == "lock" and delays.remaining(kv.get("Key", "")) > 0:
                errors.append(
                    {
                        "OpIndex": i,
                        "What": f'failed to lock key "{kv.get("Key", "")}" due to lock delay',
                    }
                )
        if errors:
            from agent.state.fsm import TxnResult

            return TxnResult(results=None, errors=errors)
    return None
