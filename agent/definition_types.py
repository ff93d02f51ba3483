"""The Go types of what an agent registers: service and check definitions.

They reach the agent two ways, as `/v1/agent/service/register` and `/v1/agent/check/register`
bodies and as `service` / `check` blocks of config files, so their tables sit below HTTP:
`agent.http.bodies` checks request bodies against them, `agent.check_decode` decodes checks
with them, and `agent.casing` folds a registration's field names with them. The tables are
written in `agent.gojson`'s terms, named for Consul's own structs.
"""

from __future__ import annotations

from agent.gojson import ANY, STRING_MAP, STRINGS, List, Map, Struct

HEADER = Map("map[string][]string", STRINGS)
OPAQUE = Map("map[string]interface {}", ANY)
WEIGHTS = Struct("structs.Weights", {"Passing": "int", "Warning": "int"})
SERVICE_ADDRESS = Struct("structs.ServiceAddress", {"Address": "string", "Port": "int"})
TAGGED_SERVICE_ADDRESSES = Map("map[string]structs.ServiceAddress", SERVICE_ADDRESS)

# A check's durations are agent/check_decode.py's to read: Consul takes a string or a number
# there and ignores any other kind, so they are not checked here.
CHECK_TYPE_FIELDS = {
    "CheckID": "types.CheckID",
    "ID": "types.CheckID",
    "Name": "string",
    "Status": "string",
    "Notes": "string",
    "ScriptArgs": STRINGS,
    "Args": STRINGS,
    "HTTP": "string",
    "Header": HEADER,
    "Method": "string",
    "Body": "string",
    "DisableRedirects": "bool",
    "TCP": "string",
    "TCPUseTLS": "bool",
    "UDP": "string",
    "Interval": ANY,
    "AliasNode": "string",
    "AliasService": "string",
    "DockerContainerID": "string",
    "Shell": "string",
    "GRPC": "string",
    "GRPCUseTLS": "bool",
    "H2PING": "string",
    "H2PingUseTLS": "bool",
    "OSService": "string",
    "TLSServerName": "string",
    "TLSSkipVerify": "bool",
    "Timeout": ANY,
    "TTL": ANY,
    "SuccessBeforePassing": "int",
    "FailuresBeforeWarning": "int",
    "FailuresBeforeCritical": "int",
    "DeregisterCriticalServiceAfter": ANY,
    "OutputMaxSize": "int",
    "ServiceID": "string",
}
CHECK_TYPE = Struct("structs.CheckType", CHECK_TYPE_FIELDS)
CHECK_DEFINITION = Struct("structs.CheckDefinition", CHECK_TYPE_FIELDS)

# Connect. Consul reads the snake_case spellings of these fields too (its UnmarshalJSON
# aliases, and config files); `Struct.field_name` folds underscores, so both land here.
LOCALITY = Struct("structs.Locality", {"Region": "string", "Zone": "string"})
MESH_GATEWAY = Struct("structs.MeshGatewayConfig", {"Mode": "structs.MeshGatewayMode"})
UPSTREAM = Struct(
    "structs.Upstream",
    {
        "DestinationType": "string",
        "DestinationNamespace": "string",
        "DestinationPartition": "string",
        "DestinationPeer": "string",
        "DestinationName": "string",
        "Datacenter": "string",
        "LocalBindAddress": "string",
        "LocalBindPort": "int",
        "LocalBindSocketPath": "string",
        "LocalBindSocketMode": "string",
        "Config": OPAQUE,
        "MeshGateway": MESH_GATEWAY,
        "CentrallyConfigured": "bool",
    },
)
EXPOSE_PATH = Struct(
    "structs.ExposePath",
    {
        "ListenerPort": "int",
        "Path": "string",
        "LocalPathPort": "int",
        "Protocol": "string",
        "ParsedFromCheck": "bool",
    },
)
EXPOSE = Struct(
    "structs.ExposeConfig",
    {"Checks": "bool", "Paths": List("[]structs.ExposePath", EXPOSE_PATH)},
)
TRANSPARENT_PROXY = Struct(
    "structs.TransparentProxyConfig", {"OutboundListenerPort": "int", "DialedDirectly": "bool"}
)
ACCESS_LOGS = Struct(
    "structs.AccessLogsConfig",
    {
        "Enabled": "bool",
        "DisableListenerLogs": "bool",
        "Type": "structs.LogSinkType",
        "Path": "string",
        "JSONFormat": "string",
        "TextFormat": "string",
    },
)
ENVOY_EXTENSION = Struct(
    "structs.EnvoyExtension",
    {
        "Name": "string",
        "Required": "bool",
        "Arguments": OPAQUE,
        "ConsulVersion": "string",
        "EnvoyVersion": "string",
    },
)
CONNECT_PROXY_CONFIG = Struct(
    "structs.ConnectProxyConfig",
    {
        "EnvoyExtensions": List("[]structs.EnvoyExtension", ENVOY_EXTENSION),
        "DestinationServiceName": "string",
        "DestinationServiceID": "string",
        "LocalServiceAddress": "string",
        "LocalServicePort": "int",
        "LocalServiceSocketPath": "string",
        "Mode": "structs.ProxyMode",
        "Config": OPAQUE,
        "Upstreams": List("structs.Upstreams", UPSTREAM),
        "MeshGateway": MESH_GATEWAY,
        "Expose": EXPOSE,
        "TransparentProxy": TRANSPARENT_PROXY,
        "AccessLogs": ACCESS_LOGS,
    },
)
# SidecarService is a whole service definition: the table is closed over itself below.
SERVICE_CONNECT = Struct(
    "structs.ServiceConnect", {"Native": "bool", "SidecarService": ANY, "PeerMeta": ANY}
)
SERVICE_DEFINITION = Struct(
    "structs.ServiceDefinition",
    {
        "Kind": "structs.ServiceKind",
        "ID": "string",
        "Name": "string",
        "Tags": STRINGS,
        "Address": "string",
        "TaggedAddresses": TAGGED_SERVICE_ADDRESSES,
        "Meta": STRING_MAP,
        "Port": "int",
        "SocketPath": "string",
        "Check": CHECK_TYPE,
        "Checks": List("structs.CheckTypes", CHECK_TYPE),
        "Weights": WEIGHTS,
        "Token": "string",
        "EnableTagOverride": "bool",
        "Proxy": CONNECT_PROXY_CONFIG,
        "Connect": SERVICE_CONNECT,
        "Namespace": "string",
        "Partition": "string",
        "Locality": LOCALITY,
    },
)
SERVICE_CONNECT.fields["SidecarService"] = SERVICE_DEFINITION
