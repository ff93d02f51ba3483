"""Consul user events: the value, its wire form on gossip, receipt filters and the agent's ring.

An event is fired by one agent (`PUT /v1/event/fire/<name>`), spread by gossip to every member
(`ClusterManager.gossip.broadcast_user_event`), and each agent keeps it only when its node,
service and tag filters match *this* agent, as Consul's agent does on receipt. Kept events sit
in a ring of the last 256, which `GET /v1/event/list` reads; its blocking index is the XOR of
the two 64-bit halves of the newest event's UUID (not monotonic: a list blocks while equal).

Everything but `EventLog`'s waiters and `UserEvents` (which the agent wires to its gossip
pool) is pure.

Errors::

    EventError
    ├── InvalidEvent      a name or filter Consul refuses before firing (its own wording)
    └── EventTooLarge     the encoded event does not fit a gossip user event
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from agent.goregexp import GoRegexpError, compile_go
from agent.gossip.errors import UserEventTooLarge

if TYPE_CHECKING:
    from agent.gossip.events import UserEvent

log = logging.getLogger("agent.events")

RING_SIZE = 256
VERSION = 1
# Consul names its events on serf "consul:event:<name>"; the limit counts that name too.
GOSSIP_PREFIX = "consul:event:"
SIZE_LIMIT = 512
REMOTE_EXEC = "_rexec"  # Consul's internal event name for `consul exec`


class EventError(Exception):
    """Root of the errors this module raises on purpose."""


class InvalidEvent(EventError):
    pass


class EventTooLarge(EventError):
    pass


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    name: str
    payload: bytes | None = None
    node_filter: str = ""
    service_filter: str = ""
    tag_filter: str = ""
    version: int = VERSION
    ltime: int = 0

    def api_dict(self) -> dict[str, Any]:
        """Consul's JSON shape: Payload base64 (null when empty), LTime as seen here."""
        return {
            "ID": self.id,
            "Name": self.name,
            "Payload": base64.b64encode(self.payload).decode() if self.payload else None,
            "NodeFilter": self.node_filter,
            "ServiceFilter": self.service_filter,
            "TagFilter": self.tag_filter,
            "Version": self.version,
            "LTime": self.ltime,
        }


class _Wire(msgspec.Struct, omit_defaults=True):
    """The event as gossip carries it; the short keys are Consul's msgpack codec names."""

    id: str = msgspec.field(name="ID")
    name: str = msgspec.field(name="n")
    payload: bytes = msgspec.field(default=b"", name="p")
    node_filter: str = msgspec.field(default="", name="nf")
    service_filter: str = msgspec.field(default="", name="sf")
    tag_filter: str = msgspec.field(default="", name="tf")
    version: int = msgspec.field(default=VERSION, name="v")


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Wire)


def encode(event: Event) -> bytes:
    return _encoder.encode(
        _Wire(
            event.id,
            event.name,
            event.payload or b"",
            event.node_filter,
            event.service_filter,
            event.tag_filter,
            event.version,
        )
    )


def decode(raw: bytes, ltime: int) -> Event:
    try:
        w = _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise EventError(f"Failed to decode event: {exc}") from None
    return Event(
        w.id,
        w.name,
        w.payload or None,
        w.node_filter,
        w.service_filter,
        w.tag_filter,
        w.version,
        ltime,
    )


def gossip_name(name: str) -> str:
    return GOSSIP_PREFIX + name


def _compile(pattern: str, what: str) -> Any:
    try:
        return compile_go(pattern)
    except GoRegexpError as exc:
        raise InvalidEvent(f"Invalid {what} filter: {exc}") from None


def new_event(
    name: str,
    payload: bytes | None,
    node: str = "",
    service: str = "",
    tag: str = "",
    event_id: str | None = None,
) -> Event:
    """Validate a fire request in Consul's order and wording; returns the event to spread."""
    if not name:
        raise InvalidEvent("User event missing name")
    if tag and not service:
        raise InvalidEvent("Cannot provide tag filter without service filter")
    for pattern, what in ((node, "node"), (service, "service"), (tag, "tag")):
        if pattern:
            _compile(pattern, what)
    event = Event(event_id or str(uuid.uuid4()), name, payload or None, node, service, tag)
    size = len(gossip_name(name).encode()) + len(encode(event))
    if size > SIZE_LIMIT:
        # serf's words; it counts the gossip name plus the encoded Consul event.
        raise EventTooLarge(
            f"user event exceeds configured limit of {SIZE_LIMIT} bytes before encoding"
        )
    return event


def accepts(event: Event, node_name: str, services: Iterable[tuple[str, Sequence[str]]]) -> bool:
    """Whether an agent named `node_name`, running `services` as (service ID, tags), keeps
    `event`. Patterns are Go regexps searched anywhere in the text (unanchored), as Consul's
    `MatchString`; an unparsable filter drops the event."""
    try:
        if event.node_filter and not _compile(event.node_filter, "node").search(node_name):
            return False
        if not event.service_filter:
            return True
        service_re = _compile(event.service_filter, "service")
        tag_re = _compile(event.tag_filter, "tag") if event.tag_filter else None
    except InvalidEvent:
        return False
    for service_id, tags in services:
        if not service_re.search(service_id):
            continue
        if tag_re is None or any(tag_re.search(t) for t in tags):
            return True
    return False


def uuid_index(event_id: str) -> int:
    """Consul's blocking index for an event: the UUID's two 64-bit halves XOR-ed."""
    hexits = event_id.replace("-", "")
    try:
        return int(hexits[:16], 16) ^ int(hexits[16:32], 16)
    except ValueError:
        return 0


def list_index(events: Sequence[Event]) -> int:
    """The index of a list: 1 when empty (so watches on nothing still block)."""
    return uuid_index(events[-1].id) if events else 1


class EventLog:
    """The last `size` events this agent kept, oldest first, plus waiters for the next one."""

    def __init__(self, size: int = RING_SIZE) -> None:
        self._ring: deque[Event] = deque(maxlen=size)
        self._waiters: set[asyncio.Future[None]] = set()

    def add(self, event: Event) -> None:
        self._ring.append(event)
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def events(self, name: str | None = None) -> list[Event]:
        if name:
            return [e for e in self._ring if e.name == name]
        return list(self._ring)

    def next_change(self) -> asyncio.Future[None]:
        """A future resolved by the next `add`; register it *before* reading the list."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        return waiter

    def forget(self, waiter: asyncio.Future[None]) -> None:
        self._waiters.discard(waiter)


# ---------------------------------------------------------------------- agent wiring


class UserEvents:
    """This agent's side of user events: the ones it received (`log`) and firing new ones.

    It gets what it uses: this node's name, the local services (an event may target a
    service or tag), and the LAN gossip pool (None until it runs)."""

    def __init__(
        self,
        node_name: str,
        local_services: Callable[[], list[tuple[str, Sequence[str]]]],
        gossip: Callable[[], Any],
    ) -> None:
        self.node_name = node_name
        self.local_services = local_services
        self.gossip = gossip
        self.log = EventLog()

    def receive(self, ev: UserEvent) -> None:
        """Gossip delivered a user event: keep it if it is a Consul event meant for us."""
        if not ev.name.startswith(GOSSIP_PREFIX):
            return
        try:
            event = decode(ev.payload, ev.ltime)
        except EventError as exc:
            log.error("agent: %s", exc)
            return
        if event.version > VERSION:
            log.warning("agent: event version %d may have unsupported features", event.version)
        if not accepts(event, self.node_name, self.local_services()):
            return
        if event.name == REMOTE_EXEC:
            # Consul runs `consul exec` jobs from these and never lists them; we run none.
            log.info("agent: ignoring remote exec event %s, not supported", event.id)
            return
        log.debug("agent: new event %s (%s)", event.name, event.id)
        self.log.add(event)

    def fire(self, event: Event) -> Event:
        """Spread `event` by gossip (this agent receives it too, through `receive`)."""
        gossip = self.gossip()
        if gossip is None:
            raise EventError("gossip is not running")
        try:
            gossip.broadcast_user_event(gossip_name(event.name), encode(event))
        except UserEventTooLarge as exc:
            raise EventTooLarge(f"{exc} before encoding") from None
        return event
