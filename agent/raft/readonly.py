"""Pending read-index requests on the leader (Raft thesis §6.4).

A read request records the commit index at arrival, then rides on the next heartbeat round
(its `context` is echoed by followers). Once a quorum acknowledged that round, this leader was
still the leader when the request arrived, so every request queued up to and including it can
be served at its recorded index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.raft.messages import Message


@dataclass(slots=True)
class ReadIndexStatus:
    req: Message
    index: int
    acks: set[str] = field(default_factory=set)


class ReadOnly:
    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, req: Message) -> None:
        ctx = req.context
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(req, index)
        self.queue.append(ctx)

    def recv_ack(self, node_id: str, ctx: bytes) -> set[str] | None:
        """Record `node_id`'s ack of round `ctx`; the acks so far, or None if unknown."""
        rs = self.pending.get(ctx)
        if rs is None:
            return None
        rs.acks.add(node_id)
        return rs.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Pop and return every request queued up to and including `ctx`."""
        if ctx not in self.pending:
            return []
        n = self.queue.index(ctx) + 1
        done = [self.pending.pop(c) for c in self.queue[:n]]
        del self.queue[:n]
        return done

    def last_pending(self) -> bytes:
        return self.queue[-1] if self.queue else b""

    def reset(self) -> None:
        self.pending.clear()
        self.queue.clear()
