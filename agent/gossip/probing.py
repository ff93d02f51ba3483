"""Failure detection in the SWIM core: probing one member per interval.

A probe pings its target directly; without an ack by the probe timeout, a few other members
ping it for us (and nack if they hear nothing) while a TCP ping is tried; without any ack by
the end of the interval the target is suspected. Lifeguard's awareness score stretches the
interval when our own probes go unanswered in ways that point at us. Acks carry the target's
Vivaldi coordinate, timed by the probe's round trip.
"""

from __future__ import annotations

import msgspec

from agent.gossip.coordinate import Coordinate
from agent.gossip.events import StreamRequest
from agent.gossip.member_state import MemberState
from agent.gossip.messages import IndirectPing, NodeState, Ping, Suspect, encode
from agent.gossip.records import LIVE, NodeRecord, Probe, Stream


class Probing(MemberState):
    """Direct, indirect and TCP probes, and what their outcome changes."""

    def _start_probe(self, now: float) -> None:
        interval = self._awareness.scale(self.config.probe_interval)
        self._next_probe = now + interval
        if self._left:
            return
        node = self._next_probe_target()
        if node is None:
            return
        seq = self._next_seq()
        self._probe = Probe(
            node.name, node.addr, seq, now, now + self.config.probe_timeout, now + interval
        )
        ping = Ping(seq, node.name, self.addr, self.name)
        if node.state == NodeState.SUSPECT:
            # Lifeguard's buddy system: tell a suspect directly, in case the gossip about it
            # was spent while it was unreachable (a paused process must learn to refute).
            self._send(node.addr, ping, Suspect(node.incarnation, node.name, self.name))
        else:
            self._send(node.addr, ping)

    def _next_probe_target(self) -> NodeRecord | None:
        for _ in range(2 * len(self._probe_order) + 2):
            if self._probe_index >= len(self._probe_order):
                self._probe_order = [n for n in self._nodes if n != self.name]
                self._rng.shuffle(self._probe_order)
                self._probe_index = 0
                if not self._probe_order:
                    return None
            node = self._nodes.get(self._probe_order[self._probe_index])
            self._probe_index += 1
            if node is not None and node.name != self.name and node.state in LIVE:
                return node
        return None

    def _probe_indirect(self, probe: Probe, now: float) -> None:
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
        self._streams[sid] = Stream("ping", probe.addr, probe.seq)
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

    def _probe_failed(self, probe: Probe, now: float) -> None:
        self._probe = None
        # With relays that nack, missing nacks point at us rather than at the target.
        if probe.expected_nacks > 0:
            self._awareness.apply_delta(max(probe.expected_nacks - probe.nacks, 0))
        else:
            self._awareness.apply_delta(1)
        node = self._nodes.get(probe.target)
        if node is not None and node.state in LIVE:
            self._suspect_node(Suspect(node.incarnation, node.name, self.name), now)
