"""`gitkv import`'s pure parts: API answers -> spec values (and what is skipped, why), the
YAML writer's quoting and value-file names, and the read-back check against the loader."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from gitkv.errors import GitkvError
from gitkv.importer.emit import AgentRow, Imported, _block, flow, quote, value_files
from gitkv.importer.objects import spec_value_problem
from gitkv.importer.run import parse_kinds, verify, write
from gitkv.importer.values import (
    Skipped,
    acl_values,
    external_values,
    kv_values,
    service_values,
    token_name,
)
from gitkv.kinds.config_entries import entry_object
from gitkv.resources import KVPair, derive_prefixes

NASTY = [
    "",
    "plain",
    "yes",
    "null",
    "~",
    "0x10",
    "1e3",
    "- a",
    "a: b",
    "# c",
    "&anchor",
    "*ref",
    "!tag",
    "%x",
    "@",
    "`",
    "{a}",
    "[1]",
    'q"uote',
    "back\\slash",
    "tab\there",
    "nul\0x",
    "bell\x07",
    "del\x7f",
    "nel\x85",
    "c1\x9b",
    "ls\u2028ps\u2029",
    "bom\ufeff",
    "caf\u00e9",
    "emoji \U0001f600",
    " leading",
    "trailing ",
    "\u00a0nbsp",
]


def _load(text: str) -> object:
    return YAML(typ="safe", pure=False).load(text)


@pytest.mark.parametrize("text", NASTY)
def test_quote_reads_back_exactly(text: str) -> None:
    assert _load(f"k: {quote(text)}\n") == {"k": text}
    assert _load(f"{quote(text)}: v\n") == {text: "v"}


def test_literal_blocks_only_when_they_read_back() -> None:
    rules = 'key_prefix "app/" {\n  policy = "read"\n}\n\nnode "" { policy = "read" }'
    block = _block(rules, "    ")
    assert block is not None and _load(f"r: {block}\n") == {"r": rules}
    for text in ("one line", "trailing \nspace", " lead\nx", "x\n\tindent", "bell\x07\nx"):
        assert _block(text, "    ") is None


def test_value_files_are_safe_and_unique() -> None:
    keys = ["a", "a/b", "x/../y", ".hidden", "a//b", "dir/", "ok/config.json", "sp ace/ü"]
    kv = {k: KVPair(k, b"line\n" * 3) for k in keys}
    files = value_files(kv, limit=1024)
    assert set(files) == set(keys)
    paths = list(files.values())
    assert len(set(paths)) == len(paths)
    for p in paths:
        parts = p.split("/")
        assert parts[0] == "kv" and "" not in parts and "." not in parts and ".." not in parts
        assert not any(s.startswith(".") for s in parts)
        # No file sits where another file's directory is.
        assert not any(q.startswith(p + "/") for q in paths)
    assert files["ok/config.json"] == "kv/ok/config.json"
    assert files["a/b"] == "kv/a/b" and files["a"].startswith("kv/_/")
    # Short single-line text stays inline; binary, long and multi-line text go to files.
    mixed = {
        "t": KVPair("t", b"short"),
        "b": KVPair("b", b"\xff\xfe"),
        "l": KVPair("l", b"x" * 11),
        "m": KVPair("m", b"a\nb"),
    }
    assert set(value_files(mixed, limit=10)) == {"b", "l", "m"}


def test_kv_values_leave_gitkvs_bookkeeping_out() -> None:
    entries = [
        {"Key": "app/a", "Value": "MQ==", "Flags": 3, "ModifyIndex": 5},
        {"Key": "gitkv/state/dc1", "Value": "e30=", "ModifyIndex": 6},
        {"Key": "gitkv/status/dc1", "Value": "e30=", "ModifyIndex": 7},
        {"Key": "app/null", "Value": None, "ModifyIndex": 8},
    ]
    assert kv_values(entries) == {
        "app/a": KVPair("app/a", b"1", 3),
        "app/null": KVPair("app/null", b""),
    }
    assert set(kv_values(entries, bookkeeping=True)) == {"app/a", "app/null", "gitkv/status/dc1"}


def _check(**kw: object) -> dict[str, object]:
    return {"CheckID": "service:web", "ServiceID": "web", "Name": "c", "Type": "http", **kw}


def test_services_and_the_reasons_they_are_skipped() -> None:
    web = {"ID": "web", "Service": "web", "Port": 80, "Tags": ["b", "a"], "Meta": {"t": "x"}}
    ok = _check(Interval="10s", Definition={"HTTP": "http://h/", "Interval": "10s"})
    regs, skipped, _ = service_values("n1", [web], [ok])
    assert regs["n1/web"].tags == ("a", "b") and regs["n1/web"].checks[0].target == "http://h/"
    assert not skipped

    def reason(svc: dict[str, object], checks: list[dict[str, object]] | None = None) -> str:
        regs, skipped, _ = service_values("n1", [svc], checks or [])
        assert not regs
        (s,) = skipped
        return s.reason

    assert "connect-proxy" in reason({**web, "Kind": "connect-proxy"})
    assert "Connect" in reason({**web, "Connect": {"Native": True}})
    assert "EnableTagOverride" in reason({**web, "EnableTagOverride": True})
    assert "Weights" in reason({**web, "Weights": {"Passing": 3, "Warning": 1}})
    assert "TaggedAddresses" in reason({**web, "TaggedAddresses": {"x": {"Address": "1.2.3.4"}}})
    assert "reserved prefix" in reason({**web, "Meta": {"consul-x": "1"}})
    assert "Header" in reason(
        web, [_check(Interval="1s", Definition={"HTTP": "u", "Header": {"A": ["b"]}})]
    )
    assert "type 'docker'" in reason(web, [_check(Type="docker", Interval="1s")])
    assert "no interval" in reason(web, [_check(Definition={"HTTP": "u"})])
    # The agent's own tagged addresses (lan/wan = the service's) are no obstacle.
    tagged = {
        **web,
        "Address": "10.0.0.1",
        "TaggedAddresses": {"lan_ipv4": {"Address": "10.0.0.1", "Port": 80}},
    }
    assert service_values("n1", [tagged], [])[0]
    # A sidecar's parent is skipped too (registering it again would drop the sidecar), and
    # the servers' own `consul` service is never imported.
    side = {"ID": "web-sidecar-proxy", "Service": "web-sidecar-proxy", "Kind": "connect-proxy",
            "Proxy": {"DestinationServiceID": "web"}}  # fmt: skip
    regs, skipped, _ = service_values("n1", [web, side, {"ID": "consul", "Service": "consul"}], [])
    assert not regs and [s.id for s in skipped] == ["n1/web", "n1/web-sidecar-proxy"]
    assert "sidecar proxy" in skipped[0].reason
    # Script checks keep their argument list.
    script = _check(Type="script", Interval="5s", Definition={"ScriptArgs": ["sh", "-c", "a b"]})
    _, _, args = service_values("n1", [web], [script])
    assert args == {"n1/web": {"service:web": ["sh", "-c", "a b"]}}


def test_external_nodes() -> None:
    data = {
        "Node": {
            "Node": "db",
            "Address": "10.1.1.1",
            "Meta": {"rack": "r1"},
            "TaggedAddresses": {},
        },
        "Services": {
            "pg": {"ID": "pg", "Service": "pg", "Port": 5432, "Proxy": {"Mode": "", "Expose": {}}}
        },
    }
    node = external_values(data, [])
    assert not isinstance(node, Skipped) and node.services[0].port == 5432
    skipped = external_values(data, [{"CheckID": "x"}])
    assert isinstance(skipped, Skipped) and "health checks" in skipped.reason
    tagged = {**data, "Node": {**data["Node"], "TaggedAddresses": {"wan": "1.2.3.4"}}}
    assert isinstance(external_values(tagged, []), Skipped)


def test_acl_tokens_by_reference_and_their_names() -> None:
    taken: set[str] = set()
    assert token_name("gitkv:web", taken) == "web"
    assert token_name("CI deploy (prod)", taken) == "ci-deploy-prod"
    assert token_name("CI deploy prod", taken) == "ci-deploy-prod-2"
    assert token_name("!!!", taken) == "token"
    policies = [{"ID": "p1", "Name": "app", "Rules": ' key "a" { policy = "read" } \n'}]
    policies.append({"ID": "00000000-0000-0000-0000-000000000001", "Name": "global-management"})
    policies.append({"ID": "p2", "Name": "broken", "Rules": 'key_prefix "a" { policy = "rule" }'})
    roles = [
        {"Name": "r", "Policies": [{"Name": "app"}]},
        {"Name": "lost", "Policies": [{"Name": "gone"}]},
        {"Name": "ids", "ServiceIdentities": [{"ServiceName": "web"}]},
    ]
    tokens = [
        {
            "AccessorID": "a1",
            "SecretID": "s1",
            "Description": "gitkv:web",
            "Policies": [{"Name": "app"}],
        },
        {"AccessorID": "a2", "Description": "mgmt", "Policies": [{"Name": "global-management"}]},
        {"AccessorID": "a3", "Description": "", "Policies": []},
        {"AccessorID": "a4", "Description": "login", "AuthMethod": "k8s"},
        {"AccessorID": "a5", "Description": "exp", "ExpirationTime": "2030-01-01T00:00:00Z"},
        {"AccessorID": "a6", "Description": "role", "Roles": [{"Name": "lost"}]},
        {"AccessorID": "00000000-0000-0000-0000-000000000002", "Description": "Anonymous Token"},
    ]
    acl = acl_values(policies, roles, tokens, parse_kinds("acl"))
    assert (
        list(acl.policies) == ["app"] and acl.policies["app"].rules == 'key "a" { policy = "read" }'
    )
    assert list(acl.roles) == ["r"]
    assert sorted(acl.tokens) == ["mgmt", "web"] and acl.accessors == {"mgmt": "a2", "web": "a1"}
    assert "s1" not in repr(acl)
    reasons = {s.id: s.reason for s in acl.skipped}
    assert reasons["broken"].startswith("its rules do not validate as a spec's")
    assert reasons["lost"] == "names policy gone, not imported"
    assert "ServiceIdentities" in reasons["ids"]
    assert "no description" in reasons["a3"] and "login to 'k8s'" in reasons["a4"]
    assert "expires" in reasons["a5"] and "names role lost" in reasons["a6"]


def test_parse_kinds() -> None:
    assert parse_kinds(None) == parse_kinds(
        "kv,service,external_node,acl,config_entry,prepared_query,autopilot,ca"
    )
    assert "acl_binding_rule" in parse_kinds("acl") and "config_entry" in parse_kinds("intentions")
    assert parse_kinds("kv") == frozenset({"kv"})
    with pytest.raises(GitkvError, match="unknown kind 'nope'"):
        parse_kinds("kv,nope")
    with pytest.raises(GitkvError, match="at least one"):
        parse_kinds(",")


def test_written_spec_is_loaded_back_and_compared(tmp_path: Path) -> None:
    imp = Imported(
        datacenter="dc1",
        address="http://127.0.0.1:8500",
        kv={k: KVPair(k, k.encode() * 3, 7) for k in NASTY[1:] if "/" not in k},
        agents={"n1": AgentRow("n1", True, "127.0.0.1", "127.0.0.1", 8500)},
    )
    imp.prefixes = derive_prefixes(imp.kv)
    write(imp, tmp_path, inline_max=16, header="test")
    res = verify(imp, tmp_path)
    assert res.kv == imp.kv
    # A writer bug (the spec says something else) fails the import.
    imp.kv["plain"] = KVPair("plain", b"other")
    with pytest.raises(GitkvError, match="does not read back.*kv plain"):
        verify(imp, tmp_path)


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1.5, 50.0, 1e-05, 2.5e20, -0.0], "c": None, "d": True, "e": "yes"},
        [{"": "empty key"}, [], {}, "0x10", "~", 10**20],
    ],
)
def test_flow_reads_back_as_the_same_value(value: object) -> None:
    assert _load(f"v: {flow(value)}\n") == {"v": value}


def test_whole_objects_must_read_back_through_the_spec() -> None:
    body = {"Protocol": "http"}
    obj = entry_object("service-defaults", "web", body)
    assert spec_value_problem({"config_entries": {"service-defaults": {"web": body}}}, obj) == ""
    unknown = {"Protocol": "http", "NotAField": 1}
    problem = spec_value_problem(
        {"config_entries": {"service-defaults": {"web": unknown}}},
        entry_object("service-defaults", "web", unknown),
    )
    assert problem.startswith("the spec cannot express it") and "NotAField" in problem
    nan = {"Config": {"x": float("nan")}}
    problem = spec_value_problem(
        {"config_entries": {"proxy-defaults": {"global": nan}}},
        entry_object("proxy-defaults", "global", nan),
    )
    assert "NaN" in problem
