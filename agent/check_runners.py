"""Asyncio runners for health checks: one task per interval check, a timer per TTL check.

The runners only observe and report: every result goes to ``update(check_id, status, output)``,
a plain callable the agent provides, always called on the event loop thread. The agent owns the
check's stored status, anti-entropy and persistence.

``CheckRunner`` runs a probe of ``agent.check_probes`` every interval and debounces its results
through a ``StatusHandler``; ``TTLTracker`` arms a ``TTLClock`` on the loop; ``make_runner``
picks one (both pure helpers are in ``agent.check_status``). Alias checks read the agent's own
state, so the agent runs them; ``make_runner`` returns None.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Protocol

from agent.check_probes import HTTPClients, probe_http, probe_script, probe_tcp, probe_udp
from agent.check_status import ProbeResult, StatusHandler, TTLClock, initial_delay
from agent.checks import DEFAULT_OUTPUT_MAX_SIZE, CheckDefinition

__all__ = [
    "CheckRunner",
    "Runner",
    "TTLTracker",
    "UpdateCallback",
    "make_runner",
]

log = logging.getLogger("agent.check_runners")

UpdateCallback = Callable[[str, str, str], None]


class Runner(Protocol):
    """What the agent holds for each running check."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class CheckRunner:
    """Runs one interval check (HTTP, TCP, UDP, script) in its own task until stopped.

    The first run comes after a random stagger within the interval (``stagger=False`` runs it
    at once, for tests and for checks the user just registered interactively); later runs wait
    the interval after the previous one finished. Results pass through a ``StatusHandler``.
    """

    def __init__(
        self,
        definition: CheckDefinition,
        update: UpdateCallback,
        *,
        http_clients: HTTPClients | None = None,
        output_max_size: int = DEFAULT_OUTPUT_MAX_SIZE,
        stagger: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.definition = definition
        self._update = update
        self._owns_clients = http_clients is None
        self._clients = http_clients or HTTPClients()
        self._output_max_size = definition.effective_output_max_size(output_max_size)
        self._stagger = stagger
        self._rng = rng
        self._status = StatusHandler.for_definition(definition)
        self._task: asyncio.Task[None] | None = None

    @property
    def check_id(self) -> str:
        return self.definition.check_id

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"check:{self.check_id}"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owns_clients:
            await self._clients.aclose()

    async def run_once(self) -> ProbeResult:
        """Probe once and report through the thresholds; returns the raw observation."""
        try:
            result = await self._probe()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a probe bug must not kill the loop
            log.exception("check %s: probe failed", self.check_id)
            result = ProbeResult("critical", f"check failed: {exc}", counted=False)
        report = (
            self._status.observe(result.status, result.output)
            if result.counted
            else (result.status, result.output)
        )
        if report is not None:
            self._notify(*report)
        return result

    async def _loop(self) -> None:
        interval = self.definition.interval_seconds
        await asyncio.sleep(initial_delay(interval, stagger=self._stagger, rng=self._rng))
        while True:
            await self.run_once()
            await asyncio.sleep(interval)

    async def _probe(self) -> ProbeResult:
        definition = self.definition
        kind = definition.kind
        if kind == "http":
            return await probe_http(definition, self._clients, self._output_max_size)
        if kind == "tcp":
            return await probe_tcp(definition)
        if kind == "udp":
            return await probe_udp(definition)
        if kind == "script":
            return await probe_script(definition, self._output_max_size)
        return ProbeResult("critical", f"{kind or 'this'} checks are not supported by this agent")

    def _notify(self, status: str, output: str) -> None:
        try:
            self._update(self.check_id, status, output)
        except Exception:
            log.exception("check %s: update callback failed", self.check_id)


class TTLTracker:
    """A TTL check: turns critical with "TTL expired" when no update came within the TTL.

    The agent calls ``ttl_update`` for ``/v1/agent/check/pass|warn|fail|update``; the status is
    reported at once (no thresholds) and the TTL restarts. The deadline logic is ``TTLClock``.
    """

    def __init__(
        self,
        definition: CheckDefinition,
        update: UpdateCallback,
        *,
        output_max_size: int = DEFAULT_OUTPUT_MAX_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.definition = definition
        self._update = update
        self._now = clock
        self._clock = TTLClock(
            definition.ttl_seconds, definition.effective_output_max_size(output_max_size)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    @property
    def check_id(self) -> str:
        return self.definition.check_id

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._clock.arm(self._now())
        self._schedule()

    async def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._loop = None

    def ttl_update(self, status: str, output: str) -> str:
        """Record a pass/warn/fail/update; returns the output as stored (maybe truncated)."""
        stored = self._clock.update(self._now(), output)
        self._notify(status, stored)
        if self._loop is not None:
            self._schedule()
        return stored

    def _schedule(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        remaining = self._clock.remaining(self._now())
        if remaining is not None and self._loop is not None:
            self._handle = self._loop.call_later(remaining, self._fire)

    def _fire(self) -> None:
        self._handle = None
        expired = self._clock.poll(self._now())
        if expired is None:
            self._schedule()  # woke a hair early; the clock decides
            return
        log.warning("check %s missed its TTL, now critical", self.check_id)
        self._notify("critical", expired)

    def _notify(self, status: str, output: str) -> None:
        try:
            self._update(self.check_id, status, output)
        except Exception:
            log.exception("check %s: update callback failed", self.check_id)


def make_runner(
    definition: CheckDefinition,
    update: UpdateCallback,
    *,
    http_clients: HTTPClients | None = None,
    output_max_size: int = DEFAULT_OUTPUT_MAX_SIZE,
    stagger: bool = True,
) -> CheckRunner | TTLTracker | None:
    """The runner for ``definition``: a TTLTracker for TTL checks, None for alias checks (the
    agent evaluates those from its own state), a CheckRunner for everything else."""
    if definition.is_ttl:
        return TTLTracker(definition, update, output_max_size=output_max_size)
    if definition.kind in ("alias", ""):
        return None
    return CheckRunner(
        definition,
        update,
        http_clients=http_clients,
        output_max_size=output_max_size,
        stagger=stagger,
    )
