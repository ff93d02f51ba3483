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

The core is one class in layers: `table.MemberTable` (the shared state and the views),
`dissemination` (the broadcast queue and gossip), `member_state` (alive/suspect/dead news),
`probing` (failure detection) and `push_pull` (state exchanges). `Memberlist` here combines
them: time, the commands, and the inputs dispatched to the layer that handles each.
"""

from __future__ import annotations

from agent.gossip.config import GossipConfig
from agent.gossip.errors import MessageError, UnknownMember, UserEventTooLarge
from agent.gossip.events import JoinResult, Outputs, UserEvent
from agent.gossip.merge import MergeDelegate
from agent.gossip.messages import (
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
    PushPull,
    Suspect,
    UserEventMsg,
    decode,
    encode,
)
from agent.gossip.probing import Probing
from agent.gossip.push_pull import PushPullExchange
from agent.gossip.records import LIVE, Join, Relay, split_addr

__all__ = ["Memberlist", "split_addr"]


class Memberlist(Probing, PushPullExchange):
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
        super().__init__(name, addr, config, seed=seed, now=now, merge_delegate=merge_delegate)
        self._alive_node(Alive(1, name, addr, dict(tags or {})), now, bootstrap=True)

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
        join = Join(pending=set())
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
        if not any(n.state in LIVE for n in self._peers()):
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
        """Turn a failed member into left (and with prune remove it) everywhere; a live one
        shows `leaving` until it refutes (serf's leave intent; ourselves: refuted at once)."""
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
            self._relays[seq] = Relay(
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
