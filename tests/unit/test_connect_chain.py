"""agent.connect.chain: discovery chains compiled as Consul's CompiledDiscoveryChain JSON, and
the write-time graph checks with Consul's messages. Pure: entries are plain dicts keyed by
(kind, name)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.connect.chain import compile_chain, graph_problem, related_services
from agent.connect.chain_values import (
    customization_hash,
    merge_header_modifiers,
    nanoseconds,
    scaled_product,
    service_sni,
    split_weight,
    weight_json,
)
from agent.connect.errors import EntryError

TD = "b6fc9da3-03d4-4b5a-9134-c045e9b20152.consul"
Entries = dict[tuple[str, str], dict[str, Any]]


def entries(*items: dict[str, Any]) -> Entries:
    """Stored entries keyed as the store keys them; mesh is always named "mesh"."""
    return {(item["Kind"], item.get("Name", "mesh")): item for item in items}


def entry(kind: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"Kind": kind, "Name": name, **fields, "CreateIndex": 5, "ModifyIndex": 5}


def defaults(name: str, protocol: str = "http", **fields: Any) -> dict[str, Any]:
    return entry("service-defaults", name, Protocol=protocol, **fields)


def target(
    service: str,
    dc: str = "dc1",
    subset: str = "",
    timeout: str = "5s",
    **fields: Any,
) -> dict[str, Any]:
    """A DiscoveryTarget in Go's JSON order, with the usual empty structs."""
    out: dict[str, Any] = {
        "ConnectTimeout": timeout,
        "ID": f"{subset + '.' if subset else ''}{service}.default.default.{dc}",
        "Service": service,
    }
    if subset:
        out["ServiceSubset"] = subset
    out.update(
        Namespace="default",
        Partition="default",
        Datacenter=dc,
        MeshGateway=fields.pop("MeshGateway", {}),
        Subset=fields.pop("Subset", {}),
        TransparentProxy=fields.pop("TransparentProxy", {}),
    )
    sni = service_sni(service, subset, "default", "default", dc, TD)
    out.update(fields)
    out.setdefault("SNI", sni)
    out["Name"] = sni
    return out


def resolver_node(target_id: str, timeout: str = "5s", **fields: Any) -> dict[str, Any]:
    return {
        "Type": "resolver",
        "Name": target_id,
        "Resolver": {"ConnectTimeout": timeout, **fields, "Target": target_id},
    }


# --- the default chain -----------------------------------------------------------------------


def test_default_chain_is_the_notes_example_exactly() -> None:
    expected = {
        "ServiceName": "web",
        "Namespace": "default",
        "Partition": "default",
        "Datacenter": "dc1",
        "Default": True,
        "Protocol": "tcp",
        "StartNode": "resolver:web.default.default.dc1",
        "Nodes": {
            "resolver:web.default.default.dc1": {
                "Type": "resolver",
                "Name": "web.default.default.dc1",
                "Resolver": {
                    "Default": True,
                    "ConnectTimeout": "5s",
                    "Target": "web.default.default.dc1",
                },
            }
        },
        "Targets": {
            "web.default.default.dc1": {
                "ID": "web.default.default.dc1",
                "Service": "web",
                "Namespace": "default",
                "Partition": "default",
                "Datacenter": "dc1",
                "MeshGateway": {},
                "Subset": {},
                "TransparentProxy": {},
                "ConnectTimeout": "5s",
                "SNI": f"web.default.dc1.internal.{TD}",
                "Name": f"web.default.dc1.internal.{TD}",
            }
        },
        "AutoVirtualIPs": None,
        "ManualVirtualIPs": None,
    }
    assert compile_chain("web", "dc1", TD, {}) == expected


def test_default_chain_keys_come_in_gos_order() -> None:
    # encoding/json writes struct fields in declaration order, and the custom marshallers of
    # DiscoveryResolver and DiscoveryTarget put their ConnectTimeout string first.
    text = json.dumps(compile_chain("web", "dc1", TD, {}), separators=(",", ":"))
    assert text == (
        '{"ServiceName":"web","Namespace":"default","Partition":"default","Datacenter":"dc1",'
        '"Default":true,"Protocol":"tcp","StartNode":"resolver:web.default.default.dc1",'
        '"Nodes":{"resolver:web.default.default.dc1":{"Type":"resolver",'
        '"Name":"web.default.default.dc1","Resolver":{"ConnectTimeout":"5s","Default":true,'
        '"Target":"web.default.default.dc1"}}},"Targets":{"web.default.default.dc1":'
        '{"ConnectTimeout":"5s","ID":"web.default.default.dc1","Service":"web",'
        '"Namespace":"default","Partition":"default","Datacenter":"dc1","MeshGateway":{},'
        f'"Subset":{{}},"TransparentProxy":{{}},"SNI":"web.default.dc1.internal.{TD}",'
        f'"Name":"web.default.dc1.internal.{TD}"}}}},"AutoVirtualIPs":null,'
        '"ManualVirtualIPs":null}'
    )


def test_service_defaults_alone_keep_the_chain_default_and_bring_meta() -> None:
    chain = compile_chain(
        "web", "dc2", TD, entries(defaults("web", "HTTP", Meta={"b": "2", "a": "1"}))
    )
    assert chain["Default"] is True
    assert chain["Protocol"] == "http"
    assert list(chain["ServiceMeta"].items()) == [("a", "1"), ("b", "2")]
    assert chain["Targets"] == {"web.default.default.dc2": target("web", "dc2")}


def test_protocol_falls_back_to_proxy_defaults_config() -> None:
    found = entries(entry("proxy-defaults", "global", Config={"Protocol": "GRPC"}))
    assert compile_chain("web", "dc1", TD, found)["Protocol"] == "grpc"
    # A service-defaults entry wins even without a protocol: it means tcp.
    found.update(entries(defaults("web", "")))
    assert compile_chain("web", "dc1", TD, found)["Protocol"] == "tcp"


def test_virtual_ips_are_lists_once_assigned() -> None:
    chain = compile_chain("web", "dc1", TD, {}, auto_virtual_ips=["240.0.0.1"])
    assert chain["AutoVirtualIPs"] == ["240.0.0.1"]
    assert chain["ManualVirtualIPs"] == []
    assert list(chain)[-2:] == ["AutoVirtualIPs", "ManualVirtualIPs"]


def test_empty_service_is_refused() -> None:
    with pytest.raises(EntryError, match="serviceName is required"):
        compile_chain("", "dc1", TD, {})


# --- routers, splitters, resolvers -----------------------------------------------------------


def l7_entries() -> Entries:
    return entries(
        defaults("web"),
        defaults("api"),
        entry(
            "service-router",
            "web",
            Routes=[
                {
                    "Match": {"HTTP": {"PathPrefix": "/api"}},
                    "Destination": {"Service": "api", "RequestTimeout": 15_000_000_000},
                },
                {
                    "Match": {"HTTP": {"Header": [{"Name": "x-canary", "Exact": "1"}]}},
                    "Destination": {"ServiceSubset": "v2"},
                },
            ],
        ),
        entry(
            "service-splitter",
            "web",
            Splits=[{"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "Service": "api"}],
        ),
        entry(
            "service-splitter",
            "api",
            Splits=[
                {"Weight": 33.33, "ServiceSubset": "a"},
                {"Weight": 66.67, "ServiceSubset": "b"},
            ],
        ),
        entry(
            "service-resolver",
            "web",
            DefaultSubset="v1",
            Subsets={
                "v1": {"Filter": "Service.Meta.version == v1"},
                "v2": {"Filter": "Service.Meta.version == v2", "OnlyPassing": True},
            },
            Failover={"*": {"Datacenters": ["dc2", "dc1"]}},
            ConnectTimeout="3s",
        ),
        entry("service-resolver", "api", Subsets={"a": {}, "b": {}}),
    )


def test_router_splitter_resolver_compile_to_consuls_nodes_and_targets() -> None:
    chain = compile_chain("web", "dc1", TD, l7_entries())
    assert chain["StartNode"] == "router:web.default.default"
    assert "Default" not in chain and "CustomizationHash" not in chain
    assert chain["Protocol"] == "http"
    nodes = chain["Nodes"]
    assert list(nodes) == sorted(nodes)
    assert nodes["router:web.default.default"] == {
        "Type": "router",
        "Name": "web.default.default",
        "Routes": [
            {
                "Definition": {
                    "Match": {"HTTP": {"PathPrefix": "/api"}},
                    "Destination": {"RequestTimeout": "15s", "Service": "api"},
                },
                "NextNode": "splitter:api.default.default",
            },
            {
                "Definition": {
                    "Match": {"HTTP": {"Header": [{"Name": "x-canary", "Exact": "1"}]}},
                    "Destination": {"ServiceSubset": "v2"},
                },
                "NextNode": "resolver:v2.web.default.default.dc1",
            },
            {
                "Definition": {
                    "Match": {"HTTP": {"PathPrefix": "/"}},
                    "Destination": {
                        "Service": "web",
                        "Namespace": "default",
                        "Partition": "default",
                    },
                },
                "NextNode": "splitter:web.default.default",
            },
        ],
    }
    # web's splitter leg to api's splitter is flattened: 10% of 33.33% and of 66.67%.
    assert nodes["splitter:web.default.default"]["Splits"] == [
        {
            "Definition": {"Weight": 90, "ServiceSubset": "v1"},
            "Weight": 90,
            "NextNode": "resolver:v1.web.default.default.dc1",
        },
        {
            "Definition": {"Weight": 33.33, "ServiceSubset": "a"},
            "Weight": 3.33,
            "NextNode": "resolver:a.api.default.default.dc1",
        },
        {
            "Definition": {"Weight": 66.67, "ServiceSubset": "b"},
            "Weight": 6.67,
            "NextNode": "resolver:b.api.default.default.dc1",
        },
    ]
    assert nodes["resolver:v1.web.default.default.dc1"] == resolver_node(
        "v1.web.default.default.dc1", "3s", Failover={"Targets": ["v1.web.default.default.dc2"]}
    )
    assert nodes["resolver:a.api.default.default.dc1"] == resolver_node("a.api.default.default.dc1")
    assert sorted(nodes) == [
        "resolver:a.api.default.default.dc1",
        "resolver:b.api.default.default.dc1",
        "resolver:v1.web.default.default.dc1",
        "resolver:v2.web.default.default.dc1",
        "router:web.default.default",
        "splitter:api.default.default",
        "splitter:web.default.default",
    ]
    v1 = {"Filter": "Service.Meta.version == v1"}
    v2 = {"Filter": "Service.Meta.version == v2", "OnlyPassing": True}
    assert chain["Targets"] == {
        "a.api.default.default.dc1": target("api", subset="a"),
        "b.api.default.default.dc1": target("api", subset="b"),
        "v1.web.default.default.dc1": target("web", subset="v1", timeout="3s", Subset=v1),
        "v1.web.default.default.dc2": target("web", "dc2", "v1", "3s", Subset=v1),
        "v2.web.default.default.dc1": target("web", subset="v2", timeout="3s", Subset=v2),
        "v2.web.default.default.dc2": target("web", "dc2", "v2", "3s", Subset=v2),
    }


def test_splitter_example_from_the_notes() -> None:
    found = entries(
        defaults("web"),
        entry(
            "service-splitter",
            "web",
            Splits=[{"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "ServiceSubset": "v2"}],
        ),
        entry("service-resolver", "web", Subsets={"v1": {}, "v2": {}}),
    )
    chain = compile_chain("web", "dc1", TD, found)
    assert chain["StartNode"] == "splitter:web.default.default"
    assert sorted(chain["Nodes"]) == [
        "resolver:v1.web.default.default.dc1",
        "resolver:v2.web.default.default.dc1",
        "splitter:web.default.default",
    ]
    assert chain["Targets"]["v1.web.default.default.dc1"]["SNI"] == (
        f"v1.web.default.dc1.internal.{TD}"
    )
    # Resolvers with subsets are not default resolvers.
    assert "Default" not in chain["Nodes"]["resolver:v1.web.default.default.dc1"]["Resolver"]


def test_redirect_moves_the_start_and_is_not_default() -> None:
    found = entries(entry("service-resolver", "web", Redirect={"Service": "api"}))
    chain = compile_chain("web", "dc1", TD, found)
    assert chain["StartNode"] == "resolver:api.default.default.dc1"
    assert "Default" not in chain
    # api has no resolver entry: its implicit one is default, but it is not web's.
    assert chain["Nodes"]["resolver:api.default.default.dc1"]["Resolver"]["Default"] is True
    assert chain["Targets"] == {"api.default.default.dc1": target("api")}


def test_redirect_to_another_datacenter_keeps_the_service() -> None:
    found = entries(entry("service-resolver", "web", Redirect={"Datacenter": "dc3"}))
    chain = compile_chain("web", "dc1", TD, found)
    assert chain["StartNode"] == "resolver:web.default.default.dc3"
    assert chain["Targets"] == {"web.default.default.dc3": target("web", "dc3")}


def test_failover_to_datacenters_skips_its_own() -> None:
    found = entries(
        entry("service-resolver", "web", Failover={"*": {"Datacenters": ["dc2", "dc3"]}})
    )
    chain = compile_chain("web", "dc1", TD, found)
    assert chain["Nodes"]["resolver:web.default.default.dc1"] == resolver_node(
        "web.default.default.dc1",
        Failover={"Targets": ["web.default.default.dc2", "web.default.default.dc3"]},
    )
    assert sorted(chain["Targets"]) == [
        "web.default.default.dc1",
        "web.default.default.dc2",
        "web.default.default.dc3",
    ]
    only_self = entries(entry("service-resolver", "web", Failover={"*": {"Datacenters": ["dc1"]}}))
    node = compile_chain("web", "dc1", TD, only_self)["Nodes"]["resolver:web.default.default.dc1"]
    assert "Failover" not in node["Resolver"]


def test_failover_targets_resolve_through_their_own_resolvers() -> None:
    found = entries(
        entry(
            "service-resolver",
            "web",
            Failover={"*": {"Targets": [{"Service": "backup"}, {"Datacenter": "dc2"}]}},
        ),
        entry("service-resolver", "backup", Redirect={"Service": "spare"}),
        entry("proxy-defaults", "global", FailoverPolicy={"Mode": "sequential"}),
    )
    failover = compile_chain("web", "dc1", TD, found)["Nodes"]["resolver:web.default.default.dc1"]
    assert failover["Resolver"]["Failover"] == {
        "Targets": ["spare.default.default.dc1", "web.default.default.dc2"],
        "Policy": {"Mode": "sequential"},
    }


def test_failover_by_subset_prefers_the_subset_section() -> None:
    found = entries(
        entry(
            "service-resolver",
            "web",
            Subsets={"v1": {}},
            DefaultSubset="v1",
            Failover={"v1": {"Service": "other"}, "*": {"Datacenters": ["dc2"]}},
        )
    )
    node = compile_chain("web", "dc1", TD, found)["Nodes"]["resolver:v1.web.default.default.dc1"]
    assert node["Resolver"]["Failover"] == {"Targets": ["other.default.default.dc1"]}


def test_connect_timeout_accepts_duration_strings_and_nanoseconds() -> None:
    for value in ("2500ms", 2_500_000_000):
        found = entries(entry("service-resolver", "web", ConnectTimeout=value))
        chain = compile_chain("web", "dc1", TD, found)
        resolver = chain["Nodes"]["resolver:web.default.default.dc1"]["Resolver"]
        assert resolver == {"ConnectTimeout": "2.5s", "Target": "web.default.default.dc1"}
        assert chain["Targets"]["web.default.default.dc1"]["ConnectTimeout"] == "2.5s"
    # RequestTimeout on the resolver node stays integer nanoseconds, as Consul writes it.
    found = entries(entry("service-resolver", "web", RequestTimeout="10s"))
    resolver = compile_chain("web", "dc1", TD, found)["Nodes"]["resolver:web.default.default.dc1"]
    assert resolver["Resolver"]["RequestTimeout"] == 10_000_000_000


def test_mesh_gateway_and_dialed_directly_come_from_the_defaults() -> None:
    found = entries(
        entry(
            "proxy-defaults",
            "global",
            MeshGateway={"Mode": "remote"},
            TransparentProxy={"DialedDirectly": True},
        )
    )
    web = compile_chain("web", "dc1", TD, found)["Targets"]["web.default.default.dc1"]
    assert web["MeshGateway"] == {"Mode": "remote"}
    assert web["TransparentProxy"] == {"DialedDirectly": True}
    found.update(entries(defaults("web", "tcp", MeshGateway={"Mode": "local"})))
    web = compile_chain("web", "dc1", TD, found)["Targets"]["web.default.default.dc1"]
    assert web["MeshGateway"] == {"Mode": "local"}


def test_external_sni_replaces_the_sni_but_not_the_name() -> None:
    found = entries(
        defaults("web", "tcp", ExternalSNI="web.example.com", MeshGateway={"Mode": "local"})
    )
    web = compile_chain("web", "dc1", TD, found)["Targets"]["web.default.default.dc1"]
    assert web == target("web", MeshGateway={}, External=True, SNI="web.example.com")
    assert list(web)[-3:] == ["External", "SNI", "Name"]


def test_splitter_takes_the_first_hash_based_balancer_of_its_legs() -> None:
    ring = {"Policy": "ring_hash", "RingHashConfig": {"MinimumRingSize": 1024}}
    found = entries(
        defaults("web"),
        defaults("a"),
        defaults("b"),
        entry(
            "service-splitter",
            "web",
            Splits=[{"Weight": 50, "Service": "a"}, {"Weight": 50, "Service": "b"}],
        ),
        entry("service-resolver", "a", LoadBalancer={"Policy": "least_request"}),
        entry("service-resolver", "b", LoadBalancer=ring),
    )
    nodes = compile_chain("web", "dc1", TD, found)["Nodes"]
    assert nodes["splitter:web.default.default"]["LoadBalancer"] == ring
    assert nodes["resolver:a.default.default.dc1"]["LoadBalancer"] == {"Policy": "least_request"}


def test_flattening_merges_header_edits_from_the_parent() -> None:
    found = entries(
        defaults("web"),
        defaults("api"),
        entry(
            "service-splitter",
            "web",
            Splits=[
                {
                    "Weight": 100,
                    "Service": "api",
                    "RequestHeaders": {"Set": {"x-a": "parent", "x-b": "parent"}},
                    "ResponseHeaders": {"Set": {"x-r": "parent"}, "Remove": ["x-gone"]},
                }
            ],
        ),
        entry(
            "service-splitter",
            "api",
            Splits=[
                {
                    "Weight": 100,
                    "RequestHeaders": {"Set": {"x-a": "child"}},
                    "ResponseHeaders": {"Set": {"x-r": "child"}},
                }
            ],
        ),
    )
    chain = compile_chain("web", "dc1", TD, found)
    assert sorted(chain["Nodes"]) == [
        "resolver:api.default.default.dc1",
        "splitter:web.default.default",
    ]
    [split] = chain["Nodes"]["splitter:web.default.default"]["Splits"]
    assert split == {
        "Definition": {
            "Weight": 100,
            "RequestHeaders": {"Set": {"x-a": "child", "x-b": "parent"}},
            "ResponseHeaders": {"Set": {"x-r": "parent"}, "Remove": ["x-gone"]},
        },
        "Weight": 100,
        "NextNode": "resolver:api.default.default.dc1",
    }


# --- overrides -------------------------------------------------------------------------------


def test_overrides_from_consuls_own_test_give_its_hash() -> None:
    # agent/discovery_chain_endpoint_test.go: resolver ConnectTimeout 33s, failover to dc2,
    # POSTed overrides mesh gateway local, grpc, 22s -> CustomizationHash "98809527".
    found = entries(
        entry(
            "service-resolver",
            "web",
            ConnectTimeout="33s",
            Failover={"*": {"Datacenters": ["dc2"]}},
        )
    )
    overrides = {
        "OverrideMeshGateway": {"Mode": "local"},
        "OverrideProtocol": "grpc",
        "OverrideConnectTimeout": "22s",
    }
    chain = compile_chain("web", "dc1", TD, found, overrides)
    assert chain["CustomizationHash"] == "98809527"
    assert chain["Protocol"] == "grpc"
    assert chain["Nodes"] == {
        "resolver:web.default.default.dc1": resolver_node(
            "web.default.default.dc1", "22s", Failover={"Targets": ["web.default.default.dc2"]}
        )
    }
    local = {"Mode": "local"}
    assert chain["Targets"] == {
        "web.default.default.dc1": target("web", timeout="22s", MeshGateway=local),
        "web.default.default.dc2": target("web", "dc2", timeout="22s", MeshGateway=local),
    }


def test_each_override_changes_the_hash_and_the_targets() -> None:
    base = compile_chain("web", "dc1", TD, {})
    assert "CustomizationHash" not in base
    gateway = compile_chain("web", "dc1", TD, {}, {"OverrideMeshGateway": {"Mode": "remote"}})
    timeout = compile_chain("web", "dc1", TD, {}, {"OverrideConnectTimeout": 7_000_000_000})
    protocol = compile_chain("web", "dc1", TD, {}, {"OverrideProtocol": "http"})
    hashes = {c["CustomizationHash"] for c in (gateway, timeout, protocol)}
    assert len(hashes) == 3 and all(len(h) <= 8 for h in hashes)
    assert gateway["Targets"]["web.default.default.dc1"]["MeshGateway"] == {"Mode": "remote"}
    assert timeout["Targets"]["web.default.default.dc1"]["ConnectTimeout"] == "7s"
    assert protocol["Protocol"] == "http"
    assert timeout["CustomizationHash"] == customization_hash("", "", 7_000_000_000)


def test_overrides_that_change_nothing_leave_no_hash() -> None:
    found = entries(
        defaults("web", "http", MeshGateway={"Mode": "local"}),
        entry("service-resolver", "web", ConnectTimeout="5s"),
    )
    overrides = {
        "OverrideMeshGateway": {"Mode": "local"},
        "OverrideProtocol": "http",
        "OverrideConnectTimeout": "5s",
    }
    assert "CustomizationHash" not in compile_chain("web", "dc1", TD, found, overrides)


def test_tcp_override_drops_routers_and_splitters() -> None:
    chain = compile_chain("web", "dc1", TD, l7_entries(), {"OverrideProtocol": "tcp"})
    assert chain["Protocol"] == "tcp"
    assert chain["StartNode"] == "resolver:v1.web.default.default.dc1"
    assert "CustomizationHash" in chain
    assert all(key.startswith("resolver:") for key in chain["Nodes"])


def test_invalid_mesh_gateway_override_is_a_400() -> None:
    with pytest.raises(EntryError) as caught:
        compile_chain("web", "dc1", TD, {}, {"OverrideMeshGateway": {"Mode": "sideways"}})
    assert (caught.value.status, caught.value.message) == (
        400,
        "Invalid OverrideMeshGateway.Mode parameter",
    )


# --- compile errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("found", "message"),
    [
        (
            entries(entry("service-router", "web", Routes=[])),
            'discovery chain "web" uses a protocol "tcp" that does not permit advanced routing '
            "or splitting behavior",
        ),
        (
            entries(
                defaults("web"),
                defaults("api", "grpc"),
                entry("service-router", "web", Routes=[{"Destination": {"Service": "api"}}]),
            ),
            'discovery chain "web" uses inconsistent protocols; service "api" has "grpc" '
            'which is not "http"',
        ),
        (
            entries(
                defaults("web"),
                entry("service-splitter", "web", Splits=[{"Weight": 100, "ServiceSubset": "v9"}]),
            ),
            'service "web" does not have a subset named "v9"',
        ),
        (
            entries(
                entry("service-resolver", "web", Redirect={"Service": "api"}),
                entry("service-resolver", "api", Redirect={"Service": "web"}),
            ),
            "detected circular resolver redirect: [web.default.default.dc1 -> "
            "api.default.default.dc1 -> web.default.default.dc1]",
        ),
        (
            entries(
                entry("proxy-defaults", "global", Config={"protocol": "http"}),
                entry("service-splitter", "web", Splits=[{"Weight": 100, "Service": "api"}]),
                entry("service-splitter", "api", Splits=[{"Weight": 100, "Service": "web"}]),
            ),
            "detected circular reference: [splitter:web.default.default -> "
            "splitter:api.default.default -> splitter:web.default.default]",
        ),
        (
            entries(
                defaults("web", "tcp", ExternalSNI="web.example.com"),
                entry("service-resolver", "web", Failover={"*": {"Datacenters": ["dc2"]}}),
            ),
            'service "web" has an external SNI set; cannot define failover for external services',
        ),
    ],
)
def test_compile_errors_carry_consuls_messages(found: Entries, message: str) -> None:
    with pytest.raises(EntryError) as caught:
        compile_chain("web", "dc1", TD, found)
    assert caught.value.message == message and caught.value.status == 500


# --- graph problems at write time ------------------------------------------------------------


def test_router_on_a_tcp_service_is_refused() -> None:
    after = entries(entry("service-router", "web", Routes=[]))
    assert graph_problem(after, ("service-router", "web")) == (
        'discovery chain "web" uses a protocol "tcp" that does not permit advanced routing or '
        "splitting behavior"
    )
    after.update(entries(defaults("web")))
    assert graph_problem(after, ("service-router", "web")) is None


def test_splitter_on_a_tcp_chain_is_refused() -> None:
    after = entries(entry("service-splitter", "web", Splits=[{"Weight": 100}]))
    assert graph_problem(after, ("service-splitter", "web")) == (
        'discovery chain "web" uses a protocol "tcp" that does not permit advanced routing or '
        "splitting behavior"
    )


def test_deleting_the_protocol_under_a_router_is_refused() -> None:
    # The service-defaults entry is gone from the after-state: a delete.
    after = entries(entry("service-router", "web", Routes=[]))
    assert "does not permit advanced routing" in (
        graph_problem(after, ("service-defaults", "web")) or ""
    )


def test_changing_a_referenced_service_rechecks_the_referring_chain() -> None:
    after = entries(
        defaults("web"),
        defaults("api", "tcp"),
        entry("service-router", "web", Routes=[{"Destination": {"Service": "api"}}]),
    )
    assert graph_problem(after, ("service-defaults", "api")) == (
        'discovery chain "web" uses inconsistent protocols; service "api" has "tcp" which is '
        'not "http"'
    )


def test_unknown_subset_and_circular_redirect_at_write_time() -> None:
    after = entries(
        defaults("web"),
        entry("service-router", "web", Routes=[{"Destination": {"ServiceSubset": "v2"}}]),
    )
    assert graph_problem(after, ("service-router", "web")) == (
        'service "web" does not have a subset named "v2"'
    )
    after = entries(
        entry("service-resolver", "a", Redirect={"Service": "b"}),
        entry("service-resolver", "b", Redirect={"Service": "a"}),
    )
    assert graph_problem(after, ("service-resolver", "b")) == (
        "detected circular resolver redirect: [a.default.default.dc1 -> b.default.default.dc1 "
        "-> a.default.default.dc1]"
    )


def test_proxy_defaults_change_rechecks_every_chain() -> None:
    after = entries(defaults("web"), entry("service-router", "api", Routes=[]))
    # api relied on proxy-defaults for http; deleting it leaves api's router on tcp.
    assert graph_problem(after, ("proxy-defaults", "global")) == (
        'discovery chain "api" uses a protocol "tcp" that does not permit advanced routing or '
        "splitting behavior"
    )
    after.update(entries(entry("proxy-defaults", "global", Config={"protocol": "http"})))
    assert graph_problem(after, ("proxy-defaults", "global")) is None
    assert graph_problem({}, ("proxy-defaults", "other")) is None


def l7_intention(name: str) -> dict[str, Any]:
    permissions = [{"Action": "allow", "HTTP": {"PathPrefix": "/"}}]
    return entry("service-intentions", name, Sources=[{"Name": "web", "Permissions": permissions}])


def test_l7_intentions_need_an_http_like_destination() -> None:
    after = entries(l7_intention("api"))
    message = (
        'service "api" has protocol "tcp", which is incompatible with L7 intentions permissions'
    )
    assert graph_problem(after, ("service-intentions", "api")) == message
    # Moving api back to tcp under an existing L7 intention is refused the same way.
    after.update(entries(defaults("api", "tcp")))
    assert graph_problem(after, ("service-defaults", "api")) == message
    after.update(entries(defaults("api", "http2")))
    assert graph_problem(after, ("service-defaults", "api")) is None
    # L4 intentions and deletes are not checked.
    plain = entry("service-intentions", "db", Sources=[{"Name": "web", "Action": "allow"}])
    assert graph_problem(entries(plain), ("service-intentions", "db")) is None
    assert graph_problem({}, ("service-intentions", "db")) is None


def ingress(name: str, protocol: str, *services: str) -> dict[str, Any]:
    listener = {"Port": 8080, "Protocol": protocol, "Services": [{"Name": s} for s in services]}
    return entry("ingress-gateway", name, Listeners=[listener])


def test_ingress_listener_protocol_must_match_its_services() -> None:
    after = entries(ingress("igw", "http", "web", "*"))
    assert graph_problem(after, ("ingress-gateway", "igw")) == (
        'service "web" has protocol "tcp", which does not match defined listener protocol "http"'
    )
    after = entries(ingress("igw", "tcp", "web"), defaults("web"))
    # Writing the ingress itself is strict...
    assert graph_problem(after, ("ingress-gateway", "igw")) == (
        'service "web" has protocol "http", which does not match defined listener protocol "tcp"'
    )
    # ...but a tcp listener tolerates its service turning L7 while the chain is a resolver,
    assert graph_problem(after, ("service-defaults", "web")) is None
    # and not once the chain starts with a router.
    after.update(entries(entry("service-router", "web", Routes=[])))
    assert graph_problem(after, ("service-router", "web")) == (
        'service "web" has protocol "http", which does not match defined listener protocol "tcp"'
    )
    assert graph_problem({}, ("ingress-gateway", "igw")) is None


def test_ingress_and_terminating_gateways_may_not_share_a_name() -> None:
    after = entries(ingress("gw", "tcp", "web"), entry("terminating-gateway", "gw", Services=[]))
    assert graph_problem(after, ("ingress-gateway", "gw")) == (
        'cannot create a "ingress-gateway" config entry with name "gw", a "terminating-gateway" '
        "config entry with that name already exists"
    )
    assert graph_problem(after, ("terminating-gateway", "gw")) == (
        'cannot create a "terminating-gateway" config entry with name "gw", a "ingress-gateway" '
        "config entry with that name already exists"
    )


def test_intentions_must_reference_existing_jwt_providers() -> None:
    jwt = {"Providers": [{"Name": "okta"}]}
    intention = entry("service-intentions", "api", JWT=jwt, Sources=[{"Name": "web"}])
    assert graph_problem(entries(intention), ("service-intentions", "api")) == (
        "1 error occurred:\n\t* Referenced JWT Provider does not exist. Provider Name: okta\n\n"
    )
    found = entries(intention, entry("jwt-provider", "okta"))
    assert graph_problem(found, ("service-intentions", "api")) is None


def test_switching_to_permissive_mtls_needs_the_mesh_setting() -> None:
    before = entries(defaults("web"))
    after = entries(defaults("web", MutualTLSMode="permissive"))
    key = ("service-defaults", "web")
    assert graph_problem(after, key, entries_before=before) == (
        "cannot set MutualTLSMode=permissive because AllowEnablingPermissiveMutualTLS=false in "
        "the mesh config entry"
    )
    assert graph_problem(after, key, entries_before=after) is None  # staying permissive
    mesh = {"Kind": "mesh", "AllowEnablingPermissiveMutualTLS": True}
    assert graph_problem({**after, ("mesh", "mesh"): mesh}, key, entries_before=before) is None


def test_mesh_and_exported_services_check_nothing() -> None:
    broken = entries(entry("service-router", "web", Routes=[]))
    assert graph_problem(broken, ("mesh", "mesh")) is None
    assert graph_problem(broken, ("exported-services", "default")) is None


def test_related_services_follow_consuls_lists() -> None:
    router = entry("service-router", "web", Routes=[{"Destination": {"Service": "api"}}, {}])
    assert related_services("service-router", router) == ["api", "web"]
    splitter = entry("service-splitter", "web", Splits=[{"Weight": 50}, {"Service": "b"}])
    assert related_services("service-splitter", splitter) == ["b"]
    resolver = entry(
        "service-resolver",
        "web",
        Failover={"*": {"Targets": [{"Service": "x"}, {"Service": "y", "Peer": "p"}]}},
    )
    assert related_services("service-resolver", resolver) == ["x"]


# --- values ----------------------------------------------------------------------------------


def test_split_weights_are_float32_rounded_to_hundredths() -> None:
    assert weight_json(split_weight(33.333)) == 33.33
    assert weight_json(split_weight(90)) == 90 and isinstance(weight_json(split_weight(90)), int)
    assert weight_json(scaled_product(split_weight(50), split_weight(33.33))) == 16.67
    assert weight_json(split_weight(0.005)) == 0.01


def test_durations_and_snis() -> None:
    assert nanoseconds("1m30s") == 90_000_000_000
    assert nanoseconds(5) == 5 and nanoseconds(None) == 0 and nanoseconds("") == 0
    assert service_sni("web", "", "default", "ap1", "dc1", TD) == (
        f"web.default.ap1.dc1.internal-v1.{TD}"
    )


def test_header_modifier_merge_prefers_overrides_and_unions_removes() -> None:
    merged = merge_header_modifiers(
        {"Add": {"a": "1"}, "Remove": ["x", "y"]}, {"Add": {"a": "2"}, "Remove": ["y", "z"]}
    )
    assert merged == {"Add": {"a": "2"}, "Remove": ["x", "y", "z"]}
    assert merge_header_modifiers(None, None) is None
    assert merge_header_modifiers(None, {"Set": {"k": "v"}}) == {"Set": {"k": "v"}}
