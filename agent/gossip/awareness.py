"""Lifeguard's local health awareness: a clamped score that stretches our own timeouts.

When probes of others fail without the nacks that healthy relays would send, the likely culprit is
us (a paused process, a saturated NIC); slowing our probe rate then avoids accusing healthy peers.
"""

from __future__ import annotations


class Awareness:
    def __init__(self, max_multiplier: int) -> None:
        self.max = max_multiplier
        self.score = 0

    def apply_delta(self, delta: int) -> None:
        # Clamped to [0, max-1] so a long bad spell cannot push timeouts beyond max * base.
        self.score = min(max(self.score + delta, 0), self.max - 1)

    def scale(self, timeout: float) -> float:
        return timeout * (self.score + 1)
