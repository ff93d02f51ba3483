"""Member state changes in the SWIM core: alive, suspect, dead, left, reaped.

Each piece of news is checked against what the table holds (incarnation numbers order the
news about one member), applied, broadcast further and reported as an event. News that
accuses this member is refuted with a higher incarnation; a suspicion becomes a death only
after its Lifeguard timeout, which shrinks as independent members confirm it (`suspicion`).
"""

from __future__ import annotations

from agent.gossip.dissemination import Dissemination
from agent.gossip.events import (
    MemberConflict,
    MemberFailed,
    MemberJoin,
    MemberLeave,
    MemberReap,
    MemberUpdate,
)
from agent.gossip.messages import Alive, Dead, ForceLeave, NodeState, Suspect, encode
from agent.gossip.records import LIVE, NodeRecord
from agent.gossip.suspicion import Suspicion, suspicion_timeout


class MemberState(Dissemination):
    """Applying membership news to the table, and refuting news about ourselves."""

    def _alive_node(self, a: Alive, now: float, bootstrap: bool = False) -> None:
        if self._left and a.node == self.name:
            return
        node = self._nodes.get(a.node)
        is_new = node is None
        changes_addr = False
        if node is None:
            node = NodeRecord(a.node, a.addr, dict(a.tags), 0, NodeState.DEAD, now)
            self._nodes[a.node] = node
            if a.node != self.name:
                pos = self._rng.randint(0, len(self._probe_order))
                self._probe_order.insert(pos, a.node)
        elif node.addr != a.addr:
            reclaim = self.config.dead_node_reclaim_time
            can_reclaim = reclaim > 0 and now - node.state_change > reclaim
            if node.state == NodeState.LEFT or (node.state == NodeState.DEAD and can_reclaim):
                changes_addr = True
            else:
                self._events.append(MemberConflict(self._member(node), a.addr))
                return
        is_local = a.node == self.name
        # memberlist drops dead members from its list after gossip_to_the_dead_time and then
        # accepts any alive news about them; the table keeps them (for serf's reaping), so
        # "forgotten" stands in for that. It lets healed partitions meet again.
        forgotten = (
            not is_new
            and node.state not in LIVE
            and now - node.state_change > self.config.gossip_to_the_dead_time
        )
        if a.incarnation <= node.incarnation and not (
            is_local or is_new or changes_addr or forgotten
        ):
            return
        if is_local and a.incarnation < node.incarnation:
            return
        self._suspicions.pop(a.node, None)
        if is_local and not bootstrap and not is_new:
            if a.incarnation == node.incarnation and a.tags == node.tags and a.addr == node.addr:
                return  # our own news coming back
            self._refute(node, a.incarnation)
            return
        self._broadcast(a.node, a)
        old_state = None if is_new else node.state
        old_tags, old_addr = node.tags, node.addr
        node.incarnation = a.incarnation
        node.tags = dict(a.tags)
        node.addr = a.addr
        node.leaving = False  # newer alive news refutes a force-leave
        if node.state != NodeState.ALIVE:
            node.state = NodeState.ALIVE
            node.state_change = now
        if old_state is None or old_state in (NodeState.DEAD, NodeState.LEFT):
            self._events.append(MemberJoin(self._member(node)))
        elif old_tags != node.tags or old_addr != node.addr:
            self._events.append(MemberUpdate(self._member(node)))

    def _suspect_node(self, s: Suspect, now: float) -> None:
        node = self._nodes.get(s.node)
        if node is None:
            return
        if s.incarnation < node.incarnation:
            if s.node == self.name:
                self._remind(s.sender)
            return
        susp = self._suspicions.get(s.node)
        if susp is not None:
            if susp.confirm(s.sender):
                self._broadcast(s.node, s)
            return
        if node.state != NodeState.ALIVE:
            return
        if s.node == self.name:
            if not self._left:
                self._refute(node, s.incarnation)
            return
        self._broadcast(s.node, s)
        node.incarnation = s.incarnation
        node.state = NodeState.SUSPECT
        node.state_change = now
        cfg = self.config
        n = self.num_alive()
        k = cfg.suspicion_mult - 2
        if n - 2 < k:
            k = 0  # too few members to expect independent confirmations
        min_t = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval)
        max_t = cfg.suspicion_max_timeout_mult * min_t
        self._suspicions[s.node] = Suspicion(s.sender, k, min_t, max_t, now)

    def _dead_node(self, d: Dead, now: float) -> None:
        node = self._nodes.get(d.node)
        if node is None:
            return
        if d.incarnation < node.incarnation:
            if d.node == self.name:
                self._remind(d.sender)
            return
        self._suspicions.pop(d.node, None)
        if node.state in (NodeState.DEAD, NodeState.LEFT):
            return
        if d.node == self.name and not self._left:
            self._refute(node, d.incarnation)
            return
        self._broadcast(d.node, d)
        node.incarnation = d.incarnation
        # A member seen leaving (force-leave) that then stops answering has left, as in serf.
        left = d.node == d.sender or node.leaving
        node.state = NodeState.LEFT if left else NodeState.DEAD
        node.leaving = False
        node.state_change = now
        if node.state == NodeState.LEFT:
            self._events.append(MemberLeave(self._member(node)))
        else:
            self._events.append(MemberFailed(self._member(node)))

    def _remind(self, accuser: str) -> None:
        """An accusation older than our last refutation: the accuser missed the refutation
        (its gossip was spent), so tell it directly. Not in memberlist; without it a member
        that missed the news declares us dead after the full suspicion timeout."""
        node = self._nodes.get(accuser)
        if self._left or node is None or accuser == self.name or node.state not in LIVE:
            return
        me = self._nodes[self.name]
        self._send(node.addr, Alive(me.incarnation, self.name, self.addr, dict(me.tags)))

    def _refute(self, me: NodeRecord, accused_incarnation: int) -> None:
        me.incarnation = max(me.incarnation, accused_incarnation) + 1
        # Being accused suggests we are slow; Lifeguard backs our probing off a step.
        self._awareness.apply_delta(1)
        self._broadcast(self.name, Alive(me.incarnation, self.name, self.addr, dict(me.tags)))

    def _handle_force_leave(self, msg: ForceLeave, now: float) -> None:
        node = self._nodes.get(msg.node)
        if node is None:
            return  # unknown or already pruned
        if node.state in LIVE:
            self._leave_live(node, msg)
            return
        if node.state == NodeState.LEFT and not msg.prune:
            return  # already applied: stop the re-broadcast here
        if node.state == NodeState.DEAD:
            node.state = NodeState.LEFT
            node.state_change = now
            self._events.append(MemberLeave(self._member(node)))
        self._queue.queue(f"force:{msg.node}", encode(msg))
        if msg.prune:
            self._remove(node)

    def _leave_live(self, node: NodeRecord, msg: ForceLeave) -> None:
        """serf marks a live member `leaving` on a force-leave and passes the intent on; the
        member itself refutes it (alive with a higher incarnation), which ends `leaving`
        everywhere. News older than a refutation (lower incarnation) is ignored. A live
        member is not pruned: it is still gossiping and would come straight back."""
        if msg.incarnation < node.incarnation:
            return
        if node.name == self.name:
            if not self._left:
                self._refute(node, msg.incarnation)
            return
        if node.leaving:
            return  # already applied: stop the re-broadcast here
        node.leaving = True
        self._queue.queue(f"force:{msg.node}", encode(msg))

    def _reap(self, now: float) -> None:
        cfg = self.config
        for node in list(self._nodes.values()):
            if node.name == self.name:
                continue
            age = now - node.state_change
            if (node.state == NodeState.DEAD and age > cfg.reconnect_timeout) or (
                node.state == NodeState.LEFT and age > cfg.tombstone_timeout
            ):
                self._remove(node)

    def _remove(self, node: NodeRecord) -> None:
        member = self._member(node)
        del self._nodes[node.name]
        self._suspicions.pop(node.name, None)
        self._peer_coords.pop(node.name, None)
        self._vivaldi.forget(node.name)
        self._events.append(MemberReap(member))
