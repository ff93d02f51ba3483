"""serf-style user events: a Lamport clock and a ring buffer of recently seen events.

Events carry the sender's Lamport time. A receiver witnesses it, drops anything older than its
buffer can remember or older than the time it joined at (Consul joins with "ignore old"), and
delivers each (ltime, id) once.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class LamportClock:
    def __init__(self) -> None:
        self.time = 0

    def increment(self) -> int:
        """Return the current time for a new event and move past it."""
        now = self.time
        self.time += 1
        return now

    def witness(self, other: int) -> None:
        # As serf: seeing time t moves us past t, so our next event orders after it.
        if other >= self.time:
            self.time = other + 1


class EventBuffer(Generic[T]):
    """Remembers events per Lamport time for the last `size` times."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots: list[tuple[int, dict[str, T]] | None] = [None] * size

    def seen_or_add(self, ltime: int, clock_now: int, event_id: str, event: T) -> bool:
        """True if the event must be dropped (too old or a duplicate); otherwise records it."""
        if clock_now > self.size and ltime < clock_now - self.size:
            return True
        idx = ltime % self.size
        slot = self._slots[idx]
        if slot is None or slot[0] != ltime:
            slot = (ltime, {})
            self._slots[idx] = slot
        if event_id in slot[1]:
            return True
        slot[1][event_id] = event
        return False

    def recent(self) -> list[T]:
        """Everything remembered, oldest Lamport time first."""
        slots = sorted((s for s in self._slots if s is not None), key=lambda s: s[0])
        return [ev for _, events in slots for ev in events.values()]
