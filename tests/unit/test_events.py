"""User events: validation, wire form, receipt filters, the ring and its blocking index."""

from __future__ import annotations

import asyncio
import base64

import pytest

from agent.events import (
    RING_SIZE,
    Event,
    EventError,
    EventLog,
    EventTooLarge,
    InvalidEvent,
    UserEvents,
    accepts,
    decode,
    encode,
    gossip_name,
    list_index,
    new_event,
    uuid_index,
)
from agent.gossip.events import UserEvent

ID = "b54fe110-7af5-cafc-d1fb-afc8ba432b1c"


def test_api_shape_matches_consul() -> None:
    event = new_event("deploy", b"v1", event_id=ID)
    assert event.api_dict() == {
        "ID": ID,
        "Name": "deploy",
        "Payload": base64.b64encode(b"v1").decode(),
        "NodeFilter": "",
        "ServiceFilter": "",
        "TagFilter": "",
        "Version": 1,
        "LTime": 0,
    }
    assert new_event("deploy", b"").api_dict()["Payload"] is None


@pytest.mark.parametrize(
    ("name", "node", "service", "tag", "message"),
    [
        ("", "", "", "", "User event missing name"),
        ("e", "", "", "web", "Cannot provide tag filter without service filter"),
        ("e", "(", "", "", "Invalid node filter"),
        ("e", "", "[", "", "Invalid service filter"),
        ("e", "", "web", "(", "Invalid tag filter"),
    ],
)
def test_validation_words(name: str, node: str, service: str, tag: str, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message.replace("(", r"\(")):
        new_event(name, None, node, service, tag)


def test_size_limit_counts_name_and_encoding() -> None:
    new_event("e", b"x" * 300)
    with pytest.raises(EventTooLarge, match="exceeds configured limit of 512 bytes"):
        new_event("e", b"x" * 500)
    assert issubclass(EventTooLarge, EventError)


def test_wire_round_trip_takes_ltime_from_gossip() -> None:
    event = new_event("deploy", b"\x00\xff", "n.*", "web", "v1", event_id=ID)
    back = decode(encode(event), ltime=42)
    assert back == Event(ID, "deploy", b"\x00\xff", "n.*", "web", "v1", 1, 42)
    with pytest.raises(EventError):
        decode(b"\xc1garbage", 0)


SERVICES = [("web-1", ["v1", "primary"]), ("db", [])]


@pytest.mark.parametrize(
    ("node", "service", "tag", "kept"),
    [
        ("", "", "", True),
        ("node", "", "", True),  # unanchored, as Go's MatchString
        ("^node4$", "", "", True),
        ("^node1$", "", "", False),
        ("", "web", "", True),
        ("", "cache", "", False),
        ("", "web", "prim", True),
        ("", "web", "^v2$", False),
        ("", "db", "v1", False),  # the tag must be on a matching service
        ("node4", "web", "v1", True),
        ("node1", "web", "v1", False),
        ("(", "", "", False),  # unparsable filters drop the event
    ],
)
def test_receipt_filters(node: str, service: str, tag: str, kept: bool) -> None:
    event = Event(ID, "e", None, node, service, tag)
    assert accepts(event, "node4", SERVICES) is kept


def test_service_filter_without_services_drops() -> None:
    assert not accepts(Event(ID, "e", None, "", ".*"), "node4", [])


def test_index_is_xor_of_uuid_halves() -> None:
    assert uuid_index(ID) == 0xB54FE1107AF5CAFC ^ 0xD1FBAFC8BA432B1C
    assert list_index([]) == 1
    assert list_index([Event(ID, "e")]) == uuid_index(ID)


def test_ring_keeps_last_256_oldest_first_and_filters_by_name() -> None:
    log = EventLog()
    for i in range(RING_SIZE + 10):
        log.add(Event(f"00000000-0000-0000-0000-{i:012x}", "a" if i % 2 else "b", ltime=i))
    events = log.events()
    assert len(events) == RING_SIZE
    assert [e.ltime for e in events] == list(range(10, RING_SIZE + 10))
    assert all(e.name == "a" for e in log.events("a"))
    assert len(log.events("a")) == RING_SIZE // 2


def test_waiters_wake_on_add_and_can_be_forgotten() -> None:
    async def scenario() -> None:
        log = EventLog()
        woken = log.next_change()
        forgotten = log.next_change()
        log.forget(forgotten)
        log.add(Event(ID, "e"))
        await asyncio.wait_for(woken, 1)
        assert not forgotten.done()
        forgotten.cancel()

    asyncio.run(scenario())


def _events(gossip: object = None) -> UserEvents:
    return UserEvents("node4", lambda: [("web-1", ["canary"])], lambda: gossip)


def test_receive_keeps_only_consul_events_meant_for_this_agent() -> None:
    events = _events()

    def deliver(event: Event, gossip_name_: str | None = None) -> None:
        name = gossip_name_ or gossip_name(event.name)
        events.receive(UserEvent(name, encode(event), 7, "gossip-id"))

    deliver(new_event("kept", b"p", service="web", tag="can"))
    deliver(new_event("other-node", None, node="^node1$"))
    deliver(new_event("no-service", None, service="db"))
    deliver(new_event("_rexec", b"job"))
    deliver(new_event("not-consul", None), gossip_name_="serf-only")
    events.receive(UserEvent(gossip_name("bad"), b"\xc1", 8, "x"))
    kept = events.log.events()
    assert [(e.name, e.ltime, e.payload) for e in kept] == [("kept", 7, b"p")]


class _Gossip:
    """A LAN pool twin: what is broadcast comes straight back, as gossip delivers it to us."""

    def __init__(self, events: UserEvents) -> None:
        self.events = events

    def broadcast_user_event(self, name: str, payload: bytes) -> None:
        self.events.receive(UserEvent(name, payload, 3, "g"))


def test_fire_spreads_by_gossip_and_the_event_comes_back_into_the_log() -> None:
    events = _events()
    events.gossip = lambda: _Gossip(events)
    event = events.fire(new_event("deploy", None))
    assert [e.id for e in events.log.events()] == [event.id]


def test_fire_without_gossip_is_an_error() -> None:
    with pytest.raises(EventError):
        _events().fire(new_event("deploy", None))
