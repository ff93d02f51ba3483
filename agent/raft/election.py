"""Elections for the Raft core: terms, votes, pre-votes and the role changes they cause.

A follower that hears nothing for its randomized election timeout campaigns, first with a
pre-vote when enabled (asking whether it could win, without raising anyone's term), then for
real. The term rules run before any message reaches its role's handler: a newer term makes us
follow it (except a vote request while a live leader holds our lease), an older one is ignored
or answered so its sender learns the current term.
"""

from __future__ import annotations

from agent.raft.errors import Compacted
from agent.raft.messages import CAMPAIGN_TRANSFER, NONE, Entry, EntryKind, Message, MsgType
from agent.raft.quorum import VoteResult, vote_result
from agent.raft.replication import Replication
from agent.raft.values import Role


class Election(Replication):
    """Campaigns, voting and role changes, on top of replication."""

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

    # -- term rules -----------------------------------------------------------------------------

    def _check_term(self, m: Message) -> bool:
        """Apply the term rules to `m`; False when it goes no further than this."""
        if m.term == 0:
            return True  # local message or forwarded request
        if m.term > self.term:
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
                    return False
            if m.type == MsgType.PRE_VOTE or (m.type == MsgType.PRE_VOTE_RESP and not m.reject):
                # A pre-vote is not a real term: don't adopt it. A granted pre-vote response
                # carries the future term; we bump it ourselves once we win the pre-vote.
                pass
            elif m.type in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
                self._become_follower(m.term, m.frm)
            else:
                self._become_follower(m.term, NONE)
            return True
        if m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (
                MsgType.HEARTBEAT,
                MsgType.APP,
            ):
                # A stale leader (e.g. back from a partition) learns our term and steps down;
                # otherwise, with pre-vote, nobody would ever raise its term for it.
                self._send(Message(MsgType.APP_RESP, to=m.frm))
            elif m.type == MsgType.PRE_VOTE:
                self._send(Message(MsgType.PRE_VOTE_RESP, to=m.frm, term=self.term, reject=True))
            return False
        return True

    # -- campaigns ------------------------------------------------------------------------------

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
