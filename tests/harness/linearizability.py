"""A linearizability checker for single-writer registers (one key, one sequential writer).

Each key is written by one client with the values 1, 2, 3, ... in order; any number of clients
read it. For such a register a history is linearizable exactly when:

1. a read returns a value whose write had started before the read ended (no values from
   the future, none invented);
2. a read returns at least the value of every write acknowledged before the read started
   (no stale reads);
3. reads do not go backwards: a read that starts after another ended returns at least its
   value;
4. the final state holds at least the last acknowledged write.

Writes whose answer was lost (timeouts, errors during failover) may or may not have taken
effect; they only widen what rule 1 allows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Op:
    kind: str  # "w" | "r"
    key: str
    value: int  # written value; value read (0 = key absent)
    start: float
    end: float
    acked: bool = True  # writes: True only when the write was confirmed


def check(history: list[Op], final: dict[str, int]) -> list[str]:
    """Violations found (empty when the history is linearizable)."""
    problems: list[str] = []
    by_key: dict[str, list[Op]] = {}
    for op in history:
        by_key.setdefault(op.key, []).append(op)
    for key, ops in by_key.items():
        writes = {op.value: op for op in ops if op.kind == "w"}
        acked = sorted((op for op in ops if op.kind == "w" and op.acked), key=lambda o: o.end)
        reads = sorted((op for op in ops if op.kind == "r"), key=lambda o: o.start)
        for read in reads:
            if read.value:
                write = writes.get(read.value)
                if write is None or write.start > read.end:
                    problems.append(f"{key}: read {read.value} that was never written before it")
            floor = max((w.value for w in acked if w.end < read.start), default=0)
            if read.value < floor:
                problems.append(
                    f"{key}: stale read {read.value} after write {floor} was acknowledged"
                )
        for earlier in reads:
            for later in reads:
                if earlier.end < later.start and later.value < earlier.value:
                    problems.append(
                        f"{key}: read {later.value} after an earlier read had seen {earlier.value}"
                    )
                    break
        last_acked = max((w.value for w in acked), default=0)
        if final.get(key, 0) < last_acked:
            problems.append(
                f"{key}: final value {final.get(key, 0)} lost acknowledged write {last_acked}"
            )
    return problems
