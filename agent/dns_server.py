"""The DNS listeners: UDP and TCP on every `config.dns_addrs()` address.

The answers come from `agent.dns.resolve`; this module does the I/O around it: sockets we
bind ourselves (a taken port fails the agent's start with the address in the message, as the
HTTP listener does), the catalog adapters (a server reads its own replicated store, stale
reads being Consul's DNS default; a client agent asks a server over RPC), and forwarding of
names outside our domain to the configured recursors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode

from agent.acl.enforce import resolve_secret
from agent.acl.resolve import ACLNotFound
from agent.dns import parse_request, resolve_wire, servfail
from agent.dns_catalog import (
    CatalogUnavailable,
    Instance,
    NodeRecord,
    QueryAnswer,
    instance_from_json,
    instance_from_struct,
    node_from_json,
    node_from_struct,
)
from agent.dns_settings import DNSSettings
from agent.errors import ListenError
from agent.queries.definition import QueryError
from agent.queries.runner import Caller, RemoteQueryFailed
from agent.queries.template import resolve as resolve_query
from agent.render import instance_checks
from agent.state.mesh_views import connect_instances, ingress_gateways

if TYPE_CHECKING:
    from agent.acl.authorizer import Authorizer
    from agent.acl.enforce import ACLRuntime
    from agent.dns_catalog import Catalog
    from agent.ports import RemoteReader
    from agent.queries.runner import QueryRunner, WanQueries
    from agent.state.store import Store

log = logging.getLogger("agent.dns")

__all__ = ["VIRTUAL_IP_RPC", "DNSServer", "RemoteCatalog", "StoreCatalog", "start_dns"]

# A server's answer to a client agent's `.virtual.` lookup (Consul's Catalog.VirtualIPForService).
VIRTUAL_IP_RPC = "virtual_ip"

TCP_IDLE_TIMEOUT = 8.0  # the Go DNS server's idle timeout for a TCP connection
TCP_READ_TIMEOUT = 2.0


# --------------------------------------------------------------------------- catalogs


_CONVERTED_LIMIT = 4096


def _query_answer(
    result: dict, converted: dict[int, tuple[dict, Instance]] | None = None
) -> QueryAnswer:
    """From a PreparedQueryExecuteResponse (the runner's, or the HTTP API's JSON).
    `converted` keeps the Instance made of each CheckServiceNode the runner shares between
    answers (keyed by identity; the entry holds the dict, so its id stays its own)."""
    instances = []
    for node in result.get("Nodes") or ():
        done = converted.get(id(node)) if converted is not None else None
        if done is None or done[0] is not node:
            done = (node, instance_from_json(node))
            if converted is not None:
                if len(converted) >= _CONVERTED_LIMIT:
                    converted.clear()
                converted[id(node)] = done
        instances.append(done[1])
    return QueryAnswer(
        service=result.get("Service", ""),
        datacenter=result.get("Datacenter", ""),
        instances=instances,
        ttl=(result.get("DNS") or {}).get("TTL", ""),
    )


class StoreCatalog:
    """The catalog from a server's own state store (names matched case-insensitively).
    Prepared queries run on the server's runner (stale, as DNS reads are), or, for another
    datacenter, on a server there. With ACLs on (`acl`), every lookup is made with the
    agent's DNS token (acl.tokens.dns, else default, else anonymous), as Consul's DNS server
    does: nodes it may not read and instances whose node or service it may not read are not
    there (NXDOMAIN / fewer records), an unknown token answers nothing (SERVFAIL)."""

    def __init__(
        self,
        store: Store,
        queries: QueryRunner | None = None,
        wan: WanQueries | None = None,
        node_name: str = "",
        acl: ACLRuntime | None = None,
    ) -> None:
        self.store = store
        self.queries = queries
        self.wan = wan
        self.node_name = node_name
        self.acl = acl
        self._converted: dict[int, tuple[dict, Instance]] = {}

    def _token(self) -> str:
        return self.acl.tokens.get("dns") or "" if self.acl is not None else ""

    def _authz(self) -> Authorizer | None:
        """The DNS token's authorizer; None with ACLs off."""
        if self.acl is None:
            return None
        try:  # "" stands for the default token (resolve_secret), then anonymous
            return resolve_secret(self.acl, self._token()).authz
        except ACLNotFound as exc:
            raise CatalogUnavailable("ACL not found (DNS token)") from exc

    def _readable(self, instances: list[Instance]) -> list[Instance]:
        authz = self._authz()
        if authz is None:
            return instances
        return [
            i
            for i in instances
            if authz.allowed("node", i.node.name, "read")
            and authz.allowed("service", i.service, "read")
        ]

    async def prepared_query(
        self, name: str, datacenter: str, source_ip: str
    ) -> QueryAnswer | None:
        caller = Caller(
            token=self._token(),
            agent_node=self.node_name,
            source_ip=source_ip,
            allow_stale=True,
        )
        try:
            if datacenter and self.queries is not None and datacenter != self.queries.datacenter:
                if self.wan is None:
                    return None
                result = await self.wan.execute_in(datacenter, name, caller)
            else:
                if self.queries is None:
                    return None
                query = resolve_query(self.store.queries.all(), name)
                if query is None:
                    return None
                result = await self.queries.execute(query, caller)
        except (QueryError, RemoteQueryFailed) as exc:
            raise CatalogUnavailable(str(exc)) from exc
        except Exception as exc:  # ACLNotFound for a stale default token: no answer
            raise CatalogUnavailable(str(exc) or type(exc).__name__) from exc
        return None if result is None else _query_answer(result, self._converted)

    async def node(self, name: str) -> NodeRecord | None:
        nodes = self.store.nodes
        found = nodes.get(name)
        if found is None:
            wanted = name.lower()
            found = next((n for key, n in nodes.items() if key.lower() == wanted), None)
        if found is None:
            return None
        authz = self._authz()
        if authz is not None and not authz.allowed("node", found.Node, "read"):
            return None
        return node_from_struct(found)

    async def nodes(self) -> list[NodeRecord]:
        authz = self._authz()
        return [
            node_from_struct(n)
            for n in self.store.nodes.values()
            if authz is None or authz.allowed("node", n.Node, "read")
        ]

    async def virtual_ip(self, name: str, peer: str) -> str:
        return "" if peer else self.store.vips.lookup(name)

    async def service(self, name: str) -> list[Instance]:
        wanted = name.lower()
        return self._readable(self._instances(lambda svc: svc.Service.lower() == wanted))

    async def instances_at(self, address: str) -> list[Instance]:
        found = self._instances(lambda svc: bool(svc.Address) and svc.Address == address)
        return self._readable(found)

    async def connect(self, name: str) -> list[Instance]:
        store = self.store
        return self._readable(
            [
                instance_from_struct(
                    node, svc, instance_checks(store.node_checks(node.Node), svc.ID)
                )
                for node, svc in connect_instances(store, name).pairs
            ]
        )

    async def ingress(self, name: str) -> list[Instance]:
        store = self.store
        return self._readable(
            [
                instance_from_struct(
                    node, svc, instance_checks(store.node_checks(node.Node), svc.ID)
                )
                for node, svc in ingress_gateways(store, name).pairs
            ]
        )

    def _instances(self, keep: Any) -> list[Instance]:
        store = self.store
        out = []
        for node_name, services in store.services.items():
            node = store.nodes.get(node_name)
            if node is None:
                continue
            for svc in services.values():
                if keep(svc):
                    checks = instance_checks(store.checks.get(node_name, {}).values(), svc.ID)
                    out.append(instance_from_struct(node, svc, checks))
        return out


class RemoteCatalog:
    """The catalog as a client agent sees it: the servers' HTTP API over RPC, asked with
    `token()` (the agent's DNS token; None: the agent's own), so the servers filter what it
    may not read as they filter any client's reads."""

    def __init__(
        self,
        remote: RemoteReader,
        call: Callable[[str, Any], Awaitable[Any]] | None = None,
        token: Callable[[], str | None] | None = None,
    ) -> None:
        self.remote = remote
        self.call = call  # an RPC to a server (the virtual IP has no HTTP endpoint)
        self.token = token or (lambda: None)

    async def virtual_ip(self, name: str, peer: str) -> str:
        if peer or self.call is None:
            return ""
        try:
            return str(await self.call(VIRTUAL_IP_RPC, {"Service": name}) or "")
        except Exception as exc:
            raise CatalogUnavailable(str(exc)) from exc

    async def _get(self, path: str) -> Any:
        try:
            return await self.remote.read_remote(path, token=self.token())
        except Exception as exc:  # AgentError, RPCError, OSError, timeouts: all "no answer"
            raise CatalogUnavailable(str(exc)) from exc

    async def node(self, name: str) -> NodeRecord | None:
        reply = await self._get(f"/v1/catalog/node/{quote(name, safe='')}")
        if not reply or not reply.get("Node"):
            return None
        return node_from_json(reply["Node"])

    async def nodes(self) -> list[NodeRecord]:
        return [node_from_json(n) for n in await self._get("/v1/catalog/nodes") or []]

    async def service(self, name: str) -> list[Instance]:
        reply = await self._get(f"/v1/health/service/{quote(name, safe='')}")
        return [instance_from_json(entry) for entry in reply or []]

    async def connect(self, name: str) -> list[Instance]:
        reply = await self._get(f"/v1/health/connect/{quote(name, safe='')}")
        return [instance_from_json(entry) for entry in reply or []]

    async def ingress(self, name: str) -> list[Instance]:
        reply = await self._get(f"/v1/health/ingress/{quote(name, safe='')}")
        return [instance_from_json(entry) for entry in reply or []]

    async def prepared_query(
        self, name: str, datacenter: str, source_ip: str
    ) -> QueryAnswer | None:
        path = f"/v1/query/{quote(name, safe='')}/execute?stale"
        if datacenter:
            path += f"&dc={quote(datacenter, safe='')}"
        headers = [[b"x-forwarded-for", source_ip.encode()]] if source_ip else []
        try:
            reply = await self.remote.read_remote(path, headers, token=self.token())
        except Exception as exc:
            raise CatalogUnavailable(str(exc)) from exc
        return None if reply is None else _query_answer(reply)

    async def instances_at(self, address: str) -> list[Instance]:
        out = []
        for name in await self._get("/v1/catalog/services") or {}:
            for entry in await self._get(f"/v1/catalog/service/{quote(name, safe='')}") or []:
                if entry.get("ServiceAddress") == address:
                    node = {
                        "Node": entry.get("Node", ""),
                        "Address": entry.get("Address", ""),
                        "Datacenter": entry.get("Datacenter", ""),
                    }
                    service = {"Service": entry.get("ServiceName", ""), "Address": address}
                    out.append(instance_from_json({"Node": node, "Service": service}))
        return out


# --------------------------------------------------------------------------- server


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A datagram endpoint's protocol is always handed the endpoint's DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.server._spawn(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: Any) -> None:
        reply = await self.server.handle(data, tcp=False, peer=addr[0] if addr else "")
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns: udp error: %s", exc)


class DNSServer:
    """Answers DNS over UDP and TCP; `start(addrs)` binds everything or nothing."""

    def __init__(
        self, catalog: Catalog, settings: DNSSettings, rng: random.Random | None = None
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.rng = rng or random.Random()
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.addresses: list[tuple[str, int]] = []

    # ---------------------------------------------------------------- lifecycle

    async def start(self, addrs: list[tuple[str, int]]) -> None:
        sockets: list[tuple[str, socket.socket]] = []
        try:
            for host, port in addrs:
                udp = _bind(host, port, socket.SOCK_DGRAM)
                sockets.append(("udp", udp))
                # Port 0 (tests): let TCP follow the port UDP was given.
                port = port or udp.getsockname()[1]
                sockets.append(("tcp", _bind(host, port, socket.SOCK_STREAM)))
        except ListenError:
            for _, sock in sockets:
                sock.close()
            raise
        loop = asyncio.get_running_loop()
        for kind, sock in sockets:
            if kind == "udp":
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UDPProtocol(self), sock=sock
                )
                self._udp.append(transport)
                self.addresses.append(sock.getsockname()[:2])
            else:
                self._tcp.append(await asyncio.start_server(self._serve_tcp, sock=sock))
        for host, port in self.addresses:
            log.info("dns: listening on %s:%d (udp, tcp)", host, port)

    async def close(self) -> None:
        for transport in self._udp:
            transport.close()
        for server in self._tcp:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._tcp:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._udp.clear()
        self._tcp.clear()

    def reload(self, config: Any) -> None:
        """New `dns_config`/`recursors` from a reloaded config (listeners stay as they are)."""
        self.settings = DNSSettings.from_config(config)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- requests

    async def handle(self, wire: bytes, *, tcp: bool, peer: str = "") -> bytes | None:
        """The reply to one request message, or None when there is nothing to send.
        `peer`: the asker's IP address."""
        request = parse_request(wire)
        if request is None or isinstance(request, bytes):
            return request
        try:
            response = await resolve_wire(
                request, self.catalog, self.settings, tcp=tcp, rng=self.rng, source_ip=peer
            )
            if isinstance(response, bytes):
                return response
            return await self._forward(request, wire, tcp)  # resolve answered FORWARD
        except Exception:
            log.exception("dns: failed to answer %s", request.question)
            return servfail(request).to_wire()

    async def _forward(self, request: dns.message.Message, wire: bytes, tcp: bool) -> bytes:
        """Ask the recursors in turn (or in random order); the first NOERROR/NXDOMAIN wins."""
        order = list(self.settings.recursors)
        if self.settings.recursor_random:
            self.rng.shuffle(order)
        timeout = self.settings.recursor_timeout
        for host, port in order:
            try:
                if tcp:
                    reply = await dns.asyncquery.tcp(request, host, timeout, port)
                else:
                    reply = await dns.asyncquery.udp(request, host, timeout, port)
            except (TimeoutError, dns.exception.DNSException, OSError) as exc:
                log.debug("dns: recursor %s:%d failed: %s", host, port, exc)
                continue
            if reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                return reply.to_wire(max_size=65535)
            log.debug(
                "dns: recursor %s:%d answered %s", host, port, dns.rcode.to_text(reply.rcode())
            )
        return servfail(request).to_wire()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Length-prefixed messages, several per connection, until idle or closed."""
        self._writers.add(writer)
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if peername else ""
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                    size = int.from_bytes(head, "big")
                    body = await asyncio.wait_for(reader.readexactly(size), TCP_READ_TIMEOUT)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                reply = await self.handle(body, tcp=True, peer=peer)
                if reply is None:
                    continue
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def _bind(host: str, port: int, kind: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    proto = "udp" if kind == socket.SOCK_DGRAM else "tcp"
    if kind == socket.SOCK_STREAM:
        # Not for UDP: there SO_REUSEADDR would let two agents share the port silently.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ListenError(
            f"error starting DNS server: listen {proto} {host}:{port}: bind: {exc.strerror or exc}"
        ) from None
    sock.setblocking(False)
    return sock


async def start_dns(config: Any, catalog: Catalog) -> DNSServer | None:
    """The agent's DNS server on its configured addresses; None when `ports.dns` is -1.
    A server answers from its own store (`StoreCatalog`), a client agent asks a server
    (`RemoteCatalog`)."""
    addrs = config.dns_addrs()
    if not addrs:
        return None
    settings = DNSSettings.from_config(config)
    server = DNSServer(catalog, settings)
    await server.start(addrs)
    return server
