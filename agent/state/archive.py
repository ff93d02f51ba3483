"""The snapshot archive of `GET`/`PUT /v1/snapshot`, laid out as Consul lays out its own: a
gzipped tar holding

    meta.json   the Raft metadata of the snapshot (Version, ID, Index, Term, Size, ...)
    state.bin   the store's snapshot bytes (agent/state/snapshot.py)
    SHA256SUMS  `sha256sum` text, one "<hex>  <name>" line for each of the two above

`read_archive` is all or nothing and runs before anything is proposed to Raft: the whole gzip
stream is read (so its CRC and length are checked), every member is hashed and compared with
SHA256SUMS, and only then is the metadata decoded into its Struct. Any failure is an
`ArchiveInvalid` worded as Consul words it ("failed to read snapshot file: ..."). `read_verified`
goes one step further and decodes the state, strictly, as the restore will.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
import time
import zlib
from typing import Annotated

import msgspec

from agent.state.snapshot import SnapshotInvalid, decode_state

META = "meta.json"
STATE = "state.bin"
SUMS = "SHA256SUMS"
HASHED = (META, STATE)  # the members SHA256SUMS covers, in the order they are written
SNAPSHOT_VERSION = 1  # hashicorp/raft's SnapshotVersion: the only one there is
_SMALL_MEMBER = 1 << 20  # meta.json and SHA256SUMS are a few hundred bytes
_SUM_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](\S+)")

U64 = Annotated[int, msgspec.Meta(ge=0)]


class ArchiveInvalid(ValueError):
    """Not an intact snapshot archive: the message says what failed, in Consul's words."""


class Server(msgspec.Struct):
    Suffrage: int  # 0 voter, 1 non-voter (hashicorp/raft's ServerSuffrage)
    ID: str
    Address: str


class Configuration(msgspec.Struct):
    Servers: list[Server] = []


class SnapshotMeta(msgspec.Struct):
    """hashicorp/raft's SnapshotMeta, as Consul's meta.json carries it."""

    Version: int
    ID: str
    Index: U64
    Term: U64
    Size: U64
    Peers: bytes | None = None
    Configuration: Configuration = msgspec.field(default_factory=Configuration)
    ConfigurationIndex: U64 = 0


def new_meta(
    index: int,
    term: int,
    size: int,
    servers: list[Server],
    conf_index: int,
    now: float | None = None,
) -> SnapshotMeta:
    """Metadata for a snapshot taken at `now` (seconds; the clock's time when None); the ID
    follows raft's "<term>-<index>-<ms>"."""
    now = time.time() if now is None else now
    return SnapshotMeta(
        Version=SNAPSHOT_VERSION,
        ID=f"{term}-{index}-{int(now * 1000)}",
        Index=index,
        Term=term,
        Size=size,
        Configuration=Configuration(servers),
        ConfigurationIndex=conf_index,
    )


# ---------------------------------------------------------------------- writing


def write_archive(meta: SnapshotMeta, state: bytes, now: float | None = None) -> bytes:
    """The gzipped tar of `meta`, `state` and their SHA256SUMS, its members dated `now`
    (the clock's time when None): the same inputs give the same bytes."""
    meta_bytes = msgspec.json.encode(meta) + b"\n"
    members = {META: meta_bytes, STATE: state}
    sums = "".join(f"{hashlib.sha256(members[n]).hexdigest()}  {n}\n" for n in HASHED)
    members[SUMS] = sums.encode()
    mtime = int(time.time() if now is None else now)
    buf = io.BytesIO()
    # mtime=0: the gzip header of the same state is the same bytes.
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# ---------------------------------------------------------------------- reading


def read_archive(raw: bytes) -> tuple[SnapshotMeta, bytes]:
    """The verified metadata and state bytes of an archive; raises `ArchiveInvalid`."""
    if not raw:
        raise ArchiveInvalid("failed to decompress snapshot: EOF (the request body is empty)")
    if raw[:2] != b"\x1f\x8b":
        raise ArchiveInvalid("failed to decompress snapshot: gzip: invalid header")
    try:
        members = _members(raw)
    except ArchiveInvalid as exc:
        raise ArchiveInvalid(f"failed to read snapshot file: {exc}") from None
    except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
        raise ArchiveInvalid(f"failed to read snapshot file: {_gzip_reason(exc)}") from None
    for name in (*HASHED, SUMS):
        if name not in members:
            raise ArchiveInvalid(
                f"failed to read snapshot file: missing file {_q(name)} in snapshot"
            )
    try:
        _verify_sums(members)
    except ArchiveInvalid as exc:
        raise ArchiveInvalid(
            f"failed to read snapshot file: failed checking integrity of snapshot: {exc}"
        ) from None
    try:
        meta = msgspec.json.decode(members[META], type=SnapshotMeta)
    except msgspec.MsgspecError as exc:
        raise ArchiveInvalid(
            f"failed to read snapshot file: failed to decode snapshot metadata: {exc}"
        ) from None
    state = members[STATE]
    if meta.Version != SNAPSHOT_VERSION:
        raise ArchiveInvalid(f"unsupported snapshot version {meta.Version}")
    if meta.Size != len(state):
        raise ArchiveInvalid(
            f"snapshot metadata Size {meta.Size} does not match {STATE} ({len(state)} bytes)"
        )
    return meta, state


def read_verified(raw: bytes) -> tuple[SnapshotMeta, bytes]:
    """`read_archive`, and then the state decoded in full, strictly, as the restore will decode
    it: an archive that passes here is one the FSM can load."""
    meta, state = read_archive(raw)
    try:
        decoded = decode_state(io.BytesIO(state))
    except SnapshotInvalid as exc:
        raise ArchiveInvalid(f"failed to decode snapshot state: {exc}") from None
    if decoded.last_index != meta.Index:
        raise ArchiveInvalid(
            f"snapshot metadata Index {meta.Index} does not match the state's ({decoded.last_index})"
        )
    return meta, state


def _members(raw: bytes) -> dict[str, bytes]:
    """Every member of the tar inside the gzip stream, read to the very end of the stream so a
    damaged tail shows up as a CRC or length error rather than passing unseen."""
    members: dict[str, bytes] = {}
    with gzip.GzipFile(fileobj=io.BytesIO(raw), mode="rb") as gz:
        with tarfile.open(fileobj=gz, mode="r|") as tar:
            for info in tar:
                name = info.name
                if name not in (*HASHED, SUMS) or not info.isreg():
                    raise ArchiveInvalid(f"unexpected file {_q(name)} in snapshot")
                if name in members:
                    raise ArchiveInvalid(f"duplicate file {_q(name)} in snapshot")
                if name != STATE and info.size > _SMALL_MEMBER:
                    raise ArchiveInvalid(
                        f"failed reading snapshot: {name} is {info.size} bytes, too large"
                    )
                member = tar.extractfile(info)
                data = member.read() if member is not None else b""
                if len(data) != info.size:
                    raise ArchiveInvalid(f"failed reading snapshot: {name} is truncated")
                members[name] = data
        # The tar ends with zero blocks; anything else after it is not ours. Reading to EOF is
        # what makes gzip check its trailer (CRC32 and length), as Consul's concludeGzipRead.
        extra = 0
        while block := gz.read(1 << 16):
            if block.count(0) != len(block):
                extra += len(block.rstrip(b"\0"))
        if extra:
            raise ArchiveInvalid(f"{extra} unread uncompressed bytes remain")
    return members


def _verify_sums(members: dict[str, bytes]) -> None:
    try:
        text = members[SUMS].decode("ascii")
    except UnicodeDecodeError:
        raise ArchiveInvalid(f"{SUMS} is not text") from None
    listed: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        match = _SUM_LINE.fullmatch(line)
        if match is None:
            raise ArchiveInvalid(f"{SUMS} line {n} is not '<sha256>  <file>'")
        digest, name = match.groups()
        if name not in HASHED:
            raise ArchiveInvalid(f"list missing hash for {_q(name)}")
        listed[name] = digest.lower()
    for name in HASHED:
        if name not in listed:
            raise ArchiveInvalid(f"file missing for {_q(name)}")
        if hashlib.sha256(members[name]).hexdigest() != listed[name]:
            raise ArchiveInvalid(f"hash check failed for {_q(name)} (sha256 mismatch)")


def _gzip_reason(exc: BaseException) -> str:
    """Python's words for a broken stream, in the terms a Consul user reads."""
    if isinstance(exc, EOFError):
        return "unexpected EOF (the archive is truncated or damaged)"
    if isinstance(exc, zlib.error):
        return f"flate: corrupt input ({exc})"
    if isinstance(exc, gzip.BadGzipFile):
        if "CRC" in str(exc):
            return f"gzip: invalid checksum ({exc})"
        return f"gzip: {exc}"
    if isinstance(exc, tarfile.TarError):
        return f"failed reading snapshot: {exc}"
    return str(exc)


def _q(name: str) -> str:
    """A name quoted as Go's %q quotes it (Consul's messages use it). A damaged archive's
    member name may hold bytes that are not UTF-8 (tarfile keeps them as surrogates): they
    are shown as U+FFFD rather than failing the refusal itself."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return msgspec.json.encode(text).decode()
