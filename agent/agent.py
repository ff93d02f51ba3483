"""The agent: wires config, store, consensus, local state, checks and listeners together.

Lifecycle: `Agent(config)` does no I/O; `await agent.start()` restores state from the data
dir, opens every listener (failing fast, with the address, if one is taken), registers this
node in the catalog, and starts health checks; `await agent.stop()` undoes it in reverse.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from agent.http.app import HTTPError
from agent.local import LocalState
from agent.metrics import Metrics
from agent.raft.single import NotLeader, SingleServer
from agent.state.fsm import FSM, CommandRefused
from agent.state.store import Store

log = logging.getLogger("agent")

CONSUL_VERSION = "1.22.0"


_APPLY_METRICS = {
    "kv": "consul.kvs.apply",
    "txn": "consul.txn.apply",
    "register": "consul.catalog.register",
    "deregister": "consul.catalog.deregister",
    "restore": "consul.snapshot.restore",
}


class AgentError(Exception):
    """The agent cannot start; the message is one line naming the cause."""


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
        raise AgentError("No private IPv4 address found")
    if len(found) > 1:
        raise AgentError(
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
        self.consensus: SingleServer | None = None
        if config.server:
            self.consensus = SingleServer(
                self.fsm,
                self.data_dir,
                f"{self.address}:{config.ports.server}",
                bootstrap=config.dev or config.bootstrap or config.bootstrap_expect == 1,
                snapshot_every=config.raft_snapshot_threshold,
                metrics=self.metrics,
            )
        self.local = LocalState(self)
        self._servers: list[Any] = []
        self.rpc_pool: Any = None
        self._stopped = asyncio.Event()
        self.leaving = False

    # ------------------------------------------------------------------ writes / reads

    async def write(self, command: dict) -> Any:
        """Propose a command through consensus; refusals become HTTP errors."""
        if self.consensus is None:
            raise HTTPError(500, "No known Consul servers")
        started = time.perf_counter()
        try:
            result = await self.consensus.apply(command)
        except NotLeader as exc:
            raise HTTPError(500, str(exc)) from None
        name = _APPLY_METRICS.get(command.get("Type", ""))
        if name:
            self.metrics.sample(name, (time.perf_counter() - started) * 1000.0)
        if isinstance(result, CommandRefused):
            raise HTTPError(result.status, result.message)
        return result

    async def consensus_barrier(self) -> None:
        """For ?consistent: a single server is trivially sure it is still the leader."""
        if self.consensus is None or not self.consensus.is_leader:
            raise HTTPError(500, "No cluster leader")

    def pick_server(self) -> str | None:
        """RPC address of a server to send a client agent's requests to (none known yet)."""
        return None

    @property
    def leader_address(self) -> str:
        return self.consensus.leader_address if self.consensus else ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from agent.http.server import start_http

        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.consensus is not None:
            began = time.monotonic()
            replayed = self.consensus.restore()
            log.info(
                "restored state at index %d (%d log entries replayed) in %.2fs",
                self.store.last_index,
                replayed,
                time.monotonic() - began,
            )
            await self.consensus.start()
        self._servers = await start_http(self)
        self.local.load()
        if self.consensus is not None and self.consensus.is_leader:
            await self.local.sync_node()
        elif self.consensus is not None:
            log.warning(
                "no cluster leader: this server waits for %d servers (bootstrap_expect), "
                "and joining other servers needs the cluster support that is not built yet",
                self.config.bootstrap_expect,
            )
        self.local.start()

    async def stop(self) -> None:
        await self.local.stop()
        for server in self._servers:
            server.should_exit = True
        for server in self._servers:
            await server.shutdown_and_wait()
        if self.consensus is not None:
            await self.consensus.stop()

    def reload(self) -> None:
        """Re-read config files: config-defined services and checks are re-registered."""
        from agent.config import load_config

        fresh = load_config(list(self.argv))
        self.local.reload_config(fresh)

    def request_stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        await self.start()
        log.info(
            "agent %s (%s) started: datacenter=%s server=%s http=%s",
            self.node_name,
            self.address,
            self.datacenter,
            self.config.server,
            ",".join(f"{h}:{p}" for h, p in self.config.http_addrs()),
        )
        await self._stopped.wait()
        log.info("shutting down")
        await self.stop()

    def pid(self) -> int:
        return os.getpid()
