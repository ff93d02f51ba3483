"""Raft snapshots as the driver stores and ships them.

A snapshot body is a length-prefixed msgpack meta frame (`{"term", "conf"}`) followed by the
store's own snapshot frames. Bodies live in the data dir (`FileLog`'s snapshot files); the
in-memory storage keeps only their meta (`DiskSnapshotStorage`), and InstallSnapshot streams
the file in chunks of `SNAPSHOT_CHUNK_BYTES`.
"""

from __future__ import annotations

import io
import struct
from typing import Any, BinaryIO

import msgspec

from agent.raft.log import FileLog
from agent.raft.messages import ConfState, Snapshot, conf_from_wire, conf_to_wire
from agent.raft.storage import MemoryStorage

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode
SNAPSHOT_BYTES = 64 << 20  # snapshot after this much log data even if few entries
SNAPSHOT_BYTES_MAX = 192 << 20
TRAILING_BYTES = 16 << 20  # keep at most this much applied log in memory after a snapshot
_META_LEN = struct.Struct(">I")


def snapshot_body(term: int, conf: ConfState, state: bytes) -> list[bytes]:
    """A snapshot as pieces: length-prefixed msgpack meta, then the store's own bytes."""
    meta = _encode({"term": term, "conf": conf_to_wire(conf)})
    return [_META_LEN.pack(len(meta)), meta, state]


def read_snapshot_meta(stream: BinaryIO) -> tuple[int, ConfState]:
    """Read the meta frame of a snapshot body; the stream is left at the store's frames."""
    head = stream.read(_META_LEN.size)
    if len(head) != _META_LEN.size:
        raise ValueError("snapshot is truncated")
    (length,) = _META_LEN.unpack(head)
    meta = _decode(stream.read(length))
    return meta["term"], conf_from_wire(meta["conf"])


SNAPSHOT_CHUNK_BYTES = 4 << 20  # InstallSnapshot travels in RPC calls of this size


def written(writer: Any) -> int:
    """How many bytes of an incoming snapshot `writer` (a file writer or a buffer) holds."""
    return writer.tell() if isinstance(writer, io.BytesIO) else writer.size


class DiskSnapshotStorage(MemoryStorage):
    """MemoryStorage whose snapshot bytes stay on disk until a follower needs them.

    A million-key store snapshot is a gigabyte; keeping it in memory only to serve a rare
    InstallSnapshot would double the agent's footprint.
    """

    def __init__(self, log_store: FileLog | None) -> None:
        super().__init__()
        self._log_store = log_store

    # snapshot() returns the meta with empty data when the bytes live on disk: the driver
    # streams the file to a follower in chunks (RaftNode._send_snapshot).

    def drop_snapshot_data(self) -> None:
        snap = super().snapshot()
        if self._log_store is not None and snap.data:
            self._snap = Snapshot(snap.meta, b"")
