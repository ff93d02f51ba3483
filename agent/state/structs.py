"""The records the state store holds, shaped as Consul renders them.

Field names are Consul's wire names (PascalCase), so a record encodes straight to the JSON a
client expects without a translation layer. `gc=False` matters for the KV table: a million
entries are a million objects the cyclic collector would otherwise keep walking.

A service's Connect settings (`Proxy`, `Connect`, `Locality`) are nested records with Go's zero
values as defaults, so every service carries them and a snapshot written before they existed
loads with the zero values. They are `omit_defaults`: a plain service's proxy costs a few bytes
in the log and in snapshots. How they render (Go's `omitempty` rules, which differ between the
catalog and the agent API) is `agent.render`'s.
"""

from __future__ import annotations

from typing import Any

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


class _Nested(msgspec.Struct, gc=False, omit_defaults=True):
    pass


class Locality(_Nested):
    Region: str = ""
    Zone: str = ""


class MeshGatewayConfig(_Nested):
    Mode: str = ""


class ExposePath(_Nested):
    ListenerPort: int = 0
    Path: str = ""
    LocalPathPort: int = 0
    Protocol: str = ""
    ParsedFromCheck: bool = False


class ExposeConfig(_Nested):
    Checks: bool = False
    Paths: list[ExposePath] = []


class TransparentProxyConfig(_Nested):
    OutboundListenerPort: int = 0
    DialedDirectly: bool = False


class AccessLogsConfig(_Nested):
    Enabled: bool = False
    DisableListenerLogs: bool = False
    Type: str = ""
    Path: str = ""
    JSONFormat: str = ""
    TextFormat: str = ""


class EnvoyExtension(_Nested):
    Name: str = ""
    Required: bool = False
    Arguments: dict[str, Any] | None = None
    ConsulVersion: str = ""
    EnvoyVersion: str = ""


class Upstream(_Nested):
    DestinationType: str = ""
    DestinationNamespace: str = ""
    DestinationPartition: str = ""
    DestinationPeer: str = ""
    DestinationName: str = ""
    Datacenter: str = ""
    LocalBindAddress: str = ""
    LocalBindPort: int = 0
    LocalBindSocketPath: str = ""
    LocalBindSocketMode: str = ""
    Config: dict[str, Any] = {}
    MeshGateway: MeshGatewayConfig = msgspec.field(default_factory=MeshGatewayConfig)
    CentrallyConfigured: bool = False


class ConnectProxyConfig(_Nested):
    """Consul's ConnectProxyConfig: what a connect-proxy or gateway instance proxies, and
    how. `Config` is the proxy's own opaque configuration, kept as given."""

    EnvoyExtensions: list[EnvoyExtension] = []
    DestinationServiceName: str = ""
    DestinationServiceID: str = ""
    LocalServiceAddress: str = ""
    LocalServicePort: int = 0
    LocalServiceSocketPath: str = ""
    Mode: str = ""
    Config: dict[str, Any] = {}
    Upstreams: list[Upstream] = []
    MeshGateway: MeshGatewayConfig = msgspec.field(default_factory=MeshGatewayConfig)
    Expose: ExposeConfig = msgspec.field(default_factory=ExposeConfig)
    TransparentProxy: TransparentProxyConfig = msgspec.field(default_factory=TransparentProxyConfig)
    AccessLogs: AccessLogsConfig = msgspec.field(default_factory=AccessLogsConfig)


class ServiceConnect(_Nested):
    """`Native` marks a service that speaks Connect itself. `SidecarService` is registration
    sugar the agent expands and never stores; it is kept only when written straight into the
    catalog, as Consul keeps it, as the (Go-named) definition that was sent."""

    Native: bool = False
    SidecarService: dict[str, Any] | None = None
    PeerMeta: dict[str, Any] | None = None


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
    SocketPath: str = ""
    Locality: Locality | None = None
    Proxy: ConnectProxyConfig = msgspec.field(default_factory=ConnectProxyConfig)
    Connect: ServiceConnect = msgspec.field(default_factory=ServiceConnect)
    CreateIndex: int = 0
    ModifyIndex: int = 0

    @property
    def connect_name(self) -> str:
        """The service this instance accepts Connect traffic for ("" for none): a proxy's
        destination, or its own name for a Connect-native service (Consul's connect index)."""
        if self.Kind == "connect-proxy":
            return self.Proxy.DestinationServiceName
        return self.Service if self.Connect.Native else ""


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
