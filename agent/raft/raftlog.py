"""The core's view of the log: durable entries (via `Storage`) plus the unstable tail.

Entries the core has accepted but the driver has not yet persisted live in `Unstable`; a
`Ready` hands them out and `advance` marks them stable. Reads consult the unstable part first,
then storage. `committed` and `applied` are the two cursors over this combined log:
`applied <= committed <= last_index()`.
"""

from __future__ import annotations

from agent.raft.errors import Compacted, Unavailable
from agent.raft.messages import Entry, Snapshot
from agent.raft.storage import Storage, limit_size


class Unstable:
    """Entries from `offset` on (and maybe a snapshot before them) not yet persisted."""

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        return None if self.snapshot is None else self.snapshot.meta.index + 1

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        return None if self.snapshot is None else self.snapshot.meta.index

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.meta.index == i:
                return self.snapshot.meta.term
            return None
        last = self.maybe_last_index()
        if last is None or i > last:
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, i: int, t: int) -> None:
        # Only if entry i is still the one that was persisted (not replaced meanwhile).
        if self.maybe_term(i) == t and i >= self.offset:
            del self.entries[: i + 1 - self.offset]
            self.offset = i + 1

    def stable_snap_to(self, i: int) -> None:
        if self.snapshot is not None and self.snapshot.meta.index == i:
            self.snapshot = None

    def restore(self, snap: Snapshot) -> None:
        self.offset = snap.meta.index + 1
        self.entries = []
        self.snapshot = snap

    def truncate_and_append(self, ents: list[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            # Replaces everything unstable (and possibly some persisted entries: the driver's
            # append truncates the durable suffix too).
            self.offset = after
            self.entries = list(ents)
        else:
            self.entries = self.entries[: after - self.offset] + list(ents)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        assert self.offset <= lo <= hi <= self.offset + len(self.entries), (
            f"unstable slice [{lo},{hi}) out of [{self.offset},{self.offset + len(self.entries)}]"
        )
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1

    # -- indexes and terms ----------------------------------------------------------------------

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def term(self, i: int) -> int:
        """Term of entry `i`; raises `Compacted`/`Unavailable` outside the known range."""
        dummy = self.first_index() - 1
        if i < dummy:
            raise Compacted(i)
        if i > self.last_index():
            raise Unavailable(i)
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        return self.storage.term(i)

    def zero_term_on_err(self, i: int) -> int:
        try:
            return self.term(i)
        except (Compacted, Unavailable):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, i: int, t: int) -> bool:
        try:
            return self.term(i) == t
        except (Compacted, Unavailable):
            return False

    def is_up_to_date(self, lasti: int, term: int) -> bool:
        """Raft §5.4.1: is a log ending at (lasti, term) at least as up-to-date as ours?"""
        lt = self.last_term()
        return term > lt or (term == lt and lasti >= self.last_index())

    # -- appending ------------------------------------------------------------------------------

    def find_conflict(self, ents: tuple[Entry, ...] | list[Entry]) -> int:
        """Index of the first entry of `ents` that conflicts with or extends our log, or 0."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest (i, term(i)) with i <= index and term(i) <= term.

        Used for the reject hint: every entry after it surely conflicts, so the leader can
        skip a whole term per round trip instead of one entry.
        """
        while index > 0:
            try:
                t = self.term(index)
            except (Compacted, Unavailable):
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: tuple[Entry, ...]
    ) -> int | None:
        """Raft §5.3 AppendEntries receiver: the last new index, or None on mismatch."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        ci = self.find_conflict(ents)
        if ci:
            assert ci > self.committed, f"conflict at {ci} <= committed {self.committed}"
            self.append(list(ents[ci - index - 1 :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, ents: list[Entry]) -> int:
        if not ents:
            return self.last_index()
        assert ents[0].index - 1 >= self.committed, "append would overwrite committed entries"
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    # -- reading --------------------------------------------------------------------------------

    def slice(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi) from storage and/or unstable; raises Compacted below the log."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise Compacted(lo)
        assert hi <= self.last_index() + 1, f"slice beyond last index {hi}"
        ents: list[Entry] = []
        off = self.unstable.offset
        if lo < off:
            ents = self.storage.entries(lo, min(hi, off), max_bytes)
            if len(ents) < min(hi, off) - lo:
                return ents  # limited by size
        if hi > off:
            ents = ents + self.unstable.slice(max(lo, off), hi)
        return limit_size(ents, max_bytes)

    def entries(self, i: int, max_bytes: int | None = None) -> list[Entry]:
        if i > self.last_index():
            return []
        return self.slice(i, self.last_index() + 1, max_bytes)

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def next_committed(self, max_bytes: int | None = None) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if self.committed + 1 > lo:
            return self.slice(lo, self.committed + 1, max_bytes)
        return []

    def has_next_committed(self) -> bool:
        return self.committed + 1 > max(self.applied + 1, self.first_index())

    # -- cursors --------------------------------------------------------------------------------

    def commit_to(self, n: int) -> None:
        if n > self.committed:
            assert n <= self.last_index(), f"commit {n} beyond last index {self.last_index()}"
            self.committed = n

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Raft §5.4.2: only an entry of the current term is committed by counting replicas."""
        if max_index > self.committed and self.zero_term_on_err(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def applied_to(self, i: int) -> None:
        if i == 0:
            return
        assert self.applied <= i <= self.committed or i < self.applied, (
            f"applied {i} out of range [{self.applied}, {self.committed}]"
        )
        self.applied = max(self.applied, i)

    def restore(self, snap: Snapshot) -> None:
        self.committed = snap.meta.index
        self.unstable.restore(snap)
