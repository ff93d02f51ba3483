"""Copying bytes both ways between two connections, at the transport level.

Each connection's protocol is a `Side`; `join(a, b)` links two of them so that what one
receives is written straight to the other's transport. That is one Python call per chunk
the event loop reads (up to 256 KiB from a plain socket, a batch of TLS records from an SSL
transport), with no stream buffer in between: an `asyncio.StreamReader` copies every chunk
into its buffer and again out of it, which measured as half of the proxy's own CPU time.
Back-pressure is the transports' own: when a side's write buffer passes its high-water mark
the other side stops reading until it drains.

End of file is passed on as a half-close where the receiving transport can do one (plain
TCP); a TLS transport cannot half-close through `asyncio`, so there, as in Consul's built-in
proxy, the whole connection ends (after the data already written is flushed). An error on
either side aborts both.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import cast

__all__ = ["HIGH_WATER", "Side", "close", "join"]

# Write buffer limits of every piped transport: high enough that a 256 KiB read rarely
# pauses the other side, low enough to bound memory per connection to a few MiB.
HIGH_WATER = 4 << 20
LOW_WATER = 1 << 20


class Side(asyncio.Protocol):
    """One connection of a pipe. Reading stays paused until `join` links it to its peer;
    anything that arrives earlier (an SSL transport may hand over a first batch) is kept."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: Side | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._early: list[bytes] = []
        self._early_eof = False
        self._input_ended = False
        self._failed = False
        self._tls = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self._tls = transport.get_extra_info("sslcontext") is not None
        self.transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)
        self.transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self._early.append(data)
        else:
            peer.transport.write(data)

    def eof_received(self) -> bool:
        """True keeps our transport open for the answer still to come; an SSL transport
        closes after end of file whatever we return, so it is never asked to stay."""
        self._input_ended = True
        if self.peer is None:
            self._early_eof = True
            return not self._tls
        if self.peer._input_ended:  # both directions are over
            if self.peer.transport is not None:
                close(self.peer.transport)
            return False
        return self.peer._end_input() and not self._tls

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        peer = self.peer
        if peer is not None and peer.transport is not None:
            close(peer.transport, abort=exc is not None or self._failed)

    # -- the pipe -------------------------------------------------------------------------

    def _end_input(self) -> bool:
        """The peer's input ended: half-close our output, or end the connection.

        Returns what the peer's `eof_received` should: True keeps its transport open (it may
        still have an answer to deliver to it)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        with contextlib.suppress(OSError, RuntimeError, NotImplementedError):
            if transport.can_write_eof():
                transport.write_eof()
                return True
        transport.close()
        return False

    def abort(self) -> None:
        self._failed = True
        if self.transport is not None:
            close(self.transport, abort=True)


def close(transport: asyncio.BaseTransport, *, abort: bool = False) -> None:
    with contextlib.suppress(Exception):
        if abort:
            cast(asyncio.WriteTransport, transport).abort()
        else:
            transport.close()


async def join(a: Side, b: Side) -> None:
    """Pipe `a` and `b` into each other; returns when both connections are closed.
    Cancelling it aborts both."""
    assert a.transport is not None and b.transport is not None
    a.peer, b.peer = b, a
    try:
        for src, dst in ((a, b), (b, a)):
            assert dst.transport is not None and src.transport is not None
            for chunk in src._early:
                dst.transport.write(chunk)
            src._early.clear()
            if src._early_eof and not dst._end_input():
                close(src.transport)
        for side in (a, b):
            if side.transport is not None and not side.transport.is_closing():
                side.transport.resume_reading()
        await asyncio.gather(asyncio.shield(a.closed), asyncio.shield(b.closed))
    except BaseException:
        a.abort()
        b.abort()
        raise
