"""The member table of the SWIM core and the state every part of the core shares.

`MemberTable` holds one member's view of the cluster (a record per member, by name) with the
timers, the probe and stream bookkeeping, the broadcast queue and the outputs collected for
the driver. It answers the read-only views; the layers above it change the table:
`dissemination` (what we tell others), `member_state` (alive, suspect, dead, left),
`probing` and `push_pull`, combined by `swim.Memberlist`.
"""

from __future__ import annotations

import random
import uuid

from agent.gossip.awareness import Awareness
from agent.gossip.broadcast_queue import BroadcastQueue
from agent.gossip.config import GossipConfig
from agent.gossip.coordinate import Coordinate, VivaldiClient
from agent.gossip.events import GossipEvent, Member, MemberStatus, Packet, StreamRequest
from agent.gossip.merge import MergeDelegate, StandardMergeDelegate
from agent.gossip.messages import NodeState, UserEventMsg
from agent.gossip.records import LIVE, Join, NodeRecord, Probe, Relay, Stream, split_addr
from agent.gossip.suspicion import Suspicion
from agent.gossip.user_events import EventBuffer, LamportClock


class MemberTable:
    """The shared state of one member's SWIM core and its views (see `swim.Memberlist`)."""

    def __init__(
        self,
        name: str,
        addr: str,
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
        self._nodes: dict[str, NodeRecord] = {}
        self._probe_order: list[str] = []
        self._probe_index = 0
        self._probe: Probe | None = None
        self._relays: dict[int, Relay] = {}
        self._suspicions: dict[str, Suspicion] = {}
        self._seq = 0
        self._awareness = Awareness(self.config.awareness_max_multiplier)
        self._queue = BroadcastQueue(self.config.retransmit_mult)
        self._streams: dict[int, Stream] = {}
        self._joins: dict[int, Join] = {}
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

    def num_alive(self) -> int:
        return max(1, sum(1 for n in self._nodes.values() if n.state in LIVE))

    def _member(self, node: NodeRecord) -> Member:
        leaving_us = node.name == self.name and self._left and not self._leave_done
        if leaving_us or (node.leaving and node.state in LIVE):
            status = MemberStatus.LEAVING
        elif node.state in LIVE:
            status = MemberStatus.ALIVE
        elif node.state == NodeState.DEAD:
            status = MemberStatus.FAILED
        else:
            status = MemberStatus.LEFT
        host, port = split_addr(node.addr)
        return Member(node.name, host, port, dict(node.tags), status)

    # ------------------------------------------------------------------ helpers

    def _peers(self) -> list[NodeRecord]:
        return [n for n in self._nodes.values() if n.name != self.name]

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
