"""Sessions: the table (sessions by ID, the keys each holds) and the lock-delay clock.

A session ties locks on KV keys to the health of a node. The commands that create and destroy
sessions, and the invalidation that follows a check or a node going away, are applied by
`agent/state/fsm_sessions.py`; the store keeps this table's `held` index as KV writes change
a key's `Session`.

Lock-delay is the one piece that is *not* replicated state: each server remembers, in memory,
until when a key released by an invalidation may not be re-acquired. It reads a clock, so it
stays out of the replicated tables and out of snapshots; the leader enforces it before it
proposes a lock (`lock_delay_refusal`, a read of this table), so the log itself never
depends on a clock (Consul's `kvsLockDelay` works the same way).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from agent.state.commands import KV, Command, Txn
from agent.state.results import TxnResult
from agent.state.structs import KVEntry, Session

NANOSECOND = 1_000_000_000


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


# ---------------------------------------------------------------------- lock-delay


class SessionsOwner(Protocol):
    """Whatever holds the session table: the store (`agent/state/store.py`)."""

    @property
    def sessions(self) -> SessionTable: ...


def lock_delay_refusal(store: SessionsOwner, command: Command) -> Any:
    """The answer to give, without proposing, when a lock hits a key in lock-delay; else None.

    Runs on the server about to propose (the leader), before the command enters the log:
    a plain `?acquire` answers `false`, a txn fails with the offending op's index.
    """
    delays = store.sessions.lock_delay
    if isinstance(command, KV):
        if command.Verb == "lock" and delays.remaining(command.Key) > 0:
            return False
        return None
    if isinstance(command, Txn):
        errors = []
        for i, op in enumerate(command.Ops):
            kv = op.KV
            if kv is not None and kv.Verb == "lock" and delays.remaining(kv.Key) > 0:
                errors.append(
                    {"OpIndex": i, "What": f'failed to lock key "{kv.Key}" due to lock delay'}
                )
        if errors:
            return TxnResult(results=None, errors=errors)
    return None
