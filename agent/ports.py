"""The seams between the agent's parts: small Protocols, each with the contract it keeps.

`agent/agent.py` is the one module that knows every part; it builds these ports and hands each
part (an HTTP area, the local state, the cluster manager, the DNS server) the few it uses,
never the whole Agent. Tests hand the same parts in-memory twins (`tests/harness/twins.py`).

Layering: this module sits below everything that uses it and imports nothing of the agent's at
run time; the store, command and config types it names are for annotations only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agent.config_value import AgentConfig
    from agent.state.commands import Command


class Writer(Protocol):
    """Proposes one FSM command (agent/state/commands.py) and returns the FSM's result.

    On a leader it goes through Raft; on a follower or client agent it is forwarded to the
    leader. A command of the wrong shape, a lost leadership or an FSM refusal raise from
    `agent.errors` (`CommandRefused`, `NotLeader`, `NoServers`): nothing is half-written."""

    async def write(self, command: Command) -> Any: ...


class Leadership(Protocol):
    """What a read needs of consensus: the leader it knows, how fresh this server's view is,
    and, for `?consistent`, a barrier that confirms leadership with a quorum."""

    @property
    def leader_address(self) -> str: ...

    def last_contact_ms(self) -> int:
        """Milliseconds since this server last heard from the leader (0 on the leader)."""
        ...

    async def barrier(self) -> None:
        """Return once a quorum confirmed this server still leads; raise NotLeader if not."""
        ...


class AgentIdentity(Protocol):
    """Who this agent is: fixed for the life of the process (config reloads aside)."""

    node_name: str
    node_id: str
    datacenter: str
    address: str
    version: str
    started_at: float
    data_dir: Path | None

    @property
    def config(self) -> AgentConfig: ...


class RemoteReader(Protocol):
    """GETs a /v1 path (a `?query` allowed) from a server (client agents hold no state),
    with extra `[name, value]` headers and `token` (None: the agent's own); None on 404."""

    async def read_remote(
        self, path: str, headers: list | None = None, token: str | None = None
    ) -> Any: ...


class APICaller(Protocol):
    """Runs an HTTP API call through this agent's own handlers, forwarding and ACL checks
    included, as a client would: for the agent's own writes that must carry its token."""

    async def api_call(
        self, method: str, path: str, body: Any, token: str = "", query: str = ""
    ) -> tuple[int, str]: ...
