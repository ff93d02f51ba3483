"""The durable command log and snapshots in the data dir.

Layout under `<data_dir>/raft/`:

    log/<first-index:020d>.seg   records: header (len, crc32, index, term) + msgpack payload
    snapshots/<index:020d>.snap  header (magic, crc32) + the store's msgpack snapshot

A record is acknowledged only after `fdatasync` of its segment returns, so after `kill -9` every
acknowledged record is on disk; a torn record can only sit at the tail of the last segment,
past the last sync, and is cut off on open. A snapshot is written to a temp file, synced, and
renamed into place; then segments holding only entries it covers are deleted. Recovery is the
newest valid snapshot plus the records after it.

Damage is never half-applied. A record whose checksum fails at the tail of the last segment is
the torn end of a write that was never acknowledged: it and everything after it are cut, with a
WARNING naming the file, the last good index and the bytes dropped. Damage anywhere else is
`LogCorrupt`. A snapshot whose checksum fails, or whose header disagrees with its file name,
is skipped with a WARNING and the previous one is used.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_RECORD = struct.Struct("<IIQQ")  # payload length, crc32(index|term|payload), index, term
_SNAP_MAGIC = b"GKVSNAP1"
_SNAP_HEADER = struct.Struct("<8sIQ")  # magic, crc32(body), last index

log = logging.getLogger("agent.raft")


class LogCorrupt(Exception):
    """The log or a snapshot is damaged somewhere an acknowledged write could live."""


@dataclass(frozen=True, slots=True)
class Record:
    index: int
    term: int
    payload: bytes


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_record(index: int, term: int, payload: bytes) -> bytes:
    head = struct.pack("<QQ", index, term)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return _RECORD.pack(len(payload), crc, index, term) + payload


class FileLog:
    """Append-only segmented log. Not thread-safe: one writer (the commit loop) at a time."""

    def __init__(self, root: Path, segment_bytes: int = 64 << 20) -> None:
        self.root = root
        self.log_dir = root / "log"
        self.snap_dir = root / "snapshots"
        self.segment_bytes = segment_bytes
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.snap_dir.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None
        self._segment_size = 0
        self.last_index = 0
        # Appends (raft-io thread) and snapshot commits (snapshot thread) both move segments.
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ reading

    def _segments(self) -> list[Path]:
        return sorted(self.log_dir.glob("*.seg"))

    def latest_snapshot(self) -> tuple[int, bytes] | None:
        """The newest snapshot whose checksum holds (older ones are kept as fallbacks)."""
        for path in sorted(self.snap_dir.glob("*.snap"), reverse=True):
            data = path.read_bytes()
            if len(data) < _SNAP_HEADER.size:
                _skip_snapshot(path, "shorter than its header")
                continue
            magic, crc, index = _SNAP_HEADER.unpack_from(data)
            body = memoryview(data)[_SNAP_HEADER.size :]
            why = _snapshot_problem(path, magic, index, crc, zlib.crc32(body))
            if why is None:
                return index, bytes(body)
            _skip_snapshot(path, why)
        return None

    def replay(self, after_index: int) -> Iterator[Record]:
        """Records with index > after_index, in order; cuts a torn tail off the last segment."""
        segments = self._segments()
        expected = None
        for n, path in enumerate(segments):
            last_segment = n == len(segments) - 1
            data = path.read_bytes()
            offset = 0
            while offset < len(data):
                record, size = self._parse(data, offset)
                if record is None:
                    if not last_segment:
                        raise LogCorrupt(f"{path}: damaged record at byte {offset}")
                    # A write that never returned from fdatasync: nothing here was acknowledged.
                    log.warning(
                        "raft: %s: torn or damaged record at byte %d after index %d; "
                        "cutting %d bytes off the log tail",
                        path,
                        offset,
                        expected - 1 if expected is not None else int(path.stem) - 1,
                        len(data) - offset,
                    )
                    with open(path, "r+b") as f:
                        f.truncate(offset)
                        os.fsync(f.fileno())
                    break
                if expected is not None and record.index != expected:
                    raise LogCorrupt(f"{path}: index {record.index} follows {expected - 1}")
                if expected is None and record.index > after_index + 1:
                    # The entries right after the snapshot are gone: replaying the rest on top
                    # of it would build a state no server ever had.
                    raise LogCorrupt(
                        f"{path}: the log starts at index {record.index}, "
                        f"but the snapshot it follows ends at {after_index}"
                    )
                expected = record.index + 1
                offset += size
                self.last_index = record.index
                if record.index > after_index:
                    yield record

    @staticmethod
    def _parse(data: bytes, offset: int) -> tuple[Record | None, int]:
        if offset + _RECORD.size > len(data):
            return None, 0
        length, crc, index, term = _RECORD.unpack_from(data, offset)
        start = offset + _RECORD.size
        payload = data[start : start + length]
        if len(payload) != length:
            return None, 0
        if zlib.crc32(payload, zlib.crc32(struct.pack("<QQ", index, term))) != crc:
            return None, 0
        return Record(index, term, payload), _RECORD.size + length

    # ------------------------------------------------------------------ writing

    def _open_segment(self, first_index: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        segments = self._segments()
        if segments and first_index > 0 and self._fd is None:
            path = segments[-1]  # continue the newest segment after a restart
        else:
            path = self.log_dir / f"{first_index:020d}.seg"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segment_size = os.fstat(self._fd).st_size
        _fsync_dir(self.log_dir)

    def append_sync(self, records: bytes, last_index: int, first_index: int | None = None) -> None:
        """Write encoded records (`first_index`..`last_index`) and make them durable (runs on
        a worker thread). A new segment is named after the first index it holds."""
        with self._lock:
            self._append_locked(records, last_index, first_index)

    def _append_locked(self, records: bytes, last_index: int, first_index: int | None) -> None:
        if self._fd is None:
            self._open_segment(first_index if first_index is not None else last_index)
        view = memoryview(records)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fdatasync(self._fd)
        self._segment_size += len(records)
        self.last_index = last_index

    @property
    def segment_size(self) -> int:
        return self._segment_size

    def needs_rotation(self) -> bool:
        return self._segment_size >= self.segment_bytes

    def snapshot_writer(self, index: int) -> SnapshotWriter:
        """A snapshot at `index` written piece by piece; `commit()` puts it in place."""
        return SnapshotWriter(self, index)

    def write_snapshot(self, index: int, body: bytes | Iterable[bytes], keep: int = 2) -> None:
        """Persist a snapshot at `index` (bytes, or pieces written as they come: a large store
        is never held twice) and drop the log segments it fully covers."""
        writer = self.snapshot_writer(index)
        try:
            for part in [body] if isinstance(body, bytes | bytearray | memoryview) else body:
                writer.write(part)
        except BaseException:
            writer.abort()
            raise
        writer.commit(keep)

    def _after_snapshot(self, index: int, keep: int) -> None:
        """Entries after `index` may already be in the log (a Raft follower persists before it
        applies): the current segment is closed and a new one started after the last written
        index, and only segments whose every entry is at or below `index` go."""
        with self._lock:
            self._after_snapshot_locked(index, keep)

    def _after_snapshot_locked(self, index: int, keep: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        start = max(self.last_index, index) + 1
        new_segment = self.log_dir / f"{start:020d}.seg"
        self._fd = os.open(new_segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segment_size = 0
        _fsync_dir(self.log_dir)
        snapshots = sorted(self.snap_dir.glob("*.snap"), reverse=True)
        for path in snapshots[keep:]:
            path.unlink()
        # The log is kept back to the oldest snapshot that stays (from the start while there
        # is no older one): if the newest turns out damaged, recovery falls back to the older
        # snapshot and still finds every entry after it.
        floor = int(snapshots[keep - 1].stem) if len(snapshots) >= keep else 0
        segments = self._segments()
        for path, following in zip(segments, segments[1:] + [None], strict=True):
            if path == new_segment or following is None:
                continue
            if int(following.stem) - 1 <= min(floor, index):
                path.unlink()
        self.last_index = max(self.last_index, index)
        _fsync_dir(self.log_dir)

    def latest_snapshot_file(self) -> tuple[int, Path] | None:
        """The newest snapshot whose checksum holds, checked by streaming (not loaded)."""
        for path in sorted(self.snap_dir.glob("*.snap"), reverse=True):
            with open(path, "rb") as f:
                head = f.read(_SNAP_HEADER.size)
                if len(head) < _SNAP_HEADER.size:
                    _skip_snapshot(path, "shorter than its header")
                    continue
                magic, crc, index = _SNAP_HEADER.unpack(head)
                running = 0
                while magic == _SNAP_MAGIC and (block := f.read(8 << 20)):
                    running = zlib.crc32(block, running)
            why = _snapshot_problem(path, magic, index, crc, running)
            if why is None:
                return index, path
            _skip_snapshot(path, why)
        return None

    @staticmethod
    def open_snapshot_body(path: Path) -> BinaryIO:
        """The snapshot's body as a stream (after the file header)."""
        f = open(path, "rb")  # noqa: SIM115 - handed to the caller, who closes it
        f.seek(_SNAP_HEADER.size)
        return f

    def snapshot_file(self, index: int) -> Path:
        return self.snap_dir / f"{index:020d}.snap"

    def truncate_from(self, index: int) -> None:
        """Remove every record with index >= `index` (a Raft follower's conflicting suffix)."""
        with self._lock:
            self._truncate_locked(index)

    def _truncate_locked(self, index: int) -> None:
        if index > self.last_index:
            return
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for path in reversed(self._segments()):
            first = int(path.stem)
            if first >= index:
                path.unlink()
                continue
            data = path.read_bytes()
            offset = 0
            while offset < len(data):
                record, size = self._parse(data, offset)
                if record is None or record.index >= index:
                    break
                offset += size
            with open(path, "r+b") as f:
                f.truncate(offset)
                os.fsync(f.fileno())
            break
        _fsync_dir(self.log_dir)
        self.last_index = index - 1
        segments = self._segments()
        if segments:
            self._fd = os.open(segments[-1], os.O_WRONLY | os.O_APPEND)
            self._segment_size = os.fstat(self._fd).st_size
        else:
            self._open_segment(index)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _snapshot_problem(path: Path, magic: bytes, index: int, crc: int, actual: int) -> str | None:
    """Why a snapshot file cannot be used, or None. The checksum covers the body only, so the
    index in the header is held against the file name it was written under."""
    if magic != _SNAP_MAGIC:
        return "not a snapshot file (bad magic)"
    if crc != actual:
        return f"checksum mismatch (header {crc:#010x}, body {actual:#010x})"
    if path.stem.isdigit() and int(path.stem) != index:
        return f"header index {index} does not match the file name"
    return None


def _skip_snapshot(path: Path, why: str) -> None:
    log.warning("raft: snapshot %s is damaged (%s); falling back to an older one", path, why)


class SnapshotWriter:
    """Writes a snapshot file as pieces arrive (from the store, or from the leader over RPC),
    with the checksum computed on the way; nothing is visible until `commit()`."""

    def __init__(self, log: FileLog, index: int) -> None:
        self.log = log
        self.index = index
        self.final = log.snap_dir / f"{index:020d}.snap"
        self.tmp = self.final.with_suffix(f".{os.getpid()}.{id(self)}.tmp")
        self._f = open(self.tmp, "wb")  # noqa: SIM115 - closed by commit()/abort()
        self._f.write(b"\0" * _SNAP_HEADER.size)
        self._crc = 0
        self.size = 0

    def write(self, part: bytes) -> None:
        self._f.write(part)
        self._crc = zlib.crc32(part, self._crc)
        self.size += len(part)

    def commit(self, keep: int = 2) -> Path:
        self._f.seek(0)
        self._f.write(_SNAP_HEADER.pack(_SNAP_MAGIC, self._crc, self.index))
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.tmp, self.final)
        _fsync_dir(self.log.snap_dir)
        self.log._after_snapshot(self.index, keep)
        return self.final

    def abort(self) -> None:
        self._f.close()
        self.tmp.unlink(missing_ok=True)
