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
(term, vote, membership; see `node_base`). Snapshots are taken, installed and streamed by
`node_snapshots`, in the format of `snapshots`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import msgspec

from agent.errors import NotLeader
from agent.raft.core import Ready, Role
from agent.raft.errors import NotLeader as CoreNotLeader
from agent.raft.errors import ProposalDropped
from agent.raft.log import encode_record
from agent.raft.messages import (
    ConfChange,
    ConfChangeOp,
    Entry,
    EntryKind,
    Message,
    MsgType,
    from_wire,
    to_wire,
)
from agent.raft.node_snapshots import NodeSnapshots

log = logging.getLogger("agent.raft")

_encode = msgspec.msgpack.Encoder().encode
READ_TIMEOUT = 5.0


class RaftNode(NodeSnapshots):
    """One server's Raft: the core, its storage and log, timers and the transport to peers."""

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

    async def receive_snapshot_done(self, payload: Any) -> bool:
        """RPC: the InstallSnapshot message itself, after its chunks."""
        self.deliver(payload)
        return True

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
