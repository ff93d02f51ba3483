"""The Go types Consul decodes each write body into, as `agent.gojson` describes them.

One table per body, named for Consul's own struct, so a decode error reads exactly as Consul's
(`... into Go struct field KVTxnOp.KV.Flags of type uint64`). Only the kind and range of each
field is checked here; what a field means (a known verb, a valid duration text, a name within
limits) is the handler's to check after. Service and check definitions also come from config
files, so their tables are `agent.definition_types`'.
"""

from __future__ import annotations

from agent import definition_types
from agent.definition_types import HEADER, TAGGED_SERVICE_ADDRESSES, WEIGHTS
from agent.gojson import ANY, DURATION, STRING_MAP, STRINGS, Either, List, Map, Struct

# ---------------------------------------------------------------------- catalog (structs.*)

NODE_SERVICE = Struct(
    "structs.NodeService",
    {
        "Kind": "structs.ServiceKind",
        "ID": "string",
        "Service": "string",
        "Tags": STRINGS,
        "Address": "string",
        "TaggedAddresses": TAGGED_SERVICE_ADDRESSES,
        "Meta": STRING_MAP,
        "Port": "int",
        "SocketPath": "string",
        "Weights": WEIGHTS,
        "EnableTagOverride": "bool",
        "Proxy": ANY,
        "Connect": ANY,
        "Namespace": "string",
        "Partition": "string",
        "PeerName": "string",
        "Locality": ANY,
    },
)
# The HealthCheckDefinition fields are decoded field by field in catalog.py (durations as
# text or nanoseconds, unknown fields dropped); here only its kind is checked.
HEALTH_CHECK = Struct(
    "structs.HealthCheck",
    {
        "Node": "string",
        "CheckID": "types.CheckID",
        "Name": "string",
        "Status": "string",
        "Notes": "string",
        "Output": "string",
        "ServiceID": "string",
        "ServiceName": "string",
        "ServiceTags": STRINGS,
        "Type": "string",
        "Interval": "string",
        "Timeout": "string",
        "ExposedPort": "int",
        "Definition": Map("structs.HealthCheckDefinition", ANY),
        "Namespace": "string",
        "Partition": "string",
        "PeerName": "string",
    },
)
REGISTER = Struct(
    "structs.RegisterRequest",
    {
        "ID": "types.NodeID",
        "Node": "string",
        "Address": "string",
        "Datacenter": "string",
        "TaggedAddresses": STRING_MAP,
        "NodeMeta": STRING_MAP,
        "Service": NODE_SERVICE,
        "Check": HEALTH_CHECK,
        "Checks": List("structs.HealthChecks", HEALTH_CHECK),
        "SkipNodeUpdate": "bool",
        "Token": "string",
        "Locality": ANY,
    },
)
DEREGISTER = Struct(
    "structs.DeregisterRequest",
    {"Node": "string", "Datacenter": "string", "ServiceID": "string", "CheckID": "types.CheckID"},
)

# ---------------------------------------------------------------------- txn (api.*)

_API_NODE = Struct(
    "api.Node",
    {
        "ID": "string",
        "Node": "string",
        "Address": "string",
        "Datacenter": "string",
        "TaggedAddresses": STRING_MAP,
        "Meta": STRING_MAP,
        "CreateIndex": "uint64",
        "ModifyIndex": "uint64",
        "Partition": "string",
        "PeerName": "string",
        "Locality": ANY,
    },
)
_API_SERVICE = Struct(
    "api.AgentService",
    {
        "Kind": "api.ServiceKind",
        "ID": "string",
        "Service": "string",
        "Tags": STRINGS,
        "Meta": STRING_MAP,
        "Port": "int",
        "Address": "string",
        "SocketPath": "string",
        "TaggedAddresses": Map(
            "map[string]api.ServiceAddress",
            Struct("api.ServiceAddress", {"Address": "string", "Port": "int"}),
        ),
        "Weights": Struct("api.AgentWeights", {"Passing": "int", "Warning": "int"}),
        "EnableTagOverride": "bool",
        "CreateIndex": "uint64",
        "ModifyIndex": "uint64",
        "ContentHash": "string",
        "Proxy": ANY,
        "Connect": ANY,
        "PeerName": "string",
        "Namespace": "string",
        "Partition": "string",
        "Datacenter": "string",
        "Locality": ANY,
    },
)
_API_CHECK_DEFINITION = Struct(
    "api.HealthCheckDefinition",
    {
        "HTTP": "string",
        "Header": HEADER,
        "Method": "string",
        "Body": "string",
        "TLSServerName": "string",
        "TLSSkipVerify": "bool",
        "TCP": "string",
        "TCPUseTLS": "bool",
        "UDP": "string",
        "GRPC": "string",
        "OSService": "string",
        "GRPCUseTLS": "bool",
        "IntervalDuration": "time.Duration",
        "TimeoutDuration": "time.Duration",
        "DeregisterCriticalServiceAfterDuration": "time.Duration",
        "Interval": DURATION,
        "Timeout": DURATION,
        "DeregisterCriticalServiceAfter": DURATION,
    },
)
_API_CHECK = Struct(
    "api.HealthCheck",
    {
        "Node": "string",
        "CheckID": "string",
        "Name": "string",
        "Status": "string",
        "Notes": "string",
        "Output": "string",
        "ServiceID": "string",
        "ServiceName": "string",
        "ServiceTags": STRINGS,
        "Type": "string",
        "Namespace": "string",
        "Partition": "string",
        "ExposedPort": "int",
        "PeerName": "string",
        "Definition": _API_CHECK_DEFINITION,
        "CreateIndex": "uint64",
        "ModifyIndex": "uint64",
    },
)
TXN_OPS = List(
    "api.TxnOps",
    Struct(
        "api.TxnOp",
        {
            "KV": Struct(
                "api.KVTxnOp",
                {
                    "Verb": "api.KVOp",
                    "Key": "string",
                    "Value": "[]uint8",
                    "Flags": "uint64",
                    "Index": "uint64",
                    "Session": "string",
                    "Namespace": "string",
                    "Partition": "string",
                },
            ),
            "Node": Struct("api.NodeTxnOp", {"Verb": "api.NodeOp", "Node": _API_NODE}),
            "Service": Struct(
                "api.ServiceTxnOp",
                {"Verb": "api.ServiceOp", "Node": "string", "Service": _API_SERVICE},
            ),
            "Check": Struct("api.CheckTxnOp", {"Verb": "api.CheckOp", "Check": _API_CHECK}),
        },
    ),
)

# ---------------------------------------------------------------------- sessions

SESSION = Struct(
    "structs.Session",
    {
        "ID": "string",
        "Name": "string",
        "Node": "string",
        # Consul reads the body into a generic map first, so a LockDelay number may be 1.5
        "LockDelay": Either("time.Duration", ("string", "float64")),
        "Behavior": "structs.SessionBehavior",
        "TTL": "string",
        "NodeChecks": STRINGS,
        "ServiceChecks": List(
            "[]structs.ServiceCheck",
            Struct("structs.ServiceCheck", {"ID": "string", "Namespace": "string"}),
        ),
        "Checks": List("[]types.CheckID", "types.CheckID"),
        "Namespace": "string",
        "Partition": "string",
    },
)

# ---------------------------------------------------------------------- agent

# Registrations also come from config files; the areas find their tables here all the same.
SERVICE_DEFINITION = definition_types.SERVICE_DEFINITION
CHECK_DEFINITION = definition_types.CHECK_DEFINITION
CHECK_UPDATE = Struct("agent.checkUpdate", {"Status": "string", "Output": "string"})

# ---------------------------------------------------------------------- ACL

_LINKS = List("[]structs.ACLLink", Struct("structs.ACLLink", {"ID": "string", "Name": "string"}))
_SERVICE_IDENTITIES = List(
    "[]*structs.ACLServiceIdentity",
    Struct("structs.ACLServiceIdentity", {"ServiceName": "string", "Datacenters": STRINGS}),
)
_NODE_IDENTITIES = List(
    "[]*structs.ACLNodeIdentity",
    Struct("structs.ACLNodeIdentity", {"NodeName": "string", "Datacenter": "string"}),
)
# The variables' Go field carries the JSON name `name`; Go matches any casing of it.
TEMPLATED_POLICY_VARIABLES = Struct("structs.ACLTemplatedPolicyVariables", {"name": "string"})
_TEMPLATED_POLICIES = List(
    "[]*structs.ACLTemplatedPolicy",
    Struct(
        "structs.ACLTemplatedPolicy",
        {
            "TemplateID": "string",
            "TemplateName": "string",
            "TemplateVariables": TEMPLATED_POLICY_VARIABLES,
            "Datacenters": STRINGS,
        },
    ),
)
ACL_TOKEN = Struct(
    "structs.ACLToken",
    {
        "AccessorID": "string",
        "SecretID": "string",
        "Description": "string",
        "Policies": _LINKS,
        "Roles": _LINKS,
        "ServiceIdentities": _SERVICE_IDENTITIES,
        "NodeIdentities": _NODE_IDENTITIES,
        "TemplatedPolicies": _TEMPLATED_POLICIES,
        "Local": "bool",
        "AuthMethod": "string",
        "ExpirationTime": "time.Time",
        "ExpirationTTL": DURATION,
        "Namespace": "string",
        "Partition": "string",
    },
)
ACL_POLICY = Struct(
    "structs.ACLPolicy",
    {
        "ID": "string",
        "Name": "string",
        "Description": "string",
        "Rules": "string",
        "Datacenters": STRINGS,
        "Namespace": "string",
        "Partition": "string",
    },
)
ACL_ROLE = Struct(
    "structs.ACLRole",
    {
        "ID": "string",
        "Name": "string",
        "Description": "string",
        "Policies": _LINKS,
        "ServiceIdentities": _SERVICE_IDENTITIES,
        "NodeIdentities": _NODE_IDENTITIES,
        "TemplatedPolicies": _TEMPLATED_POLICIES,
        "Namespace": "string",
        "Partition": "string",
    },
)
ACL_AUTH_METHOD = Struct(
    "structs.ACLAuthMethod",
    {
        "Name": "string",
        "Type": "string",
        "DisplayName": "string",
        "Description": "string",
        "MaxTokenTTL": DURATION,
        "TokenLocality": "string",
        "Config": Map("map[string]interface {}", ANY),
        "Namespace": "string",
        "Partition": "string",
        "NamespaceRules": ANY,
    },
)
ACL_BINDING_RULE = Struct(
    "structs.ACLBindingRule",
    {
        "ID": "string",
        "Description": "string",
        "AuthMethod": "string",
        "Selector": "string",
        "BindType": "string",
        "BindName": "string",
        "BindVars": Struct("structs.ACLTemplatedPolicyVariables", {"name": "string"}),
        "Namespace": "string",
        "Partition": "string",
    },
)
ACL_LOGIN = Struct(
    "structs.ACLLoginParams",
    {
        "AuthMethod": "string",
        "BearerToken": "string",
        "Meta": STRING_MAP,
        "Namespace": "string",
        "Partition": "string",
    },
)

# ---------------------------------------------------------------------- coordinates

COORDINATE_UPDATE = Struct(
    "structs.CoordinateUpdateRequest",
    {
        "Datacenter": "string",
        "Node": "string",
        "Segment": "string",
        "Coord": Struct(
            "coordinate.Coordinate",
            {
                "Vec": List("[]float64", "float64"),
                "Error": "float64",
                "Adjustment": "float64",
                "Height": "float64",
            },
        ),
        "Partition": "string",
    },
)
AGENT_TOKEN = Struct("api.AgentToken", {"Token": "string"})
ACL_BOOTSTRAP = Struct("api.BootstrapRequest", {"BootstrapSecret": "string"})
