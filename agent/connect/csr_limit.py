"""How fast a server signs leaf certificates: the CA configuration's `CSRMaxPerSecond` and
`CSRMaxConcurrent`, as Consul's CA manager applies them.

A positive `CSRMaxPerSecond` (the default is 50) makes a token bucket with that rate and a
burst of one; otherwise a positive `CSRMaxConcurrent` caps the signings in progress; both at
zero sign without limit. A request may wait a short while for its turn (`LIMIT_WAIT`, Consul's
`csrLimitWait`); one that would wait longer is refused at once with `RATE_LIMITED`, which the
HTTP API answers with 429 and the leaf cache treats as "keep the old certificate, retry
later". Pure: the time comes in as a value, the caller does the waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LIMIT_WAIT", "RATE_LIMITED", "Bucket", "Slots"]

# The longest a request waits for its turn before it is refused (Consul: 500 ms).
LIMIT_WAIT = 0.5
# Consul's structs.ErrRateLimited, word for word: clients compare the text.
RATE_LIMITED = "Rate limit reached, try again later"


@dataclass
class Bucket:
    """A token bucket of burst 1 (Go's rate.Limiter with `rate.NewLimiter(limit, 1)`).

    `reserve` either books the next token and says how long to wait for it, or, when that
    wait would pass `max_wait`, books nothing (Go's `Wait` with a deadline does the same)."""

    rate: float = 0.0
    tokens: float = 1.0
    stamp: float | None = None

    def reserve(self, rate: float, now: float, max_wait: float = LIMIT_WAIT) -> float | None:
        if rate != self.rate:  # a new limit starts a full bucket (Consul builds a new limiter)
            self.rate, self.tokens, self.stamp = rate, 1.0, now
        elapsed = 0.0 if self.stamp is None else max(0.0, now - self.stamp)
        tokens = min(1.0, self.tokens + elapsed * rate) - 1.0
        wait = 0.0 if tokens >= 0 else -tokens / rate
        if wait > max_wait:
            return None
        self.tokens, self.stamp = tokens, now
        return wait


@dataclass
class Slots:
    """A counting semaphore whose size follows the configuration (Consul's
    semaphore.Dynamic): `take` books a slot when fewer than `size` are held."""

    held: int = 0

    def take(self, size: int) -> bool:
        if self.held >= size:
            return False
        self.held += 1
        return True

    def give(self) -> None:
        self.held = max(0, self.held - 1)
