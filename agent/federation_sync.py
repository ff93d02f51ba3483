"""The leader's federation-state anti-entropy: this datacenter's state (its mesh gateways)
written through Raft whenever it changes, as Consul's leader does.

Consul starts this routine on every leader once all servers support federation states (every
current server does), mesh gateway WAN federation or not: it computes the datacenter's state
from the catalog (a dump of the `mesh-gateway` instances with their checks), compares it with
the stored one (`same_state`: not the time it was written) and writes it when it differs, at
most once per `interval` (Consul's 5 s). The primary writes through its own log. A secondary
sends its state to the primary in Consul; there is no such replication here, so a secondary
keeps none (its `/v1/internal/federation-states` answers from its own empty table).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent import render
from agent.aio import Background, wake
from agent.connect.intention_writes import rfc3339
from agent.errors import AgentError
from agent.state.commands import FederationStateSet
from agent.state.federation import FEDERATION_TABLE, same_state

if TYPE_CHECKING:
    from agent.ports import Writer
    from agent.state.store import Store

log = logging.getLogger(__name__)

MESH_GATEWAY = "mesh-gateway"
INTERVAL = 5.0  # the least time between two writes (Consul's sync interval)
_TOPICS = (
    ("table", "services"),
    ("table", "checks"),
    ("table", "nodes"),
    ("table", FEDERATION_TABLE),
)
_POLL = 5.0  # a look at leadership at least this often
# The least time between two looks at the catalog: every catalog write wakes the routine, and
# a look walks every service (Consul's watch is on the mesh-gateway kind alone).
STEP_GAP = 1.0


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def mesh_gateways(store: Store) -> list[dict[str, Any]] | None:
    """The datacenter's mesh-gateway instances as Consul's ServiceDump gives them (node,
    service, checks), by node then service ID; None when there are none (Go's nil slice)."""
    out = []
    for node_name in sorted(store.services):
        node = store.nodes.get(node_name)
        if node is None:
            continue
        for sid in sorted(store.services[node_name]):
            svc = store.services[node_name][sid]
            if svc.Kind == MESH_GATEWAY:
                checks = render.instance_checks(store.node_checks(node_name), svc.ID)
                out.append(render.check_service_node(node, svc, checks))
    return out or None


class FederationStateSync:
    def __init__(
        self,
        store: Store,
        writer: Writer,
        is_leader: Callable[[], bool],
        datacenter: str,
        primary_datacenter: str,
        clock: Callable[[], dt.datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        interval: float = INTERVAL,
    ) -> None:
        self.store = store
        self.writer = writer
        self.is_leader = is_leader
        self.datacenter = datacenter
        self.primary = primary_datacenter or datacenter
        self.clock = clock
        self.monotonic = monotonic
        self.interval = interval
        self._last_write: float | None = None
        self._looked = False
        self._loop = Background("federation-state-sync", self._run)

    def current(self) -> dict[str, Any]:
        return {
            "Datacenter": self.datacenter,
            "MeshGateways": mesh_gateways(self.store),
            "PrimaryModifyIndex": 0,
        }

    def due_in(self) -> float:
        """Seconds until a write is allowed (0: now)."""
        if self._last_write is None:
            return 0.0
        return max(0.0, self._last_write + self.interval - self.monotonic())

    async def step(self) -> bool:
        """Write this datacenter's state if it changed (and we lead the primary); True when
        a write was made."""
        if not self.is_leader() or self.datacenter != self.primary:
            return False
        state = self.current()
        if same_state(self.store.federation.get(self.datacenter), state):
            return False
        # In the field order of Consul's FederationState
        state = {
            "Datacenter": state["Datacenter"],
            "MeshGateways": state["MeshGateways"],
            "UpdatedAt": rfc3339(self.clock()),
            "PrimaryModifyIndex": state["PrimaryModifyIndex"],
        }
        await self.writer.write(FederationStateSet(State=state))
        self._last_write = self.monotonic()
        log.info("federation state anti-entropy synced")
        return True

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        watches = self.store.watches
        while True:
            await asyncio.sleep(max(STEP_GAP, self.due_in()) if self._looked else 0.0)
            self._looked = True
            waiter = loop.create_future()
            watches.add(_TOPICS, waiter)
            try:
                try:
                    await self.step()
                except AgentError as exc:  # no leader for a moment: the next change retries
                    log.warning("federation state anti-entropy: %s", exc)
                except Exception:  # never let one bad step stop the routine
                    log.exception("federation state anti-entropy step failed")
                timer = loop.call_later(_POLL, wake, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
            finally:
                watches.remove(_TOPICS, waiter)
