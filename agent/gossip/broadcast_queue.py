"""Piggybacked broadcasts with a retransmit limit of RetransmitMult * ceil(log10(N+1)).

Each broadcast has a key; a newer broadcast with the same key (e.g. a fresher alive/suspect/dead
message about the same node) replaces the older one, which is retired unsent. Broadcasts sent the
fewest times go first, newest first among equals, as memberlist's TransmitLimitedQueue does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from agent.gossip.messages import COMPOUND_PART_OVERHEAD


def retransmit_limit(mult: int, n_nodes: int) -> int:
    return mult * math.ceil(math.log10(n_nodes + 1))


@dataclass(slots=True)
class _Item:
    key: str
    data: bytes
    order: int
    transmits: int = 0


@dataclass(slots=True)
class BroadcastQueue:
    retransmit_mult: int
    _items: dict[str, _Item] = field(default_factory=dict)
    _order: int = 0
    # Keys whose broadcast was fully transmitted or replaced since the last `take_retired`.
    _retired: list[str] = field(default_factory=list)

    def queue(self, key: str, data: bytes) -> None:
        if key in self._items:
            self._retired.append(key)
        self._order += 1
        self._items[key] = _Item(key, data, self._order)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get(self, budget: int, n_nodes: int) -> list[bytes]:
        """Broadcasts fitting in `budget` bytes; each counts one transmit, retired at the limit."""
        limit = retransmit_limit(self.retransmit_mult, n_nodes)
        out: list[bytes] = []
        used = 0
        for item in sorted(self._items.values(), key=lambda i: (i.transmits, -i.order)):
            cost = len(item.data) + COMPOUND_PART_OVERHEAD
            if used + cost > budget:
                continue
            used += cost
            out.append(item.data)
            item.transmits += 1
            if item.transmits >= limit:
                del self._items[item.key]
                self._retired.append(item.key)
        return out

    def take_retired(self) -> list[str]:
        retired, self._retired = self._retired, []
        return retired
