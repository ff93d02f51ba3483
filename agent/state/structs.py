"""The records the state store holds, shaped as Consul renders them.

Field names are Consul's wire names (PascalCase), so a record encodes straight to the JSON a
client expects without a translation layer. `gc=False` matters for the KV table: a million
entries are a million objects the cyclic collector would otherwise keep walking.
"""

from __future__ import annotations

import msgspec


class KVEntry(msgspec.Struct, gc=False, array_like=True):
    Key: str
    Value: bytes
    Flags: int = 0
    CreateIndex: int = 0
    ModifyIndex: int = 0
    LockIndex: int = 0
    Session: str = ""


class Node(msgspec.Struct, gc=False, omit_defaults=False):
    Node: str
    Address: str
    ID: str = ""
    Datacenter: str = ""
    TaggedAddresses: dict[str, str] = {}
    Meta: dict[str, str] = {}
    CreateIndex: int = 0
    ModifyIndex: int = 0


class Weights(msgspec.Struct, gc=False):
    Passing: int = 1
    Warning: int = 1


class Service(msgspec.Struct, gc=False):
    """A service instance registered on a node (the catalog's NodeService)."""

    ID: str
    Service: str
    Tags: list[str] = []
    Address: str = ""
    TaggedAddresses: dict[str, dict] = {}
    Meta: dict[str, str] = {}
    Port: int = 0
    Weights: Weights = msgspec.field(default_factory=Weights)
    EnableTagOverride: bool = False
    Kind: str = ""
    CreateIndex: int = 0
    ModifyIndex: int = 0


class HealthCheck(msgspec.Struct, gc=False):
    Node: str
    CheckID: str
    Name: str = ""
    Status: str = "critical"
    Notes: str = ""
    Output: str = ""
    ServiceID: str = ""
    ServiceName: str = ""
    ServiceTags: list[str] = []
    Type: str = ""
    Interval: str = ""
    Timeout: str = ""
    ExposedPort: int = 0
    Definition: dict = {}
    CreateIndex: int = 0
    ModifyIndex: int = 0


HEALTH_STATES = ("passing", "warning", "critical", "maintenance")


class ServiceCheck(msgspec.Struct, gc=False):
    ID: str
    Namespace: str = ""


class Session(msgspec.Struct, gc=False):
    """A session (agent/state/sessions.py). `LockDelay` is in nanoseconds, as Consul renders it."""

    ID: str
    Name: str = ""
    Node: str = ""
    LockDelay: int = 0
    Behavior: str = "release"
    TTL: str = ""
    NodeChecks: list[str] | None = None
    ServiceChecks: list[ServiceCheck] | None = None
    CreateIndex: int = 0
    ModifyIndex: int = 0

    def check_ids(self) -> list[str]:
        """Every check on the session's node whose failure invalidates the session."""
        ids = list(self.NodeChecks or [])
        ids.extend(c.ID for c in self.ServiceChecks or [])
        return ids
