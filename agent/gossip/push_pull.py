"""Push-pull in the SWIM core: full state exchanges over a stream.

Both sides send their whole member table (and recent user events) and merge the other's. It
runs on join, periodically with a random live member (less often in large clusters), and with
a failed member every reconnect interval, which heals partitions.
"""

from __future__ import annotations

import math

from agent.gossip.events import Member, MemberStatus, StreamRequest
from agent.gossip.member_state import MemberState
from agent.gossip.messages import Alive, Dead, NodeState, PushNode, PushPull, Suspect, encode
from agent.gossip.records import LIVE, Stream, split_addr


class PushPullExchange(MemberState):
    """Opening exchanges, our side of one, and merging a peer's."""

    def _open_push_pull(self, addr: str, kind: str, token: int, now: float) -> int:
        sid = self._new_id()
        self._streams[sid] = Stream(kind, addr, token)
        data = encode(self._local_state(join=kind == "join", now=now))
        self._stream_out.append(StreamRequest(sid, addr, data, self.config.tcp_timeout))
        return sid

    def _local_state(self, join: bool, now: float) -> PushPull:
        nodes = []
        for n in self._nodes.values():
            # Like memberlist, forget the dead in exchanges once we stop gossiping to them.
            stale = now - n.state_change > self.config.gossip_to_the_dead_time
            if n.state not in LIVE and stale:
                continue
            nodes.append(PushNode(n.name, n.addr, dict(n.tags), n.incarnation, int(n.state)))
        return PushPull(join, nodes, self._clock.time, self._event_buffer.recent())

    def _push_member(self, n: PushNode) -> Member:
        state = NodeState(n.state) if n.state in NodeState._value2member_map_ else NodeState.DEAD
        status = {
            NodeState.ALIVE: MemberStatus.ALIVE,
            NodeState.SUSPECT: MemberStatus.ALIVE,
            NodeState.DEAD: MemberStatus.FAILED,
            NodeState.LEFT: MemberStatus.LEFT,
        }[state]
        host, port = split_addr(n.addr)
        return Member(n.name, host, port, dict(n.tags), status)

    def _merge_remote(self, msg: PushPull, now: float) -> None:
        # As serf: the peer's clock is the time of its *next* event, so witness one less;
        # otherwise every exchange would push clocks up and new events of lagging members
        # could fall below a joiner's event_min_time.
        if msg.event_ltime > 0:
            self._clock.witness(msg.event_ltime - 1)
        if not msg.join:
            # A joiner's old events are not replayed into the cluster it joins (nor the
            # cluster's into the joiner, see handle_stream_reply), as serf with ignoreOld.
            for event in msg.events:
                self._handle_user_event(event)
        for n in msg.nodes:
            if n.state == NodeState.ALIVE:
                self._alive_node(Alive(n.incarnation, n.name, n.addr, dict(n.tags)), now)
            elif n.state == NodeState.LEFT:
                self._dead_node(Dead(n.incarnation, n.name, n.name), now)
            else:
                # A peer's "dead" becomes our suspicion: the member gets a chance to refute.
                self._suspect_node(Suspect(n.incarnation, n.name, self.name), now)

    def _push_pull_interval(self) -> float:
        # memberlist slows push-pull in clusters above 32 members to bound the TCP load.
        n = self.num_alive()
        base = self.config.push_pull_interval
        if n <= 32:
            return base
        return base * (math.ceil(math.log2(n) - math.log2(32)) + 1)
