"""RaftNode: the asyncio driver around the pure `RaftCore`.

The core decides; this module does the I/O it asks for, in the order Raft needs:

    inputs (ticks, peer messages, proposals, read requests) -> core.step/tick/propose
    rd = core.ready()
    persist rd.snapshot, rd.entries, the hard state  (one fsync, on a worker thread)
    send rd.messages                                   (only after they are durable)
    apply rd.committed_entries to the FSM              (answer the proposers)
    answer read-index requests once applied
    core.advance(rd)

While a sync runs, new proposals queue up and go into the next Ready together: group commit.

On disk (`<data_dir>/raft/`): the entry log and snapshots of `FileLog`, and `state.bin`
(term, vote, membership) replaced atomically whenever one of them changes. A snapshot body is
msgpack `{"term", "conf", "state"}` where `state` is the store's own snapshot.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import os
import random
import struct
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from agent.errors import NotLeader
from agent.raft.core import Config, RaftCore, Ready, Role
from agent.raft.errors import NotLeader as CoreNotLeader
from agent.raft.errors import ProposalDropped
from agent.raft.log import FileLog, encode_record
from agent.raft.messages import (
    ConfChange,
    ConfChangeOp,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MsgType,
    Snapshot,
    SnapshotMeta,
    conf_from_wire,
    conf_to_wire,
    from_wire,
    to_wire,
)
from agent.raft.storage import MemoryStorage
from agent.state.fsm import FSM

log = logging.getLogger("agent.raft")


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode
READ_TIMEOUT = 5.0
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


def _written(writer: Any) -> int:
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


class RaftNode:
    def __init__(
        self,
        fsm: FSM,
        data_dir: Path | None,
        node_id: str,
        address: str,
        pool: Any,
        *,
        tick: float = 0.1,
        election_tick: int = 10,
        heartbeat_tick: int = 1,
        snapshot_every: int = 16384,
        trailing_logs: int = 10240,
        metrics: Any = None,
        seed: int | None = None,
    ) -> None:
        self.fsm = fsm
        self.id = node_id
        self.address = address
        self.pool = pool
        self.tick_seconds = tick
        self.election_tick = election_tick
        self.heartbeat_tick = heartbeat_tick
        self.snapshot_every = snapshot_every
        self.trailing_logs = trailing_logs
        self.metrics = metrics
        self._rng = random.Random(seed)
        self.log = FileLog(data_dir / "raft") if data_dir is not None else None
        self._state_path = data_dir / "raft" / "state.bin" if data_dir is not None else None
        self.storage = DiskSnapshotStorage(self.log)
        self.core: RaftCore | None = None
        self.names: dict[str, str] = {}  # node id -> node name, for operator output
        self.role = Role.FOLLOWER
        self.leader_id = ""
        self.term = 0
        self.applied = 0
        self._persisted_term_vote: tuple[int, str] = (0, "")
        self._conf = ConfState()
        self._inbox: list[Message] = []
        self._proposals: list[tuple[bytes, asyncio.Future]] = []
        self._conf_changes: list[tuple[ConfChange, asyncio.Future]] = []
        self._read_requests: list[tuple[bytes, asyncio.Future]] = []
        self._transfers: list[str] = []
        self._waiting: dict[int, tuple[int, asyncio.Future]] = {}
        self._reads: dict[bytes, asyncio.Future] = {}
        self._applied_waiters: list[tuple[int, asyncio.Future]] = []
        self._ticks_due = 0
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="raft-io")
        self._snapshot_index = 0
        self._stopping = False
        self._bytes_since_snapshot = 0
        self._state_lock = threading.Lock()
        self._incoming: dict[tuple[int, int], Any] = {}  # (index, term) -> writer / buffer
        self._last_snapshot_size = 0
        self.conf_index = 0  # log index of the configuration in force (0: the bootstrap one)
        self._snapshot_task: asyncio.Task | None = None
        # Snapshots have their own thread: a long write must not hold up log fsyncs.
        self._snap_executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="raft-snapshot"
        )
        # Servers snapshot at slightly different sizes so they do not all pause together.
        self._jitter = 1.0 + (self._rng.random() - 0.5) * 0.4
        self._campaign = False
        self.on_leadership: Any = None  # called when this server becomes the leader
        self.last_contact = time.monotonic()

    # ------------------------------------------------------------------ restore / bootstrap

    def has_state(self) -> bool:
        """Whether this server already belongs to a Raft cluster (persisted state or conf)."""
        return bool(self._conf.voters) or self.storage.last_index() > 0

    def restore(self) -> int:
        """Rebuild the store from the newest snapshot; the log after it replays through
        the core as committed entries once the cluster confirms the commit index."""
        store = self.fsm.store
        hard = HardState()
        if self.log is not None:
            found = self.log.latest_snapshot_file()
            if found is not None:
                index, path = found
                with self.log.open_snapshot_body(path) as body:
                    term, conf = read_snapshot_meta(body)
                    store.restore_from(body)
                self.storage.apply_snapshot(Snapshot(SnapshotMeta(index, term, conf), b""))
                self._conf = conf
                self._snapshot_index = index
                self.applied = index
            entries = []
            for record in self.log.replay(self._snapshot_index):
                kind, data = _decode(record.payload)
                entries.append(Entry(record.index, record.term, EntryKind(kind), data))
            self.storage.append(entries)
            if self._state_path is not None and self._state_path.exists():
                term, vote, conf_wire = _decode(self._state_path.read_bytes())
                hard = HardState(term, vote, self._snapshot_index)
                self._persisted_term_vote = (term, vote)
                self._conf = conf_from_wire(conf_wire)
        self.storage.set_hard_state(
            hard if hard.commit else HardState(hard.term, hard.vote, self.applied)
        )
        self.storage.set_conf_state(self._conf)
        self.term = hard.term
        self._new_core()
        return self.storage.last_index() - self._snapshot_index

    def _new_core(self) -> None:
        self.core = RaftCore(
            Config(
                id=self.id,
                election_tick=self.election_tick,
                heartbeat_tick=self.heartbeat_tick,
                applied=self.applied,
                rng=self._rng,
            ),
            self.storage,
        )

    def bootstrap(self, voters: dict[str, str]) -> None:
        """Start a new cluster with these voters (id -> RPC address); every bootstrapping
        server must be given the same set. Refused when this server already has state."""
        if self.has_state():
            raise RuntimeError("raft: this server already has state; not bootstrapping")
        conf = ConfState(voters=tuple(sorted(voters)), addresses=tuple(sorted(voters.items())))
        self._conf = conf
        self.storage.set_conf_state(conf)
        self._write_state(self.term, "", conf)
        self._new_core()
        log.info(
            "raft: bootstrapped a cluster of %d voters: %s",
            len(voters),
            ", ".join(sorted(voters.values())),
        )
        self._kick()

    def _write_state(self, term: int, vote: str, conf: ConfState) -> None:
        # Called from the loop (membership changes) and from the raft-io thread (votes):
        # one writer at a time, or two renames race over the same temp file.
        with self._state_lock:
            self._persisted_term_vote = (term, vote)
            if self._state_path is None:
                return
            self._state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._state_path.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                f.write(_encode([term, vote, conf_to_wire(conf)]))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._state_path)
            fd = os.open(self._state_path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # ------------------------------------------------------------------ status

    @property
    def is_leader(self) -> bool:
        return self.role == Role.LEADER and not self._stopping

    @property
    def leader_address(self) -> str:
        if not self.leader_id:
            return ""
        if self.leader_id == self.id:
            return self.address
        return self._conf.address_of(self.leader_id)

    @property
    def last_index(self) -> int:
        return self.storage.last_index()

    def peers(self) -> list[str]:
        return [self._conf.address_of(v) for v in self._conf.voters]

    def configuration(self) -> list[dict]:
        return [
            {
                "ID": v,
                "Node": self.names.get(v, v),
                "Address": self._conf.address_of(v),
                "Leader": v == self.leader_id,
                "ProtocolVersion": "3",
                "Voter": True,
                "LastIndex": self.last_index,
            }
            for v in self._conf.voters
        ] + [
            {
                "ID": v,
                "Node": self.names.get(v, v),
                "Address": self._conf.address_of(v),
                "Leader": False,
                "ProtocolVersion": "3",
                "Voter": False,
                "LastIndex": self.last_index,
            }
            for v in self._conf.nonvoters
        ]

    def voter_ids(self) -> tuple[str, ...]:
        return self._conf.voters

    def sole_voter(self) -> bool:
        return self._conf.voters == (self.id,)

    async def wait_leader(self, timeout: float) -> bool:
        """Wait until some leader is known (a lone voter elects itself at once)."""
        if self.sole_voter() and self.core is not None and not self.leader_id:
            self._campaign = True
            self._kick()
        deadline = time.monotonic() + timeout
        while not self.leader_id and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.is_leader:
            # Serve nothing older than what this server acknowledged before a restart.
            try:
                await self.wait_applied(
                    self.storage.last_index(), max(deadline - time.monotonic(), 0.1)
                )
            except TimeoutError:
                log.warning("raft: log replay is still running")
        return bool(self.leader_id)

    def lease_read_ok(self) -> bool:
        return (
            self.is_leader
            and self.core is not None
            and self.core.leader_lease_valid()
            and self.applied >= self.core.status().commit
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._run(), name="raft-loop"),
            asyncio.create_task(self._ticker(), name="raft-ticker"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._fail_all(NotLeader("server is shutting down"))
        if self._snapshot_task is not None and not self._snapshot_task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._snapshot_task), 30)
            except (TimeoutError, Exception):
                log.warning("raft: shutting down during a snapshot; the previous one stays")
        self._snap_executor.shutdown(wait=True)
        if self.log is not None:
            self.log.close()
        self._executor.shutdown(wait=True)

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            self._ticks_due += 1
            self._kick()

    # ------------------------------------------------------------------ inputs

    def deliver(self, payload: Any) -> None:
        """A Raft message from a peer (RPC layer)."""
        try:
            msg = from_wire(payload)
        except Exception as exc:  # a malformed frame must not stop the node
            log.warning("raft: dropping malformed message: %s", exc)
            return
        if msg.to != self.id:
            return
        self._inbox.append(msg)
        self._kick()

    async def apply(self, entry: bytes) -> Any:
        """Propose `entry` (an encoded command, opaque to Raft); the FSM's result once it is
        committed and applied here."""
        if not self.is_leader:
            raise NotLeader("No cluster leader" if not self.leader_id else "not the leader")
        fut = asyncio.get_running_loop().create_future()
        self._proposals.append((entry, fut))
        self._kick()
        return await fut

    async def change_membership(self, cc: ConfChange) -> None:
        if not self.is_leader:
            raise NotLeader("not the leader")
        fut = asyncio.get_running_loop().create_future()
        self._conf_changes.append((cc, fut))
        self._kick()
        await fut

    async def add_voter(self, node_id: str, address: str) -> None:
        await self.change_membership(ConfChange(ConfChangeOp.ADD_VOTER, node_id, address))

    async def remove_peer(self, peer_id: str | None = None, address: str | None = None) -> None:
        target = peer_id
        if not target and address:
            target = next((i for i, a in self._conf.addresses if a == address), None)
        if not target:
            raise NotLeader(f"peer {peer_id or address} is not in the configuration")
        await self.change_membership(ConfChange(ConfChangeOp.REMOVE, target))

    async def transfer_leadership(self, to: str | None = None) -> None:
        if not self.is_leader:
            raise NotLeader("not the leader")
        target = to or next((v for v in self._conf.voters if v != self.id), None)
        if not target:
            raise NotLeader("cannot find peer to transfer leadership to")
        self._transfers.append(target)
        self._kick()
        deadline = time.monotonic() + self.tick_seconds * self.election_tick * 3
        while self.leader_id == self.id and time.monotonic() < deadline:
            await asyncio.sleep(self.tick_seconds)
        if self.leader_id == self.id:
            raise NotLeader("leadership transfer timed out")

    async def read_barrier(self) -> None:
        """Linearizable read point: confirm leadership with a quorum, then wait until the
        state machine has applied up to the read index."""
        if self.lease_read_ok():
            return
        if self.core is None or not self.leader_id:
            raise NotLeader("No cluster leader")
        ctx = uuid.uuid4().bytes
        fut = asyncio.get_running_loop().create_future()
        self._read_requests.append((ctx, fut))
        self._kick()
        try:
            index = await asyncio.wait_for(fut, READ_TIMEOUT)
            await self.wait_applied(index, READ_TIMEOUT)
        except TimeoutError:
            raise NotLeader("Not ready to serve consistent reads") from None
        finally:
            self._reads.pop(ctx, None)

    async def wait_applied(self, index: int, timeout: float) -> None:
        if self.applied >= index:
            return
        fut = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((index, fut))
        await asyncio.wait_for(fut, timeout)

    def _step_inputs(self) -> None:
        core = self.core
        if core is None:
            return
        if self._campaign:
            self._campaign = False
            core.campaign()
        while self._ticks_due:
            self._ticks_due -= 1
            core.tick()
        inbox, self._inbox = self._inbox, []
        for msg in inbox:
            if msg.frm == self.leader_id:
                self.last_contact = time.monotonic()
            try:
                core.step(msg)
            except Exception as exc:
                log.debug("raft: step of %s from %s refused: %s", msg.type.name, msg.frm, exc)
        proposals, self._proposals = self._proposals, []
        proposals = [(data, fut) for data, fut in proposals if not fut.done()]
        if proposals:
            # One call for the whole batch: one append message per follower, not one per write.
            try:
                last = core.propose_many([data for data, _ in proposals])
            except (CoreNotLeader, ProposalDropped) as exc:
                for _, fut in proposals:
                    fut.set_exception(NotLeader(f"No cluster leader ({exc})"))
            else:
                first = last - len(proposals) + 1
                for offset, (_, fut) in enumerate(proposals):
                    self._waiting[first + offset] = (self.term, fut)
        changes, self._conf_changes = self._conf_changes, []
        for cc, fut in changes:
            try:
                index = core.propose_conf_change(cc)
            except (CoreNotLeader, ProposalDropped) as exc:
                fut.set_exception(NotLeader(f"membership change refused: {exc}"))
                continue
            self._waiting[index] = (self.term, fut)
        reads, self._read_requests = self._read_requests, []
        for ctx, fut in reads:
            try:
                core.read_index(ctx)
                self._reads[ctx] = fut
            except CoreNotLeader:
                fut.set_exception(NotLeader("No cluster leader"))
        transfers, self._transfers = self._transfers, []
        for target in transfers:
            try:
                core.transfer_leadership(target)
            except Exception as exc:
                log.warning("raft: leadership transfer to %s refused: %s", target, exc)

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self._step_inputs()
                while self.core is not None and self.core.has_ready():
                    rd = self.core.ready()
                    began = time.perf_counter()
                    await self._persist(loop, rd)
                    self._send(rd.messages)
                    self._observe(rd)
                    watches = self.fsm.store.watches
                    watches.hold()
                    try:
                        self._apply(rd.committed_entries)
                    finally:
                        # After the writers' futures are resolved: they answer first.
                        watches.release()
                    for rs in rd.read_states:
                        fut = self._reads.pop(rs.context, None)
                        if fut is not None and not fut.done():
                            fut.set_result(rs.index)
                    self.core.advance(rd)
                    if self.metrics is not None and (rd.entries or rd.committed_entries):
                        self.metrics.sample(
                            "consul.raft.commitTime", (time.perf_counter() - began) * 1000
                        )
                    # Checked per Ready: under steady load the loop never runs dry.
                    self._maybe_snapshot()
                    self._step_inputs()
                self._maybe_snapshot()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("raft: driver loop error")
                await asyncio.sleep(self.tick_seconds)

    async def _persist(self, loop: asyncio.AbstractEventLoop, rd: Ready) -> None:
        hs = rd.hard_state
        snap = rd.snapshot
        if snap is not None and not snap.is_empty():
            self._install_snapshot(snap)
        if rd.entries:
            if self.log is not None:
                data = b"".join(
                    encode_record(e.index, e.term, _encode([int(e.kind), e.data]))
                    for e in rd.entries
                )
                first = rd.entries[0].index
                await loop.run_in_executor(
                    self._executor, self._write_entries, data, first, rd.entries[-1].index
                )
            self.storage.append(rd.entries)
        if hs is not None:
            self.storage.set_hard_state(hs)
            self.term = hs.term
            if (hs.term, hs.vote) != self._persisted_term_vote:
                await loop.run_in_executor(
                    self._executor, self._write_state, hs.term, hs.vote, self._conf
                )

    def _write_entries(self, data: bytes, first: int, last: int) -> None:
        assert self.log is not None
        if first <= self.log.last_index:
            self.log.truncate_from(first)
        self.log.append_sync(data, last, first)

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

    # -- InstallSnapshot transfer (follower side) ----------------------------------------

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
        elif writer is None or _written(writer) != offset:
            # A gap (this server restarted mid-transfer): refuse, the leader starts over.
            stale = self._incoming.pop(key, None)
            if stale is not None and not isinstance(stale, io.BytesIO):
                stale.abort()
            raise ValueError(f"snapshot chunk at offset {offset} does not follow what was received")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, writer.write, bytes(args["data"]))
        return True

    async def receive_snapshot_done(self, payload: Any) -> bool:
        """RPC: the InstallSnapshot message itself, after its chunks."""
        self.deliver(payload)
        return True

    def _send(self, messages: tuple[Message, ...]) -> None:
        for msg in messages:
            address = self._conf.address_of(msg.to)
            if not address:
                continue
            if msg.type == MsgType.SNAP:
                asyncio.ensure_future(self._send_snapshot(address, msg))
            else:
                self.pool.send(address, to_wire(msg), on_error=self._unreachable(msg.to))

    def _unreachable(self, node_id: str):
        def report() -> None:
            if self.core is not None:
                self.core.report_unreachable(node_id)
                self._kick()

        return report

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

    def _observe(self, rd: Ready) -> None:
        soft = rd.soft_state
        if soft is None:
            return
        was_leader = self.role == Role.LEADER
        self.role, self.leader_id = soft.role, soft.leader
        if soft.role == Role.LEADER and not was_leader:
            log.info("raft: this server is now the leader (term %d)", self.term)
            if self.on_leadership is not None:
                self.on_leadership()
            if self.metrics is not None:
                self.metrics.incr("consul.raft.state.leader")
        elif was_leader and soft.role != Role.LEADER:
            log.warning("raft: lost leadership (term %d)", self.term)
            self._fail_waiting(NotLeader("leadership lost while committing log"))
        if soft.leader and soft.leader != self.id:
            self.last_contact = time.monotonic()

    def _apply(self, entries: tuple[Entry, ...]) -> None:
        fsm = self.fsm
        for entry in entries:
            result: Any = None
            if entry.index <= self.applied:
                continue
            self._bytes_since_snapshot += len(entry.data)
            if entry.kind == EntryKind.NORMAL:
                try:
                    result = fsm.apply(entry.index, entry.data)
                except Exception as exc:  # deterministic bug: same on every server
                    log.exception("raft: apply of index %d failed", entry.index)
                    result = exc
            elif entry.kind == EntryKind.CONF_CHANGE:
                cc = ConfChange.decode(entry.data)
                assert self.core is not None
                self._conf = self.core.apply_conf_change(cc)
                self.conf_index = entry.index
                self.storage.set_conf_state(self._conf)
                self._write_state(self.term, self._persisted_term_vote[1], self._conf)
                log.info("raft: membership now %s", ", ".join(self.peers()))
                fsm.skip(entry.index)
            else:
                fsm.skip(entry.index)
            self.applied = entry.index
            waiter = self._waiting.pop(entry.index, None)
            if waiter is not None:
                term, fut = waiter
                if fut.done():
                    continue
                if entry.term != term:
                    fut.set_exception(NotLeader("leadership lost while committing log"))
                elif isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        if self._applied_waiters:
            still = []
            for index, fut in self._applied_waiters:
                if fut.done():
                    continue
                if self.applied >= index:
                    fut.set_result(None)
                else:
                    still.append((index, fut))
            self._applied_waiters = still

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

    def _fail_waiting(self, exc: Exception) -> None:
        for _, fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(exc)
        self._waiting.clear()

    def _fail_all(self, exc: Exception) -> None:
        self._fail_waiting(exc)
        for _, fut in self._proposals + self._conf_changes + self._read_requests:
            if not fut.done():
                fut.set_exception(exc)
        for fut in self._reads.values():
            if not fut.done():
                fut.set_exception(exc)
