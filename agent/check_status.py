"""How a check's observations become the statuses it reports, with no loop and no clock.

* ``ProbeResult`` - one observation of a probe;
* ``StatusHandler`` - Consul's SuccessBeforePassing / FailuresBeforeWarning /
  FailuresBeforeCritical counters;
* ``TTLClock`` - TTL deadline bookkeeping, takes ``now`` as an argument;
* ``OutputTail`` - keeps the last N bytes of output, like Consul's circular buffer;
* ``initial_delay`` - the random first-run stagger.

The probes that make observations are in ``agent.check_probes``; the asyncio runners that drive
them and the TTL timer are in ``agent.check_runners``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from agent.checks import DEFAULT_OUTPUT_MAX_SIZE, CheckDefinition

__all__ = [
    "OutputTail",
    "ProbeResult",
    "StatusHandler",
    "TTLClock",
    "initial_delay",
    "truncate_ttl_output",
]


@dataclass(frozen=True)
class ProbeResult:
    """One observation. ``counted=False`` bypasses the thresholds (timeouts, setup errors),
    as Consul reports those straight to the agent."""

    status: str
    output: str
    counted: bool = True


class StatusHandler:
    """Debounce check results the way Consul's StatusHandler does.

    Counters start at their thresholds, so the very first result is reported as is. Then a
    passing/warning result is reported only after ``success_before_passing`` consecutive ones,
    and a critical result becomes warning after ``failures_before_warning`` and critical after
    ``failures_before_critical`` consecutive failures.
    """

    def __init__(
        self,
        success_before_passing: int = 0,
        failures_before_warning: int = 0,
        failures_before_critical: int = 0,
    ) -> None:
        self.success_before_passing = success_before_passing
        self.failures_before_warning = failures_before_warning
        self.failures_before_critical = failures_before_critical
        self.successes = success_before_passing
        self.failures = failures_before_critical

    @classmethod
    def for_definition(cls, definition: CheckDefinition) -> StatusHandler:
        return cls(
            definition.success_before_passing,
            definition.effective_failures_before_warning,
            definition.failures_before_critical,
        )

    def observe(self, status: str, output: str) -> tuple[str, str] | None:
        """Feed one result; return the (status, output) to report, or None to hold it back."""
        if status in ("passing", "warning"):
            self.successes += 1
            self.failures = 0
            if self.successes >= self.success_before_passing:
                return status, output
            return None
        self.failures += 1
        self.successes = 0
        if self.failures >= self.failures_before_critical:
            return status, output
        if self.failures >= self.failures_before_warning:
            return "warning", output
        return None


class OutputTail:
    """Keep the last ``size`` bytes written and count them all (Consul's circbuf)."""

    def __init__(self, size: int) -> None:
        self.size = max(size, 1)
        self.total = 0
        self._buf = bytearray()

    def write(self, data: bytes) -> None:
        self.total += len(data)
        self._buf += data
        if len(self._buf) > self.size:
            del self._buf[: len(self._buf) - self.size]

    @property
    def truncated(self) -> bool:
        return self.total > self.size

    def text(self) -> str:
        return self._buf.decode("utf-8", errors="replace")


def initial_delay(interval: float, *, stagger: bool, rng: random.Random | None = None) -> float:
    """Pause before the first run: uniform in [0, interval) so that many checks registered at
    once do not fire together (Consul's RandomStagger); 0 when ``stagger`` is off."""
    if not stagger or interval <= 0:
        return 0.0
    return (rng or random).uniform(0.0, interval)


def truncate_ttl_output(output: str, limit: int) -> str:
    """TTL updates keep at most ``limit`` bytes and say how much was dropped."""
    raw = output.encode("utf-8")
    if len(raw) <= limit:
        return output
    head = raw[:limit].decode("utf-8", errors="ignore")
    return f"{head} ... (captured {limit} of {len(raw)} bytes)"


class TTLClock:
    """TTL bookkeeping with time passed in: a deadline that each update pushes back.

    When the deadline passes the check turns critical once; it stays so until the next update
    re-arms it (Consul's timer does not repeat).
    """

    def __init__(self, ttl: float, output_max_size: int = DEFAULT_OUTPUT_MAX_SIZE) -> None:
        self.ttl = ttl
        self.output_max_size = output_max_size
        self.deadline: float | None = None
        self.last_output = ""

    def arm(self, now: float) -> None:
        self.deadline = now + self.ttl

    def update(self, now: float, output: str) -> str:
        """Record an update at ``now``; returns the (possibly truncated) output to report."""
        self.last_output = truncate_ttl_output(output, self.output_max_size)
        self.arm(now)
        return self.last_output

    def remaining(self, now: float) -> float | None:
        return None if self.deadline is None else max(self.deadline - now, 0.0)

    def poll(self, now: float) -> str | None:
        """The expiry output if the TTL has run out at ``now`` (and disarm), else None."""
        if self.deadline is None or now < self.deadline:
            return None
        self.deadline = None
        return self.expired_output()

    def expired_output(self) -> str:
        if not self.last_output:
            return "TTL expired"
        return f"TTL expired (last output before timeout follows): {self.last_output}"
