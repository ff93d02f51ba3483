"""Bad input never replaces the state (issue V, item 3), on a real agent process on 127.0.0.71:
a corrupted, truncated, forged or foreign snapshot archive is a 400 and every key reads back
byte-identical; the genuine archive restores. Bad autopilot settings are a 400, a leadership
transfer to an unknown server answers at once, and damage to the data dir (a torn log tail, a
damaged newest snapshot file) is survived with nothing lost."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.e2e.agentproc import AgentProc, free_port

pytestmark = pytest.mark.timeout(180)

IP = "127.0.0.71"
KEYS = {
    "v/plain": b"hello",
    "v/binary": bytes(range(256)),
    "v/empty": b"",
    "v/big": random.Random(1).randbytes(20000),
}


def server_args(data_dir: Path, *extra: str) -> list[str]:
    return [
        "-server",
        "-bootstrap-expect=1",
        f"-data-dir={data_dir}",
        "-node=verify1",
        f"-bind={IP}",
        f"-client={IP}",
        f"-server-port={free_port(IP)}",
        "-dns-port=-1",
        f"-serf-lan-port={free_port(IP)}",
        "-serf-wan-port=-1",
        *extra,
    ]


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProc]:
    data = tmp_path_factory.mktemp("verify") / "d"
    proc = AgentProc(*server_args(data), ip=IP, http_port=free_port(IP)).start()
    try:
        yield proc
    finally:
        proc.cleanup()


def read_keys(http: httpx.Client) -> dict[str, tuple[bytes, int, int]]:
    """Every key under v/: (value, flags, ModifyIndex), values fetched raw."""
    listing = http.get("/v1/kv/v/", params={"recurse": ""}).json()
    out = {}
    for entry in listing:
        raw = http.get(f"/v1/kv/{entry['Key']}", params={"raw": ""})
        out[entry["Key"]] = (raw.content, entry["Flags"], entry["ModifyIndex"])
    return out


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


def with_fresh_sums(files: dict[str, bytes]) -> bytes:
    meta = msgspec.json.decode(files["meta.json"]) | {"Size": len(files["state.bin"])}
    files = {**files, "meta.json": msgspec.json.encode(meta)}
    sums = "".join(
        f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in ("meta.json", "state.bin")
    )
    return pack({**files, "SHA256SUMS": sums.encode()})


def mistyped_state(state: bytes) -> bytes:
    """Our own state with the first node's name turned into a number: well-formed msgpack,
    intact framing, a record of the wrong type."""
    length = int.from_bytes(state[:4], "big")
    header = msgspec.msgpack.decode(state[4 : 4 + length])
    header["nodes"] = [{"Node": 7, "Address": "10.9.9.9"}]
    body = msgspec.msgpack.encode(header)
    return len(body).to_bytes(4, "big") + body + state[4 + length :]


def corrupted_variants(genuine: bytes) -> dict[str, tuple[bytes, str]]:
    files = members(genuine)
    flipped_gzip = bytearray(genuine)
    flipped_gzip[len(genuine) // 2] ^= 0x01
    flipped_state = bytearray(files["state.bin"])
    flipped_state[len(flipped_state) // 3] ^= 0x08
    foreign = io.BytesIO()
    with tarfile.open(fileobj=foreign, mode="w:gz") as tar:
        info = tarfile.TarInfo("backup.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    return {
        "truncated": (genuine[: len(genuine) // 2], "failed to read snapshot file"),
        "truncated-tail": (genuine[:-3], "failed to read snapshot file"),
        "flipped-gzip-byte": (bytes(flipped_gzip), "failed to read snapshot file"),
        "flipped-state-bit-old-sums": (
            pack({**files, "state.bin": bytes(flipped_state)}),
            'hash check failed for "state.bin" (sha256 mismatch)',
        ),
        "foreign-tar": (foreign.getvalue(), 'unexpected file "backup.json" in snapshot'),
        "empty": (b"", "failed to decompress snapshot"),
        "plain-text": (b"not a snapshot at all\n", "failed to decompress snapshot"),
        "random-gzip": (gzip.compress(random.Random(2).randbytes(3000)), "failed reading snapshot"),
        "mistyped-record-fresh-sums": (
            with_fresh_sums({**files, "state.bin": mistyped_state(files["state.bin"])}),
            "failed to decode snapshot state: Expected `str`, got `int` - at `$.nodes[0].Node`",
        ),
    }


def test_corrupt_archives_are_refused_and_the_genuine_one_restores(agent: AgentProc) -> None:
    with agent.client() as http:
        for key, value in KEYS.items():
            assert http.put(f"/v1/kv/{key}", content=value, params={"flags": "9"}).json() is True
        before = read_keys(http)
        assert {k: v[0] for k, v in before.items()} == KEYS

        saved = http.get("/v1/snapshot")
        assert saved.status_code == 200, saved.text
        assert set(members(saved.content)) == {"meta.json", "state.bin", "SHA256SUMS"}

        for name, (body, words) in corrupted_variants(saved.content).items():
            answer = http.put("/v1/snapshot", content=body)
            assert answer.status_code == 400, (name, answer.status_code, answer.text)
            assert words in answer.text, (name, answer.text)
            assert read_keys(http) == before, f"{name} changed the state"

        # Write after the save; the genuine archive brings back exactly what it holds.
        assert http.put("/v1/kv/v/later", content=b"x").json() is True
        restored = http.put("/v1/snapshot", content=saved.content)
        assert restored.status_code == 200, restored.text
        assert read_keys(http) == before
        assert http.get("/v1/kv/v/later").status_code == 404
        # And the store keeps taking writes and snapshots on top of it.
        assert http.put("/v1/kv/v/after", content=b"y").json() is True
        assert http.get("/v1/snapshot").status_code == 200
    assert "apply of index" not in agent.output()


def test_bad_autopilot_settings_are_refused_before_proposing(agent: AgentProc) -> None:
    with agent.client() as http:
        good = http.put("/v1/operator/autopilot/configuration", json={"MaxTrailingLogs": 300})
        assert good.status_code == 200 and good.json() is True
        before = http.get("/v1/operator/autopilot/configuration").json()
        for body, field in [
            (b'{"MaxTrailingLogs": -1}', "MaxTrailingLogs"),
            (b'{"MinQuorum": 1e30}', "MinQuorum"),
            (b'{"MinQuorum": 1180591620717411303424}', "MinQuorum"),
            (b'{"LastContactThreshold": "-5s"}', "LastContactThreshold"),
            (b'{"ServerStabilizationTime": "later"}', "ServerStabilizationTime"),
            (b'{"CleanupDeadServers": "no"}', "CleanupDeadServers"),
        ]:
            answer = http.put("/v1/operator/autopilot/configuration", content=body)
            assert answer.status_code == 400, (body, answer.text)
            assert field in answer.text and "Error parsing autopilot config" in answer.text
        assert http.get("/v1/operator/autopilot/configuration").json() == before


def test_transfer_to_an_unknown_server_answers_at_once(agent: AgentProc) -> None:
    with agent.client() as http:
        started = time.monotonic()
        answer = http.post("/v1/operator/raft/transfer-leader", params={"id": "no-such-server"})
        assert time.monotonic() - started < 3
        assert answer.status_code == 500
        assert answer.text == "Could not find address for server id no-such-server"
        own = http.get("/v1/operator/raft/configuration").json()["Servers"][0]["ID"]
        answer = http.post("/v1/operator/raft/transfer-leader", params={"id": own})
        assert answer.status_code == 500 and "cannot transfer leadership to itself" in answer.text


def test_torn_log_tail_and_damaged_snapshot_file_lose_nothing(tmp_path: Path) -> None:
    data = tmp_path / "d"
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"raft_snapshot_threshold": 40}')
    args = server_args(data, f"-config-file={cfg}")
    port = free_port(IP)
    with AgentProc(*args, ip=IP, http_port=port).start() as first, first.client() as http:
        for i in range(150):
            assert http.put(f"/v1/kv/v/{i:03d}", content=f"value {i}".encode()).json()
        before = read_keys(http)
        first.stop()
    snapshots = sorted((data / "raft" / "snapshots").glob("*.snap"))
    assert len(snapshots) >= 2, "the test needs two snapshots on disk"
    newest = snapshots[-1]
    raw = bytearray(newest.read_bytes())
    raw[len(raw) // 2] ^= 0x20
    newest.write_bytes(bytes(raw))
    segment = sorted((data / "raft" / "log").glob("*.seg"))[-1]
    with open(segment, "ab") as f:
        f.write(b"\x40\x00\x00\x00torn")  # the start of a record whose write never finished
    with AgentProc(*args, ip=IP, http_port=port).start() as again, again.client() as http:
        assert read_keys(http) == before
        assert http.put("/v1/kv/v/next", content=b"n").json() is True
        output = again.output()
    assert f"snapshot {newest} is damaged" in output
    assert f"raft: {segment}: torn or damaged record" in output
    assert "cutting 8 bytes off the log tail" in output
