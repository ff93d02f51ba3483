"""The asyncio driver on the in-memory transport twin (no sockets; bounded waits)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from agent.gossip import GossipConfig, JoinError, MemberStatus, MergeDelegate, UserEvent
from agent.gossip.driver import GossipDriver
from agent.gossip.events import GossipEvent, MemberJoin
from agent.gossip.transport import Cipher, MemoryNetwork

FAST = GossipConfig(
    probe_interval=0.1,
    probe_timeout=0.05,
    gossip_interval=0.02,
    suspicion_mult=3,
    tcp_timeout=0.5,
    push_pull_interval=2.0,
)


async def wait_for(pred: Callable[[], bool], limit: float = 5.0) -> None:
    for _ in range(int(limit / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    assert pred()


async def start(
    net: MemoryNetwork,
    name: str,
    i: int,
    *,
    cipher: Cipher | None = None,
    on_event: Callable[[GossipEvent], None] | None = None,
    extra_merge_check: MergeDelegate | None = None,
) -> GossipDriver:
    addr = f"10.1.0.{i}:8301"
    return await GossipDriver.create(
        name,
        "10.1.0.1",
        8301,
        {"dc": "dc1"},
        FAST,
        seed=i,
        transport=net.transport(addr),
        cipher=cipher,
        on_event=on_event,
        extra_merge_check=extra_merge_check,
    )


def test_three_drivers_join_exchange_events_and_leave() -> None:
    async def main() -> None:
        net = MemoryNetwork()
        seen: list[GossipEvent] = []
        a = await start(net, "a", 1, on_event=seen.append)
        b = await start(net, "b", 2)
        c = await start(net, "c", 3)
        assert isinstance(seen[0], MemberJoin) and seen[0].member.name == "a"
        received: list[GossipEvent] = []

        async def consume() -> None:
            async for ev in c.events():
                received.append(ev)

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0)
        assert await b.join(["10.1.0.1:8301"]) == 1
        assert await c.join(["10.1.0.1", "10.1.0.2:8301"]) == 2  # bare IP gets our port
        drivers = [a, b, c]
        await wait_for(lambda: all(len(d.members()) == 3 for d in drivers))
        a.broadcast_user_event("deploy", b"v2")
        await wait_for(lambda: any(isinstance(e, UserEvent) for e in received))
        assert await c.leave(timeout=2.0)
        assert c.local_member().status == MemberStatus.LEFT
        await c.close()
        await consumer  # the iterator ends on close
        await wait_for(
            lambda: all(
                {m.name: m.status for m in d.members()}["c"] == MemberStatus.LEFT for d in (a, b)
            )
        )
        await a.close()
        await b.close()

    asyncio.run(main())


def test_join_errors_name_each_address() -> None:
    async def main() -> None:
        net = MemoryNetwork()
        a = await start(net, "a", 1)
        with pytest.raises(JoinError, match="10.1.0.9:8301: dial tcp 10.1.0.9:8301"):
            await a.join(["10.1.0.9:8301"])
        dup = await start(net, "a", 2)
        with pytest.raises(JoinError, match="Member 'a' has conflicting name"):
            await dup.join(["10.1.0.1:8301"])
        with pytest.raises(JoinError):
            await a.join([])
        await a.close()
        await dup.close()

    asyncio.run(main())


def test_killed_member_fails_and_extra_merge_check_runs() -> None:
    async def main() -> None:
        net = MemoryNetwork()
        a = await start(net, "a", 1, extra_merge_check=lambda peers: None)
        b = await start(net, "b", 2)
        c = await start(net, "c", 3)
        await b.join(["10.1.0.1:8301"])
        await c.join(["10.1.0.1:8301"])
        await wait_for(lambda: len(a.members()) == 3)
        await c.close()  # no leave: a crash
        await wait_for(
            lambda: {m.name: m.status for m in a.members()}["c"] == MemberStatus.FAILED,
            limit=10.0,
        )
        await a.close()
        await b.close()
        blocked = await start(MemoryNetwork(), "z", 1, extra_merge_check=lambda peers: "nope")
        await blocked.close()

    asyncio.run(main())


class ToyCipher:
    """Stands in for AES-GCM: a key tag in front, refused when it does not match."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def encrypt(self, data: bytes) -> bytes:
        return self.key + data[::-1]

    def decrypt(self, data: bytes) -> bytes:
        if not data.startswith(self.key):
            raise ValueError("message authentication failed")
        return data[len(self.key) :][::-1]


def test_cipher_hook_wraps_packets_and_streams() -> None:
    async def main() -> None:
        net = MemoryNetwork()
        a = await start(net, "a", 1, cipher=ToyCipher(b"k1"))
        b = await start(net, "b", 2, cipher=ToyCipher(b"k1"))
        c = await start(net, "c", 3, cipher=ToyCipher(b"k2"))
        assert await b.join(["10.1.0.1:8301"]) == 1
        await wait_for(lambda: len(a.members()) == 2 and len(b.members()) == 2)
        with pytest.raises(JoinError, match="decrypt"):
            await c.join(["10.1.0.1:8301"])
        await asyncio.sleep(0.3)
        assert {m.name for m in a.members()} == {"a", "b"}
        for d in (a, b, c):
            await d.close()

    asyncio.run(main())
