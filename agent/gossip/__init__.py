"""SWIM + Lifeguard gossip membership (memberlist/serf-like): a sans-IO core and an asyncio driver.

See `swim.Memberlist` for the protocol and `driver.GossipDriver` for running it on UDP + TCP.
"""

from agent.gossip.config import GossipConfig, lan_config, local_config, wan_config
from agent.gossip.coordinate import Coordinate
from agent.gossip.errors import (
    BindError,
    GossipError,
    JoinError,
    MessageError,
    UnknownMember,
    UserEventTooLarge,
)
from agent.gossip.events import (
    GossipEvent,
    JoinResult,
    Member,
    MemberConflict,
    MemberFailed,
    MemberJoin,
    MemberLeave,
    MemberReap,
    MemberStatus,
    MemberUpdate,
    Outputs,
    Packet,
    StreamRequest,
    UserEvent,
)
from agent.gossip.merge import MergeDelegate, StandardMergeDelegate, chain_merge_delegates
from agent.gossip.swim import Memberlist

__all__ = [
    "BindError",
    "Coordinate",
    "GossipConfig",
    "GossipError",
    "GossipEvent",
    "JoinError",
    "JoinResult",
    "Member",
    "MemberConflict",
    "MemberFailed",
    "MemberJoin",
    "MemberLeave",
    "MemberReap",
    "MemberStatus",
    "MemberUpdate",
    "Memberlist",
    "MergeDelegate",
    "MessageError",
    "Outputs",
    "Packet",
    "StandardMergeDelegate",
    "StreamRequest",
    "UnknownMember",
    "UserEvent",
    "UserEventTooLarge",
    "chain_merge_delegates",
    "lan_config",
    "local_config",
    "wan_config",
]
