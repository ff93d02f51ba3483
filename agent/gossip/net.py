"""The real transport: UDP datagrams and TCP streams on one (ip, port), e.g. the serf port 8301.

A stream carries one request frame and one reply frame, each a 4-byte big-endian length and the
bytes. Outgoing TCP connections bind our own IP, so peers see the address we gossip from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from typing import Any

from agent.gossip.errors import BindError
from agent.gossip.transport import PacketHandler, StreamHandler

log = logging.getLogger("agent.gossip")

_LEN = struct.Struct(">I")
MAX_FRAME = 32 * 1024 * 1024  # a push-pull of ~100k members; larger frames are refused


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes exceeds the {MAX_FRAME} byte limit")
    return await reader.readexactly(length)


def _frame(data: bytes) -> bytes:
    return _LEN.pack(len(data)) + data


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTcpTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        handler = self._owner._on_packet
        if handler is not None:
            handler(f"{addr[0]}:{addr[1]}", data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable etc.: UDP is best effort, the probe logic copes.
        log.debug("gossip udp error: %s", exc)


class UdpTcpTransport:
    """Binds UDP and TCP on (`bind_ip`, `port`); port 0 picks one free for both."""

    def __init__(self, bind_ip: str, port: int, stream_timeout: float = 10.0) -> None:
        self.bind_ip = bind_ip
        self.port = port
        self.stream_timeout = stream_timeout
        self._on_packet: PacketHandler | None = None
        self._on_stream: StreamHandler | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    @property
    def local_addr(self) -> str:
        return f"{self.bind_ip}:{self.port}"

    async def start(self, on_packet: PacketHandler, on_stream: StreamHandler) -> None:
        loop = asyncio.get_running_loop()
        attempts = 20 if self.port == 0 else 1
        for attempt in range(attempts):
            server = None
            try:
                server = await asyncio.start_server(
                    self._serve, host=self.bind_ip, port=self.port, reuse_address=True
                )
                port = server.sockets[0].getsockname()[1]
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(self), local_addr=(self.bind_ip, port)
                )
            except OSError as exc:
                if server is not None:
                    server.close()
                    await server.wait_closed()
                if attempt + 1 < attempts:
                    continue  # the TCP port's UDP twin was taken; try another free port
                raise BindError(
                    f"failed to bind gossip listeners on {self.bind_ip}:{self.port}: {exc}"
                ) from exc
            self._server, self._udp, self.port = server, udp, port
            self._on_packet, self._on_stream = on_packet, on_stream
            return

    def send_packet(self, addr: str, data: bytes) -> None:
        if self._udp is None:
            return
        host, _, port = addr.rpartition(":")
        try:
            self._udp.sendto(data, (host.strip("[]"), int(port)))
        except (OSError, ValueError) as exc:
            log.debug("gossip udp send to %s failed: %s", addr, exc)

    async def request(self, addr: str, data: bytes, timeout: float) -> bytes:
        host, _, port = addr.rpartition(":")

        async def exchange() -> bytes:
            reader, writer = await asyncio.open_connection(
                host.strip("[]"), int(port), local_addr=(self.bind_ip, 0)
            )
            try:
                writer.write(_frame(data))
                await writer.drain()
                return await _read_frame(reader)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

        return await asyncio.wait_for(exchange(), timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        peer = writer.get_extra_info("peername")
        peer_addr = f"{peer[0]}:{peer[1]}" if peer else "?"
        try:
            request = await asyncio.wait_for(_read_frame(reader), self.stream_timeout)
            handler = self._on_stream
            if handler is None:
                return
            writer.write(_frame(handler(peer_addr, request)))
            await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError) as exc:
            log.debug("gossip stream from %s failed: %s", peer_addr, exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if task is not None:
                self._conns.discard(task)

    async def close(self) -> None:
        self._on_packet = self._on_stream = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            await self._server.wait_closed()
            self._server = None
