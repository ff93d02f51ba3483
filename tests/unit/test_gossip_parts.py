"""The small pure pieces of the gossip layer, and single-core behaviour driven by hand."""

from __future__ import annotations

import math
import random
import socket

import msgspec
import pytest

import agent.gossip as gossip
from agent.gossip.awareness import Awareness
from agent.gossip.broadcast_queue import BroadcastQueue, retransmit_limit
from agent.gossip.config import lan_config, wan_config
from agent.gossip.coordinate import Coordinate, VivaldiClient
from agent.gossip.driver import dial_error
from agent.gossip.errors import MessageError
from agent.gossip.events import MemberJoin, MemberStatus
from agent.gossip.messages import (
    Ack,
    Alive,
    Compound,
    Dead,
    Message,
    MsgType,
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
from agent.gossip.swim import Memberlist
from agent.gossip.user_events import EventBuffer, LamportClock


def test_exported_names_are_sorted_and_importable() -> None:
    assert gossip.__all__ == sorted(gossip.__all__)
    for name in gossip.__all__:
        assert hasattr(gossip, name)


def test_message_types_are_append_only() -> None:
    # The numbers are on the wire between agents; changing one breaks mixed-version clusters.
    assert {t.name: t.value for t in MsgType} == {
        "PING": 0,
        "INDIRECT_PING": 1,
        "ACK": 2,
        "NACK": 3,
        "SUSPECT": 4,
        "ALIVE": 5,
        "DEAD": 6,
        "PUSH_PULL": 7,
        "COMPOUND": 8,
        "USER_EVENT": 9,
        "FORCE_LEAVE": 10,
        "ERROR": 11,
    }


@pytest.mark.parametrize(
    "msg",
    [
        Ping(1, "n1", "10.0.0.1:8301", "n2"),
        Ack(7, b"x"),
        Suspect(3, "n1", "n2"),
        Alive(2, "n1", "10.0.0.1:8301", {"dc": "dc1"}),
        Dead(2, "n1", "n1"),
        PushPull(True, [PushNode("n1", "10.0.0.1:8301", {}, 1, 0)], 5),
        UserEventMsg(4, "deploy", b"\x00\x01", "id"),
    ],
)
def test_messages_round_trip(msg: Message) -> None:
    data = encode(msg)
    assert (
        data[0]
        == {
            Ping: 0,
            Ack: 2,
            Suspect: 4,
            Alive: 5,
            Dead: 6,
            PushPull: 7,
            UserEventMsg: 9,
        }[type(msg)]
    )
    assert decode(data) == msg


def test_compound_and_bad_input() -> None:
    parts = [encode(Ack(1)), encode(Ack(2))]
    assert decode(encode_compound(parts)) == Compound(parts)
    assert encode_compound(parts[:1]) == parts[0]
    for bad in [b"", b"\xff", bytes([MsgType.ALIVE]) + b"\x01\x02", bytes([MsgType.PING])]:
        with pytest.raises(MessageError):
            decode(bad)
    # Nothing pickled: bodies are plain msgpack any client can read.
    assert msgspec.msgpack.decode(encode(Ack(5))[1:]) == [5, b""]


def test_suspicion_timeout_shrinks_with_independent_confirmations() -> None:
    min_t = suspicion_timeout(4, 10, 1.0)
    assert min_t == pytest.approx(4.0)
    assert suspicion_timeout(4, 100, 1.0) == pytest.approx(8.0)  # log10 scaling
    s = Suspicion("accuser", k=3, min_timeout=4.0, max_timeout=24.0, start=100.0)
    assert s.deadline() == pytest.approx(124.0)
    assert not s.confirm("accuser")  # the accuser does not count
    assert s.confirm("b")
    first = s.timeout()
    assert not s.confirm("b")  # nor does anyone twice
    assert s.timeout() == first
    assert 4.0 < first < 24.0
    assert first == pytest.approx(24.0 - math.log(2) / math.log(4) * 20.0)
    assert s.confirm("c") and s.confirm("d")
    assert s.timeout() == pytest.approx(4.0)
    assert not s.confirm("e")  # capped at k
    assert Suspicion("a", 0, 4.0, 24.0, 0.0).deadline() == 4.0


def test_awareness_is_clamped_and_scales() -> None:
    a = Awareness(8)
    a.apply_delta(-5)
    assert a.score == 0 and a.scale(1.0) == 1.0
    a.apply_delta(100)
    assert a.score == 7 and a.scale(0.5) == 4.0


def test_broadcast_queue_limits_and_invalidates() -> None:
    assert retransmit_limit(4, 1) == 4
    assert retransmit_limit(4, 9) == 4
    assert retransmit_limit(4, 10) == 8
    q = BroadcastQueue(retransmit_mult=2)
    q.queue("node:a", b"a1")
    q.queue("node:b", b"b1")
    q.queue("node:a", b"a2")  # replaces a1
    assert len(q) == 2
    sent = [q.get(1400, n_nodes=3) for _ in range(3)]
    assert sent[0] == [b"a2", b"b1"]  # newest first among equally-sent
    assert sent[1] == [b"a2", b"b1"]
    assert sent[2] == [] and len(q) == 0  # limit 2 * ceil(log10(4)) = 2
    q.queue("big", b"x" * 2000)
    assert q.get(1400, 3) == []  # never more than the packet budget


def test_lamport_clock_and_event_buffer() -> None:
    c = LamportClock()
    assert c.increment() == 0 and c.time == 1
    c.witness(5)
    assert c.time == 6
    c.witness(2)
    assert c.time == 6
    buf: EventBuffer[str] = EventBuffer(4)
    assert not buf.seen_or_add(1, 2, "a", "A")
    assert buf.seen_or_add(1, 2, "a", "A")
    assert not buf.seen_or_add(1, 2, "b", "B")
    assert buf.seen_or_add(1, 10, "c", "C")  # older than the buffer remembers
    assert buf.recent() == ["A", "B"]


def test_configs_follow_memberlist_defaults() -> None:
    lan, wan = lan_config(), wan_config()
    assert (lan.probe_interval, lan.probe_timeout, lan.suspicion_mult) == (1.0, 0.5, 4)
    assert (lan.gossip_interval, lan.gossip_nodes, lan.retransmit_mult) == (0.2, 3, 4)
    assert (lan.push_pull_interval, lan.indirect_checks, lan.awareness_max_multiplier) == (
        30.0,
        3,
        8,
    )
    assert lan.suspicion_max_timeout_mult == 6
    assert (wan.probe_interval, wan.probe_timeout, wan.suspicion_mult) == (5.0, 3.0, 6)
    assert wan.check_datacenter is False


def core(name: str = "a", addr: str = "10.0.0.1:8301", now: float = 0.0) -> Memberlist:
    return Memberlist(name, addr, {"dc": "dc1"}, seed=1, now=now)


def test_new_core_reports_itself_alive_and_joined() -> None:
    c = core()
    out = c.take_outputs()
    assert [type(e) for e in out.events] == [MemberJoin]
    me = c.local_member()
    assert (me.name, me.addr, me.port, me.status) == ("a", "10.0.0.1", 8301, MemberStatus.ALIVE)
    assert me.api_dict()["Status"] == 1 and me.api_dict()["DelegateCur"] == 4
    assert c.next_deadline() <= 1.0


def test_ping_is_acked_and_wrong_name_ignored() -> None:
    c = core()
    c.take_outputs()
    c.handle_packet("10.0.0.2:8301", encode(Ping(9, "a", "10.0.0.2:8301", "b")), 1.0)
    out = c.take_outputs()
    assert [p.addr for p in out.packets] == ["10.0.0.2:8301"]
    first = decode(out.packets[0].data)
    parts = first.parts if isinstance(first, Compound) else [out.packets[0].data]
    ack = decode(parts[0])
    assert isinstance(ack, Ack) and ack.seq == 9
    # The ack carries our Vivaldi coordinate for the prober's RTT sample.
    assert msgspec.msgpack.decode(ack.payload, type=Coordinate) == c.coordinate()
    c.handle_packet("10.0.0.2:8301", encode(Ping(10, "zzz", "10.0.0.2:8301", "b")), 1.0)
    assert c.take_outputs().packets == ()
    c.handle_packet("10.0.0.2:8301", b"\xffjunk", 1.0)
    assert c.dropped_messages == 1


def test_refutes_suspicion_of_itself_with_higher_incarnation() -> None:
    c = core()
    c.handle_packet("10.0.0.2:8301", encode(Suspect(1, "a", "b")), 1.0)
    assert c.incarnation("a") == 2
    assert c.health_score == 1  # being accused counts against our own health
    c.handle_packet("10.0.0.2:8301", encode(Dead(5, "a", "b")), 1.0)
    assert c.incarnation("a") == 6
    assert c.node_state("a") == NodeState.ALIVE


def test_stream_push_pull_and_tcp_ping() -> None:
    c = core()
    reply = decode(c.handle_stream("10.0.0.2:40000", encode(Ping(3, "a", "", "b")), 0.5))
    assert reply == Ack(3)
    req = PushPull(True, [PushNode("b", "10.0.0.2:8301", {"dc": "dc1"}, 1, 0)], 0)
    reply = decode(c.handle_stream("10.0.0.2:40000", encode(req), 0.5))
    assert isinstance(reply, PushPull)
    assert {n.name for n in reply.nodes} == {"a", "b"}
    assert [m.name for m in c.members()] == ["a", "b"]


def test_leave_of_single_member_completes_at_once() -> None:
    c = core()
    c.leave(1.0)
    assert c.leave_complete
    assert c.local_member().status == MemberStatus.LEFT


def test_vivaldi_clients_learn_their_distance() -> None:
    a, b = VivaldiClient(rng=random.Random(1)), VivaldiClient(rng=random.Random(2))
    for _ in range(200):
        a.update("b", b.coord, 0.010)
        b.update("a", a.coord, 0.010)
    assert a.coord.distance(b.coord) == pytest.approx(0.010, rel=0.1)
    assert a.coord.error < 1.5
    assert not a.update("b", b.coord, 11.0)  # RTT above the sane maximum is refused
    bad = Coordinate((float("nan"),) * 8, 1.0, 0.0, 1e-5)
    assert not a.update("b", bad, 0.01)
    api = a.coord.api_dict()
    assert set(api) == {"Vec", "Error", "Adjustment", "Height"} and len(api["Vec"]) == 8


def test_join_failures_read_as_go_dial_errors_not_python_ones():
    addr = "127.0.0.97:8301"
    assert dial_error(addr, ConnectionRefusedError(111, "Connection refused")) == (
        "dial tcp 127.0.0.97:8301: connect: connection refused"
    )
    assert dial_error("x.invalid:8301", socket.gaierror(-2, "Name or service not known")) == (
        "dial tcp: lookup x.invalid: no such host"
    )
    assert dial_error(addr, TimeoutError()) == "dial tcp 127.0.0.97:8301: i/o timeout"
    for exc in (OSError(97, "Address family not supported by protocol"), ValueError("x")):
        assert "Errno" not in dial_error(addr, exc) and "literal" not in dial_error(addr, exc)
