"""The driver's seam to the network, and an in-memory twin of it.

A gossip transport has two channels, as memberlist's: best-effort datagrams (probes, gossip) and
reliable request/reply streams (push-pull state sync, the TCP fallback ping). Addresses are
"ip:port" strings on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

PacketHandler = Callable[[str, bytes], None]
"""Called with (from_addr, data) for each datagram; must not block."""

StreamHandler = Callable[[str, bytes], bytes]
"""Called with (from_addr, request) for each incoming stream; returns the one reply frame."""


class Transport(Protocol):
    """Contract: `start` binds and begins delivering to the handlers (on the running loop's
    thread, never concurrently); `send_packet` never blocks or raises for network errors (packets
    may be lost); `request` raises OSError / TimeoutError when the peer cannot be reached in
    `timeout` seconds; after `close` no handler is called."""

    @property
    def local_addr(self) -> str: ...

    async def start(self, on_packet: PacketHandler, on_stream: StreamHandler) -> None: ...

    def send_packet(self, addr: str, data: bytes) -> None: ...

    async def request(self, addr: str, data: bytes, timeout: float) -> bytes: ...

    async def close(self) -> None: ...


class Cipher(Protocol):
    """Optional gossip encryption (Consul's `-encrypt`). `decrypt` raises ValueError on data it
    cannot authenticate; such packets are dropped and such streams refused."""

    def encrypt(self, data: bytes) -> bytes: ...

    def decrypt(self, data: bytes) -> bytes: ...


class MemoryNetwork:
    """Wires `MemoryTransport`s together in one event loop; links can be cut for tests."""

    def __init__(self) -> None:
        self._endpoints: dict[str, MemoryTransport] = {}
        self._cut: set[frozenset[str]] = set()

    def transport(self, addr: str) -> MemoryTransport:
        return MemoryTransport(self, addr)

    def cut(self, a: str, b: str) -> None:
        self._cut.add(frozenset((a, b)))

    def heal(self) -> None:
        self._cut.clear()

    def _route(self, src: str, dst: str) -> MemoryTransport | None:
        if frozenset((src, dst)) in self._cut:
            return None
        return self._endpoints.get(dst)


class MemoryTransport:
    def __init__(self, network: MemoryNetwork, addr: str) -> None:
        self._net = network
        self._addr = addr
        self._on_packet: PacketHandler | None = None
        self._on_stream: StreamHandler | None = None

    @property
    def local_addr(self) -> str:
        return self._addr

    async def start(self, on_packet: PacketHandler, on_stream: StreamHandler) -> None:
        if self._addr in self._net._endpoints:
            raise OSError(f"address {self._addr} already in use")
        self._on_packet, self._on_stream = on_packet, on_stream
        self._net._endpoints[self._addr] = self

    def send_packet(self, addr: str, data: bytes) -> None:
        dst = self._net._route(self._addr, addr)
        if dst is not None and dst._on_packet is not None:
            handler = dst._on_packet
            asyncio.get_running_loop().call_soon(handler, self._addr, data)

    async def request(self, addr: str, data: bytes, timeout: float) -> bytes:
        dst = self._net._route(self._addr, addr)
        if dst is None or dst._on_stream is None:
            raise ConnectionRefusedError(f"dial tcp {addr}: connection refused")
        await asyncio.sleep(0)
        return dst._on_stream(self._addr, data)

    async def close(self) -> None:
        self._on_packet = self._on_stream = None
        if self._net._endpoints.get(self._addr) is self:
            del self._net._endpoints[self._addr]
