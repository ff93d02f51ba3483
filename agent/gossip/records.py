"""The records the SWIM core keeps about members and the exchanges it has running."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.gossip.messages import NodeState

LIVE = (NodeState.ALIVE, NodeState.SUSPECT)


@dataclass(slots=True)
class NodeRecord:
    """One member as the table holds it (memberlist's nodeState)."""

    name: str
    addr: str
    tags: dict[str, str]
    incarnation: int
    state: NodeState
    state_change: float
    # serf's "leaving": a force-leave reached us while the member is live; it lasts until the
    # member refutes (alive news with a higher incarnation) or is found dead (then it left).
    leaving: bool = False


@dataclass(slots=True)
class Probe:
    """The probe in flight: direct ping, then indirect ones after `timeout_at`."""

    target: str
    addr: str
    seq: int
    sent: float
    timeout_at: float
    deadline: float
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(slots=True)
class Relay:
    """An indirect ping we run for `requester`: forward the ack, or nack at `timeout_at`."""

    requester: str
    seq: int
    nack: bool
    timeout_at: float


@dataclass(slots=True)
class Stream:
    """A stream we asked the driver to open, until its reply comes back."""

    kind: str  # "join" | "push_pull" | "ping"
    addr: str
    token: int = 0  # join token or ping seq


@dataclass(slots=True)
class Join:
    """A join in progress: the push-pulls still out, and how the others went."""

    pending: set[int]
    joined: int = 0
    errors: dict[str, str] = field(default_factory=dict)


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)
