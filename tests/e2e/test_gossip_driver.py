"""The gossip driver on real UDP + TCP sockets: 4-5 members on 127.0.0.61-66 in one event loop.

Waits are bounded polls; nothing asserts on wall-clock durations.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from unittest.mock import patch

import pytest

from agent.gossip import BindError, GossipConfig, JoinError, MemberStatus, UserEvent
from agent.gossip.driver import GossipDriver
from agent.gossip.events import GossipEvent

# Fast timers so a crash is detected in a few seconds on loopback.
FAST = GossipConfig(
    probe_interval=0.2,
    probe_timeout=0.1,
    gossip_interval=0.05,
    suspicion_mult=3,
    tcp_timeout=1.0,
    push_pull_interval=3.0,
    reconnect_interval=2.0,
)


def _loopback_alias_usable(ip: str) -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((ip, 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _loopback_alias_usable("127.0.0.61"), reason="127.0.0.x aliases not bindable"
)


async def wait_for(pred: Callable[[], bool], limit: float = 15.0) -> None:
    for _ in range(int(limit / 0.05)):
        if pred():
            return
        await asyncio.sleep(0.05)
    assert pred()


def statuses(d: GossipDriver) -> dict[str, MemberStatus]:
    return {m.name: m.status for m in d.members()}


async def cluster(n: int, events: dict[str, list[GossipEvent]]) -> list[GossipDriver]:
    drivers = []
    for i in range(1, n + 1):
        name = f"node{i}"
        log = events.setdefault(name, [])
        drivers.append(
            await GossipDriver.create(
                name,
                f"127.0.0.6{i}",
                0,
                {"dc": "shenzhen", "role": "node"},
                FAST,
                seed=i,
                on_event=log.append,
            )
        )
    for d in drivers[1:]:
        assert await d.join([drivers[0].local_addr]) == 1
    names = {f"node{i}" for i in range(1, n + 1)}
    await wait_for(lambda: all(set(statuses(d)) == names for d in drivers))
    return drivers


def test_real_sockets_cluster_lifecycle() -> None:
    async def main() -> None:
        events: dict[str, list[GossipEvent]] = {}
        d1, d2, d3, d4 = await cluster(4, events)
        try:
            alive = {f"node{i}": MemberStatus.ALIVE for i in range(1, 5)}
            await wait_for(lambda: all(statuses(d) == alive for d in (d1, d2, d3, d4)))
            m = next(m for m in d2.members() if m.name == "node1")
            assert (m.addr, m.port) == ("127.0.0.61", int(d1.local_addr.split(":")[1]))
            assert m.tags == {"dc": "shenzhen", "role": "node"}

            # The seed cluster's mistake: a fifth agent reusing the name node3 is refused ...
            dup = await GossipDriver.create("node3", "127.0.0.65", 0, {"dc": "shenzhen"}, FAST)
            with pytest.raises(JoinError) as info:
                await dup.join([d1.local_addr])
            text = str(info.value)
            assert "Member 'node3' has conflicting name" in text
            assert d3.local_addr in text and dup.local_addr in text
            await dup.close()
            # ... a member of another datacenter too ...
            other = await GossipDriver.create("x", "127.0.0.66", 0, {"dc": "beijing"}, FAST)
            with pytest.raises(JoinError, match="part of wrong datacenter 'beijing'"):
                await other.join([d2.local_addr])
            await other.close()
            # ... and the cluster is unhurt.
            await asyncio.sleep(0.5)
            assert all(statuses(d) == alive for d in (d1, d2, d3, d4))
            assert next(m for m in d1.members() if m.name == "node3").addr == "127.0.0.63"

            # A user event reaches every member once.
            fired = d2.broadcast_user_event("deploy", b"v1")

            def got(name: str) -> list[str]:
                return [e.id for e in events[name] if isinstance(e, UserEvent)]

            await wait_for(lambda: all(got(f"node{i}") == [fired.id] for i in range(1, 5)))

            # Tags propagate.
            d3.update_tags({"dc": "shenzhen", "role": "consul"})
            await wait_for(
                lambda: all(
                    next(m for m in d.members() if m.name == "node3").tags["role"] == "consul"
                    for d in (d1, d2, d4)
                )
            )

            # A crash (no leave) is detected as failed; a graceful leave shows as left.
            await d4.close()
            await wait_for(
                lambda: all(statuses(d)["node4"] == MemberStatus.FAILED for d in (d1, d2, d3))
            )
            assert await d3.leave(timeout=3.0)
            await d3.close()
            await wait_for(lambda: all(statuses(d)["node3"] == MemberStatus.LEFT for d in (d1, d2)))
            assert statuses(d1)["node1"] == statuses(d1)["node2"] == MemberStatus.ALIVE
        finally:
            for d in (d1, d2, d3, d4):
                await d.close()

    asyncio.run(main())


def test_bind_error_names_the_address() -> None:
    async def main() -> None:
        d = await GossipDriver.create("a", "127.0.0.61", 0, {}, FAST)
        port = int(d.local_addr.split(":")[1])
        try:
            with pytest.raises(BindError, match=f"127.0.0.61:{port}"):
                await GossipDriver.create("b", "127.0.0.61", port, {}, FAST)
        finally:
            await d.close()

    asyncio.run(main())


def test_idle_driver_arms_one_timer_and_wakes_rarely() -> None:
    async def main() -> None:
        d = await GossipDriver.create("solo", "127.0.0.62", 0, {}, FAST)
        with patch.object(d.core, "tick", wraps=d.core.tick) as tick:
            start = asyncio.get_running_loop().time()
            await asyncio.sleep(1.0)
            elapsed = asyncio.get_running_loop().time() - start
        # Alone with nothing to gossip: about one wake-up per probe interval, no busy loop.
        assert tick.call_count <= elapsed / FAST.probe_interval * 2 + 3
        await d.close()

    asyncio.run(main())
