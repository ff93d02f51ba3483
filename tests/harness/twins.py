"""In-memory twins of the agent's ports (agent/ports.py, agent/http/deps.py), for unit tests
of one part at a time: a real Store and FSM behind a writer that applies at once, a fixed
leadership, a plain identity. No sockets, no Raft, no Agent."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.acl.enforce import ACLRuntime
from agent.config import AgentConfig, load_config
from agent.errors import CommandRefused
from agent.events import UserEvents
from agent.http.deps import HTTPDeps
from agent.mesh_ca import CARuntime, LeafCache, LocalSigner
from agent.mesh_entries import StoreEntries
from agent.metrics import Metrics
from agent.sessions_reaper import SessionReaper
from agent.state.commands import Command, encode, tag
from agent.state.fsm import FSM, Refusal
from agent.state.store import Store


class MemoryWriter:
    """Applies each command to the FSM at the next index, as a one-server cluster would."""

    def __init__(self, fsm: FSM) -> None:
        self.fsm = fsm
        self.commands: list[Command] = []

    async def write(self, command: Command) -> Any:
        self.commands.append(command)
        # Through the log's bytes, as on a server: a command that would not decode is refused.
        result = self.fsm.apply(self.fsm.store.last_index + 1, encode(command))
        if isinstance(result, Refusal):
            raise CommandRefused(result.message, result.kind)
        return result

    def types(self) -> list[str]:
        """The `Type` of each command written, in order."""
        return [tag(c) for c in self.commands]


@dataclass
class FixedLeadership:
    leader_address: str = "127.0.0.1:8300"
    contact_ms: int = 0

    def last_contact_ms(self) -> int:
        return self.contact_ms

    async def barrier(self) -> None:
        return None


@dataclass
class Identity:
    config: AgentConfig
    node_name: str = "node1"
    node_id: str = "00000000-0000-4000-8000-000000000001"
    datacenter: str = "dc1"
    address: str = "127.0.0.1"
    version: str = "1.22.0"
    started_at: float = 0.0
    data_dir: Path | None = None


@dataclass(kw_only=True)
class LocalHostTwin(Identity):
    """What LocalState needs of its agent (agent/local.py LocalHost): a server's view."""

    writer: MemoryWriter
    store: Store

    async def write(self, command: dict) -> Any:
        return await self.writer.write(command)

    async def api_call(self, method: str, path: str, body: Any, token: str = "") -> tuple[int, str]:
        raise AssertionError("ACLs are off: anti-entropy writes through the writer")

    async def read_remote(
        self, path: str, headers: list | None = None, token: str | None = None
    ) -> Any:
        raise AssertionError("a server reads its own store")

    def agent_tokens(self) -> dict[str, str]:
        return {}

    def local_store(self) -> Store | None:
        return self.store


@dataclass
class LocalTwin:
    """The local agent state with nothing registered."""

    services: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)


class Control:
    """Membership and lifecycle of an agent alone in its pool."""

    def __init__(self) -> None:
        self.stopped = False

    def members(self) -> list[dict]:
        return []

    def wan_members(self) -> list[dict]:
        return []

    async def join(self, address: str, wan: bool = False) -> None:
        return None

    async def force_leave(self, node: str, prune: bool = False, wan: bool = False) -> None:
        return None

    async def graceful_leave(self) -> None:
        return None

    def request_stop(self, exit_code: int = 0, leave: bool = False) -> None:
        self.stopped = True

    def reload(self) -> None:
        return None


def http_deps(config: AgentConfig | None = None) -> HTTPDeps:
    """Every port an HTTP area may draw from, as twins; ACLs on when `config` says so."""
    config = config or load_config(["-dev"], environ={})
    store = Store()
    fsm = FSM(store)
    identity = Identity(config)
    writer = MemoryWriter(fsm)
    ca_runtime = CARuntime(
        store,
        writer,
        lambda: True,
        identity.datacenter,
        config.connect_ca_config,
        config.connect_ca_provider,
    )
    signer = LocalSigner(ca_runtime)
    acl = None
    if config.acl.enabled:
        acl = ACLRuntime(store, config.acl, None, identity.node_name, writer, lambda: True)
    return HTTPDeps(
        store=store,
        fsm=fsm,
        writer=writer,
        leadership=FixedLeadership(),
        identity=identity,
        local=LocalTwin(),  # the areas read .services and .checks
        control=Control(),
        metrics=Metrics(),
        consensus=None,
        acl=acl,
        cluster=None,
        events=UserEvents(identity.node_name, list, lambda: None),
        sessions_reaper=SessionReaper(store, writer, lambda: True),  # never started
        ca=ca_runtime,
        signer=signer,
        leaves=LeafCache(signer, identity.datacenter, time.monotonic),
        intentions=StoreEntries(store),
    )
