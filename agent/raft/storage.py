"""What the Raft core reads from durable storage, and the in-memory twin used by tests.

The core never writes storage: it hands the driver a `Ready` (entries, hard state, snapshot to
persist) and the driver writes them with its own store's writers before calling `advance`.
`MemoryStorage` is the reference implementation of both sides, with the same semantics the
durable store must have.
"""

from __future__ import annotations

from typing import Protocol

from agent.raft.errors import Compacted, SnapshotOutOfDate, Unavailable
from agent.raft.messages import ConfState, Entry, EntryKind, HardState, Snapshot, SnapshotMeta


class Storage(Protocol):
    """Read-only view of the durable log, owned by the driver.

    Index conventions: the log holds entries `first_index() .. last_index()` (inclusive); the
    entry just before `first_index()` is the snapshot's, whose term `term()` still answers.
    An empty log has `last_index() == first_index() - 1`.
    """

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted HardState and the membership as of the applied index."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries `[lo, hi)`; at least one if `lo < hi`, then as many as fit in `max_bytes`.

        Raises `Compacted` if `lo < first_index()`, `Unavailable` if `hi > last_index() + 1`.
        """
        ...

    def term(self, i: int) -> int:
        """The term of entry `i`, for `first_index() - 1 <= i <= last_index()`.

        Raises `Compacted` below that range, `Unavailable` above it.
        """
        ...

    def first_index(self) -> int:
        """The index of the first entry still available (snapshot index + 1)."""
        ...

    def last_index(self) -> int:
        """The index of the last entry (the snapshot index when the log is empty)."""
        ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot (may be `Snapshot()`, empty, before the first one)."""
        ...


def limit_size(ents: list[Entry], max_bytes: int | None) -> list[Entry]:
    """The longest prefix of `ents` within `max_bytes`, but never fewer than one entry."""
    if max_bytes is None or not ents:
        return ents
    total = 0
    for n, e in enumerate(ents):
        total += e.size()
        if total > max_bytes and n > 0:
            return ents[:n]
    return ents


class MemoryStorage:
    """`Storage` in memory, plus the writers a driver uses. Reference semantics for tests.

    `_ents[0]` is a dummy entry standing for the snapshot (its index and term), so entry `i`
    lives at `_ents[i - _ents[0].index]`.
    """

    def __init__(self, conf: ConfState | None = None) -> None:
        self._hard = HardState()
        self._snap = Snapshot()
        self._conf = conf or ConfState()
        self._ents: list[Entry] = [Entry(0, 0, EntryKind.NOOP)]

    # -- Storage --------------------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard, self._conf

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        offset = self._ents[0].index
        if lo <= offset:
            raise Compacted(lo)
        if hi > self.last_index() + 1:
            raise Unavailable(hi)
        if max_bytes is None:
            return self._ents[lo - offset : hi - offset]
        # Walk forward instead of copying [lo, hi) first: a far-behind follower may need
        # millions of entries, of which one message carries a few.
        out: list[Entry] = []
        total = 0
        for i in range(lo - offset, hi - offset):
            e = self._ents[i]
            total += e.size()
            if total > max_bytes and out:
                break
            out.append(e)
        return out

    def term(self, i: int) -> int:
        offset = self._ents[0].index
        if i < offset:
            raise Compacted(i)
        if i - offset >= len(self._ents):
            raise Unavailable(i)
        return self._ents[i - offset].term

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        return self._snap

    # -- writers (the driver's side) ------------------------------------------------------------

    def set_hard_state(self, hs: HardState) -> None:
        self._hard = hs

    def set_conf_state(self, conf: ConfState) -> None:
        """Record the membership the app reached by applying conf changes."""
        self._conf = conf

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Append `entries`, first cutting any existing suffix from `entries[0].index` on.

        Entries already compacted are skipped. A gap after the last index is a caller bug.
        """
        if not entries:
            return
        first = self.first_index()
        last = entries[-1].index
        if last < first:
            return
        if first > entries[0].index:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._ents[0].index
        assert offset <= len(self._ents), f"missing log entry before {entries[0].index}"
        del self._ents[offset:]
        self._ents.extend(entries)

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the log with `snap`; raises `SnapshotOutOfDate` for an older one."""
        if snap.meta.index < self._snap.meta.index:
            raise SnapshotOutOfDate(snap.meta.index)
        self._snap = snap
        self._conf = snap.meta.conf
        self._ents = [Entry(snap.meta.index, snap.meta.term, EntryKind.NOOP)]

    def create_snapshot(self, index: int, conf: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the state machine at applied `index` (does not compact)."""
        if index <= self._snap.meta.index:
            raise SnapshotOutOfDate(index)
        if index > self.last_index():
            raise Unavailable(index)
        snap = Snapshot(SnapshotMeta(index, self.term(index), conf), data)
        self._snap = snap
        return snap

    def compact(self, index: int) -> None:
        """Discard entries up to and including `index` (which must be covered by a snapshot
        for followers to catch up later)."""
        offset = self._ents[0].index
        if index <= offset:
            raise Compacted(index)
        if index > self.last_index():
            raise Unavailable(index)
        dummy = self._ents[index - offset]
        self._ents = [Entry(dummy.index, dummy.term, EntryKind.NOOP)] + self._ents[
            index - offset + 1 :
        ]

    # -- test helpers ---------------------------------------------------------------------------

    @property
    def hard_state(self) -> HardState:
        return self._hard

    def all_entries(self) -> list[Entry]:
        return list(self._ents[1:])
