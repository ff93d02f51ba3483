"""Server RPC on port 8300: one TCP port for Raft traffic and request forwarding.

Wire format: every frame is a 4-byte big-endian length and a msgpack map. Three kinds:

    {"k": "msg", "b": <payload>}                         one-way (Raft messages)
    {"k": "req", "i": <id>, "m": <method>, "a": <args>}  a request; many may be in flight
    {"k": "rep", "i": <id>, "r": <result>} | {"k": "rep", "i": <id>, "e": <error text>, "s": <status>}

Requests are multiplexed on one connection per peer (answers carry the request id, so a slow
blocking query never holds up a Raft heartbeat on the same connection). Nothing on the wire is
pickled: msgpack carries only plain values.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("agent.rpc")

_LEN = struct.Struct(">I")
MAX_FRAME = 64 << 20  # snapshots travel in frames too
CONNECT_TIMEOUT = 2.0

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


class RPCError(Exception):
    """A request failed: transport trouble or the remote handler's refusal."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


class DialError(RPCError):
    """The target could not be reached at all: nothing was sent, so trying another (a new
    leader) cannot run the request twice."""


Handler = Callable[[Any], Awaitable[Any]]
MessageHandler = Callable[[str, Any], None]


async def _read_frame(reader: asyncio.StreamReader) -> dict:
    head = await reader.readexactly(_LEN.size)
    (length,) = _LEN.unpack(head)
    if length > MAX_FRAME:
        raise RPCError(f"frame of {length} bytes exceeds the {MAX_FRAME} byte limit")
    return _decode(await reader.readexactly(length))


def _frame(obj: dict) -> bytes:
    body = _encode(obj)
    return _LEN.pack(len(body)) + body


class RPCServer:
    """Accepts peer connections; dispatches requests to handlers by method name."""

    def __init__(self, on_message: MessageHandler) -> None:
        self.handlers: dict[str, Handler] = {}
        self.on_message = on_message
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    def register(self, method: str, handler: Handler) -> None:
        self.handlers[method] = handler

    async def start(self, host: str, port: int, ssl: ssl.SSLContext | None = None) -> None:
        """Listen on host:port; with `ssl` every connection must complete a TLS handshake
        (see agent.tls for the verification rules)."""
        try:
            self._server = await asyncio.start_server(
                self._serve, host, port, reuse_address=True, ssl=ssl
            )
        except OSError as exc:
            raise RPCError(
                f"Failed to start RPC layer: listen tcp {host}:{port}: bind: {exc.strerror or exc}"
            ) from None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._conns):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        peer = writer.get_extra_info("peername")
        peer_addr = f"{peer[0]}:{peer[1]}" if peer else "?"
        lock = asyncio.Lock()
        tasks: set[asyncio.Task] = set()
        try:
            while True:
                frame = await _read_frame(reader)
                kind = frame.get("k")
                if kind == "msg":
                    self.on_message(peer_addr, frame.get("b"))
                elif kind == "req":
                    task = asyncio.create_task(self._answer(frame, writer, lock))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, RPCError, msgspec.DecodeError):
            pass
        finally:
            self._conns.discard(writer)
            for task in tasks:
                task.cancel()
            writer.close()

    async def _answer(self, frame: dict, writer: asyncio.StreamWriter, lock: asyncio.Lock) -> None:
        rid = frame.get("i")
        handler = self.handlers.get(frame.get("m", ""))
        try:
            if handler is None:
                raise RPCError(f"rpc: can't find method {frame.get('m')!r}")
            reply = {"k": "rep", "i": rid, "r": await handler(frame.get("a"))}
        except asyncio.CancelledError:
            raise
        except RPCError as exc:
            reply = {"k": "rep", "i": rid, "e": str(exc), "s": exc.status}
        except Exception as exc:  # the remote end must hear about it, not hang
            status = getattr(exc, "status", 500)
            message = getattr(exc, "message", None) or str(exc)
            reply = {"k": "rep", "i": rid, "e": message, "s": status}
        try:
            async with lock:
                writer.write(_frame(reply))
                await writer.drain()
        except ConnectionError:
            pass


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending: dict[int, asyncio.Future] = {}
        self.task = asyncio.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            while True:
                frame = await _read_frame(self.reader)
                fut = self.pending.pop(frame.get("i"), None)
                if fut is None or fut.done():
                    continue
                if "e" in frame:
                    fut.set_exception(RPCError(frame["e"], frame.get("s", 500)))
                else:
                    fut.set_result(frame.get("r"))
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            RPCError,
            msgspec.DecodeError,
            OSError,
        ):
            pass
        finally:
            self.fail("connection closed")

    def fail(self, why: str) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(RPCError(f"rpc error: {why}"))
        self.pending.clear()
        self.writer.close()

    @property
    def closed(self) -> bool:
        return self.task.done() or self.writer.is_closing()


class RPCPool:
    """Client side: one multiplexed connection per peer address, opened on demand."""

    def __init__(
        self,
        local_host: str | None = None,
        ssl: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        # Outgoing connections leave from the agent's own address, as a separate host's would.
        self.local_host = local_host
        # TLS to other servers; `server_hostname` is the name their certificates must carry
        # (server.<dc>.<domain>) when the context checks hostnames.
        self.ssl = ssl
        self.server_hostname = server_hostname
        self._conns: dict[str, _Conn] = {}
        self._connecting: dict[str, asyncio.Future] = {}
        self._ids = itertools.count(1)

    async def _conn(self, address: str) -> _Conn:
        conn = self._conns.get(address)
        if conn is not None and not conn.closed:
            return conn
        waiting = self._connecting.get(address)
        if waiting is not None:
            return await asyncio.shield(waiting)
        fut = asyncio.get_running_loop().create_future()
        self._connecting[address] = fut
        try:
            host, port = address.rsplit(":", 1)
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host.strip("[]"),
                    int(port),
                    local_addr=(self.local_host, 0) if self.local_host else None,
                    ssl=self.ssl,
                    server_hostname=self.server_hostname if self.ssl is not None else None,
                ),
                CONNECT_TIMEOUT,
            )
            conn = _Conn(reader, writer)
            self._conns[address] = conn
            fut.set_result(conn)
            return conn
        except (OSError, TimeoutError) as exc:
            error = DialError(f"rpc error: failed to dial {address}: {exc or 'timeout'}")
            fut.set_exception(error)
            fut.exception()  # retrieved: no "never retrieved" warning for lone dialers
            raise error from None
        finally:
            self._connecting.pop(address, None)

    async def call(self, address: str, method: str, args: Any, timeout: float = 30.0) -> Any:
        conn = await self._conn(address)
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        conn.pending[rid] = fut
        try:
            conn.writer.write(_frame({"k": "req", "i": rid, "m": method, "a": args}))
            await conn.writer.drain()
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise RPCError(
                f"rpc error: timeout after {timeout:.0f}s calling {method} on {address}"
            ) from None
        except ConnectionError as exc:
            raise RPCError(f"rpc error: {exc}") from None
        finally:
            conn.pending.pop(rid, None)

    def send(self, address: str, payload: Any, on_error: Callable[[], None] | None = None) -> None:
        """Fire-and-forget (Raft tolerates loss); connects in the background if needed.
        `on_error` hears about a peer that cannot be reached."""
        conn = self._conns.get(address)
        frame = _frame({"k": "msg", "b": payload})
        if conn is not None and not conn.closed:
            conn.writer.write(frame)
            return
        asyncio.ensure_future(self._send_later(address, frame, on_error))

    async def _send_later(
        self, address: str, frame: bytes, on_error: Callable[[], None] | None
    ) -> None:
        try:
            conn = await self._conn(address)
        except RPCError:
            if on_error is not None:
                on_error()
            return
        conn.writer.write(frame)

    async def close(self) -> None:
        for conn in self._conns.values():
            conn.task.cancel()
            conn.fail("pool closed")
        self._conns.clear()
