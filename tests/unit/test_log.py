"""The durable log: replay, torn tails, corruption, snapshots and compaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.raft.log import FileLog, LogCorrupt, encode_record


def write(log: FileLog, first: int, last: int) -> None:
    data = b"".join(encode_record(i, 1, f"cmd{i}".encode()) for i in range(first, last + 1))
    log.append_sync(data, last, first)


def test_replay_returns_records_after_index(tmp_path: Path) -> None:
    log = FileLog(tmp_path)
    write(log, 1, 5)
    log.close()
    again = FileLog(tmp_path)
    assert [r.index for r in again.replay(2)] == [3, 4, 5]
    assert again.last_index == 5


def test_torn_tail_is_cut_off(tmp_path: Path) -> None:
    log = FileLog(tmp_path)
    write(log, 1, 3)
    log.close()
    segment = next((tmp_path / "log").glob("*.seg"))
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # a crash in the middle of the last record
    again = FileLog(tmp_path)
    assert [r.index for r in again.replay(0)] == [1, 2]
    assert segment.stat().st_size < len(data) - 3
    write(again, 3, 4)  # appending after the cut continues the sequence
    again.close()
    assert [r.index for r in FileLog(tmp_path).replay(0)] == [1, 2, 3, 4]


def test_damage_before_the_tail_is_an_error(tmp_path: Path) -> None:
    log = FileLog(tmp_path, segment_bytes=1)
    write(log, 1, 2)
    log.write_snapshot(2, b"state")
    write(log, 3, 4)
    log.close()
    # damage a record in a segment that is not the last one
    (tmp_path / "log" / f"{5:020d}.seg").write_bytes(encode_record(5, 1, b"x"))
    first = tmp_path / "log" / f"{3:020d}.seg"
    raw = bytearray(first.read_bytes())
    raw[30] ^= 0xFF
    first.write_bytes(bytes(raw))
    with pytest.raises(LogCorrupt):
        list(FileLog(tmp_path).replay(2))


def test_snapshot_compacts_covered_segments(tmp_path: Path) -> None:
    log = FileLog(tmp_path)
    write(log, 1, 10)
    log.write_snapshot(10, b"state-at-10")
    write(log, 11, 12)
    # The log is kept back to the previous snapshot (here: none, so all of it), so a damaged
    # newest snapshot can still be recovered from; the next snapshot drops what the first covers.
    assert [p.name for p in sorted((tmp_path / "log").glob("*.seg"))] == [
        f"{1:020d}.seg",
        f"{11:020d}.seg",
    ]
    log.write_snapshot(12, b"state-at-12")
    write(log, 13, 14)
    log.close()
    again = FileLog(tmp_path)
    assert again.latest_snapshot() == (12, b"state-at-12")
    assert [r.index for r in again.replay(12)] == [13, 14]
    assert [p.name for p in sorted((tmp_path / "log").glob("*.seg"))] == [
        f"{11:020d}.seg",
        f"{13:020d}.seg",
    ]


def test_damaged_snapshot_falls_back_to_older_one(tmp_path: Path) -> None:
    log = FileLog(tmp_path)
    write(log, 1, 2)
    log.write_snapshot(2, b"old")
    write(log, 3, 4)
    log.write_snapshot(4, b"new")
    log.close()
    newest = tmp_path / "snapshots" / f"{4:020d}.snap"
    newest.write_bytes(newest.read_bytes()[:-1] + b"!")
    assert FileLog(tmp_path).latest_snapshot() == (2, b"old")


def test_truncate_from_drops_a_conflicting_suffix(tmp_path: Path) -> None:
    log = FileLog(tmp_path)
    write(log, 1, 5)
    log.truncate_from(3)
    log.append_sync(encode_record(3, 2, b"new3"), 3)
    log.close()
    records = list(FileLog(tmp_path).replay(0))
    assert [(r.index, r.term) for r in records] == [(1, 1), (2, 1), (3, 2)]


def test_snapshot_keeps_entries_written_after_it(tmp_path: Path) -> None:
    log = FileLog(tmp_path)
    write(log, 1, 10)  # persisted up to 10, applied (snapshotted) only up to 7
    log.write_snapshot(7, b"at-7")
    write(log, 11, 12)
    log.close()
    again = FileLog(tmp_path)
    assert [r.index for r in again.replay(7)] == [8, 9, 10, 11, 12]
