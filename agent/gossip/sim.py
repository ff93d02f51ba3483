"""A deterministic in-process network of `Memberlist` cores on a fake clock.

Everything is driven from one seed: message latencies, drops, the cores' own random picks. Nodes
can be killed (stop for good), paused and resumed (a long GC or a SIGSTOP), partitioned and
healed. Tests and the text scenarios advance time as data: `run_for(5.0)`.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import TypeVar

from agent.gossip.config import GossipConfig
from agent.gossip.events import GossipEvent, JoinResult, StreamRequest
from agent.gossip.merge import MergeDelegate
from agent.gossip.swim import Memberlist

T = TypeVar("T")


@dataclass(slots=True)
class SimNode:
    core: Memberlist
    events: list[tuple[float, GossipEvent]] = field(default_factory=list)
    down: bool = False  # killed or paused: receives nothing, never ticks
    killed: bool = False
    tick_gen: int = 0


class Simulation:
    """Nodes are addressed `10.0.0.<i>:8301` in the order they were added."""

    def __init__(
        self,
        seed: int = 0,
        config: GossipConfig | None = None,
        latency: tuple[float, float] = (0.001, 0.005),
        drop_rate: float = 0.0,
    ) -> None:
        self.now = 0.0
        self.config = config or GossipConfig()
        self.latency = latency
        self.drop_rate = drop_rate
        self._rng = random.Random(seed)
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = count()
        self.nodes: dict[str, SimNode] = {}
        self._by_addr: dict[str, str] = {}
        self._groups: dict[str, int] | None = None
        self._cut: set[frozenset[str]] = set()
        self.packets_sent = 0

    # ------------------------------------------------------------------ topology

    def add_node(
        self,
        name: str,
        tags: dict[str, str] | None = None,
        addr: str | None = None,
        config: GossipConfig | None = None,
        merge_delegate: MergeDelegate | None = None,
    ) -> Memberlist:
        addr = addr or f"10.0.0.{len(self._by_addr) + 1}:8301"
        if addr in self._by_addr and not self.nodes[self._by_addr[addr]].killed:
            raise ValueError(f"address {addr} in use by {self._by_addr[addr]}")
        core = Memberlist(
            name,
            addr,
            tags,
            config or self.config,
            seed=self._rng.getrandbits(32),
            now=self.now,
            merge_delegate=merge_delegate,
        )
        key = name if name not in self.nodes else f"{name}@{addr}"
        self.nodes[key] = SimNode(core)
        self._by_addr[addr] = key
        self._after_input(key)
        return core

    def core(self, key: str) -> Memberlist:
        return self.nodes[key].core

    def kill(self, key: str) -> None:
        self.nodes[key].down = True
        self.nodes[key].killed = True

    def pause(self, key: str) -> None:
        self.nodes[key].down = True

    def resume(self, key: str) -> None:
        node = self.nodes[key]
        node.down = False
        self._after_input(key)

    def partition(self, *groups: list[str]) -> None:
        """Only nodes within the same group can talk; nodes not listed form one more group."""
        self._groups = {}
        for i, group in enumerate(groups):
            for key in group:
                self._groups[key] = i

    def cut(self, a: str, b: str) -> None:
        """Break the link between two nodes only (both directions, UDP and TCP)."""
        self._cut.add(frozenset((a, b)))

    def heal(self) -> None:
        self._groups = None
        self._cut.clear()

    def _linked(self, a: str, b: str) -> bool:
        if self.nodes[a].down or self.nodes[b].down or frozenset((a, b)) in self._cut:
            return False
        if self._groups is None:
            return True
        return self._groups.get(a, -1) == self._groups.get(b, -1)

    # ------------------------------------------------------------------ commands

    def join(self, key: str, targets: list[str]) -> JoinResult:
        """Join `key` to the addresses of `targets` and run until the join completes."""
        core = self.core(key)
        addrs = [self.core(t).addr for t in targets]
        token = core.join(addrs, self.now)
        self._after_input(key)
        result: list[JoinResult] = []

        def done() -> bool:
            if not result:
                r = core.join_result(token)
                if r is not None:
                    result.append(r)
            return bool(result)

        self.run_until(done, limit=self.config.tcp_timeout + 1.0)
        assert result, "join did not complete"
        return result[0]

    def act(self, key: str, fn: Callable[[Memberlist, float], T]) -> T:
        """Call a command on a core at the current time and route its outputs."""
        out = fn(self.core(key), self.now)
        self._after_input(key)
        return out

    # ------------------------------------------------------------------ running

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        while self._heap and self._heap[0][0] <= end:
            t, _, action = heapq.heappop(self._heap)
            self.now = max(self.now, t)
            action()
        self.now = end

    def run_until(self, pred: Callable[[], bool], limit: float, step: float = 0.05) -> bool:
        """Advance in small steps until `pred()` holds or `limit` seconds passed."""
        end = self.now + limit
        while self.now < end:
            if pred():
                return True
            self.run_for(min(step, end - self.now))
        return pred()

    def _schedule(self, at: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (at, next(self._order), action))

    def _delay(self) -> float:
        return self._rng.uniform(*self.latency)

    def _after_input(self, key: str) -> None:
        node = self.nodes[key]
        out = node.core.take_outputs()
        for ev in out.events:
            node.events.append((self.now, ev))
        for pkt in out.packets:
            self._send_packet(key, pkt.addr, pkt.data)
        for req in out.streams:
            self._open_stream(key, req)
        if node.down:
            return
        node.tick_gen += 1
        gen = node.tick_gen
        self._schedule(max(node.core.next_deadline(), self.now), lambda: self._tick(key, gen))

    def _tick(self, key: str, gen: int) -> None:
        node = self.nodes[key]
        if node.down or gen != node.tick_gen:
            return
        node.core.tick(self.now)
        self._after_input(key)

    def _send_packet(self, src: str, addr: str, data: bytes) -> None:
        self.packets_sent += 1
        dst = self._by_addr.get(addr)
        if dst is None or self._rng.random() < self.drop_rate:
            return
        src_addr = self.core(src).addr

        def deliver() -> None:
            if self._linked(src, dst):
                self.core(dst).handle_packet(src_addr, data, self.now)
                self._after_input(dst)

        if self._linked(src, dst):
            self._schedule(self.now + self._delay(), deliver)

    def _open_stream(self, src: str, req: StreamRequest) -> None:
        dst = self._by_addr.get(req.addr)
        src_addr = self.core(src).addr

        def fail(why: str) -> None:
            if not self.nodes[src].down:
                self.core(src).handle_stream_reply(req.id, None, self.now, why)
                self._after_input(src)

        if dst is None or self.nodes[dst].killed:
            self._schedule(self.now + self._delay(), lambda: fail("connection refused"))
            return

        def reply(data: bytes) -> None:
            if self._linked(src, dst):
                self.core(src).handle_stream_reply(req.id, data, self.now)
                self._after_input(src)
            else:
                fail("i/o timeout")

        def serve() -> None:
            if not self._linked(src, dst):
                self._schedule(self.now + req.timeout, lambda: fail("i/o timeout"))
                return
            data = self.core(dst).handle_stream(src_addr, req.data, self.now)
            self._after_input(dst)
            self._schedule(self.now + self._delay(), lambda: reply(data))

        self._schedule(self.now + self._delay(), serve)

    # ------------------------------------------------------------------ checks

    def statuses(self, observer: str) -> dict[str, int]:
        return {m.name: int(m.status) for m in self.core(observer).members()}

    def converged(self, expected: dict[str, int], observers: list[str] | None = None) -> bool:
        """Every live observer sees exactly `expected` (name -> status)."""
        keys = observers or [k for k, n in self.nodes.items() if not n.down]
        return all(self.statuses(k) == expected for k in keys)
