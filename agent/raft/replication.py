"""Log replication for the Raft core, and the state every part of the core shares.

`Replication` holds a node's protocol state (term, vote, log, progress of each peer, the
outgoing messages) and both halves of replication: the leader sending appends, snapshots and
heartbeats and tracking each follower's progress from the responses; the follower checking
appends against its log and taking snapshots. Elections (`election.py`), reads and leadership
transfer (`leadership.py`) build on it; `core.RaftCore` combines them and dispatches messages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from agent.raft.errors import Compacted, ProposalDropped
from agent.raft.messages import (
    NONE,
    Entry,
    EntryKind,
    HardState,
    Message,
    MsgType,
    Snapshot,
)
from agent.raft.progress import Progress, ProgressState
from agent.raft.quorum import committed_index
from agent.raft.raftlog import RaftLog
from agent.raft.readonly import ReadOnly
from agent.raft.storage import Storage
from agent.raft.values import Config, ReadState, Role, validate_config


class Replication(ABC):
    """The shared state of one Raft node and its log replication. Not thread-safe.

    Two steps belong to the layer above, and replication only triggers them: answering the
    reads that waited for a commit in the leader's term, and sending TimeoutNow once a
    transfer's target has caught up.
    """

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
        # The node is not ready yet: RaftCore finishes by becoming a follower of this term.

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

    @abstractmethod
    def _release_pending_read_index(self) -> None:
        """Serve the read-index requests held back until the leader's term had a commit."""

    @abstractmethod
    def _send_timeout_now(self, to: str) -> None:
        """Tell the transfer's target, now caught up, to campaign at once."""

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

    # -- follower side --------------------------------------------------------------------------

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
