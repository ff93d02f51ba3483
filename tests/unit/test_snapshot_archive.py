"""The snapshot archive (agent/state/archive.py) and the store's strict, atomic restore
(agent/state/snapshot.py): an intact archive round-trips; a damaged, truncated, forged or
foreign one is refused with Consul's words, and the store it was meant for is untouched."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import tarfile

import msgspec
import pytest

from agent.state.archive import (
    ArchiveInvalid,
    Server,
    new_meta,
    read_archive,
    read_verified,
    write_archive,
)
from agent.state.snapshot import CapturedState, SnapshotInvalid
from agent.state.store import Store
from agent.state.structs import HealthCheck, KVEntry, Node, Service, Session


def filled_store() -> Store:
    store = Store()
    for i in range(40):
        store.kv_put(i + 1, KVEntry(f"app/k{i:02d}", f"value {i}".encode() * 3, Flags=i))
    store.ensure_node(41, Node("web-1", "10.0.0.1", Meta={"rack": "a"}))
    store.ensure_service(42, "web-1", Service("web", "web", Tags=["v1"], Port=80))
    store.ensure_check(43, HealthCheck("web-1", "web-alive", Status="passing", ServiceID="web"))
    store.sessions.by_id["s1"] = Session("s1", Node="web-1")
    store.acl.tokens["acc"] = {"AccessorID": "acc", "SecretID": "sec", "Policies": [{"ID": "p"}]}
    store.acl.by_secret["sec"] = "acc"
    store.acl.policies["p"] = {"ID": "p", "Name": "read", "Rules": 'key_prefix "" {}'}
    store.acl.policy_names["read"] = "p"
    store.coordinates["web-1"] = {"Node": "web-1", "Segment": "", "Coord": {"Vec": [0.1] * 8}}
    store.autopilot = {"MaxTrailingLogs": 100, "CreateIndex": 44, "ModifyIndex": 44}
    store.kv_delete(45, "app/k39")
    store.last_index = 45
    return store


# A fixed time: the archive's bytes (its ID and member dates, hence its deflate stream) are
# the same on every run, so the flip test below sees the same stream every time.
NOW = 1_764_720_000.0


def archive_of(store: Store) -> bytes:
    state = store.snapshot()
    servers = [Server(0, "n1", "127.0.0.1:8300")]
    meta = new_meta(store.last_index, 2, len(state), servers, 1, now=NOW)
    return write_archive(meta, state, now=NOW)


def members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def pack(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


def sums(files: dict[str, bytes]) -> bytes:
    return "".join(
        f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in ("meta.json", "state.bin")
    ).encode()


def refused(raw: bytes) -> str:
    with pytest.raises(ArchiveInvalid) as caught:
        read_verified(raw)
    return str(caught.value)


# ---------------------------------------------------------------------- round trip


def test_archive_round_trip_restores_every_table() -> None:
    store = filled_store()
    raw = archive_of(store)
    assert set(members(raw)) == {"meta.json", "state.bin", "SHA256SUMS"}
    meta, state = read_verified(raw)
    assert (meta.Index, meta.Term, meta.Size, meta.Version) == (45, 2, len(state), 1)
    assert meta.Configuration.Servers == [Server(0, "n1", "127.0.0.1:8300")]
    copy = Store()
    copy.restore(state)
    assert copy.snapshot() == store.snapshot()
    assert copy.kv_get("app/k01").Value == b"value 1" * 3
    assert copy.tombstones["app/k39"] == 45
    assert copy.acl.token_by_secret("sec")["AccessorID"] == "acc"
    assert copy.sessions.get("s1").Node == "web-1"


def test_sha256sums_is_in_sha256sum_format() -> None:
    files = members(archive_of(filled_store()))
    lines = files["SHA256SUMS"].decode().splitlines()
    assert [line.split("  ")[1] for line in lines] == ["meta.json", "state.bin"]
    for line in lines:
        digest, name = line.split("  ")
        assert digest == hashlib.sha256(files[name]).hexdigest()


# ---------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "failed to decompress snapshot: EOF"),
        (b"this is plain text, not a snapshot", "gzip: invalid header"),
        (gzip.compress(random.Random(7).randbytes(4000)), "failed reading snapshot"),
        (gzip.compress(b""), "failed reading snapshot: empty file"),
        (pack({"notes.txt": b"hello"}), 'unexpected file "notes.txt" in snapshot'),
        (pack({"state.bin": b"x"}), 'missing file "meta.json" in snapshot'),
    ],
    ids=["empty", "plain-text", "random-gzip", "empty-gzip", "foreign-tar", "no-manifest"],
)
def test_foreign_input_is_refused(raw: bytes, words: str) -> None:
    assert words in refused(raw)


def test_every_truncation_is_refused() -> None:
    raw = archive_of(filled_store())
    for cut in range(0, len(raw) - 1, 7):
        message = refused(raw[:cut])
        assert message.startswith(("failed to decompress snapshot", "failed to read snapshot file"))
    assert "truncated" in refused(raw[:-1]) or "EOF" in refused(raw[:-1])


def test_a_flipped_byte_anywhere_never_changes_what_is_restored() -> None:
    """A few bits carry no content (the gzip header's MTIME/XFL/OS bytes, the padding after the
    last deflate block): a flip there is accepted and restores the same bytes. Every other
    flip is refused."""
    raw = archive_of(filled_store())
    genuine = read_archive(raw)
    accepted = []
    for pos in range(len(raw)):
        damaged = bytearray(raw)
        damaged[pos] ^= 0x10
        try:
            got = read_verified(bytes(damaged))
        except ArchiveInvalid:
            continue
        assert got == genuine, f"a flip at byte {pos} changed the content"
        accepted.append(pos)
    assert len(accepted) <= 8


def test_a_member_name_that_is_not_utf8_is_refused_with_the_name_shown() -> None:
    """tarfile keeps a name's undecodable bytes as surrogates; the refusal still quotes it."""
    files = members(archive_of(filled_store()))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in {**files, "st\udcffte.bin": b"x"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    message = refused(gzip.compress(buf.getvalue()))
    assert message.endswith('unexpected file "st\ufffdte.bin" in snapshot'), message


def test_flipped_bit_in_state_with_the_old_sums_is_a_sha256_mismatch() -> None:
    files = members(archive_of(filled_store()))
    state = bytearray(files["state.bin"])
    state[len(state) // 2] ^= 0x01
    files["state.bin"] = bytes(state)
    message = refused(pack(files))
    assert message == (
        "failed to read snapshot file: failed checking integrity of snapshot: "
        'hash check failed for "state.bin" (sha256 mismatch)'
    )


def test_tampered_manifest_is_refused() -> None:
    files = members(archive_of(filled_store()))
    for bad, words in [
        (b"", 'file missing for "meta.json"'),
        (b"deadbeef  meta.json\n", "line 1 is not"),
        (sums(files) + b"0" * 64 + b"  extra.bin\n", 'list missing hash for "extra.bin"'),
    ]:
        assert words in refused(pack({**files, "SHA256SUMS": bad}))


def test_duplicate_and_non_regular_members_are_refused() -> None:
    files = members(archive_of(filled_store()))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [*files.items(), ("state.bin", files["state.bin"])]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert 'duplicate file "state.bin"' in refused(gzip.compress(buf.getvalue()))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("state.bin")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    assert 'unexpected file "state.bin"' in refused(gzip.compress(buf.getvalue()))


def test_data_after_the_tar_is_refused() -> None:
    raw = archive_of(filled_store())
    inner = gzip.decompress(raw) + b"trailing garbage"
    assert "unread uncompressed bytes remain" in refused(gzip.compress(inner))


def _with_meta(files: dict[str, bytes], **changes: object) -> bytes:
    meta = msgspec.json.decode(files["meta.json"]) | changes
    files = {**files, "meta.json": msgspec.json.encode(meta)}
    return pack({**files, "SHA256SUMS": sums(files)})


def test_metadata_must_agree_with_the_state() -> None:
    files = members(archive_of(filled_store()))
    assert "Size 3 does not match state.bin" in refused(_with_meta(files, Size=3))
    assert "Index 7 does not match the state's (45)" in refused(_with_meta(files, Index=7))
    assert "unsupported snapshot version 2" in refused(_with_meta(files, Version=2))
    message = refused(_with_meta(files, Term="two"))
    assert "failed to decode snapshot metadata: Expected `int`, got `str` - at `$.Term`" in message
    assert "failed to decode snapshot metadata" in refused(_with_meta(files, Index=-1))


def test_foreign_state_with_valid_sums_is_refused() -> None:
    """A Consul archive (or anything else) is intact as an archive but not our state."""
    files = members(archive_of(filled_store()))
    state = random.Random(3).randbytes(500)
    assert "failed to decode snapshot state" in refused(_repack_state(files, state))


def _repack_state(files: dict[str, bytes], state: bytes) -> bytes:
    meta = msgspec.json.decode(files["meta.json"]) | {"Size": len(state)}
    files = {**files, "state.bin": state, "meta.json": msgspec.json.encode(meta)}
    return pack({**files, "SHA256SUMS": sums(files)})


# ---------------------------------------------------------------------- strict, atomic restore


def _header(store: Store, **changes: object) -> dict:
    return msgspec.msgpack.decode(store.capture().header) | changes


def _state(header: dict, kv: list | None = None) -> bytes:
    captured = CapturedState(msgspec.msgpack.encode(header), [])
    frames = list(captured.chunks())
    if kv is not None:
        body = msgspec.msgpack.encode(kv)
        frames.append(len(body).to_bytes(4, "big") + body)
    return b"".join(frames)


BAD_STATES = {
    "node name is a number": (
        {"nodes": [{"Node": 7, "Address": "10.0.0.9"}]},
        None,
        "Expected `str`, got `int` - at `$.nodes[0].Node`",
    ),
    "negative index": ({"last_index": -1}, None, "at `$.last_index`"),
    "token accessor is a number": (
        {"acl": {"tokens": [{"AccessorID": 1, "SecretID": "s"}]}},
        None,
        "at `$.acl.tokens[0].AccessorID`",
    ),
    "policy link without an ID": (
        {"acl": {"tokens": [{"AccessorID": "a", "SecretID": "s", "Policies": [{}]}]}},
        None,
        "missing required field `ID`",
    ),
    "coordinate vector of strings": (
        {"coordinates": [{"Node": "web-1", "Coord": {"Vec": ["x"]}}]},
        None,
        "at `$.coordinates[0].Coord.Vec[0]`",
    ),
    "autopilot negative trailing logs": (
        {"autopilot": {"MaxTrailingLogs": -1}},
        None,
        "at `$.autopilot.MaxTrailingLogs`",
    ),
    "kv value is text": ({}, [["k", "not bytes", 0, 1, 1, 0, ""]], "KV frame 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_bad_record_leaves_the_store_untouched(case: str) -> None:
    changes, kv, words = BAD_STATES[case]
    store = filled_store()
    before = store.snapshot()
    kv_table = store.kv
    with pytest.raises(SnapshotInvalid) as caught:
        store.restore(_state(_header(filled_store(), **changes), kv))
    assert words in str(caught.value)
    assert store.snapshot() == before
    assert store.kv is kv_table


@pytest.mark.parametrize("cut", [0, 1, 3, 10, -5, -1])
def test_truncated_state_leaves_the_store_untouched(cut: int) -> None:
    store = filled_store()
    before = store.snapshot()
    with pytest.raises(SnapshotInvalid, match="truncated|empty"):
        store.restore(before[:cut])
    assert store.snapshot() == before


def test_bad_record_in_an_intact_archive_is_refused_before_restore() -> None:
    files = members(archive_of(filled_store()))
    bad = _state(_header(filled_store(), nodes=[{"Node": 7, "Address": "x"}]))
    message = refused(_repack_state(files, bad))
    assert message.startswith("failed to decode snapshot state: Expected `str`, got `int`")
