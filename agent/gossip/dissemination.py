"""Dissemination in the SWIM core: what this member tells the others, and how.

News about members (alive, suspect, dead), user events and forced leaves wait in the
broadcast queue, keyed so fresher news about one member replaces older; each is retransmitted
a bounded number of times (`broadcast_queue`). They ride on every packet we send, as much as
fits, and every gossip interval a few members get a compound packet of them.
"""

from __future__ import annotations

from agent.gossip.events import Packet, UserEvent
from agent.gossip.messages import (
    COMPOUND_OVERHEAD,
    COMPOUND_PART_OVERHEAD,
    Message,
    NodeState,
    UserEventMsg,
    encode,
    encode_compound,
)
from agent.gossip.records import LIVE, NodeRecord
from agent.gossip.table import MemberTable


class Dissemination(MemberTable):
    """The broadcast queue's use: piggybacking, gossip rounds, user events, leave progress."""

    @property
    def leave_complete(self) -> bool:
        """True once leave() was called and the leave broadcast has been fully retransmitted
        (or there was nobody to tell)."""
        self._update_leave_done()
        return self._leave_done

    def _handle_user_event(self, msg: UserEventMsg) -> None:
        self._clock.witness(msg.ltime)
        if msg.ltime < self._event_min_time:
            return
        if self._event_buffer.seen_or_add(msg.ltime, self._clock.time, msg.id, msg):
            return
        self._events.append(UserEvent(msg.name, msg.payload, msg.ltime, msg.id))
        self._queue.queue(f"event:{msg.ltime}:{msg.id}", encode(msg))

    def _broadcast(self, node: str, msg: Message) -> None:
        # Keyed by node: fresher news about a node replaces what is still queued about it.
        self._queue.queue(f"node:{node}", encode(msg))

    def _gossip(self, now: float) -> None:
        if not len(self._queue):
            return
        targets = self._gossip_targets(now)
        self._rng.shuffle(targets)
        budget = self.config.udp_buffer_size - COMPOUND_OVERHEAD
        for node in targets[: self.config.gossip_nodes]:
            parts = self._queue.get(budget, self.num_alive())
            if not parts:
                break
            self._packets.append(Packet(node.addr, encode_compound(parts)))

    def _gossip_targets(self, now: float) -> list[NodeRecord]:
        # Live members, and the recently dead so a wrongly failed member hears it and refutes.
        dead_time = self.config.gossip_to_the_dead_time
        return [
            n
            for n in self._peers()
            if n.state in LIVE or (n.state == NodeState.DEAD and now - n.state_change <= dead_time)
        ]

    def _send(self, addr: str, *msgs: Message) -> None:
        """Send `msgs` in one packet with as much piggybacked gossip as fits."""
        parts = [encode(m) for m in msgs]
        used = sum(len(p) + COMPOUND_PART_OVERHEAD for p in parts)
        budget = self.config.udp_buffer_size - COMPOUND_OVERHEAD - used
        extra = self._queue.get(budget, self.num_alive()) if len(self._queue) else []
        self._packets.append(Packet(addr, encode_compound([*parts, *extra])))

    def _update_leave_done(self) -> None:
        if self._left and not self._leave_done and f"node:{self.name}" not in self._queue:
            self._leave_done = True
