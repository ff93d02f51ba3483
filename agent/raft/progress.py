"""The leader's view of each follower's log: flow control for replication.

A follower is in one of three states:

- PROBE: we don't know where its log matches; send one APP per heartbeat interval and wait.
- REPLICATE: its log matches up to `match`; stream APPs optimistically (`next` jumps ahead as
  we send) while fewer than `max_inflight` are unacknowledged (pipelining).
- SNAPSHOT: it needs entries we compacted; a snapshot is on its way, send nothing else.
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """The last indexes of APPs sent but not yet acknowledged, oldest first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._q: deque[int] = deque()

    def add(self, last: int) -> None:
        assert not self.full(), "inflights overflow"
        self._q.append(last)

    def free_le(self, index: int) -> None:
        """Forget every APP whose last index is <= `index` (acknowledged)."""
        while self._q and self._q[0] <= index:
            self._q.popleft()

    def free_first(self) -> None:
        if self._q:
            self._q.popleft()

    def full(self) -> bool:
        return len(self._q) >= self.size

    def count(self) -> int:
        return len(self._q)

    def reset(self) -> None:
        self._q.clear()


class Progress:
    def __init__(self, next_index: int, max_inflight: int, voter: bool) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        self.recent_active = False
        self.probe_sent = False
        self.voter = voter
        self.lease_ack = -1  # leader tick of the newest heartbeat this peer acknowledged
        self.inflights = Inflights(max_inflight)

    def _reset(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        # Leaving SNAPSHOT: the follower has at least the snapshot, resume after it.
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def update_on_entries_send(self, n_entries: int, last_index: int) -> None:
        """Book-keeping after sending an APP ending at `last_index`."""
        if self.state == ProgressState.REPLICATE:
            if n_entries:
                self.next = last_index + 1
                self.inflights.add(last_index)
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True

    def maybe_update(self, n: int) -> bool:
        """The follower acknowledged up to `n`; False if that is old news."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        self.next = max(self.next, n + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an APP at `rejected`; move `next` back. False if stale."""
        if self.state == ProgressState.REPLICATE:
            # Only the rejection of something beyond match is news; stale otherwise.
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        # PROBE: only the rejection of the APP we sent last (next - 1) counts.
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def state_name(self) -> str:
        return self.state.name.lower()
