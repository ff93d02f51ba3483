"""The agent: wires config, store, consensus, local state, checks and listeners together.

Lifecycle: `Agent(config)` does no I/O; `await agent.start()` restores state from the data
dir, opens every listener (failing fast, with the address, if one is taken), registers this
node in the catalog, and starts health checks; `await agent.stop()` undoes it in reverse.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from agent.acl.enforce import ACLRuntime
from agent.acl.resolve import token_bundle
from agent.cluster import ClusterManager
from agent.config_value import listen_label
from agent.connect.errors import CAError, MeshError
from agent.dns_server import VIRTUAL_IP_RPC, RemoteCatalog, StoreCatalog, start_dns
from agent.errors import (
    CommandRefused,
    JoinFailed,
    NoServers,
    NotLeader,
    ServerError,
    StartError,
    UnknownNode,
)
from agent.events import UserEvents
from agent.federation_sync import FederationStateSync
from agent.gossip.errors import GossipError
from agent.http.deps import HTTPDeps
from agent.http.dispatch import App
from agent.http.forward import AGENT_HEADER, serve_forwarded
from agent.http.reads import Reads
from agent.http.routes import build_router
from agent.http.server import start_http
from agent.local import LocalState
from agent.mesh_bootstrap import BootstrapEntries
from agent.mesh_ca import CARuntime, LeafCache, LocalSigner, RemoteSigner, Signer
from agent.mesh_entries import RemoteServiceDefaults, StoreEntries
from agent.mesh_intentions import RemoteIntentions
from agent.metrics import Metrics
from agent.queries.runner import EXECUTE_REMOTE, QueryRunner, WanQueries
from agent.raft.node import RaftNode
from agent.rpc import RPCError, RPCPool, RPCServer
from agent.sessions_reaper import SessionReaper
from agent.state import commands
from agent.state.acl import ANONYMOUS_SECRET
from agent.state.fsm import FSM, Refusal, TxnResult
from agent.state.sessions import lock_delay_refusal
from agent.state.store import Store
from agent.tls import RPCTLS, TLSConfigError, rpc_tls
from agent.token_reaper import TokenReaper
from agent.wan import WanPool

log = logging.getLogger("agent")

CONSUL_VERSION = "1.22.0"


_APPLY_METRICS = {
    "kv": "consul.kvs.apply",
    "txn": "consul.txn.apply",
    "register": "consul.catalog.register",
    "deregister": "consul.catalog.deregister",
    "restore": "consul.snapshot.restore",
}


def encode_result(result: Any) -> Any:
    """An FSM result as plain values for the RPC reply."""
    if isinstance(result, Refusal):
        return {"refused": result.message, "kind": result.kind}
    if isinstance(result, TxnResult):
        return {"txn": True, "results": result.results, "errors": result.errors}
    return {"value": result}


def decode_result(reply: Any) -> Any:
    if "refused" in reply:
        return Refusal(reply["refused"], reply.get("kind", "failed"))
    if "txn" in reply:
        return TxnResult(results=reply["results"], errors=reply["errors"])
    return reply.get("value")


def resolve_advertise(config: Any) -> str:
    """The address other agents reach us on: -advertise, else -bind, resolving 0.0.0.0."""
    addr = config.advertise_addr or config.bind_addr
    if addr in ("0.0.0.0", "::", ""):
        return _single_private_ip()
    return addr


def _single_private_ip() -> str:
    found: list[str] = []
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        found = sorted({i[4][0] for i in infos if ipaddress.ip_address(i[4][0]).is_private})
        found = [a for a in found if not a.startswith("127.")] or found
    except OSError:
        pass
    if not found:
        raise StartError("No private IPv4 address found")
    if len(found) > 1:
        raise StartError(
            "Multiple private IPv4 addresses found. Please configure one with 'bind' and/or 'advertise'."
        )
    return found[0]


def load_node_id(config: Any) -> str:
    """-node-id, else the one persisted in the data dir, else a new random one persisted there."""
    if config.node_id:
        return config.node_id.lower()
    if config.data_dir and not config.dev:
        path = Path(config.data_dir) / "node-id"
        if path.exists():
            return path.read_text().strip()
        node_id = str(uuid.uuid4())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(node_id)
        return node_id
    return str(uuid.uuid4())


def _rpc_tls(config: Any) -> RPCTLS:
    """TLS contexts for server RPC; a setting that cannot work stops the agent at start."""
    try:
        return rpc_tls(config)
    except TLSConfigError as exc:
        raise StartError(str(exc)) from None


class Agent:
    def __init__(self, config: Any, argv: list[str] | None = None) -> None:
        self.config = config
        self.argv = list(argv or [])
        self.started_at = time.time()
        self.version = CONSUL_VERSION
        self.metrics = Metrics()
        self.store = Store()
        self.fsm = FSM(self.store)
        self.node_name: str = config.node_name
        self.datacenter: str = config.datacenter
        self.data_dir = Path(config.data_dir) if config.data_dir and not config.dev else None
        self.address = resolve_advertise(config)
        self.node_id = load_node_id(config)
        self.rpc_tls = _rpc_tls(config)
        self.rpc_pool = RPCPool(
            local_host=self.address,
            ssl=self.rpc_tls.client,
            server_hostname=self.rpc_tls.server_name,
        )
        self.rpc_server: RPCServer | None = None
        self.rpc_address = f"{self.address}:{config.ports.server}"
        self.consensus: RaftNode | None = None
        if config.server:
            multiplier = max(1, int(config.raft_multiplier or 1))
            self.consensus = RaftNode(
                self.fsm,
                self.data_dir,
                self.node_id,
                self.rpc_address,
                self.rpc_pool,
                # Consul's timing at raft_multiplier=1: heartbeats every 100 ms, elections
                # after 1-2 s without a leader; the multiplier stretches both.
                tick=0.1 * multiplier,
                election_tick=10,
                heartbeat_tick=1,
                snapshot_every=config.raft_snapshot_threshold,
                trailing_logs=config.raft_trailing_logs,
                metrics=self.metrics,
            )
            self.consensus.names[self.node_id] = self.node_name
        self.acl_runtime = ACLRuntime(
            self.store,
            config.acl,
            self.data_dir,
            self.node_name,
            self,
            lambda: self.consensus is not None and self.consensus.is_leader,
            self.datacenter,
            server=self.consensus is not None,
            remote_fetch=self._resolve_remote,
        )
        self.mesh_ca: CARuntime | None = None
        self.bootstrap_entries: BootstrapEntries | None = None
        signer: Signer
        if self.consensus is not None:
            self.mesh_ca = CARuntime(
                self.store,
                self,
                lambda: self.consensus is not None and self.consensus.is_leader,
                self.datacenter,
                config.connect_ca_config,
                config.connect_ca_provider,
            )
            signer = LocalSigner(self.mesh_ca)
            self.bootstrap_entries = BootstrapEntries(
                self.store,
                self,
                lambda: self.consensus is not None and self.consensus.is_leader,
                config.config_entries_bootstrap,
            )
            intentions: Any = StoreEntries(self.store)
            central_config: Any = intentions  # every entry of the store
        else:
            signer = RemoteSigner(self._server_call)
            intentions = RemoteIntentions(self, time.monotonic)
            central_config = RemoteServiceDefaults(self, time.monotonic)
        self.leaves = LeafCache(signer, self.datacenter, time.monotonic)
        self.local = LocalState(
            self, central_config if config.enable_central_service_config else None
        )
        self.acl_runtime.on_token_change = self._token_changed
        # The leader writes this datacenter's federation state (Consul's anti-entropy for it).
        self.federation_sync: FederationStateSync | None = None
        if self.consensus is not None:
            self.federation_sync = FederationStateSync(
                self.store,
                self,
                lambda: self.consensus is not None and self.consensus.is_leader,
                self.datacenter,
                config.primary_datacenter,
            )
        self.session_reaper = SessionReaper(
            self.store, self, lambda: self.consensus is not None and self.consensus.is_leader
        )
        # Expired ACL tokens are removed by the leader (Consul's token reaping routine).
        self.token_reaper: TokenReaper | None = None
        if config.acl.enabled and self.consensus is not None:
            self.token_reaper = TokenReaper(
                self.store, self, lambda: self.consensus is not None and self.consensus.is_leader
            )
        self._servers: list[Any] = []
        self.dns: Any = None  # agent.dns_server.DNSServer while running
        self._stopped = asyncio.Event()
        self.leaving = False
        self.exit_code = 0
        self._leave_on_stop = False
        self.cluster = ClusterManager(self)
        if self.consensus is not None:
            self.consensus.on_leadership = self.cluster.kick
        self.events = UserEvents(
            self.node_name,
            lambda: [(sid, d.service.get("Tags") or ()) for sid, d in self.local.services.items()],
            lambda: self.cluster.gossip,
        )
        self.cluster.user_event_handler = self.events.receive
        self.wan_queries = WanQueries(self, lambda: self.queries)
        self.queries: QueryRunner | None = None
        if self.consensus is not None:
            self.queries = QueryRunner(
                self.store,
                self.acl_runtime if config.acl.enabled else None,
                self.datacenter,
                self.wan_queries,
            )
        self.http_deps = HTTPDeps(
            store=self.store,
            fsm=self.fsm,
            writer=self,
            leadership=self,
            identity=self,
            local=self.local,
            control=self,
            metrics=self.metrics,
            consensus=self.consensus,
            acl=self.acl_runtime if config.acl.enabled else None,
            cluster=self.cluster,
            events=self.events,
            sessions_reaper=self.session_reaper,
            ca=self.mesh_ca,
            signer=signer,
            leaves=self.leaves,
            intentions=intentions,
            api=self,
            queries=self.queries,
        )
        # In-process calls (api_call, forwarded requests) use the App directly: their paths
        # and bodies are our own, so they skip the listeners' edge checks.
        self.app = App(
            build_router(self.http_deps),
            config,
            self.http_deps.acl,
            Reads(self.store.watches, self),
            self,
            self.metrics,
        )

    # ------------------------------------------------------------------ writes / reads

    async def write(self, command: commands.Command) -> Any:
        """Propose a command through consensus. A refusal (of the command's shape, before the
        log, or by the FSM) raises CommandRefused; no leader raises NotLeader."""
        # The HTTP layer decodes bodies into these shapes already; this is the last gate
        # before the log, for a command no handler should have built.
        try:
            entry = commands.encode(command)
        except commands.Invalid as exc:
            log.warning("refused to propose a malformed command: %s", exc)
            raise CommandRefused(str(exc), "invalid") from None
        except OverflowError as exc:  # an integer msgpack cannot carry (beyond 64 bits)
            raise CommandRefused(f"Request decode failed: {exc}", "invalid") from None
        refusal = lock_delay_refusal(self.store, command)  # answered before the log, as Consul
        if refusal is not None:
            return refusal
        started = time.perf_counter()
        consensus = self.consensus
        if consensus is not None and consensus.is_leader:
            result = await consensus.apply(entry)
        else:
            result = await self._forward_write(entry)
        name = _APPLY_METRICS.get(commands.tag(command))
        if name:
            self.metrics.sample(name, (time.perf_counter() - started) * 1000.0)
        if isinstance(result, Refusal):
            raise CommandRefused(result.message, result.kind)
        return result

    async def _forward_write(self, entry: bytes) -> Any:
        """A follower or client agent sends the write to the leader (via a server)."""
        if self.consensus is not None:
            target = self.consensus.leader_address
            if not target:
                raise NotLeader("No cluster leader")
        else:
            target = self.pick_server()
            if target is None:
                raise NoServers()
        try:
            reply = await self.rpc_pool.call(target, "apply", entry, timeout=30)
        except RPCError as exc:
            raise CommandRefused(str(exc), "invalid" if exc.status == 400 else "failed") from None
        return decode_result(reply)

    async def api_call(
        self, method: str, path: str, body: Any, token: str = "", query: str = ""
    ) -> tuple[int, str]:
        """Run an HTTP API call through this agent's own handlers (forwarding, ACL checks and
        all), as a client would; for the agent's writes that must carry its token. `query` is
        the raw query string (`dc=east`)."""
        headers = [[b"content-type", b"application/json"]]
        if token:
            headers.append([b"x-consul-token", token.encode()])
        args = {
            "method": method,
            "path": path,
            "query": query.encode(),
            "headers": headers,
            "body": json.dumps(body).encode() if body is not None else b"",
        }
        reply = await serve_forwarded(self.app, args)
        return reply["status"], reply["body"].decode(errors="replace")

    def _token_changed(self, kind: str) -> None:
        """A new default or agent token signs anti-entropy's writes: sync now (Consul's
        AgentToken endpoint triggers a full sync for those two), not at the next interval."""
        if kind in ("default", "agent"):
            self.local.trigger_sync()

    def _dns_token(self) -> str | None:
        """The token a client agent's DNS lookups carry to the servers: acl.tokens.dns, else
        default, else anonymous (Consul's coalesced DNS token); None with ACLs off."""
        if not self.config.acl.enabled:
            return None
        tokens = self.agent_tokens()
        return tokens.get("dns") or tokens.get("default") or ANONYMOUS_SECRET

    async def read_remote(
        self, path: str, headers: list | None = None, token: str | None = None
    ) -> Any:
        """GET a /v1 path (`?query` allowed) from a server (client agents hold no state), with
        extra `[name, value]` headers and `token` (None: the agent's own); None when 404."""
        path, _, query = path.partition("?")
        target = self.pick_server()
        if target is None:
            raise NoServers()
        if token is None:
            # The agent's own reads carry its token (acl.tokens.agent, else default), as
            # Consul's agent uses it for its internal operations; with ACLs off there is none.
            tokens = self.agent_tokens() if self.config.acl.enabled else {}
            token = tokens.get("agent") or tokens.get("default") or ""
        sent = [[b"x-consul-token", token.encode()]] if token else []
        # This agent is the one asking (a prepared query's `_agent`), as Consul's QuerySource.
        sent.append([AGENT_HEADER, self.node_name.encode()])
        sent.extend(headers or ())
        args = {
            "method": "GET",
            "path": path,
            "query": query.encode(),
            "headers": sent,
            "body": b"",
        }
        reply = await self.rpc_pool.call(target, "http", args, timeout=30)
        if reply["status"] == 404:
            return None
        if reply["status"] != 200:
            raise ServerError(reply["status"], reply["body"].decode(errors="replace"))
        return json.loads(reply["body"]) if reply["body"] else None

    async def _rpc_apply(self, payload: Any) -> Any:
        """RPC handler: apply a forwarded write (forwarding once more if we are not leader).
        The payload is the encoded command; a peer from before commands were typed sends the
        command as a map."""
        try:  # the sender's checks are not ours to trust
            if isinstance(payload, bytes):
                command = commands.decode(payload)
                entry = payload
            else:
                command = commands.from_map(payload)
                entry = commands.encode(command)
        except commands.Invalid as exc:
            raise RPCError(str(exc), 400) from None
        if self.consensus is not None and self.consensus.is_leader:
            try:
                return encode_result(await self.consensus.apply(entry))
            except NotLeader as exc:
                raise RPCError(str(exc)) from None
        if self.consensus is not None and self.consensus.leader_address:
            return await self.rpc_pool.call(
                self.consensus.leader_address, "apply", entry, timeout=30
            )
        raise RPCError("No cluster leader")

    async def _server_rpc(self, method: str, args: Any, timeout: float = 30) -> Any:
        """A client agent's RPC to a server; NoServers when gossip knows none."""
        target = self.pick_server()
        if target is None:
            raise NoServers()
        return await self.rpc_pool.call(target, method, args, timeout=timeout)

    async def _resolve_remote(self, secret: str) -> dict | None:
        """A client agent asks a server for a token (agent/acl/remote.py)."""
        answer = await self._server_rpc("acl_resolve", {"SecretID": secret}, timeout=10)
        return answer.get("Bundle") if isinstance(answer, dict) else None

    async def _rpc_acl_resolve(self, args: Any) -> Any:
        if self.consensus is None or not isinstance(args, dict):
            raise RPCError("not a server", 400)
        return {"Bundle": token_bundle(self.store.acl, str(args.get("SecretID") or ""))}

    async def _server_call(self, method: str, args: Any) -> Any:
        """A client agent's RPC to a server (the CA signs and answers there)."""
        try:
            return await self._server_rpc(method, args)
        except RPCError as exc:
            # The server's status travels with its refusal (a CSR rate limit is a 429).
            raise CAError(str(exc), exc.status) from None

    async def _rpc_ca_sign(self, args: Any) -> Any:
        if self.mesh_ca is None or not isinstance(args, dict):
            raise RPCError("not a server", 400)
        try:
            return await self.mesh_ca.sign(str(args.get("CSR") or ""), str(args.get("Service")))
        except MeshError as exc:
            raise RPCError(exc.message, exc.status) from None

    async def _rpc_virtual_ip(self, args: Any) -> Any:
        if not isinstance(args, dict):
            raise RPCError("bad virtual IP request", 400)
        return self.store.vips.lookup(str(args.get("Service") or ""))

    async def _rpc_ca_roots(self, _: Any) -> Any:
        if self.mesh_ca is None:
            raise RPCError("not a server", 400)
        try:
            return self.mesh_ca.roots_view()
        except MeshError as exc:
            raise RPCError(exc.message, exc.status) from None

    def last_contact_ms(self) -> int:
        """Milliseconds since this server last heard from the leader (0 on the leader)."""
        consensus = self.consensus
        if consensus is None or consensus.is_leader:
            return 0
        return int(max(0.0, time.monotonic() - consensus.last_contact) * 1000)

    async def barrier(self) -> None:
        """For ?consistent: confirm leadership with a quorum round (read index)."""
        if self.consensus is None or not self.consensus.is_leader:
            raise NotLeader()
        await self.consensus.read_barrier()

    def agent_tokens(self) -> dict[str, str]:
        return self.acl_runtime.tokens

    def local_store(self) -> Store | None:
        return self.store if self.consensus is not None else None

    def wan(self) -> WanPool | None:
        """This server's WAN pool (None on client agents, or before it starts)."""
        return self.cluster.wan

    def pick_server(self) -> str | None:
        """RPC address of a server to send a client agent's requests to (from gossip)."""
        return self.cluster.pick_server()

    @property
    def leader_address(self) -> str:
        return self.consensus.leader_address if self.consensus else ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.consensus is not None:
            began = time.monotonic()
            pending = self.consensus.restore()
            log.info(
                "restored state at index %d in %.2fs (%d log entries to replay on commit)",
                self.store.last_index,
                time.monotonic() - began,
                pending,
            )
            await self._start_rpc()
            await self.consensus.start()
            cfg = self.config
            if not self.consensus.has_state() and (
                cfg.dev or cfg.bootstrap or cfg.bootstrap_expect == 1
            ):
                self.consensus.bootstrap({self.node_id: self.rpc_address})
            if self.consensus.sole_voter():
                await self.consensus.wait_leader(timeout=10)
        try:
            await self.cluster.start()
        except (JoinFailed, GossipError) as exc:
            raise StartError(str(exc)) from None
        # DNS first, as Consul does: once HTTP answers, every listener is up.
        catalog = (
            StoreCatalog(
                self.store,
                self.queries,
                self.wan_queries,
                self.node_name,
                self.acl_runtime if self.config.acl.enabled else None,
            )
            if self.queries is not None
            else RemoteCatalog(self, self._server_call, self._dns_token)
        )
        self.dns = await start_dns(self.config, catalog)
        self._servers = await start_http(self.config, self.app)
        self.local.load()
        if self.consensus is not None and self.consensus.is_leader:
            await self.local.sync_node()
        self.local.start()
        self.session_reaper.start()
        if self.token_reaper is not None:
            self.token_reaper.start()
        if self.federation_sync is not None:
            self.federation_sync.start()

    async def _start_rpc(self) -> None:
        server = RPCServer(lambda peer, payload: self.consensus and self.consensus.deliver(payload))
        server.register("apply", self._rpc_apply)
        server.register("http", lambda args: serve_forwarded(self.app, args))

        async def snapshot(payload: Any) -> bool:
            return await self.consensus.receive_snapshot_done(payload)

        async def snapshot_chunk(args: Any) -> bool:
            return await self.consensus.receive_snapshot_chunk(args)

        async def raft_peers(_: Any) -> list[str]:
            return self.consensus.peers() if self.consensus.has_state() else []

        server.register("raft_snapshot", snapshot)
        server.register("raft_snapshot_chunk", snapshot_chunk)
        server.register("raft_peers", raft_peers)
        server.register("ca_sign", self._rpc_ca_sign)
        server.register("ca_roots", self._rpc_ca_roots)
        server.register(VIRTUAL_IP_RPC, self._rpc_virtual_ip)
        server.register("acl_resolve", self._rpc_acl_resolve)
        server.register(EXECUTE_REMOTE, self.wan_queries.serve)
        bind = (
            self.config.bind_addr
            if self.config.bind_addr not in ("0.0.0.0", "::")
            else self.address
        )
        await server.start(bind, self.config.ports.server, ssl=self.rpc_tls.server)
        self.rpc_server = server

    async def stop(self) -> None:
        if self._leave_on_stop:
            await self.graceful_leave()
        await self.session_reaper.stop()
        if self.token_reaper is not None:
            await self.token_reaper.stop()
        if self.federation_sync is not None:
            await self.federation_sync.stop()
        await self.local.stop()
        if self.dns is not None:
            await self.dns.close()
            self.dns = None
        for server in self._servers:
            server.should_exit = True
        for server in self._servers:
            await server.shutdown_and_wait()
        if self.consensus is not None:
            await self.consensus.stop()
        await self.cluster.stop()
        if self.rpc_server is not None:
            await self.rpc_server.close()
        await self.rpc_pool.close()

    async def graceful_leave(self) -> None:
        """Leave the cluster: hand over Raft leadership first, then announce the leave."""
        self._leave_on_stop = False
        self.leaving = True
        consensus = self.consensus
        if consensus is not None and consensus.is_leader and len(consensus.peers()) > 1:
            try:
                await consensus.transfer_leadership()
            except NotLeader as exc:
                log.warning("leadership transfer before leave failed: %s", exc)
        log.info("agent: gracefully leaving the cluster")
        await self.cluster.leave()

    def members(self) -> list[dict]:
        return self.cluster.members()

    async def join(self, address: str, wan: bool = False) -> None:
        if wan:
            await self._wan_join(address)
        else:
            await self.cluster.join([address])

    async def _wan_join(self, address: str) -> None:
        pool = self.cluster.wan
        if pool is None:
            why = "only servers join the WAN" if self.consensus is None else "no WAN pool"
            raise JoinFailed(f"Failed to join {address}: {why}")
        await pool.join([address])

    def wan_members(self) -> list[dict]:
        """The WAN pool as /v1/agent/members?wan shows it; a client is in none (empty)."""
        pool = self.cluster.wan
        return pool.members() if pool is not None else []

    async def force_leave(self, node: str, prune: bool = False, wan: bool = False) -> None:
        gossip = self.cluster.gossip
        if wan:
            gossip = self.cluster.wan.gossip if self.cluster.wan is not None else None
        if gossip is None or not any(m.name == node for m in gossip.members()):
            raise UnknownNode(f"agent: No node found with name '{node}'")
        gossip.force_leave(node, prune)
        self.cluster.kick()

    def reload(self) -> None:
        """Re-read config files: config-defined services and checks are re-registered."""
        from agent.config import load_config

        fresh = load_config(list(self.argv))
        self.local.reload_config(fresh)
        if self.dns is not None:
            self.dns.reload(fresh)

    def request_stop(self, exit_code: int = 0, leave: bool = False) -> None:
        self.exit_code = self.exit_code or exit_code
        self._leave_on_stop = self._leave_on_stop or leave
        self._stopped.set()

    def on_signal(self, signame: str) -> None:
        """SIGTERM/SIGINT: leave first where Consul's leave_on_terminate/skip_leave_on_interrupt
        say so (clients leave, servers just stop, by default)."""
        cfg = self.config
        leave = cfg.leave_on_terminate if signame == "SIGTERM" else not cfg.skip_leave_on_interrupt
        self.request_stop(leave=leave)

    async def run(self) -> None:
        await self.start()
        log.info(
            "agent %s (%s) started: datacenter=%s server=%s http=%s",
            self.node_name,
            self.address,
            self.datacenter,
            self.config.server,
            ",".join(listen_label(h, p) for h, p in self.config.http_addrs()),
        )
        await self._stopped.wait()
        log.info("shutting down")
        await self.stop()

    def pid(self) -> int:
        return os.getpid()
