"""The fields of the Raft driver and the state it keeps in the data dir.

`NodeBase` holds what every part of `RaftNode` shares (the core, the storage, the queues of
waiting callers) and the durable state outside the log: `state.bin` with term, vote and
membership, replaced atomically whenever one of them changes. `restore` rebuilds the store and
the storage from the newest snapshot and the log after it; `bootstrap` starts a new cluster.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from agent.raft.core import Config, RaftCore, Role
from agent.raft.log import FileLog
from agent.raft.messages import (
    ConfChange,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    Snapshot,
    SnapshotMeta,
    conf_from_wire,
    conf_to_wire,
)
from agent.raft.snapshots import DiskSnapshotStorage, read_snapshot_meta
from agent.state.fsm import FSM

log = logging.getLogger("agent.raft")

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


class NodeBase:
    """What the parts of the Raft driver share; see `RaftNode` for running it."""

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

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()
