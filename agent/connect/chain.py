"""Discovery chains: how a service's traffic is routed, split and resolved, from config entries.

Two entry points, both pure:

- `compile_chain(service, datacenter, trust_domain, entries, overrides)` gives the "Chain"
  object of `GET|POST /v1/discovery-chain/<service>`, shaped as Consul's
  CompiledDiscoveryChain JSON (key order included). For a service with no entries in dc1:

      {"ServiceName": "web", "Namespace": "default", "Partition": "default",
       "Datacenter": "dc1", "Default": true, "Protocol": "tcp",
       "StartNode": "resolver:web.default.default.dc1",
       "Nodes": {"resolver:web.default.default.dc1": {"Type": "resolver",
           "Name": "web.default.default.dc1",
           "Resolver": {"ConnectTimeout": "5s", "Default": true,
                        "Target": "web.default.default.dc1"}}},
       "Targets": {"web.default.default.dc1": {"ConnectTimeout": "5s",
           "ID": "web.default.default.dc1", "Service": "web", "Namespace": "default",
           "Partition": "default", "Datacenter": "dc1", "MeshGateway": {}, "Subset": {},
           "TransparentProxy": {}, "SNI": "web.default.dc1.internal.<trust domain>",
           "Name": "web.default.dc1.internal.<trust domain>"}},
       "AutoVirtualIPs": null, "ManualVirtualIPs": null}

  Node keys are "<type>:<name>": routers and splitters are named "<service>.default.default",
  resolvers by their target's ID ("[<subset>.]<service>.default.default.<dc>").

- `graph_problem(entries_after, changed)` gives the message Consul refuses a config-entry
  write (or delete) with when it would leave some chain, ingress gateway or L7 intention
  invalid, or None.

The compiler lives in `agent.connect.chain_compile`, the write-time checks in
`agent.connect.chain_graph`, the JSON details (durations, float32 weights, SNIs,
CustomizationHash) in `agent.connect.chain_values`.
"""

from __future__ import annotations

from agent.connect.chain_compile import HTTP_LIKE, Entries, compile_chain, protocol_of
from agent.connect.chain_graph import graph_problem, related_services

__all__ = [
    "HTTP_LIKE",
    "Entries",
    "compile_chain",
    "graph_problem",
    "protocol_of",
    "related_services",
]
