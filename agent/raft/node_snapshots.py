"""Snapshots in the Raft driver: taking them, compacting the log, and InstallSnapshot.

A snapshot is taken in the background once enough was applied: the store is captured on the
loop (an instant of it), then encoded and written on a thread of its own so Raft keeps
answering heartbeats. A leader streams its snapshot file to a lagging follower in chunks; the
follower writes them straight to a temp file and installs it when the SNAP message that names
it comes through the core.
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import replace
from typing import Any, BinaryIO

from agent.raft.messages import ConfState, Message, Snapshot, to_wire
from agent.raft.node_base import NodeBase
from agent.raft.snapshots import (
    SNAPSHOT_BYTES,
    SNAPSHOT_BYTES_MAX,
    SNAPSHOT_CHUNK_BYTES,
    TRAILING_BYTES,
    read_snapshot_meta,
    snapshot_body,
    written,
)

log = logging.getLogger("agent.raft")


class NodeSnapshots(NodeBase):
    """Taking, installing and streaming snapshots for `RaftNode`."""

    # -- taking snapshots ----------------------------------------------------------------

    def _maybe_snapshot(self) -> None:
        """Start a snapshot in the background when one is due. The store is captured here,
        on the loop (an instant of it); encoding and writing happen on their own thread, so
        Raft keeps answering heartbeats while a large store is written."""
        if self._snapshot_task is not None and not self._snapshot_task.done():
            return
        # By entries, or by log bytes: a quarter of the last snapshot, kept between
        # SNAPSHOT_BYTES and SNAPSHOT_BYTES_MAX. Small enough that the applied log held in
        # memory stays a fraction of the store; large enough that a big store is not
        # re-encoded for every few megabytes written.
        byte_limit = (
            min(max(SNAPSHOT_BYTES, self._last_snapshot_size // 4), SNAPSHOT_BYTES_MAX)
            * self._jitter
        )
        due = (
            self.applied - self._snapshot_index >= self.snapshot_every
            or self._bytes_since_snapshot >= byte_limit
        )
        if not due or self.applied <= self._snapshot_index:
            return
        index = self.applied
        term = self.storage.term(index)
        conf = self._conf
        captured = self.fsm.store.capture()
        self._bytes_since_snapshot = 0
        self._snapshot_task = asyncio.create_task(
            self._write_snapshot(index, term, conf, captured), name="raft-snapshot"
        )

    async def _write_snapshot(self, index: int, term: int, conf: ConfState, captured: Any) -> None:
        loop = asyncio.get_running_loop()
        meta = snapshot_body(term, conf, b"")[:2]

        def pieces():
            yield from meta
            yield from captured.chunks()

        try:
            if self.log is not None:
                writer = self.log.snapshot_writer(index)

                def write_all() -> int:
                    try:
                        for piece in pieces():
                            writer.write(piece)
                    except BaseException:
                        writer.abort()
                        raise
                    writer.commit()
                    return writer.size

                size = await loop.run_in_executor(self._snap_executor, write_all)
                in_memory = b""
            else:
                in_memory = await loop.run_in_executor(
                    self._snap_executor, lambda: b"".join(pieces())
                )
                size = len(in_memory)
        except Exception:
            log.exception("raft: snapshot at index %d failed", index)
            return
        if index > self.storage.snapshot().meta.index and index <= self.storage.last_index():
            self.storage.create_snapshot(index, conf, in_memory)
            self._compact(index)
        self._snapshot_index = max(self._snapshot_index, index)
        self._last_snapshot_size = size
        log.info("raft: snapshot at index %d (%d bytes)", index, size)

    def _compact(self, index: int) -> None:
        """Drop applied entries up to the snapshot, keeping a tail (by count and by bytes) so
        a follower slightly behind catches up from the log instead of a snapshot."""
        first = self.storage.first_index()
        lo = max(first, index - self.trailing_logs + 1)
        kept = 0
        cut = lo - 1
        for entry in reversed(self.storage.entries(lo, index + 1)):
            kept += entry.size()
            if kept > TRAILING_BYTES:
                cut = entry.index
                break
        if cut >= first:
            self.storage.compact(cut)

    # -- InstallSnapshot transfer (follower side) ----------------------------------------

    def _install_snapshot(self, snap: Snapshot) -> None:
        """Take the leader's snapshot: it arrived in chunks before the message that names it
        (see `receive_snapshot_chunk`); put it in place and load the store from it."""
        meta = snap.meta
        incoming = self._incoming.pop((meta.index, meta.term), None)
        store = self.fsm.store
        if incoming is not None and self.log is not None:
            incoming.commit()
            with self.log.open_snapshot_body(self.log.snapshot_file(meta.index)) as body:
                read_snapshot_meta(body)
                store.restore_from(body)
        else:
            data = incoming.getvalue() if isinstance(incoming, io.BytesIO) else snap.data
            if self.log is not None:
                self.log.write_snapshot(meta.index, data)
            body = io.BytesIO(data)
            read_snapshot_meta(body)
            store.restore_from(body)
            if self.log is None:
                snap = Snapshot(meta, bytes(data))
        for other in self._incoming.values():  # stale transfers
            if not isinstance(other, io.BytesIO):
                other.abort()
        self._incoming.clear()
        self.storage.apply_snapshot(snap if self.log is None else Snapshot(meta, b""))
        self._conf = meta.conf
        self.storage.set_conf_state(self._conf)
        self._write_state(self.term, self._persisted_term_vote[1], self._conf)
        store.last_index = meta.index
        self.applied = meta.index
        self._snapshot_index = meta.index
        log.info("raft: installed snapshot at index %d from the leader", meta.index)

    async def receive_snapshot_chunk(self, args: dict) -> bool:
        """RPC: one chunk of the leader's snapshot, written straight to a temp file."""
        key = (int(args["index"]), int(args["term"]))
        offset = int(args["offset"])
        writer = self._incoming.get(key)
        if offset == 0:
            if writer is not None and not isinstance(writer, io.BytesIO):
                writer.abort()
            writer = self.log.snapshot_writer(key[0]) if self.log is not None else io.BytesIO()
            self._incoming[key] = writer
        elif writer is None or written(writer) != offset:
            # A gap (this server restarted mid-transfer): refuse, the leader starts over.
            stale = self._incoming.pop(key, None)
            if stale is not None and not isinstance(stale, io.BytesIO):
                stale.abort()
            raise ValueError(f"snapshot chunk at offset {offset} does not follow what was received")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, writer.write, bytes(args["data"]))
        return True

    # -- InstallSnapshot transfer (leader side) ------------------------------------------

    async def _send_snapshot(self, address: str, msg: Message) -> None:
        """InstallSnapshot in chunks (a store snapshot can be a gigabyte): the body goes in
        `raft_snapshot_chunk` calls read off the loop, then the message itself."""
        meta = msg.snapshot.meta if msg.snapshot is not None else None
        ok = False
        try:
            if meta is None:
                raise ValueError("no snapshot in the message")
            loop = asyncio.get_running_loop()
            if self.log is not None:
                source: BinaryIO = self.log.open_snapshot_body(self.log.snapshot_file(meta.index))
            else:
                source = io.BytesIO(self.storage.snapshot().data)
            with source:
                offset = 0
                while True:
                    chunk = await loop.run_in_executor(None, source.read, SNAPSHOT_CHUNK_BYTES)
                    if not chunk and offset:
                        break
                    args = {"index": meta.index, "term": meta.term, "offset": offset, "data": chunk}
                    await self.pool.call(address, "raft_snapshot_chunk", args, timeout=60)
                    offset += len(chunk)
                    if not chunk:
                        break
            bare = replace(msg, snapshot=Snapshot(meta, b""))
            await self.pool.call(address, "raft_snapshot", to_wire(bare), timeout=60)
            ok = True
        except Exception as exc:
            log.warning("raft: sending snapshot to %s failed: %s", address, exc)
        if self.core is not None:
            self.core.report_snapshot(msg.to, ok)
            self._kick()
