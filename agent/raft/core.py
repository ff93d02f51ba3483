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
"""

from __future__ import annotations

from dataclasses import replace

from agent.raft.errors import Compacted, NotLeader, ProposalDropped, RaftError, StepLocalMsg
from agent.raft.messages import (
    CAMPAIGN_TRANSFER,
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
    Snapshot,
)
from agent.raft.progress import Progress, ProgressState
from agent.raft.quorum import VoteResult, committed_index, has_quorum, vote_result
from agent.raft.raftlog import RaftLog
from agent.raft.readonly import ReadOnly
from agent.raft.storage import Storage
from agent.raft.values import (
    Config,
    PeerProgress,
    ReadState,
    Ready,
    Role,
    SoftState,
    Status,
    validate_config,
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


class RaftCore:
    """One Raft node's protocol state. Not thread-safe: one caller (the driver) at a time."""

    def __init__(self, config: Config, storage: Storage) -> None:
        validate_config(config)
        self.id = config.id
        self.cfg = config
        self.rng = config.rng
        self.election_timeout = config.election_tick
        self.heartbeat_timeout = config.heartbeat_tick
        self.raft_log = RaftLog(storage)
        hs, conf = storage.initial_state()
        self.conf = conf
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.role = Role.FOLLOWER
        self.prs: dict[str, Progress] = {}
        self.votes: dict[str, bool] = {}
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.read_only = ReadOnly()
        self.pending_read_index: list[Message] = []
        self.pending_conf_index = 0
        self.lead_transferee = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout
        self.ticks = 0  # monotonic count of tick() calls: the leader lease's clock
        self.lease_blocked_until = 0
        # After a restart we cannot know whether we acknowledged a leader's heartbeat just
        # before crashing, and that leader may be counting on it for its lease: behave as if we
        # did, refusing votes for one election timeout (only if we ever joined a term).
        self.restart_vote_guard = hs.term > 0
        if hs != HardState():
            self._load_state(hs)
        if config.applied > 0:
            self.raft_log.applied_to(min(config.applied, self.raft_log.committed))
        self._become_follower(self.term, NONE)
        self.prev_soft = SoftState(NONE, Role.FOLLOWER)
        self.prev_hard = HardState(self.term, self.vote, self.raft_log.committed)

    def _load_state(self, hs: HardState) -> None:
        # A commit index below the snapshot is stale (the snapshot was persisted after it), but
        # one beyond the log means committed entries were lost: refuse to run on that.
        if hs.commit > self.raft_log.last_index():
            raise AssertionError(
                f"hard state commit {hs.commit} beyond the last log index "
                f"{self.raft_log.last_index()}: the log lost committed entries"
            )
        self.raft_log.committed = max(self.raft_log.committed, hs.commit)
        self.term = hs.term
        self.vote = hs.vote

    # -- membership helpers ---------------------------------------------------------------------

    def _promotable(self) -> bool:
        return self.id in self.conf.voters

    def _reset_progress(self) -> None:
        last = self.raft_log.last_index()
        self.prs = {}
        for nid in (*self.conf.voters, *self.conf.nonvoters):
            pr = Progress(last + 1, self.cfg.max_inflight_msgs, nid in self.conf.voters)
            if nid == self.id:
                pr.match = last
                pr.recent_active = True
            self.prs[nid] = pr

    # -- role changes ---------------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(
            self.election_timeout
        )
        self.lead_transferee = NONE
        self.votes = {}
        self._reset_progress()
        self.pending_conf_index = 0
        self.read_only.reset()
        self.pending_read_index = []

    def _become_follower(self, term: int, lead: str) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def _become_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader -> candidate"
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_pre_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader -> pre-candidate"
        # Pre-vote changes neither term nor vote: a node that cannot win disrupts nobody.
        self.votes = {}
        self.lead = NONE
        self.role = Role.PRE_CANDIDATE

    def _become_leader(self) -> None:
        assert self.role != Role.FOLLOWER, "follower -> leader"
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        self.prs[self.id].become_replicate()
        # Unapplied conf changes may be in the log: treat the tail as pending (one at a time).
        self.pending_conf_index = self.raft_log.last_index()
        # Raft §5.4.2/§8: commit an entry of our own term to learn what earlier ones committed.
        self._append_entries([Entry(0, 0, EntryKind.NOOP, b"")])

    # -- sending --------------------------------------------------------------------------------

    def _send(self, m: Message) -> None:
        if m.type in (MsgType.VOTE, MsgType.PRE_VOTE, MsgType.VOTE_RESP, MsgType.PRE_VOTE_RESP):
            assert m.term != 0, f"{m.type.name} needs an explicit term"
            self.msgs.append(_stamp(m, self.id, m.term))
        elif m.type in (MsgType.PROP, MsgType.READ_INDEX, MsgType.TRANSFER_LEADER):
            # Forwarded requests are term-less: they are valid whatever the term.
            self.msgs.append(_stamp(m, m.frm or self.id, 0))
        else:
            self.msgs.append(_stamp(m, self.id, self.term))

    def _maybe_send_append(self, to: str, send_if_empty: bool = True) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        try:
            prev_term = self.raft_log.term(pr.next - 1)
            ents = self.raft_log.entries(pr.next, self.cfg.max_size_per_msg)
        except Compacted:
            return self._send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self._send(
            Message(
                MsgType.APP,
                to=to,
                index=pr.next - 1,
                log_term=prev_term,
                entries=tuple(ents),
                commit=self.raft_log.committed,
            )
        )
        pr.update_on_entries_send(len(ents), ents[-1].index if ents else pr.next - 1)
        return True

    def _send_snapshot(self, to: str, pr: Progress) -> bool:
        # A follower not heard from lately may be down: don't ship a large snapshot blindly.
        if not pr.recent_active:
            return False
        snap = self.raft_log.snapshot()
        assert not snap.is_empty(), "log compacted without a snapshot"
        self._send(Message(MsgType.SNAP, to=to, snapshot=snap))
        pr.become_snapshot(snap.meta.index)
        return True

    def _send_heartbeat(self, to: str, ctx: bytes) -> None:
        # Never tell a follower to commit past what it is known to hold.
        commit = min(self.prs[to].match, self.raft_log.committed)
        self._send(Message(MsgType.HEARTBEAT, to=to, commit=commit, context=ctx, index=self.ticks))

    def _bcast_append(self) -> None:
        for nid in self.prs:
            if nid != self.id:
                self._maybe_send_append(nid)

    def _bcast_heartbeat(self, ctx: bytes | None = None) -> None:
        if ctx is None:
            ctx = self.read_only.last_pending()
        for nid in self.prs:
            if nid != self.id:
                self._send_heartbeat(nid, ctx)

    # -- leader log ops -------------------------------------------------------------------------

    def _append_entries(self, ents: list[Entry]) -> int:
        li = self.raft_log.last_index()
        term = self.term
        ents = [Entry(li + 1 + n, term, e.kind, e.data) for n, e in enumerate(ents)]
        last = self.raft_log.append(ents)
        self.prs[self.id].maybe_update(last)
        self._maybe_commit()
        return last

    def _maybe_commit(self) -> bool:
        voters = [v for v in self.conf.voters if v in self.prs]
        mci = committed_index(voters, lambda v: self.prs[v].match)
        if self.raft_log.maybe_commit(mci, self.term):
            self._release_pending_read_index()
            return True
        return False

    def _committed_entry_in_current_term(self) -> bool:
        return self.raft_log.zero_term_on_err(self.raft_log.committed) == self.term

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

    # -- elections ------------------------------------------------------------------------------

    def _hup(self, transfer: bool) -> None:
        if self.role == Role.LEADER or not self._promotable():
            return
        # A conf change that is committed but not applied could change who may vote; wait.
        try:
            pending = self.raft_log.slice(self.raft_log.applied + 1, self.raft_log.committed + 1)
        except Compacted:
            pending = []
        if any(e.kind == EntryKind.CONF_CHANGE for e in pending):
            return
        if self.cfg.pre_vote and not transfer:
            self._campaign(pre=True, transfer=False)
        else:
            self._campaign(pre=False, transfer=transfer)

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self._become_pre_candidate()
            vote_type, term = MsgType.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            vote_type, term = MsgType.VOTE, self.term
        if self._poll(self.id, True) == VoteResult.WON:
            # Single voter: won already.
            if pre:
                self._campaign(pre=False, transfer=transfer)
            else:
                self._become_leader()
            return
        ctx = CAMPAIGN_TRANSFER if transfer else b""
        for nid in self.conf.voters:
            if nid == self.id:
                continue
            self._send(
                Message(
                    vote_type,
                    to=nid,
                    term=term,
                    index=self.raft_log.last_index(),
                    log_term=self.raft_log.last_term(),
                    context=ctx,
                )
            )

    def _poll(self, nid: str, granted: bool) -> VoteResult:
        self.votes.setdefault(nid, granted)
        return vote_result(self.conf.voters, self.votes)

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
        if m.term == 0:
            pass  # local message or forwarded request
        elif m.term > self.term:
            if m.type in (MsgType.VOTE, MsgType.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.cfg.check_quorum
                    and (self.lead != NONE or self.restart_vote_guard)
                    and self.election_elapsed < self.election_timeout
                )
                if not force and in_lease:
                    # We heard from a live leader within the election timeout: a vote now
                    # would only disrupt it (thesis §4.2.3). This also backs the leader lease.
                    return
            if m.type == MsgType.PRE_VOTE or (m.type == MsgType.PRE_VOTE_RESP and not m.reject):
                # A pre-vote is not a real term: don't adopt it. A granted pre-vote response
                # carries the future term; we bump it ourselves once we win the pre-vote.
                pass
            elif m.type in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
                self._become_follower(m.term, m.frm)
            else:
                self._become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (
                MsgType.HEARTBEAT,
                MsgType.APP,
            ):
                # A stale leader (e.g. back from a partition) learns our term and steps down;
                # otherwise, with pre-vote, nobody would ever raise its term for it.
                self._send(Message(MsgType.APP_RESP, to=m.frm))
            elif m.type == MsgType.PRE_VOTE:
                self._send(Message(MsgType.PRE_VOTE_RESP, to=m.frm, term=self.term, reject=True))
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

    def _handle_vote_request(self, m: Message) -> None:
        resp = MsgType.VOTE_RESP if m.type == MsgType.VOTE else MsgType.PRE_VOTE_RESP
        # Raft §5.2: one vote per term, first come first served; a pre-vote for a future term
        # promises nothing, so it may be granted regardless of our vote.
        can_vote = (
            self.vote == m.frm
            or (self.vote == NONE and self.lead == NONE)
            or (m.type == MsgType.PRE_VOTE and m.term > self.term)
        )
        if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):
            # Raft §5.4.1: grant only to a candidate whose log is at least as up to date.
            self._send(Message(resp, to=m.frm, term=m.term))
            if m.type == MsgType.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(Message(resp, to=m.frm, term=self.term, reject=True))

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
            for nid, pr in self.prs.items():
                pr.recent_active = nid == self.id
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

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            # Fast backtracking (§5.3 optimisation): jump to the follower's hint, refined by
            # skipping every entry of ours whose term is newer than the follower's there.
            probe = m.reject_hint
            if m.log_term > 0:
                probe, _ = self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, probe):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._maybe_send_append(m.frm)
            return
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT and pr.match + 1 >= self.raft_log.first_index():
            # The snapshot (or appends) caught it up to what our log still has.
            pr.become_probe()
            pr.become_replicate()
        elif pr.state == ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._bcast_append()
        elif old_paused:
            self._maybe_send_append(m.frm)
        while self._maybe_send_append(m.frm, send_if_empty=False):
            pass
        if m.frm == self.lead_transferee and pr.match == self.raft_log.last_index():
            self._send_timeout_now(m.frm)

    def _leader_propose(self, ents: list[Entry]) -> int:
        if self.id not in self.prs:
            raise ProposalDropped("this node is not in the configuration")
        if self.lead_transferee:
            raise ProposalDropped(f"leadership transfer to {self.lead_transferee} in progress")
        limit = self.cfg.max_uncommitted_entries
        if limit and self.raft_log.last_index() - self.raft_log.committed + len(ents) > limit:
            raise ProposalDropped("too many uncommitted entries")
        conf_idx = None
        for n, e in enumerate(ents):
            if e.kind == EntryKind.CONF_CHANGE:
                if self.pending_conf_index > self.raft_log.applied:
                    raise ProposalDropped("a configuration change is still pending")
                conf_idx = self.raft_log.last_index() + 1 + n
        last = self._append_entries(ents)
        if conf_idx is not None:
            self.pending_conf_index = conf_idx
        self._bcast_append()
        return last

    def _leader_read_index(self, m: Message) -> None:
        if len(self.conf.voters) <= 1 and self.id in self.conf.voters:
            self._answer_read_index(m, self.raft_log.committed)
            return
        if not self._committed_entry_in_current_term():
            # Our commit index may lag the true one until our NOOP commits (thesis §6.4).
            self.pending_read_index.append(m)
            return
        self.read_only.add_request(self.raft_log.committed, m)
        self.read_only.recv_ack(self.id, m.context)
        self._bcast_heartbeat(m.context)

    def _release_pending_read_index(self) -> None:
        if not self.pending_read_index or not self._committed_entry_in_current_term():
            return
        pending, self.pending_read_index = self.pending_read_index, []
        for m in pending:
            self._leader_read_index(m)

    def _answer_read_index(self, req: Message, index: int) -> None:
        if req.frm in (NONE, self.id):
            self.read_states.append(ReadState(index, req.context))
        else:
            self._send(
                Message(MsgType.READ_INDEX_RESP, to=req.frm, index=index, context=req.context)
            )

    def _leader_transfer(self, transferee: str) -> None:
        if transferee not in self.conf.voters:
            return
        if self.lead_transferee == transferee or transferee == self.id:
            return
        self.lead_transferee = transferee
        # The transfer must finish within one election timeout (see _tick_heartbeat).
        self.election_elapsed = 0
        if self.prs[transferee].match == self.raft_log.last_index():
            self._send_timeout_now(transferee)
        else:
            self._maybe_send_append(transferee)

    def _send_timeout_now(self, to: str) -> None:
        # The transferee will campaign with a forced vote, bypassing followers' lease checks;
        # our lease is void from here on for as long as the message could still be in flight.
        self.lease_blocked_until = self.ticks + 2 * self.election_timeout
        self._send(Message(MsgType.TIMEOUT_NOW, to=to))

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

    def _handle_append(self, m: Message) -> None:
        if m.index < self.raft_log.committed:
            self._send(Message(MsgType.APP_RESP, to=m.frm, index=self.raft_log.committed))
            return
        last = self.raft_log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last is not None:
            self._send(Message(MsgType.APP_RESP, to=m.frm, index=last))
            return
        hint = min(m.index, self.raft_log.last_index())
        hint, hint_term = self.raft_log.find_conflict_by_term(hint, m.log_term)
        self._send(
            Message(
                MsgType.APP_RESP,
                to=m.frm,
                index=m.index,
                reject=True,
                reject_hint=hint,
                log_term=hint_term,
            )
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.raft_log.commit_to(min(m.commit, self.raft_log.last_index()))
        self._send(Message(MsgType.HEARTBEAT_RESP, to=m.frm, context=m.context, index=m.index))

    def _handle_snapshot(self, m: Message) -> None:
        assert m.snapshot is not None, "SNAP without a snapshot"
        if self._restore(m.snapshot):
            self._send(Message(MsgType.APP_RESP, to=m.frm, index=self.raft_log.last_index()))
        else:
            self._send(Message(MsgType.APP_RESP, to=m.frm, index=self.raft_log.committed))

    def _restore(self, snap: Snapshot) -> bool:
        meta = snap.meta
        if meta.index <= self.raft_log.committed:
            return False
        if self.raft_log.match_term(meta.index, meta.term):
            # We already hold the snapshot's last entry: just fast-forward the commit.
            self.raft_log.commit_to(meta.index)
            return False
        self.raft_log.restore(snap)
        self.conf = meta.conf
        self._reset_progress()
        return True

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

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read; `ctx` is the caller's unique request id.

        The answer arrives as `ReadState(index, ctx)` in a later `Ready` (on the leader after a
        heartbeat round confirms leadership; a follower forwards to the leader). Raises
        `NotLeader("")` when no leader is known; requests can be silently lost on leader
        change, so the caller needs a timeout.
        """
        m = Message(MsgType.READ_INDEX, frm=self.id, context=ctx)
        if self.role == Role.LEADER:
            self._leader_read_index(replace(m, frm=NONE))
        elif self.lead == NONE:
            raise NotLeader(NONE)
        else:
            self._send(replace(m, to=self.lead))

    def transfer_leadership(self, to: str) -> None:
        """Hand leadership to voter `to` (TimeoutNow once it is caught up). Proposals are
        refused until the transfer completes or aborts after an election timeout."""
        if self.role == Role.LEADER:
            self._leader_transfer(to)
        elif self.lead == NONE:
            raise NotLeader(NONE)
        else:
            self._send(Message(MsgType.TRANSFER_LEADER, to=self.lead, frm=to))

    def leader_lease_valid(self) -> bool:
        """True while this leader knows no other leader can exist: a quorum acknowledged a
        heartbeat sent less than `election_tick` ticks ago, and an entry of its own term is
        committed. Needs `check_quorum` (followers then refuse votes while they hear from a
        leader). The driver may serve default-consistency reads when this is true and it has
        applied up to `status().commit`."""
        if self.role != Role.LEADER or not self.cfg.check_quorum:
            return False
        if self.lead_transferee or self.ticks < self.lease_blocked_until:
            return False
        if not self._committed_entry_in_current_term():
            return False
        horizon = self.ticks - self.election_timeout
        return has_quorum(
            self.conf.voters,
            lambda v: v == self.id or (v in self.prs and self.prs[v].lease_ack > horizon),
        )

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
        # Conf changes: once applied, another may be proposed (see _leader_propose).

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


def _stamp(m: Message, frm: str, term: int) -> Message:
    """`m` with sender and term set (dataclasses.replace is slow on the hot path)."""
    return Message(
        m.type,
        m.to,
        frm,
        term,
        m.log_term,
        m.index,
        m.entries,
        m.commit,
        m.reject,
        m.reject_hint,
        m.snapshot,
        m.context,
    )
