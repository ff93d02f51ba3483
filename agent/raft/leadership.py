"""What a Raft leader offers beyond replication: linearizable reads and handing over.

Reads: a read-index request is answered with the commit index once a heartbeat round shows a
quorum still follows this leader (thesis §6.4), and not before an entry of the leader's own
term has committed; the leader lease lets the driver skip that round while no other leader can
exist. Transfer: the leader catches the chosen voter up, then sends it TimeoutNow, refusing
proposals meanwhile.
"""

from __future__ import annotations

from dataclasses import replace

from agent.raft.errors import NotLeader
from agent.raft.messages import NONE, Message, MsgType
from agent.raft.quorum import has_quorum
from agent.raft.replication import Replication
from agent.raft.values import ReadState, Role


class Leadership(Replication):
    """Read-index, the leader lease and leadership transfer, on top of replication."""

    # -- local requests -------------------------------------------------------------------------

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

    # -- read-index -----------------------------------------------------------------------------

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

    # -- leadership transfer --------------------------------------------------------------------

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
