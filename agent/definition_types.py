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
        "Proxy": ANY,
        "Connect": ANY,
        "Namespace": "string",
        "Partition": "string",
        "Locality": ANY,
    },
)
