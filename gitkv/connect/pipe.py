"""Copying bytes both ways between two stream pairs, until both directions are done.

Each direction is a loop of `read(256 KiB)`, `write`, `drain`: large reads keep the
per-chunk Python cost small next to the copy, and `drain` is the only back-pressure.
When one direction reaches end of file, the other side is half-closed if its transport can
(plain TCP) and the opposite direction keeps running; a TLS side cannot half-close through
`asyncio`'s SSL transport, so there, as in Consul's built-in proxy, the whole connection
ends. An error in either direction ends both.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["BUFFER", "close", "splice"]

BUFFER = 256 * 1024


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    read, write, drain = reader.read, writer.write, writer.drain
    while True:
        data = await read(BUFFER)
        if not data:
            return
        write(data)
        await drain()


def close(writer: asyncio.StreamWriter, *, abort: bool = False) -> None:
    with contextlib.suppress(Exception):
        if abort:
            writer.transport.abort()
        else:
            writer.close()


async def splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Pipe a -> b and b -> a; returns when the connection is over, both writers closed."""
    forward = asyncio.ensure_future(_copy(a_reader, b_writer))
    backward = asyncio.ensure_future(_copy(b_reader, a_writer))
    target = {forward: b_writer, backward: a_writer}
    pending = {forward, backward}
    failed = False
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            ended = [t for t in done if t.cancelled() or t.exception() is not None]
            failed = failed or bool(ended)
            if pending and not failed and all(_half_close(target[t]) for t in done):
                continue
            break
    finally:
        for task in (forward, backward):
            if not task.done():
                task.cancel()
        await asyncio.gather(forward, backward, return_exceptions=True)
        close(a_writer, abort=failed)
        close(b_writer, abort=failed)


def _half_close(writer: asyncio.StreamWriter) -> bool:
    try:
        if not writer.can_write_eof():
            return False
        writer.write_eof()
        return True
    except (OSError, RuntimeError):
        return False
