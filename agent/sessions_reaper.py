"""The leader's session TTL timers: destroy a TTL session nobody renewed in time.

Time never enters the FSM: the leader keeps a deadline per TTL session in memory and, when one
passes, proposes an ordinary `destroy` command. As in Consul, a session gets `TTL x 2` (the
`sessionTTLMultiplier`) before it is invalidated, renewals (which do not touch the log) restart
that window, and a new leader starts every session's window afresh from its own table, so a
leader change never expires a session early.

`TTLTimers` is the pure part (deadlines as data, time passed in); `SessionReaper` drives it on
the agent's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from agent.aio import Background, wake
from agent.durations import DurationError, parse_duration
from agent.state.commands import SessionCommand
from agent.state.structs import Session

if TYPE_CHECKING:
    from agent.ports import Writer
    from agent.state.store import Store

log = logging.getLogger("agent.sessions")

TTL_MULTIPLIER = 2
POLL = 1.0  # how often leadership and the table are looked at when nothing else wakes us
RETRY = 1.0  # a failed destroy (lost leadership, no quorum) is tried again after this


def session_ttl(session: Session) -> float:
    """The session's TTL in seconds; 0 for none (or an unreadable one)."""
    if not session.TTL:
        return 0.0
    try:
        return max(parse_duration(session.TTL), 0.0)
    except DurationError:
        return 0.0


class TTLTimers:
    """Session ID -> deadline; what has expired at a given time."""

    def __init__(self, multiplier: int = TTL_MULTIPLIER) -> None:
        self.multiplier = multiplier
        self.deadlines: dict[str, float] = {}

    def reset(self, session: Session, now: float) -> None:
        ttl = session_ttl(session)
        if ttl > 0:
            self.deadlines[session.ID] = now + ttl * self.multiplier
        else:
            self.deadlines.pop(session.ID, None)

    def clear(self, session_id: str) -> None:
        self.deadlines.pop(session_id, None)

    def clear_all(self) -> None:
        self.deadlines.clear()

    def rebuild(self, sessions: Iterable[Session], now: float) -> None:
        """A fresh full window for every TTL session (on becoming leader)."""
        self.deadlines.clear()
        for session in sessions:
            self.reset(session, now)

    def reconcile(self, sessions: Iterable[Session], now: float) -> None:
        """Start timers for TTL sessions not timed yet; forget sessions that are gone."""
        present = set()
        for session in sessions:
            present.add(session.ID)
            if session.ID not in self.deadlines:
                self.reset(session, now)
        for session_id in [s for s in self.deadlines if s not in present]:
            del self.deadlines[session_id]

    def expired(self, now: float) -> list[str]:
        return sorted(s for s, deadline in self.deadlines.items() if deadline <= now)

    def next_deadline(self) -> float | None:
        return min(self.deadlines.values(), default=None)


class SessionReaper:
    """Runs the timers while this agent is the leader and proposes the destroys."""

    def __init__(
        self,
        store: Store,
        writer: Writer,
        is_leader: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.writer = writer
        self._is_leader = is_leader
        self.clock = clock
        self.timers = TTLTimers()
        self._loop = Background("session-reaper", self._run)
        self._was_leader = False
        self._seen_index = -1

    # ------------------------------------------------------------------ API hooks

    def renew(self, session: Session) -> None:
        """A renew (or a create) on the leader restarts the session's window."""
        self.timers.reset(session, self.clock())

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        store = self.store
        while True:
            # Parked on the sessions table so a create/destroy re-reads the table at once.
            topics = (("table", "sessions"),)
            waiter = loop.create_future()
            store.watches.add(topics, waiter)
            try:
                timeout = await self._step()
                timer = loop.call_later(timeout, wake, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one bad step stop session expiry
                log.exception("session reaper step failed")
                await asyncio.sleep(RETRY)
            finally:
                store.watches.remove(topics, waiter)

    async def _step(self) -> float:
        """One look at leadership, the table and the deadlines; returns how long to sleep."""
        now = self.clock()
        leader = self._is_leader()
        store = self.store
        if not leader:
            self.timers.clear_all()
            self._was_leader = False
            return POLL
        sessions: Any = store.sessions.by_id.values()
        if not self._was_leader:
            self.timers.rebuild(sessions, now)
            self._seen_index = store.table_index("sessions")
            self._was_leader = True
        elif store.table_index("sessions") != self._seen_index:
            self.timers.reconcile(sessions, now)
            self._seen_index = store.table_index("sessions")
        for session_id in self.timers.expired(now):
            await self._destroy(session_id)
        upcoming = self.timers.next_deadline()
        if upcoming is None:
            return POLL
        return max(0.0, min(POLL, upcoming - self.clock()))

    async def _destroy(self, session_id: str) -> None:
        self.timers.clear(session_id)
        if session_id not in self.store.sessions.by_id:
            return
        log.info("session %s expired (TTL not renewed): invalidating it", session_id)
        try:
            await self.writer.write(SessionCommand(Op="destroy", ID=session_id))
        except Exception as exc:
            log.warning("could not invalidate expired session %s: %s", session_id, exc)
            self.timers.deadlines[session_id] = self.clock() + RETRY
