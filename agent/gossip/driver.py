"""The asyncio driver: runs a `Memberlist` core on a `Transport` in the agent's event loop.

Every input (datagram, incoming stream, stream reply, timer) is fed to the core with
`loop.time()` as `now`; the core's outputs are then sent, its events dispatched, and one timer is
armed at `next_deadline()`. Nothing polls: an idle member wakes once per probe interval.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterable

from agent.gossip.config import GossipConfig
from agent.gossip.coordinate import Coordinate
from agent.gossip.errors import JoinError
from agent.gossip.events import (
    GossipEvent,
    Member,
    MemberConflict,
    MemberFailed,
    MemberJoin,
    MemberLeave,
    MemberReap,
    MemberUpdate,
    StreamRequest,
    UserEvent,
)
from agent.gossip.merge import MergeDelegate, StandardMergeDelegate, chain_merge_delegates
from agent.gossip.messages import ErrorReply, encode
from agent.gossip.net import UdpTcpTransport
from agent.gossip.swim import Memberlist
from agent.gossip.transport import Cipher, Transport

log = logging.getLogger("agent.gossip")

_EVENT_NAMES = {
    MemberJoin: "EventMemberJoin",
    MemberUpdate: "EventMemberUpdate",
    MemberLeave: "EventMemberLeave",
    MemberFailed: "EventMemberFailed",
    MemberReap: "EventMemberReap",
}


class GossipDriver:
    """Use `await GossipDriver.create(...)`; then `join`, `members`, ..., and `close`."""

    def __init__(
        self,
        core: Memberlist,
        transport: Transport,
        *,
        cipher: Cipher | None = None,
        on_event: Callable[[GossipEvent], None] | None = None,
    ) -> None:
        self.core = core
        self._transport = transport
        self._cipher = cipher
        self._on_event = on_event
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._subscribers: list[asyncio.Queue[GossipEvent | None]] = []
        self._closed = False

    @classmethod
    async def create(
        cls,
        name: str,
        bind_ip: str,
        port: int,
        tags: dict[str, str] | None = None,
        config: GossipConfig | None = None,
        *,
        advertise_addr: str | None = None,
        seed: int | None = None,
        cipher: Cipher | None = None,
        on_event: Callable[[GossipEvent], None] | None = None,
        extra_merge_check: MergeDelegate | None = None,
        transport: Transport | None = None,
    ) -> GossipDriver:
        """Bind (raises BindError naming the address), build the core, start the timer.

        :param port: the gossip port (8301 LAN, 8302 WAN); 0 picks a free one
        :param advertise_addr: "ip:port" peers should use, if not the bound address
        :param extra_merge_check: runs after the standard name/datacenter checks
        :param transport: defaults to UDP + TCP on (bind_ip, port)
        """
        config = config or GossipConfig()
        transport = transport or UdpTcpTransport(bind_ip, port, config.tcp_timeout)
        holder: list[GossipDriver] = []
        early: list[tuple[str, bytes]] = []

        # The core needs the bound address, so datagrams arriving before it exists are kept.
        def on_packet(addr: str, data: bytes) -> None:
            if holder:
                holder[0]._on_packet(addr, data)
            else:
                early.append((addr, data))

        def on_stream(addr: str, data: bytes) -> bytes:
            if holder:
                return holder[0]._on_stream(addr, data)
            return encode(ErrorReply("agent is starting"))

        await transport.start(on_packet, on_stream)
        loop = asyncio.get_running_loop()
        core = Memberlist(
            name, advertise_addr or transport.local_addr, tags, config, seed=seed, now=loop.time()
        )
        if extra_merge_check is not None:
            core.merge_delegate = chain_merge_delegates(
                StandardMergeDelegate(core, config.check_datacenter), extra_merge_check
            )
        self = cls(core, transport, cipher=cipher, on_event=on_event)
        holder.append(self)
        for addr, data in early:
            self._on_packet(addr, data)
        self._flush()
        return self

    # ------------------------------------------------------------------ public API

    @property
    def local_addr(self) -> str:
        return self.core.addr

    def members(self) -> list[Member]:
        return self.core.members()

    def local_member(self) -> Member:
        return self.core.local_member()

    def coordinate(self) -> Coordinate:
        """This member's Vivaldi coordinate (for the catalog's /v1/coordinate)."""
        return self.core.coordinate()

    async def join(self, addrs: Iterable[str], timeout: float | None = None) -> int:
        """Push-pull with each address; returns how many answered. Raises JoinError (with each
        address's reason, e.g. a name conflict) if none could be joined."""
        addrs = list(addrs)
        if not addrs:
            raise JoinError({"-": "no addresses to join"})
        token = self.core.join(addrs, self._loop.time())
        self._flush()
        limit = timeout if timeout is not None else self.core.config.tcp_timeout + 1.0
        deadline = self._loop.time() + limit
        while (result := self.core.join_result(token)) is None:
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                raise JoinError({a: "join timed out" for a in addrs})
            await self._wait_progress(remaining)
        if result.joined == 0:
            raise JoinError(result.errors)
        for addr, why in result.errors.items():
            log.warning("gossip: failed to join %s: %s", addr, why)
        return result.joined

    async def leave(self, timeout: float = 5.0) -> bool:
        """Announce a graceful leave and wait (bounded) until it has been gossiped.
        Returns False if `timeout` passed first."""
        self.core.leave(self._loop.time())
        self._flush()
        deadline = self._loop.time() + timeout
        while not self.core.leave_complete:
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return False
            await self._wait_progress(remaining)
        return True

    def update_tags(self, tags: dict[str, str]) -> None:
        self.core.update_tags(tags, self._loop.time())
        self._flush()

    def broadcast_user_event(self, name: str, payload: bytes) -> UserEvent:
        ev = self.core.broadcast_user_event(name, payload, self._loop.time())
        self._flush()
        return ev

    def force_leave(self, name: str, prune: bool = False) -> None:
        self.core.force_leave(name, prune, self._loop.time())
        self._flush()

    async def events(self) -> AsyncIterator[GossipEvent]:
        """Events from now on, in order, until close(). Use `on_event` to see earlier ones."""
        queue: asyncio.Queue[GossipEvent | None] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while (ev := await queue.get()) is not None:
                yield ev
        finally:
            self._subscribers.remove(queue)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self._transport.close()
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._wake()

    # ------------------------------------------------------------------ inputs

    def _on_packet(self, addr: str, data: bytes) -> None:
        if self._closed:
            return
        if self._cipher is not None:
            try:
                data = self._cipher.decrypt(data)
            except ValueError:
                log.debug("gossip: dropped a packet from %s that failed to decrypt", addr)
                return
        self.core.handle_packet(addr, data, self._loop.time())
        self._flush()

    def _on_stream(self, addr: str, data: bytes) -> bytes:
        if self._closed:
            return self._seal(encode(ErrorReply("shutting down")))
        if self._cipher is not None:
            try:
                data = self._cipher.decrypt(data)
            except ValueError:
                return encode(ErrorReply("stream failed to decrypt (gossip keys differ?)"))
        reply = self.core.handle_stream(addr, data, self._loop.time())
        self._flush()
        return self._seal(reply)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        if self._closed:
            return
        self.core.tick(self._loop.time())
        self._flush()

    async def _run_stream(self, req: StreamRequest) -> None:
        reply: bytes | None = None
        error: str | None = None
        try:
            raw = await self._transport.request(req.addr, self._seal(req.data), req.timeout)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            error = dial_error(req.addr, exc)
        else:
            try:
                reply = self._cipher.decrypt(raw) if self._cipher is not None else raw
            except ValueError as exc:
                error = f"reply failed to decrypt (gossip keys differ?): {exc}"
        if self._closed:
            return
        self.core.handle_stream_reply(req.id, reply, self._loop.time(), error)
        self._flush()

    # ------------------------------------------------------------------ outputs

    def _seal(self, data: bytes) -> bytes:
        return self._cipher.encrypt(data) if self._cipher is not None else data

    def _flush(self) -> None:
        out = self.core.take_outputs()
        for pkt in out.packets:
            self._transport.send_packet(pkt.addr, self._seal(pkt.data))
        for req in out.streams:
            task = self._loop.create_task(self._run_stream(req))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        for ev in out.events:
            self._dispatch(ev)
        self._arm_timer()
        self._wake()

    def _dispatch(self, ev: GossipEvent) -> None:
        if isinstance(ev, MemberConflict):
            log.warning(
                "memberlist: Conflicting address for %s. Mine: %s Theirs: %s",
                ev.existing.name,
                ev.existing.address,
                ev.other_addr,
            )
        elif isinstance(ev, UserEvent):
            log.debug("serf: EventUserEvent %s ltime=%d", ev.name, ev.ltime)
        else:
            m = ev.member
            log.info("serf: %s: %s %s", _EVENT_NAMES[type(ev)], m.name, m.addr)
        if self._on_event is not None:
            try:
                self._on_event(ev)
            except Exception:  # a consumer bug must not stop the membership protocol
                log.exception("gossip: event handler failed on %r", ev)
        for queue in self._subscribers:
            queue.put_nowait(ev)

    def _arm_timer(self) -> None:
        if self._closed:
            return
        # A 1 ms floor keeps a deadline already due from spinning the loop.
        at = max(self.core.next_deadline(), self._loop.time() + 0.001)
        if self._timer is not None and at >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(at, self._on_timer)
        self._timer_at = at

    def _wake(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def _wait_progress(self, timeout: float) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass


def dial_error(addr: str, exc: BaseException) -> str:
    """Why a stream to `addr` failed, in the words Consul's Go dialer uses ("dial tcp
    10.0.0.1:8301: connect: connection refused"): join errors reach API clients verbatim."""
    host = addr.rpartition(":")[0].strip("[]") or addr
    if isinstance(exc, socket.gaierror | UnicodeError):
        return f"dial tcp: lookup {host}: no such host"
    if isinstance(exc, TimeoutError):
        return f"dial tcp {addr}: i/o timeout"
    if isinstance(exc, asyncio.IncompleteReadError):
        return f"read tcp {addr}: unexpected EOF"
    if isinstance(exc, ConnectionRefusedError):
        return f"dial tcp {addr}: connect: connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return f"dial tcp {addr}: connect: {exc.strerror.lower()}"
    if isinstance(exc, ValueError):
        return f"dial tcp: address {addr}: invalid address"
    return f"dial tcp {addr}: {type(exc).__name__}"
