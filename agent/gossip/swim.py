"""The SWIM + Lifeguard membership core: no sockets, no clock, no asyncio.

The driver feeds it packets (`handle_packet`), incoming stream requests (`handle_stream`),
replies to streams it asked for (`handle_stream_reply`) and ticks (`tick`), always with `now` in
seconds from one monotonic clock. After each call it collects `take_outputs()` (packets to send,
streams to open, events in order) and sleeps until `next_deadline()`.

Protocol (after HashiCorp memberlist, with serf's member statuses and user events on top):

* Every probe interval (stretched by the awareness score) one member, taken round-robin from a
  shuffled list, is pinged. Without an ack after the probe timeout, `indirect_checks` other
  members are asked to ping it (they nack if they get no answer) and a TCP ping is tried. Without
  any ack by the end of the interval the member is suspected.
* A suspicion times out after a Lifeguard timeout that shrinks as distinct members confirm it;
  then the member is declared dead. A member that hears it is suspected or dead refutes with a
  higher incarnation number.
* Membership news is piggybacked on pings/acks and gossiped to a few members every gossip
  interval; each broadcast is retransmitted RetransmitMult * ceil(log10(N+1)) times.
* A full state exchange (push-pull, over a stream) runs periodically, on join, and towards failed
  members every reconnect interval (serf), which heals partitions.
* Failed members are reaped after reconnect_timeout, left ones after tombstone_timeout.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field

import msgspec

from agent.gossip.awareness import Awareness
from agent.gossip.broadcast_queue import BroadcastQueue
from agent.gossip.config import GossipConfig
from agent.gossip.coordinate import Coordinate, VivaldiClient
from agent.gossip.errors import MessageError, UnknownMember, UserEventTooLarge
from agent.gossip.events import (
    GossipEvent,
    JoinResult,
    Member,
    MemberConflict,
    MemberFailed,
    MemberJoin,
    MemberLeave,
    MemberReap,
    MemberStatus,
    MemberUpdate,
    Outputs,
    Packet,
    StreamRequest,
    UserEvent,
)
from agent.gossip.merge import MergeDelegate, StandardMergeDelegate
from agent.gossip.messages import (
    COMPOUND_OVERHEAD,
    COMPOUND_PART_OVERHEAD,
    Ack,
    Alive,
    Compound,
    Dead,
    ErrorReply,
    ForceLeave,
    IndirectPing,
    Message,
    Nack,
    NodeState,
    Ping,
    PushNode,
    PushPull,
    Suspect,
    UserEventMsg,
    decode,
    encode,
    encode_compound,
)
from agent.gossip.suspicion import Suspicion, suspicion_timeout
from agent.gossip.user_events import EventBuffer, LamportClock

_LIVE = (NodeState.ALIVE, NodeState.SUSPECT)


@dataclass(slots=True)
class _Node:
    name: str
    addr: str
    tags: dict[str, str]
    incarnation: int
    state: NodeState
    state_change: float


@dataclass(slots=True)
class _Probe:
    target: str
    addr: str
    seq: int
    sent: float
    timeout_at: float
    deadline: float
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(slots=True)
class _Relay:
    """An indirect ping we run for `requester`: forward the ack, or nack at `timeout_at`."""

    requester: str
    seq: int
    nack: bool
    timeout_at: float


@dataclass(slots=True)
class _Stream:
    kind: str  # "join" | "push_pull" | "ping"
    addr: str
    token: int = 0  # join token or ping seq


@dataclass(slots=True)
class _Join:
    pending: set[int]
    joined: int = 0
    errors: dict[str, str] = field(default_factory=dict)


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


class Memberlist:
    """One member's view of the cluster. Single-threaded; every method is cheap and non-blocking.

    :param name: this node's unique name (Consul's node name)
    :param addr: the "ip:port" others reach this node's gossip port at
    :param tags: serf tags (Consul: role, dc, id, port, build, ...)
    :param seed: seeds the probe order, member picks and event ids (tests replay exactly)
    :param now: the driver's clock at construction
    :param merge_delegate: checks a peer's member list before a join is merged (on both the
        joiner's and the contacted member's side); defaults to `StandardMergeDelegate(self)`
        (name conflicts, datacenter)
    """

    def __init__(
        self,
        name: str,
        addr: str,
        tags: dict[str, str] | None = None,
        config: GossipConfig | None = None,
        *,
        seed: int | None = None,
        now: float = 0.0,
        merge_delegate: MergeDelegate | None = None,
    ) -> None:
        self.name = name
        self.addr = addr
        self.config = config or GossipConfig()
        self._rng = random.Random(seed)
        self.merge_delegate: MergeDelegate = merge_delegate or StandardMergeDelegate(
            self, self.config.check_datacenter
        )
        self._nodes: dict[str, _Node] = {}
        self._probe_order: list[str] = []
        self._probe_index = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._suspicions: dict[str, Suspicion] = {}
        self._seq = 0
        self._awareness = Awareness(self.config.awareness_max_multiplier)
        self._queue = BroadcastQueue(self.config.retransmit_mult)
        self._streams: dict[int, _Stream] = {}
        self._joins: dict[int, _Join] = {}
        self._next_id = 0
        self._packets: list[Packet] = []
        self._stream_out: list[StreamRequest] = []
        self._events: list[GossipEvent] = []
        self._left = False
        self._leave_done = False
        self._clock = LamportClock()
        self._event_buffer: EventBuffer[UserEventMsg] = EventBuffer(self.config.event_buffer_size)
        self._event_min_time = 0
        self._vivaldi = VivaldiClient(rng=random.Random(seed))
        self._peer_coords: dict[str, Coordinate] = {}
        self.dropped_messages = 0
        self._now = now  # the latest time any input carried (for next_deadline)
        cfg = self.config
        # Stagger the first probe so nodes started together do not probe in lockstep.
        self._next_probe = now + self._rng.uniform(0, cfg.probe_interval)
        self._next_gossip = now + cfg.gossip_interval
        self._next_push_pull = now + cfg.push_pull_interval
        self._next_reap = now + cfg.reap_interval
        self._next_reconnect = now + cfg.reconnect_interval
        self._alive_node(Alive(1, name, addr, dict(tags or {})), now, bootstrap=True)

    # ------------------------------------------------------------------ views

    def members(self) -> list[Member]:
        """Every member the table holds (alive, leaving, left, failed), sorted by name."""
        return [self._member(n) for n in sorted(self._nodes.values(), key=lambda n: n.name)]

    def local_member(self) -> Member:
        return self._member(self._nodes[self.name])

    def member(self, name: str) -> Member | None:
        node = self._nodes.get(name)
        return None if node is None else self._member(node)

    def node_state(self, name: str) -> NodeState | None:
        """memberlist's finer state (shows SUSPECT, which serf/Consul render as alive)."""
        node = self._nodes.get(name)
        return None if node is None else node.state

    def incarnation(self, name: str) -> int | None:
        node = self._nodes.get(name)
        return None if node is None else node.incarnation

    def coordinate(self) -> Coordinate:
        """Our Vivaldi coordinate (what the agent sends to the servers' catalog)."""
        return self._vivaldi.coord

    def peer_coordinates(self) -> dict[str, Coordinate]:
        """The last coordinate each directly probed member reported in its ack."""
        return dict(self._peer_coords)

    @property
    def health_score(self) -> int:
        return self._awareness.score

    @property
    def event_ltime(self) -> int:
        return self._clock.time

    @property
    def leave_complete(self) -> bool:
        """True once leave() was called and the leave broadcast has been fully retransmitted
        (or there was nobody to tell)."""
        self._update_leave_done()
        return self._leave_done

    def num_alive(self) -> int:
        return max(1, sum(1 for n in self._nodes.values() if n.state in _LIVE))

    def _member(self, node: _Node) -> Member:
        if node.name == self.name and self._left and not self._leave_done:
            status = MemberStatus.LEAVING
        elif node.state in _LIVE:
            status = MemberStatus.ALIVE
        elif node.state == NodeState.DEAD:
            status = MemberStatus.FAILED
        else:
            status = MemberStatus.LEFT
        host, port = split_addr(node.addr)
        return Member(node.name, host, port, dict(node.tags), status)

    # ------------------------------------------------------------------ outputs and time

    def take_outputs(self) -> Outputs:
        """Everything produced since the last call, in order; the caller now owns it."""
        self._update_leave_done()
        out = Outputs(tuple(self._packets), tuple(self._stream_out), tuple(self._events))
        self._packets, self._stream_out, self._events = [], [], []
        return out

    def next_deadline(self) -> float:
        """When `tick` next has work to do (it may be called earlier or later harmlessly)."""
        times = [self._next_probe, self._next_push_pull, self._next_reap, self._next_reconnect]
        if len(self._queue) and self._gossip_targets(self._now):
            times.append(self._next_gossip)
        if self._probe is not None:
            times.append(self._probe.deadline)
            if not self._probe.indirect_sent:
                times.append(self._probe.timeout_at)
        times.extend(r.timeout_at for r in self._relays.values())
        times.extend(s.deadline() for s in self._suspicions.values())
        return min(times)

    def tick(self, now: float) -> None:
        self._now = max(self._now, now)
        cfg = self.config
        for seq, relay in list(self._relays.items()):
            if now >= relay.timeout_at:
                del self._relays[seq]
                if relay.nack:
                    self._send(relay.requester, Nack(relay.seq))
        probe = self._probe
        if probe is not None:
            if not probe.indirect_sent and now >= probe.timeout_at:
                self._probe_indirect(probe, now)
            if now >= probe.deadline:
                self._probe_failed(probe, now)
        if self._probe is None and now >= self._next_probe:
            self._start_probe(now)
        for name, susp in list(self._suspicions.items()):
            if now >= susp.deadline():
                del self._suspicions[name]
                node = self._nodes.get(name)
                if node is not None and node.state == NodeState.SUSPECT:
                    self._dead_node(Dead(node.incarnation, name, self.name), now)
        if now >= self._next_gossip:
            self._next_gossip = now + cfg.gossip_interval
            self._gossip(now)
        if now >= self._next_push_pull:
            self._next_push_pull = now + self._push_pull_interval()
            if not self._left:
                peers = [n for n in self._peers() if n.state == NodeState.ALIVE]
                if peers:
                    self._open_push_pull(self._rng.choice(peers).addr, "push_pull", 0, now)
        if now >= self._next_reconnect:
            self._next_reconnect = now + cfg.reconnect_interval
            failed = [n for n in self._peers() if n.state == NodeState.DEAD]
            if failed and not self._left:
                self._open_push_pull(self._rng.choice(failed).addr, "push_pull", 0, now)
        if now >= self._next_reap:
            self._next_reap = now + cfg.reap_interval
            self._reap(now)

    # ------------------------------------------------------------------ commands

    def join(self, addresses: list[str], now: float) -> int:
        """Start a push-pull with each address; returns a token for `join_result`.

        An address without a port gets this node's gossip port (Consul's `-join=IP`)."""
        token = self._new_id()
        join = _Join(pending=set())
        self._joins[token] = join
        for raw in addresses:
            addr = raw if ":" in raw else f"{raw}:{split_addr(self.addr)[1]}"
            join.pending.add(self._open_push_pull(addr, "join", token, now))
        return token

    def join_result(self, token: int) -> JoinResult | None:
        """The outcome once every address answered or failed (then forgotten); None before."""
        join = self._joins.get(token)
        if join is None or join.pending:
            return None
        del self._joins[token]
        return JoinResult(join.joined, join.errors)

    def leave(self, now: float) -> None:
        """Announce a graceful leave; gossip keeps running until `leave_complete`."""
        if self._left:
            return
        self._left = True
        self._probe = None
        me = self._nodes[self.name]
        self._dead_node(Dead(me.incarnation, self.name, self.name), now)
        if not any(n.state in _LIVE for n in self._peers()):
            self._leave_done = True

    def update_tags(self, tags: dict[str, str], now: float) -> None:
        me = self._nodes[self.name]
        self._alive_node(Alive(me.incarnation + 1, self.name, self.addr, dict(tags)), now, True)

    def broadcast_user_event(
        self, name: str, payload: bytes, now: float, event_id: str | None = None
    ) -> UserEvent:
        """Fire a user event to every member (and to ourselves, as serf does)."""
        limit = self.config.user_event_size_limit
        if len(name.encode()) + len(payload) > limit:
            raise UserEventTooLarge(f"user event exceeds configured limit of {limit} bytes")
        msg = UserEventMsg(self._clock.increment(), name, payload, event_id or self._uuid())
        self._handle_user_event(msg)
        return UserEvent(msg.name, msg.payload, msg.ltime, msg.id)

    def force_leave(self, name: str, prune: bool = False, now: float = 0.0) -> None:
        """Turn a failed member into left (and with prune remove it) everywhere."""
        node = self._nodes.get(name)
        if node is None:
            raise UnknownMember(name)
        self._handle_force_leave(ForceLeave(name, node.incarnation, prune), now)

    # ------------------------------------------------------------------ inputs

    def handle_packet(self, from_addr: str, data: bytes, now: float) -> None:
        self._now = max(self._now, now)
        try:
            msg = decode(data)
        except MessageError:
            self.dropped_messages += 1
            return
        if isinstance(msg, Compound):
            for part in msg.parts:
                try:
                    inner = decode(part)
                except MessageError:
                    self.dropped_messages += 1
                    continue
                if not isinstance(inner, Compound):  # no nesting: bounded work per packet
                    self._dispatch(from_addr, inner, now)
            return
        self._dispatch(from_addr, msg, now)

    def handle_stream(self, from_addr: str, data: bytes, now: float) -> bytes:
        """Serve one incoming stream request; the returned bytes are the reply frame."""
        self._now = max(self._now, now)
        try:
            msg = decode(data)
        except MessageError as exc:
            return encode(ErrorReply(str(exc)))
        if isinstance(msg, Ping):
            if msg.node and msg.node != self.name:
                return encode(ErrorReply(f"ping for {msg.node} reached {self.name}"))
            return encode(Ack(msg.seq))
        if isinstance(msg, PushPull):
            # The delegate vets joins only: between established members a stale address in one
            # view must not block the whole exchange (per-node conflicts are refused in
            # _alive_node instead), as a periodic sync is what repairs such views.
            error = (
                self.merge_delegate([self._push_member(n) for n in msg.nodes]) if msg.join else None
            )
            if error is not None:
                return encode(ErrorReply(error))
            self._merge_remote(msg, now)
            # Answer after merging, so refutations of our own death go back at once.
            return encode(self._local_state(join=False, now=now))
        return encode(ErrorReply(f"unexpected stream message {type(msg).__name__}"))

    def handle_stream_reply(
        self, stream_id: int, reply: bytes | None, now: float, error: str | None = None
    ) -> None:
        """The reply to a `StreamRequest`, or None with `error` if it failed or timed out."""
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        msg: Message | None = None
        if reply is not None:
            try:
                msg = decode(reply)
            except MessageError as exc:
                error = str(exc)
        if stream.kind == "ping":
            probe = self._probe
            if isinstance(msg, Ack) and probe is not None and probe.seq == msg.seq:
                self._probe_acked(now)
            return
        if isinstance(msg, ErrorReply):
            error = msg.error
        elif isinstance(msg, PushPull):
            refusal = None
            if stream.kind == "join":
                refusal = self.merge_delegate([self._push_member(n) for n in msg.nodes])
            if refusal is not None:
                error = refusal
            else:
                if stream.kind == "join":
                    # Consul joins ignoring old events: nothing before the peer's clock replays.
                    self._event_min_time = max(self._event_min_time, msg.event_ltime)
                self._merge_remote(msg, now)
        elif error is None:
            error = f"unexpected reply {type(msg).__name__}"
        if stream.kind == "join":
            join = self._joins.get(stream.token)
            if join is not None:
                join.pending.discard(stream_id)
                if error is None:
                    join.joined += 1
                else:
                    join.errors[stream.addr] = error

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, from_addr: str, msg: Message, now: float) -> None:
        if isinstance(msg, Ping):
            if msg.node and msg.node != self.name:
                return  # meant for a node that used to live at this address
            # The ack carries our network coordinate; the prober times the round trip.
            self._send(msg.source_addr or from_addr, Ack(msg.seq, self._coord_payload))
        elif isinstance(msg, IndirectPing):
            seq = self._next_seq()
            self._relays[seq] = _Relay(
                msg.source_addr or from_addr, msg.seq, msg.nack, now + self.config.probe_timeout
            )
            self._send(msg.target_addr, Ping(seq, msg.target, self.addr, self.name))
        elif isinstance(msg, Ack):
            relay = self._relays.pop(msg.seq, None)
            if relay is not None:
                self._send(relay.requester, Ack(relay.seq))
            elif self._probe is not None and self._probe.seq == msg.seq:
                probe = self._probe
                if msg.payload and from_addr == probe.addr:
                    self._observe_rtt(probe.target, msg.payload, now - probe.sent)
                self._probe_acked(now)
        elif isinstance(msg, Nack):
            if self._probe is not None and self._probe.seq == msg.seq:
                self._probe.nacks += 1
        elif isinstance(msg, Alive):
            self._alive_node(msg, now)
        elif isinstance(msg, Suspect):
            self._suspect_node(msg, now)
        elif isinstance(msg, Dead):
            self._dead_node(msg, now)
        elif isinstance(msg, UserEventMsg):
            self._handle_user_event(msg)
        elif isinstance(msg, ForceLeave):
            self._handle_force_leave(msg, now)
        else:
            self.dropped_messages += 1

    # ------------------------------------------------------------------ probing

    def _start_probe(self, now: float) -> None:
        interval = self._awareness.scale(self.config.probe_interval)
        self._next_probe = now + interval
        if self._left:
            return
        node = self._next_probe_target()
        if node is None:
            return
        seq = self._next_seq()
        self._probe = _Probe(
            node.name, node.addr, seq, now, now + self.config.probe_timeout, now + interval
        )
        ping = Ping(seq, node.name, self.addr, self.name)
        if node.state == NodeState.SUSPECT:
            # Lifeguard's buddy system: tell a suspect directly, in case the gossip about it
            # was spent while it was unreachable (a paused process must learn to refute).
            self._send(node.addr, ping, Suspect(node.incarnation, node.name, self.name))
        else:
            self._send(node.addr, ping)

    def _next_probe_target(self) -> _Node | None:
        for _ in range(2 * len(self._probe_order) + 2):
            if self._probe_index >= len(self._probe_order):
                self._probe_order = [n for n in self._nodes if n != self.name]
                self._rng.shuffle(self._probe_order)
                self._probe_index = 0
                if not self._probe_order:
                    return None
            node = self._nodes.get(self._probe_order[self._probe_index])
            self._probe_index += 1
            if node is not None and node.name != self.name and node.state in _LIVE:
                return node
        return None

    def _probe_indirect(self, probe: _Probe, now: float) -> None:
        probe.indirect_sent = True
        helpers = [
            n for n in self._peers() if n.state == NodeState.ALIVE and n.name != probe.target
        ]
        self._rng.shuffle(helpers)
        helpers = helpers[: self.config.indirect_checks]
        probe.expected_nacks = len(helpers)
        req = IndirectPing(probe.seq, probe.target, probe.addr, self.addr, self.name, True)
        for helper in helpers:
            self._send(helper.addr, req)
        # TCP fallback: reaches members whose UDP is filtered or lossy.
        sid = self._new_id()
        self._streams[sid] = _Stream("ping", probe.addr, probe.seq)
        data = encode(Ping(probe.seq, probe.target, self.addr, self.name))
        self._stream_out.append(StreamRequest(sid, probe.addr, data, max(probe.deadline - now, 0)))

    @property
    def _coord_payload(self) -> bytes:
        return msgspec.msgpack.encode(self._vivaldi.coord)

    def _observe_rtt(self, name: str, payload: bytes, rtt: float) -> None:
        try:
            other = msgspec.msgpack.decode(payload, type=Coordinate)
        except msgspec.DecodeError:
            return
        if self._vivaldi.update(name, other, rtt):
            self._peer_coords[name] = other

    def _probe_acked(self, now: float) -> None:
        self._probe = None
        self._awareness.apply_delta(-1)

    def _probe_failed(self, probe: _Probe, now: float) -> None:
        self._probe = None
        # With relays that nack, missing nacks point at us rather than at the target.
        if probe.expected_nacks > 0:
            self._awareness.apply_delta(max(probe.expected_nacks - probe.nacks, 0))
        else:
            self._awareness.apply_delta(1)
        node = self._nodes.get(probe.target)
        if node is not None and node.state in _LIVE:
            self._suspect_node(Suspect(node.incarnation, node.name, self.name), now)

    # ------------------------------------------------------------------ state changes

    def _alive_node(self, a: Alive, now: float, bootstrap: bool = False) -> None:
        if self._left and a.node == self.name:
            return
        node = self._nodes.get(a.node)
        is_new = node is None
        changes_addr = False
        if node is None:
            node = _Node(a.node, a.addr, dict(a.tags), 0, NodeState.DEAD, now)
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
            and node.state not in _LIVE
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
        node.state = NodeState.LEFT if d.node == d.sender else NodeState.DEAD
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
        if self._left or node is None or accuser == self.name or node.state not in _LIVE:
            return
        me = self._nodes[self.name]
        self._send(node.addr, Alive(me.incarnation, self.name, self.addr, dict(me.tags)))

    def _refute(self, me: _Node, accused_incarnation: int) -> None:
        me.incarnation = max(me.incarnation, accused_incarnation) + 1
        # Being accused suggests we are slow; Lifeguard backs our probing off a step.
        self._awareness.apply_delta(1)
        self._broadcast(self.name, Alive(me.incarnation, self.name, self.addr, dict(me.tags)))

    def _handle_force_leave(self, msg: ForceLeave, now: float) -> None:
        node = self._nodes.get(msg.node)
        if node is None or node.state in _LIVE:
            return  # unknown, already pruned, or alive (it would rejoin anyway)
        if node.state == NodeState.LEFT and not msg.prune:
            return  # already applied: stop the re-broadcast here
        if node.state == NodeState.DEAD:
            node.state = NodeState.LEFT
            node.state_change = now
            self._events.append(MemberLeave(self._member(node)))
        self._queue.queue(f"force:{msg.node}", encode(msg))
        if msg.prune:
            self._remove(node)

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

    def _remove(self, node: _Node) -> None:
        member = self._member(node)
        del self._nodes[node.name]
        self._suspicions.pop(node.name, None)
        self._peer_coords.pop(node.name, None)
        self._vivaldi.forget(node.name)
        self._events.append(MemberReap(member))

    # ------------------------------------------------------------------ push-pull

    def _open_push_pull(self, addr: str, kind: str, token: int, now: float) -> int:
        sid = self._new_id()
        self._streams[sid] = _Stream(kind, addr, token)
        data = encode(self._local_state(join=kind == "join", now=now))
        self._stream_out.append(StreamRequest(sid, addr, data, self.config.tcp_timeout))
        return sid

    def _local_state(self, join: bool, now: float) -> PushPull:
        nodes = []
        for n in self._nodes.values():
            # Like memberlist, forget the dead in exchanges once we stop gossiping to them.
            stale = now - n.state_change > self.config.gossip_to_the_dead_time
            if n.state not in _LIVE and stale:
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

    # ------------------------------------------------------------------ gossip

    def _handle_user_event(self, msg: UserEventMsg) -> None:
        self._clock.witness(msg.ltime)
        if msg.ltime < self._event_min_time:
            return
        if self._event_buffer.seen_or_add(msg.ltime, self._clock.time, msg.id, msg):
            return
        self._events.append(UserEvent(msg.name, msg.payload, msg.ltime, msg.id))
        self._queue.queue(f"event:{msg.ltime}:{msg.id}", encode(msg))

    def _broadcast(self, node: str, msg: Message) -> None:
        # Keyed by node: fresher news about a node replaces what is still queued about it.
        self._queue.queue(f"node:{node}", encode(msg))

    def _gossip(self, now: float) -> None:
        if not len(self._queue):
            return
        targets = self._gossip_targets(now)
        self._rng.shuffle(targets)
        budget = self.config.udp_buffer_size - COMPOUND_OVERHEAD
        for node in targets[: self.config.gossip_nodes]:
            parts = self._queue.get(budget, self.num_alive())
            if not parts:
                break
            self._packets.append(Packet(node.addr, encode_compound(parts)))

    def _gossip_targets(self, now: float) -> list[_Node]:
        # Live members, and the recently dead so a wrongly failed member hears it and refutes.
        dead_time = self.config.gossip_to_the_dead_time
        return [
            n
            for n in self._peers()
            if n.state in _LIVE or (n.state == NodeState.DEAD and now - n.state_change <= dead_time)
        ]

    def _send(self, addr: str, *msgs: Message) -> None:
        """Send `msgs` in one packet with as much piggybacked gossip as fits."""
        parts = [encode(m) for m in msgs]
        used = sum(len(p) + COMPOUND_PART_OVERHEAD for p in parts)
        budget = self.config.udp_buffer_size - COMPOUND_OVERHEAD - used
        extra = self._queue.get(budget, self.num_alive()) if len(self._queue) else []
        self._packets.append(Packet(addr, encode_compound([*parts, *extra])))

    def _update_leave_done(self) -> None:
        if self._left and not self._leave_done and f"node:{self.name}" not in self._queue:
            self._leave_done = True

    # ------------------------------------------------------------------ helpers

    def _peers(self) -> list[_Node]:
        return [n for n in self._nodes.values() if n.name != self.name]

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
