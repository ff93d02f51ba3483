"""Damage on disk is cut or skipped, loudly, and never half-applied: a torn or bit-flipped tail
record is truncated with a WARNING naming the file, the index and the bytes cut; a damaged
snapshot falls back to the previous one, whose log is still there to replay."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.raft.log import FileLog, LogCorrupt, encode_record


def write(log: FileLog, first: int, last: int) -> None:
    data = b"".join(encode_record(i, 1, f"cmd{i}".encode()) for i in range(first, last + 1))
    log.append_sync(data, last, first)


def only_segment(root: Path) -> Path:
    (segment,) = (root / "log").glob("*.seg")
    return segment


def flip(path: Path, offset: int, mask: int = 0x04) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= mask
    path.write_bytes(bytes(raw))


def record_size(index: int) -> int:
    return len(encode_record(index, 1, f"cmd{index}".encode()))


@pytest.mark.parametrize(
    "damage",
    ["truncated", "payload-bit", "header-index-bit", "length-bit"],
)
def test_damaged_last_record_is_cut_with_a_warning(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = FileLog(tmp_path)
    write(log, 1, 5)
    log.close()
    segment = only_segment(tmp_path)
    size = segment.stat().st_size
    last_start = size - record_size(5)
    if damage == "truncated":
        segment.write_bytes(segment.read_bytes()[:-4])
    elif damage == "payload-bit":
        flip(segment, size - 1)
    elif damage == "header-index-bit":
        flip(segment, last_start + 8)  # the low byte of the index field
    else:
        flip(segment, last_start, 0x01)  # the length: the payload seems one byte off
    cut = segment.stat().st_size - last_start
    with caplog.at_level(logging.WARNING, logger="agent.raft"):
        again = FileLog(tmp_path)
        records = list(again.replay(0))
    assert [r.index for r in records] == [1, 2, 3, 4]
    assert all(r.payload == f"cmd{r.index}".encode() for r in records)
    assert segment.stat().st_size == last_start
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = warning.getMessage()
    assert str(segment) in message
    assert "after index 4" in message
    assert f"cutting {cut} bytes" in message
    # The log goes on after the cut, and the cut is for good.
    write(again, 5, 6)
    again.close()
    assert [r.index for r in FileLog(tmp_path).replay(0)] == [1, 2, 3, 4, 5, 6]


def test_damage_inside_an_unsynced_batch_cuts_from_the_first_bad_record(tmp_path: Path) -> None:
    """A crash can tear any record of the last batch (sectors land out of order); none of them
    was acknowledged, so the tail goes from the first bad one, even if a later one parses."""
    log = FileLog(tmp_path)
    write(log, 1, 2)
    write(log, 3, 5)
    log.close()
    segment = only_segment(tmp_path)
    flip(segment, record_size(1) + record_size(2) + 25)  # the payload of record 3
    assert [r.index for r in FileLog(tmp_path).replay(0)] == [1, 2]


def test_clean_log_logs_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = FileLog(tmp_path)
    write(log, 1, 3)
    log.close()
    with caplog.at_level(logging.WARNING, logger="agent.raft"):
        assert [r.index for r in FileLog(tmp_path).replay(0)] == [1, 2, 3]
    assert caplog.records == []


def snapshots_at(tmp_path: Path, *indexes: int, last: int) -> FileLog:
    log = FileLog(tmp_path)
    done = 0
    for index in indexes:
        write(log, done + 1, index)
        log.write_snapshot(index, f"state-at-{index}".encode())
        done = index
    write(log, done + 1, last)
    log.close()
    return FileLog(tmp_path)


def snap(tmp_path: Path, index: int) -> Path:
    return tmp_path / "snapshots" / f"{index:020d}.snap"


@pytest.mark.parametrize("damage", ["body-bit", "truncated", "header-index"])
def test_damaged_snapshot_falls_back_to_the_previous_one_and_its_log(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = snapshots_at(tmp_path, 4, 8, last=10)
    newest = snap(tmp_path, 8)
    if damage == "body-bit":
        flip(newest, newest.stat().st_size - 3)
    elif damage == "truncated":
        newest.write_bytes(newest.read_bytes()[:-2])
    else:
        flip(newest, 12, 0x01)  # the header's index: 8 becomes 9
    with caplog.at_level(logging.WARNING, logger="agent.raft"):
        found = log.latest_snapshot_file()
        assert log.latest_snapshot() == (4, b"state-at-4")
    assert found == (4, snap(tmp_path, 4))
    assert any(str(newest) in r.getMessage() for r in caplog.records)
    # Everything after the fallback snapshot is still in the log, in order.
    assert [r.index for r in log.replay(4)] == [5, 6, 7, 8, 9, 10]


def test_first_snapshot_damaged_falls_back_to_the_whole_log(tmp_path: Path) -> None:
    log = snapshots_at(tmp_path, 6, last=9)
    flip(snap(tmp_path, 6), 25)
    assert log.latest_snapshot_file() is None
    assert [r.index for r in log.replay(0)] == list(range(1, 10))


def test_a_gap_after_the_snapshot_is_an_error_not_a_wrong_state(tmp_path: Path) -> None:
    """Both kept snapshots damaged: the entries before the older one were compacted away, and
    replaying what is left on an empty store would build a state no server had."""
    log = snapshots_at(tmp_path, 3, 6, 9, last=11)
    flip(snap(tmp_path, 9), 25)
    flip(snap(tmp_path, 6), 25)
    assert log.latest_snapshot_file() is None
    with pytest.raises(LogCorrupt, match="starts at index 7"):
        list(log.replay(0))
