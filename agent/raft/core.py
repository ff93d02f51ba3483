"""RaftCore: the Raft algorithm as a pure state machine (no I/O, no clock, no threads).

Inputs are `tick()` (one unit of abstract time), `step(msg)` (a message from a peer) and the
local requests (`propose`, `propose_conf_change`, `read_index`, `transfer_leadership`,
`campaign`). Outputs accumulate until the driver takes them with `ready()`:

    rd = core.ready()               # only when core.has_ready()
    persist rd.snapshot, rd.entries, rd.hard_state   (fsync; in that order)
    send rd.messages                 (only AFTER the persist above)
    apply rd.committed_entries       (CONF_CHANGE entries -> core.apply_conf_change(cc))
    answer rd.read_states            (once applied >= read_state.index)
    core.advance(rd)

`step`/`tick`/`propose` may be called between `ready()` and `advance()`; `ready()` must not be
called again before `advance()` of the previous one.

The algorithm is spread over a few layers of one class: `replication.Replication` (the shared
state, appends, snapshots, heartbeats, progress), `election.Election` (terms, votes, role
changes) and `leadership.Leadership` (read-index, lease, transfer). `RaftCore` here combines
them: time, message dispatch per role, the local requests and the Ready handshake.
"""

from __future__ import annotations

from dataclasses import replace

from agent.raft.election import Election
from agent.raft.errors import NotLeader, RaftError, StepLocalMsg
from agent.raft.leadership import Leadership
from agent.raft.messages import (
    LOCAL_MSGS,
    NONE,
    RESPONSE_MSGS,
    ConfChange,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MsgType,
)
from agent.raft.progress import Progress, ProgressState
from agent.raft.quorum import VoteResult, has_quorum
from agent.raft.storage import Storage
from agent.raft.values import (
    Config,
    PeerProgress,
    ReadState,
    Ready,
    Role,
    SoftState,
    Status,
)

__all__ = [
    "Config",
    "PeerProgress",
    "RaftCore",
    "ReadState",
    "Ready",
    "Role",
    "SoftState",
    "Status",
]


class RaftCore(Election, Leadership):
    """One Raft node's protocol state. Not thread-safe: one caller (the driver) at a time."""

    def __init__(self, config: Config, storage: Storage) -> None:
        super().__init__(config, storage)
        self._become_follower(self.term, NONE)
        self.prev_soft = SoftState(NONE, Role.FOLLOWER)
        self.prev_hard = HardState(self.term, self.vote, self.raft_log.committed)

    # -- time -----------------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance abstract time by one tick (elections, heartbeats, check-quorum)."""
        self.ticks += 1
        if self.role == Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.restart_vote_guard = False
        if self._promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self._step(Message(MsgType.HUP, frm=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.cfg.check_quorum:
                self._step(Message(MsgType.CHECK_QUORUM, frm=self.id))
            # A transfer that did not finish within an election timeout is abandoned.
            if self.role == Role.LEADER and self.lead_transferee:
                self.lead_transferee = NONE
        if self.role != Role.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self._step(Message(MsgType.BEAT, frm=self.id))

    # -- stepping -------------------------------------------------------------------------------

    def step(self, msg: Message) -> None:
        """Feed a message from a peer. Raises `StepLocalMsg` for a local-only kind.

        Messages from stale terms are ignored (or answered, when that helps the sender).
        Responses from nodes outside the configuration are ignored.
        """
        if msg.type in LOCAL_MSGS:
            raise StepLocalMsg(msg.type.name)
        if msg.type in RESPONSE_MSGS and msg.frm not in self.prs:
            return
        self._step(msg)

    def _step(self, m: Message) -> None:
        if not self._check_term(m):
            return
        if m.type == MsgType.HUP:
            self._hup(transfer=False)
        elif m.type in (MsgType.VOTE, MsgType.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role == Role.LEADER:
            self._step_leader(m)
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            self._step_candidate(m)
        else:
            self._step_follower(m)

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MsgType.BEAT:
            self._bcast_heartbeat()
            return
        if t == MsgType.CHECK_QUORUM:
            if not has_quorum(
                self.conf.voters, lambda v: v in self.prs and self.prs[v].recent_active
            ):
                # Thesis §6.2: a leader that cannot reach a quorum steps down.
                self._become_follower(self.term, NONE)
                return
            for nid, peer in self.prs.items():
                peer.recent_active = nid == self.id
            return
        if t == MsgType.PROP:
            try:
                self._leader_propose(list(m.entries))
            except RaftError:
                pass  # a forwarded proposal is dropped silently; the sender times out
            return
        if t == MsgType.READ_INDEX:
            self._leader_read_index(m)
            return
        if t == MsgType.TRANSFER_LEADER:
            self._leader_transfer(m.frm)
            return
        pr = self.prs.get(m.frm)
        if pr is None:
            return
        if t == MsgType.APP_RESP:
            self._handle_append_response(m, pr)
        elif t == MsgType.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            pr.lease_ack = max(pr.lease_ack, m.index)
            # A full window after lost APPs would stall forever; free a slot per heartbeat.
            if pr.state == ProgressState.REPLICATE and pr.inflights.full():
                pr.inflights.free_first()
            if pr.match < self.raft_log.last_index():
                self._maybe_send_append(m.frm)
            if m.context:
                acks = self.read_only.recv_ack(m.frm, m.context)
                if acks is not None and has_quorum(self.conf.voters, acks.__contains__):
                    for rs in self.read_only.advance(m.context):
                        self._answer_read_index(rs.req, rs.index)
        elif t == MsgType.SNAP_STATUS:
            if pr.state != ProgressState.SNAPSHOT:
                return
            if m.reject:
                pr.pending_snapshot = 0
            pr.become_probe()
            # Wait for a heartbeat response before probing again.
            pr.probe_sent = True
        elif t == MsgType.UNREACHABLE and pr.state == ProgressState.REPLICATE:
            pr.become_probe()

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        my_resp = MsgType.PRE_VOTE_RESP if self.role == Role.PRE_CANDIDATE else MsgType.VOTE_RESP
        if t == MsgType.APP:
            self._become_follower(m.term, m.frm)
            self._handle_append(m)
        elif t == MsgType.HEARTBEAT:
            self._become_follower(m.term, m.frm)
            self._handle_heartbeat(m)
        elif t == MsgType.SNAP:
            self._become_follower(m.term, m.frm)
            self._handle_snapshot(m)
        elif t == my_resp:
            res = self._poll(m.frm, not m.reject)
            if res == VoteResult.WON:
                if self.role == Role.PRE_CANDIDATE:
                    self._campaign(pre=False, transfer=False)
                else:
                    self._become_leader()
                    self._bcast_append()
            elif res == VoteResult.LOST:
                self._become_follower(self.term, NONE)

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MsgType.APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append(m)
        elif t == MsgType.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_heartbeat(m)
        elif t == MsgType.SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif t in (MsgType.TRANSFER_LEADER, MsgType.READ_INDEX):
            if self.lead != NONE:
                self._send(replace(m, to=self.lead))
        elif t == MsgType.TIMEOUT_NOW:
            self._hup(transfer=True)
        elif t == MsgType.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    # -- local requests -------------------------------------------------------------------------

    def campaign(self) -> None:
        """Start an election now (pre-vote first when enabled)."""
        self._step(Message(MsgType.HUP, frm=self.id))

    def propose(self, data: bytes) -> int:
        """Append a NORMAL entry; returns its index. Only on the leader.

        Raises `NotLeader(leader)` on a follower/candidate, `ProposalDropped` during a leader
        transfer or when this node was removed. The index is a hint: the entry may still be
        lost if leadership changes; it commits iff it shows up in `committed_entries` with the
        same term.
        """
        return self._propose(Entry(0, 0, EntryKind.NORMAL, data))

    def propose_many(self, datas: list[bytes]) -> int:
        """Append several NORMAL entries at once (one APP per follower for the batch); returns
        the last index, the entries taking `last - len(datas) + 1 .. last`. Errors as `propose`.
        """
        if self.role != Role.LEADER:
            raise NotLeader(self.lead)
        return self._leader_propose([Entry(0, 0, EntryKind.NORMAL, d) for d in datas])

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Append a CONF_CHANGE entry; returns its index. One at a time: raises
        `ProposalDropped` while an earlier one is not yet applied. Errors as `propose`."""
        cc = replace(cc, conf=self.conf.apply(cc))
        return self._propose(Entry(0, 0, EntryKind.CONF_CHANGE, cc.encode()))

    def _propose(self, e: Entry) -> int:
        if self.role != Role.LEADER:
            raise NotLeader(self.lead)
        return self._leader_propose([e])

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Take `cc` into effect; called by the app when it applies the CONF_CHANGE entry.

        The entry's `cc.conf` (the membership the leader computed) replaces ours; a change
        without it is applied to the current membership.

        Returns the new membership (store it with the applied index). A leader that removes
        itself steps down; a removed follower stops campaigning.
        """
        self.conf = cc.conf if cc.conf is not None else self.conf.apply(cc)
        last = self.raft_log.last_index()
        members = set(self.conf.voters) | set(self.conf.nonvoters)
        for nid in list(self.prs):
            if nid not in members:
                del self.prs[nid]
        added = []
        for nid in sorted(members):
            pr = self.prs.get(nid)
            if pr is None:
                added.append(nid)
                pr = self.prs[nid] = Progress(
                    last + 1, self.cfg.max_inflight_msgs, nid in self.conf.voters
                )
                if nid == self.id:
                    pr.match = last
                # Give a new peer one check-quorum period before judging it.
                pr.recent_active = True
            pr.voter = nid in self.conf.voters
        if self.lead_transferee and self.lead_transferee not in self.conf.voters:
            self.lead_transferee = NONE
        if self.role != Role.LEADER:
            return self.conf
        if self.id not in self.conf.voters:
            self._become_follower(self.term, NONE)
            return self.conf
        if self._maybe_commit():
            self._bcast_append()
        else:
            for nid in self.prs:
                if nid != self.id:
                    # Probe new peers right away; others only if there is something new.
                    self._maybe_send_append(nid, send_if_empty=nid in added)
        return self.conf

    def report_unreachable(self, node_id: str) -> None:
        """The transport failed to deliver to `node_id`; the leader falls back to probing."""
        if self.role == Role.LEADER:
            self._step_leader(Message(MsgType.UNREACHABLE, frm=node_id))

    def report_snapshot(self, node_id: str, ok: bool) -> None:
        """A snapshot send to `node_id` finished (`ok`) or failed."""
        if self.role == Role.LEADER:
            self._step_leader(Message(MsgType.SNAP_STATUS, frm=node_id, reject=not ok))

    # -- Ready / advance ------------------------------------------------------------------------

    def _soft(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def _hard(self) -> HardState:
        return HardState(self.term, self.vote, self.raft_log.committed)

    def has_ready(self) -> bool:
        """Whether `ready()` has anything for the driver."""
        ul = self.raft_log.unstable
        return bool(
            self.msgs
            or self.read_states
            or ul.entries
            or ul.snapshot is not None
            or self.raft_log.has_next_committed()
            or self._soft() != self.prev_soft
            or self._hard() != self.prev_hard
        )

    def ready(self) -> Ready:
        """The outstanding work. Does not change the core; `advance(rd)` acknowledges it."""
        soft = self._soft()
        hard = self._hard()
        ul = self.raft_log.unstable
        hard_changed = hard != self.prev_hard
        return Ready(
            soft_state=soft if soft != self.prev_soft else None,
            hard_state=hard if hard_changed else None,
            entries=tuple(ul.entries),
            snapshot=ul.snapshot,
            committed_entries=tuple(
                self.raft_log.next_committed(self.cfg.max_committed_size_per_ready or None)
            ),
            messages=tuple(self.msgs),
            read_states=tuple(self.read_states),
            must_sync=bool(ul.entries)
            or ul.snapshot is not None
            or (hard.term, hard.vote) != (self.prev_hard.term, self.prev_hard.vote),
        )

    def advance(self, rd: Ready) -> None:
        """The driver has persisted, sent and applied everything in `rd`."""
        if rd.soft_state is not None:
            self.prev_soft = rd.soft_state
        if rd.hard_state is not None:
            self.prev_hard = rd.hard_state
        if rd.snapshot is not None:
            self.raft_log.unstable.stable_snap_to(rd.snapshot.meta.index)
            self.raft_log.applied_to(rd.snapshot.meta.index)
        if rd.entries:
            last = rd.entries[-1]
            self.raft_log.unstable.stable_to(last.index, last.term)
        if rd.committed_entries:
            self.raft_log.applied_to(rd.committed_entries[-1].index)
        del self.msgs[: len(rd.messages)]
        del self.read_states[: len(rd.read_states)]

    def status(self) -> Status:
        progress: dict[str, PeerProgress] = {}
        if self.role == Role.LEADER:
            for nid, pr in sorted(self.prs.items()):
                progress[nid] = PeerProgress(
                    pr.match, pr.next, pr.state_name(), pr.recent_active, pr.voter
                )
        return Status(
            id=self.id,
            role=self.role,
            term=self.term,
            vote=self.vote,
            leader=self.lead,
            commit=self.raft_log.committed,
            applied=self.raft_log.applied,
            last_index=self.raft_log.last_index(),
            voters=self.conf.voters,
            nonvoters=self.conf.nonvoters,
            progress=progress,
            lead_transferee=self.lead_transferee,
        )
