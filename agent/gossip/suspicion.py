"""Lifeguard's dynamic suspicion timeout, computed from `now` (no timers are armed here).

A suspicion starts at `max_timeout` and shrinks towards `min_timeout` as up to `k` independent
members confirm it: with n confirmations the timeout is
`max - log(n+1)/log(k+1) * (max - min)`. The accuser that started it does not count, and each
member counts once, so one flapping link cannot speed up a false death.
"""

from __future__ import annotations

import math


def suspicion_timeout(suspicion_mult: int, n_nodes: int, probe_interval: float) -> float:
    """memberlist's minimum suspicion timeout: mult * max(1, log10(n)) * probe interval."""
    node_scale = max(1.0, math.log10(max(1.0, float(n_nodes))))
    return suspicion_mult * node_scale * probe_interval


class Suspicion:
    def __init__(
        self, accuser: str, k: int, min_timeout: float, max_timeout: float, start: float
    ) -> None:
        self.k = k
        self.min_timeout = min_timeout
        self.max_timeout = max_timeout if k >= 1 else min_timeout
        self.start = start
        self._confirmers = {accuser}
        self.confirmations = 0

    def confirm(self, sender: str) -> bool:
        """Count a new independent accuser; True if it was new (the caller re-gossips then)."""
        if self.confirmations >= self.k or sender in self._confirmers:
            return False
        self._confirmers.add(sender)
        self.confirmations += 1
        return True

    def timeout(self) -> float:
        if self.k < 1:
            return self.min_timeout
        frac = math.log(self.confirmations + 1.0) / math.log(self.k + 1.0)
        raw = self.max_timeout - frac * (self.max_timeout - self.min_timeout)
        return max(raw, self.min_timeout)

    def deadline(self) -> float:
        return self.start + self.timeout()
