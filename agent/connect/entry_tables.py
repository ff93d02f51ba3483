"""The fields of every config-entry kind, as data: what `decode_entry` accepts and how
`render_entry` prints it.

A table maps each field's canonical (Go) name to its type:

    "string" "bool" "int" "float"   scalars, decoded with mapstructure's weak typing
    "duration"                      a Go duration string ("15s") or integer nanoseconds
    "strmap"                        map[string]string (Meta, ...)
    "any"                           kept as sent (opaque maps such as proxy Config, and
                                    structures nothing here reads)
    ("list", T)  ("map", T)         slices and maps of T
    Table                           a nested struct (its own dict of fields)

Consul's decoder matches names without regard to case and takes the snake_case alias of a
field (`mesh_gateway` for MeshGateway), so both are derived from the canonical name here.
`ALWAYS` names the struct fields Consul's JSON prints even when empty (they are values, not
pointers, in its Go types), per kind.
"""

from __future__ import annotations

from typing import Any

Table = dict[str, Any]

MESH_GATEWAY: Table = {"Mode": "string"}
TRANSPARENT_PROXY: Table = {"OutboundListenerPort": "int", "DialedDirectly": "bool"}
EXPOSE: Table = {
    "Checks": "bool",
    "Paths": (
        "list",
        {
            "ListenerPort": "int",
            "Path": "string",
            "LocalPathPort": "int",
            "Protocol": "string",
            "ParsedFromCheck": "bool",
        },
    ),
}
HEADER_MATCH: Table = {
    "Name": "string",
    "Present": "bool",
    "Exact": "string",
    "Prefix": "string",
    "Suffix": "string",
    "Regex": "string",
    "Invert": "bool",
}
QUERY_MATCH: Table = {"Name": "string", "Present": "bool", "Exact": "string", "Regex": "string"}
HEADERS: Table = {"Add": "strmap", "Set": "strmap", "Remove": ("list", "string")}
ROUTE: Table = {
    "Match": {
        "HTTP": {
            "PathExact": "string",
            "PathPrefix": "string",
            "PathRegex": "string",
            "Header": ("list", HEADER_MATCH),
            "QueryParam": ("list", QUERY_MATCH),
            "Methods": ("list", "string"),
        }
    },
    "Destination": {
        "Service": "string",
        "ServiceSubset": "string",
        "Namespace": "string",
        "Partition": "string",
        "PrefixRewrite": "string",
        "RequestTimeout": "duration",
        "IdleTimeout": "duration",
        "NumRetries": "int",
        "RetryOnConnectFailure": "bool",
        "RetryOn": ("list", "string"),
        "RetryOnStatusCodes": ("list", "int"),
        "RequestHeaders": HEADERS,
        "ResponseHeaders": HEADERS,
    },
}
SPLIT: Table = {
    "Weight": "float",
    "Service": "string",
    "ServiceSubset": "string",
    "Namespace": "string",
    "Partition": "string",
    "RequestHeaders": HEADERS,
    "ResponseHeaders": HEADERS,
}
TARGET: Table = {
    "Service": "string",
    "ServiceSubset": "string",
    "Partition": "string",
    "Namespace": "string",
    "Datacenter": "string",
    "Peer": "string",
}
FAILOVER: Table = {
    "Service": "string",
    "ServiceSubset": "string",
    "Namespace": "string",
    "Datacenters": ("list", "string"),
    "Targets": ("list", TARGET),
    "Policy": {"Mode": "string", "Regions": ("list", "string")},
    "SamenessGroup": "string",
}
INTENTION_SOURCE: Table = {
    "Name": "string",
    "Peer": "string",
    "Partition": "string",
    "Namespace": "string",
    "SamenessGroup": "string",
    "Action": "string",
    "Permissions": ("list", "any"),
    "Precedence": "int",
    "Type": "string",
    "Description": "string",
    "LegacyID": "string",
    "LegacyMeta": "strmap",
    "LegacyCreateTime": "any",
    "LegacyUpdateTime": "any",
}
PARENT: Table = {"Kind": "string", "Name": "string", "SectionName": "string"}

KIND_FIELDS: dict[str, Table] = {
    "service-defaults": {
        "Protocol": "string",
        "Mode": "string",
        "TransparentProxy": TRANSPARENT_PROXY,
        "MutualTLSMode": "string",
        "MeshGateway": MESH_GATEWAY,
        "Expose": EXPOSE,
        "ExternalSNI": "string",
        "UpstreamConfig": "any",
        "Destination": {"Addresses": ("list", "string"), "Port": "int"},
        "MaxInboundConnections": "int",
        "LocalConnectTimeoutMs": "int",
        "LocalRequestTimeoutMs": "int",
        "BalanceInboundConnections": "string",
        "RateLimits": "any",
        "EnvoyExtensions": ("list", "any"),
    },
    "proxy-defaults": {
        "Config": "any",
        "Mode": "string",
        "TransparentProxy": TRANSPARENT_PROXY,
        "MutualTLSMode": "string",
        "MeshGateway": MESH_GATEWAY,
        "Expose": EXPOSE,
        "AccessLogs": {
            "Enabled": "bool",
            "DisableListenerLogs": "bool",
            "Type": "string",
            "Path": "string",
            "JSONFormat": "string",
            "TextFormat": "string",
        },
        "EnvoyExtensions": ("list", "any"),
        "FailoverPolicy": "any",
        "PrioritizeByLocality": "any",
    },
    "service-router": {"Routes": ("list", ROUTE)},
    "service-splitter": {"Splits": ("list", SPLIT)},
    "service-resolver": {
        "DefaultSubset": "string",
        "Subsets": ("map", {"Filter": "string", "OnlyPassing": "bool"}),
        "Redirect": {
            "Service": "string",
            "ServiceSubset": "string",
            "Namespace": "string",
            "Partition": "string",
            "Datacenter": "string",
            "Peer": "string",
            "SamenessGroup": "string",
        },
        "Failover": ("map", FAILOVER),
        "ConnectTimeout": "duration",
        "RequestTimeout": "duration",
        "LoadBalancer": "any",
        "PrioritizeByLocality": "any",
    },
    "service-intentions": {"Sources": ("list", INTENTION_SOURCE), "JWT": "any"},
    "ingress-gateway": {
        "TLS": "any",
        "Listeners": (
            "list",
            {
                "Port": "int",
                "Protocol": "string",
                "TLS": "any",
                "Services": (
                    "list",
                    {
                        "Name": "string",
                        "Namespace": "string",
                        "Partition": "string",
                        "Hosts": ("list", "string"),
                        "TLS": "any",
                        "RequestHeaders": HEADERS,
                        "ResponseHeaders": HEADERS,
                        "MaxConnections": "int",
                        "MaxPendingRequests": "int",
                        "MaxConcurrentRequests": "int",
                        "PassiveHealthCheck": "any",
                        "Meta": "strmap",
                    },
                ),
            },
        ),
        "Defaults": "any",
    },
    "terminating-gateway": {
        "Services": (
            "list",
            {
                "Name": "string",
                "Namespace": "string",
                "CAFile": "string",
                "CertFile": "string",
                "KeyFile": "string",
                "SNI": "string",
            },
        ),
    },
    "mesh": {
        "TransparentProxy": {"MeshDestinationsOnly": "bool"},
        "AllowEnablingPermissiveMutualTLS": "bool",
        "ValidateClusters": "bool",
        "TLS": "any",
        "HTTP": "any",
        "Peering": "any",
    },
    "exported-services": {
        "Services": (
            "list",
            {
                "Name": "string",
                "Namespace": "string",
                "Consumers": (
                    "list",
                    {"Partition": "string", "Peer": "string", "SamenessGroup": "string"},
                ),
            },
        ),
    },
    "sameness-group": {
        "DefaultForFailover": "bool",
        "IncludeLocal": "bool",
        "Members": ("list", "any"),
    },
    "api-gateway": {
        "Listeners": (
            "list",
            {
                "Name": "string",
                "Hostname": "string",
                "Port": "int",
                "Protocol": "string",
                "TLS": "any",
                "Override": "any",
                "Default": "any",
            },
        ),
        "Status": "any",
    },
    "http-route": {
        "Parents": ("list", PARENT),
        "Rules": ("list", "any"),
        "Hostnames": ("list", "string"),
        "Status": "any",
    },
    "tcp-route": {
        "Parents": ("list", PARENT),
        "Services": ("list", {"Name": "string", "Namespace": "string", "Partition": "string"}),
        "Status": "any",
    },
    "inline-certificate": {"Certificate": "string", "PrivateKey": "string"},
    "jwt-provider": {
        "JSONWebKeySet": "any",
        "Issuer": "string",
        "Audiences": ("list", "string"),
        "Locations": ("list", "any"),
        "Forwarding": "any",
        "ClockSkewSeconds": "int",
        "CacheConfig": "any",
    },
    "bound-api-gateway": {"Listeners": ("list", "any")},
}

# Struct fields Consul's JSON always prints ({} when empty), per kind.
ALWAYS: dict[str, tuple[str, ...]] = {
    "service-defaults": ("TransparentProxy", "MeshGateway", "Expose"),
    "proxy-defaults": ("TransparentProxy", "MeshGateway", "Expose", "AccessLogs"),
    "ingress-gateway": ("TLS",),
    "mesh": ("TransparentProxy",),
}
# Kinds whose Go struct has no Name (the entry is a singleton of its kind).
NAMELESS = frozenset({"mesh"})
# Kinds that must print Kind first even though Go injects it at marshal time: all do here.
